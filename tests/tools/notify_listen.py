#!/usr/bin/env python3
"""notify_listen.py -- a stand-in for systemd's side of Type=notify (tests).

    notify_listen.py SOCKET LOG [TCPPORT...]

Binds a unix datagram socket at SOCKET (what NOTIFY_SOCKET names) and appends
each message to LOG as one line, fields joined by '|'.  When a message holds
READY=1 it first tries to connect to 127.0.0.1:TCPPORT for every port given
and appends "accept=ok" or "accept=refused:PORT" to that line: a daemon that
says READY before its listeners are bound is caught here, at the moment it
says so.  Runs until killed."""
import os
import socket
import sys


def accepts(ports):
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", p))
        except OSError:
            return "accept=refused:%d" % p
        finally:
            s.close()
    return "accept=ok"


def main():
    path, log = sys.argv[1], sys.argv[2]
    ports = [int(p) for p in sys.argv[3:]]
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    while True:
        msg = s.recv(4096).decode("utf-8", "replace")
        fields = [f for f in msg.split("\n") if f]
        if "READY=1" in fields:
            fields.append(accepts(ports))
        with open(log, "a") as f:
            f.write("|".join(fields) + "\n")


if __name__ == "__main__":
    main()
