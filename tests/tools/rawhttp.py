#!/usr/bin/env python3
"""rawhttp.py -- sends raw bytes to an HTTP server, reports how it answered.

    rawhttp.py HOST PORT 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' [--wait S] [--src ADDR]

The request is given with Python escapes (\\r \\n \\x00 ...).  Prints one line:
    STATUS NRESP close|open|timeout
STATUS is the first response's status (or "none"), NRESP how many status
lines came back (2 means the server read a second, smuggled request),
"close" if the server closed the connection within --wait seconds (default
1) after its answers, "open" if not, "timeout" if nothing at all came.
"""
import codecs, re, socket, sys, time

def main():
    args = sys.argv[1:]
    wait, src = 1.0, None
    while "--wait" in args:
        i = args.index("--wait"); wait = float(args[i + 1]); del args[i:i + 2]
    while "--src" in args:
        i = args.index("--src"); src = args[i + 1]; del args[i:i + 2]
    host, port, req = args[0], int(args[1]), codecs.escape_decode(args[2].encode())[0]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(wait)
    s.connect((host, port))
    s.sendall(req)
    data, closed = b"", False
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            s.settimeout(max(0.01, deadline - time.time()))
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    s.close()
    statuses = re.findall(rb"HTTP/1\.[01] (\d{3}) ", data)
    if not statuses:
        print("none 0 %s" % ("close" if closed else "timeout"))
        return
    print("%s %d %s" % (statuses[0].decode(), len(statuses), "close" if closed else "open"))

main()
