#!/usr/bin/env python3
"""wire_origin.py PORT -- an origin that answers with exact bytes, for testing
the edge's own HTTP/1.1 client from the origin's side: malformed and hostile
responses, every framing, interims, connections it closes under the edge.

The response is chosen by the request path's first segment (the rest makes
distinct URLs, e.g. /cl-te/1).  Control paths (answered on any connection):
  /__count?path=P   requests seen for P        /__conns  connections accepted
  /__maxbusy        most requests in progress at once
"""
import socket
import sys
import threading
import time

LOCK = threading.Lock()
COUNT = {}
STATE = {"conns": 0, "busy": 0, "maxbusy": 0}

CC = b"Cache-Control: max-age=60\r\n"
PAUSE = b"\0PAUSE\0"  # in a case's bytes: stop sending for 0.3 s there


def ok(body, extra=b""):
    return (b"HTTP/1.1 200 OK\r\n" + CC + extra +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


# name -> (bytes to send, what to do after: "keep" | "close")
CASES = {
    "ok": (ok(b"plain body"), "keep"),
    "chunked": (b"HTTP/1.1 200 OK\r\n" + CC + b"Transfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n", "keep"),
    "close": (b"HTTP/1.1 200 OK\r\n" + CC + b"Connection: close\r\n\r\nuntil the close", "close"),
    "http10": (b"HTTP/1.0 200 OK\r\n" + CC + b"\r\nold style body", "close"),
    "interim": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                + ok(b"after interims"), "keep"),
    "lf-only": (b"HTTP/1.1 200 OK\n" + CC.replace(b"\r\n", b"\n") + b"Content-Length: 7\n\nlf body", "keep"),
    "cl-te": (b"HTTP/1.1 200 OK\r\n" + CC + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nsmugg\r\n0\r\n\r\n", "keep"),
    "cl-dup": (b"HTTP/1.1 200 OK\r\n" + CC + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "keep"),
    "bare-cr": (b"HTTP/1.1 200 OK\r\n" + CC + b"X-A: a\rb\r\nContent-Length: 2\r\n\r\nhi", "keep"),
    "fold": (b"HTTP/1.1 200 OK\r\n" + CC + b"X-A: a\r\n folded\r\nContent-Length: 2\r\n\r\nhi", "keep"),
    "space-name": (b"HTTP/1.1 200 OK\r\n" + CC + b"Content-Length : 2\r\n\r\nhi", "keep"),
    "bad-status": (b"HTTP/1.1 20 OK\r\n" + CC + b"Content-Length: 2\r\n\r\nhi", "keep"),
    "bad-chunk": (b"HTTP/1.1 200 OK\r\n" + CC + b"Transfer-Encoding: chunked\r\n\r\n"
                  b"zz\r\nhello\r\n0\r\n\r\n", "keep"),
    "big-head": (b"HTTP/1.1 200 OK\r\n" + CC + b"".join(b"X-Pad-%05d: %s\r\n" % (i, b"p" * 100)
                                                      for i in range(700))
                 + b"Content-Length: 2\r\n\r\nhi", "keep"),
    # A second response smuggled after the first one's body: never served.
    "split": (ok(b"abc") + b"HTTP/1.1 200 OK\r\n" + CC + b"Content-Length: 6\r\n\r\nEVIL!!", "keep"),
    "short": (b"HTTP/1.1 200 OK\r\n" + CC + b"Content-Length: 100\r\n\r\nonly part", "close"),
    # The same failures after a pause (PAUSE: 0.3 s), once the client has
    # its head and the first bytes and waits for more.
    "late-bad-chunk": (b"HTTP/1.1 200 OK\r\n" + CC + b"Transfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\n" + PAUSE + b"zz\r\nworld\r\n0\r\n\r\n", "keep"),
    "late-short": (b"HTTP/1.1 200 OK\r\n" + CC + b"Content-Length: 100\r\n\r\nonly" + PAUSE
                   + b" part", "close"),
    "nothing": (b"", "close"),
    # Answers, then drops the kept-alive connection a moment later.
    "idle-close": (ok(b"then closed"), "close-later"),
    "slow": (ok(b"slow one"), "keep"),
    # Answers, keeps the connection, and drops it unanswered at its next
    # request: what a client sees when an origin closes an idle connection
    # as the request is on its way.
    "drop-next": (ok(b"first answer"), "drop-next"),
}
BIG = 32 << 20  # /big: this many bytes of a counting pattern, too big to store


def big_body():
    block = bytes(range(256)) * 256  # 64 KiB
    return block * (BIG // len(block))


def handle(conn):
    with LOCK:
        STATE["conns"] += 1
    buf = b""
    drop = False
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target = line.split(" ")[0], line.split(" ")[1]
            path = target.split("?")[0]
            name = path.split("/")[1] if path.count("/") >= 1 else ""
            if name.startswith("__"):
                q = target.split("?", 1)[1] if "?" in target else ""
                with LOCK:
                    if name == "__count":
                        v = COUNT.get(q[len("path="):], 0)
                    elif name == "__conns":
                        v = STATE["conns"]
                    else:
                        v = STATE["maxbusy"]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(v)), v))
                continue
            with LOCK:
                COUNT[path] = COUNT.get(path, 0) + 1
            if drop:
                return
            with LOCK:
                STATE["busy"] += 1
                STATE["maxbusy"] = max(STATE["maxbusy"], STATE["busy"])
            data, after = CASES.get(name, (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "keep"))
            if name == "big":
                with LOCK:
                    STATE["busy"] -= 1
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + CC + b"Content-Length: %d\r\n\r\n" % BIG)
                conn.sendall(big_body())
                continue
            if name == "endless":  # a body at full speed until the edge hangs up
                with LOCK:
                    STATE["busy"] -= 1
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + CC + b"Content-Length: %d\r\n\r\n" % (1 << 40))
                block = b"e" * (4 << 20)
                while True:
                    conn.sendall(block)
            if name == "slow":
                time.sleep(0.4)
            if method == "HEAD" and name == "ok":
                data = data[:data.index(b"\r\n\r\n") + 4]
            with LOCK:
                STATE["busy"] -= 1
            for i, part in enumerate(data.split(PAUSE)):
                if i:
                    time.sleep(0.3)
                conn.sendall(part)
            if after == "close":
                return
            drop = after == "drop-next"
            if after == "close-later":
                time.sleep(0.2)
                return
    except OSError:
        pass
    finally:
        conn.close()


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
