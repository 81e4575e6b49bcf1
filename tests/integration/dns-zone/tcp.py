#!/usr/bin/env python3
"""TCP checks for RFC 7766: pipelined queries on one connection, idle timeout,
connection cap.  Prints one line per check: PASS/FAIL text."""
import socket, struct, sys, time

port = int(sys.argv[1])

def q(qid, name, qtype=1):
    msg = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for l in name.strip(".").split("."):
        msg += bytes([len(l)]) + l.encode()
    msg += b"\0" + struct.pack(">HH", qtype, 1)
    return struct.pack(">H", len(msg)) + msg

def recv_msg(s):
    hdr = b""
    while len(hdr) < 2:
        c = s.recv(2 - len(hdr))
        if not c:
            return None
        hdr += c
    n = struct.unpack(">H", hdr)[0]
    data = b""
    while len(data) < n:
        c = s.recv(n - len(data))
        if not c:
            return None
        data += c
    return data

s = socket.create_connection(("127.0.0.1", port), timeout=3)
s.sendall(q(1, "host.example.test") + q(2, "mail.example.test") + q(3, "nope.example.test"))
ids = []
for _ in range(3):
    m = recv_msg(s)
    ids.append(struct.unpack(">H", m[:2])[0] if m else None)
print(("PASS" if sorted(ids) == [1, 2, 3] else "FAIL") + ": three pipelined queries on one connection answered %s" % ids)
# a query split across two writes
m = q(4, "host.example.test")
s.sendall(m[:5]); time.sleep(0.2); s.sendall(m[5:])
r = recv_msg(s)
print(("PASS" if r and r[:2] == b"\0\4" else "FAIL") + ": query split across segments answered")
# idle timeout (1 s configured): the server closes
time.sleep(2.0)
try:
    s.settimeout(2)
    closed = s.recv(1) == b""
except (ConnectionResetError, socket.timeout):
    closed = True
print(("PASS" if closed else "FAIL") + ": idle connection closed by the server after the timeout")
s.close()
# connection cap: 3 allowed, a 4th is closed without answer
conns = [socket.create_connection(("127.0.0.1", port), timeout=3) for _ in range(3)]
time.sleep(0.3)
extra = socket.create_connection(("127.0.0.1", port), timeout=3)
try:
    extra.sendall(q(9, "host.example.test"))
    refused = recv_msg(extra) is None
except (ConnectionResetError, BrokenPipeError, socket.timeout):
    refused = True
print(("PASS" if refused else "FAIL") + ": connection over tcp_max_connections refused")
conns[0].sendall(q(10, "host.example.test"))
r = recv_msg(conns[0])
print(("PASS" if r and r[:2] == b"\0\x0a" else "FAIL") + ": connections under the cap still served")
for c in conns + [extra]:
    c.close()
