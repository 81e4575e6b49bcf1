#!/usr/bin/env python3
"""check_multipart.py HEADERS BODY FULL RANGES [CTYPE]

Checks a multipart/byteranges response (RFC 9110 14.6) saved by curl -D/-o:
HEADERS and BODY are the response, FULL the whole object, RANGES the expected
parts as "a-b,c-d" (inclusive, in order), CTYPE the expected per-part
Content-Type ("-" for none).  Parses the body generically (RFC 2046
delimiters), compares every part's headers and bytes, and checks that the
body is byte for byte the layout the edge documents and that Content-Length
matches.  Prints "ok" or the first problem."""
import re
import sys


def main():
    hdr_path, body_path, full_path, ranges = sys.argv[1:5]
    ctype = sys.argv[5] if len(sys.argv) > 5 else "-"
    raw = open(hdr_path, "rb").read().decode("latin-1")
    body = open(body_path, "rb").read()
    full = open(full_path, "rb").read()
    lines = raw.split("\r\n")
    if not lines[0].split(" ")[1] == "206":
        return "status %s" % lines[0]
    h = {}
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            h.setdefault(k.strip().lower(), v.strip())
    ct = h.get("content-type", "")
    m = re.fullmatch(r'multipart/byteranges; ?boundary="?([^";]+)"?', ct)
    if not m:
        return "Content-Type %r" % ct
    if "content-range" in h:
        return "a Content-Range on the whole multipart response"
    b = m.group(1).encode()
    if int(h.get("content-length", -1)) != len(body):
        return "Content-Length %s, body %d" % (h.get("content-length"), len(body))
    want = [tuple(int(x) for x in r.split("-")) for r in ranges.split(",")]
    # generic parse: parts between "--b" delimiters, each "headers CRLF CRLF data"
    delim = b"--" + b
    if not body.startswith(delim + b"\r\n"):
        return "body does not start with the delimiter"
    chunks = body.split(b"\r\n" + delim)
    first = chunks[0][len(delim) + 2:]
    parts = [first] + [c[2:] for c in chunks[1:-1]]
    if chunks[-1] != b"--\r\n":
        return "bad close delimiter %r" % chunks[-1][:20]
    for c in chunks[1:-1]:
        if not c.startswith(b"\r\n"):
            return "delimiter not followed by CRLF"
    if len(parts) != len(want):
        return "%d parts, expected %d" % (len(parts), len(want))
    for i, (p, (a, z)) in enumerate(zip(parts, want)):
        head, sep, data = p.partition(b"\r\n\r\n")
        if not sep:
            return "part %d: no header end" % i
        ph = dict((k.strip().lower(), v.strip()) for k, v in
                  (l.split(":", 1) for l in head.decode().split("\r\n")))
        if ph.get("content-range") != "bytes %d-%d/%d" % (a, z, len(full)):
            return "part %d: Content-Range %r" % (i, ph.get("content-range"))
        if ctype == "-" and "content-type" in ph:
            return "part %d: unexpected Content-Type" % i
        if ctype != "-" and ph.get("content-type") != ctype:
            return "part %d: Content-Type %r" % (i, ph.get("content-type"))
        if data != full[a:z + 1]:
            return "part %d: %d bytes differ from the object's %d-%d" % (i, len(data), a, z)
    # exact layout
    exp = b""
    for i, (a, z) in enumerate(want):
        exp += (b"\r\n" if i else b"") + delim + b"\r\n"
        if ctype != "-":
            exp += b"Content-Type: " + ctype.encode() + b"\r\n"
        exp += b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (a, z, len(full)) + full[a:z + 1]
    exp += b"\r\n" + delim + b"--\r\n"
    if exp != body:
        return "body differs from the expected layout"
    return "ok"


if __name__ == "__main__":
    print(main())
