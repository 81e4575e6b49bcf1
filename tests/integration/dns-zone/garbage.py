#!/usr/bin/env python3
"""Sends malformed and odd UDP packets; prints PASS/FAIL lines."""
import random, socket, struct, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)

def ask(pkt):
    s.sendto(pkt, ("127.0.0.1", port))
    try:
        return s.recv(65535)
    except socket.timeout:
        return None

def hdr(qid, flags, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)

qname = b"\x04host\x07example\x04test\x00"
# QR=1: dropped
r = ask(hdr(1, 0x8000) + qname + b"\0\1\0\1")
print(("PASS" if r is None else "FAIL") + ": a response (QR=1) is dropped")
# too short
print(("PASS" if ask(b"\1\2\3") is None else "FAIL") + ": a 3-byte packet is dropped")
# compression pointer in the question -> FORMERR
r = ask(hdr(2, 0) + b"\xc0\x0c\0\1\0\1")
print(("PASS" if r and r[3] & 0xF == 1 and r[2] & 0x80 else "FAIL") + ": pointer in question -> FORMERR")
# qdcount 2 -> FORMERR
r = ask(hdr(3, 0, qd=2) + qname + b"\0\1\0\1" + qname + b"\0\1\0\1")
print(("PASS" if r and r[3] & 0xF == 1 else "FAIL") + ": two questions -> FORMERR")
# truncated question -> FORMERR
r = ask(hdr(4, 0) + qname[:6])
print(("PASS" if r and r[3] & 0xF == 1 else "FAIL") + ": truncated question -> FORMERR")
# OPT with an option running past the end -> FORMERR
opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 8) + struct.pack(">HH", 8, 20) + b"\0\1\x18\0"
r = ask(hdr(5, 0, ar=1) + qname + b"\0\1\0\1" + opt)
print(("PASS" if r and r[3] & 0xF == 1 else "FAIL") + ": OPT option overrunning its RDATA -> FORMERR")
# two OPT records -> FORMERR
opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
r = ask(hdr(6, 0, ar=2) + qname + b"\0\1\0\1" + opt + opt)
print(("PASS" if r and r[3] & 0xF == 1 else "FAIL") + ": two OPT records -> FORMERR")
# opcode UPDATE (5) -> NOTIMP
r = ask(hdr(7, 5 << 11) + qname + b"\0\1\0\1")
print(("PASS" if r and r[3] & 0xF == 4 else "FAIL") + ": opcode UPDATE -> NOTIMP")
# class CH -> REFUSED
r = ask(hdr(8, 0) + b"\x07version\x04bind\x00" + b"\0\x10\0\x03")
print(("PASS" if r and r[3] & 0xF == 5 else "FAIL") + ": class CH -> REFUSED")
# AXFR over UDP -> REFUSED
r = ask(hdr(9, 0) + b"\x07example\x04test\x00" + b"\0\xfc\0\1")
print(("PASS" if r and r[3] & 0xF == 5 else "FAIL") + ": AXFR -> REFUSED")
# 3000 random packets, then the server must still answer
random.seed(7)
for i in range(3000):
    n = random.randint(0, 600)
    pkt = bytearray(random.getrandbits(8) for _ in range(n))
    if i % 2 and n >= 12:
        pkt[2] &= 0x7f  # look like a query more often
        pkt[4:6] = b"\0\1"
    s.sendto(bytes(pkt), ("127.0.0.1", port))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # fresh socket: no stray replies
s.settimeout(2)
r = ask(hdr(10, 0) + qname + b"\0\1\0\1")
print(("PASS" if r and r[:2] == b"\0\x0a" and r[3] & 0xF == 0 else "FAIL") + ": still answering after 3000 random packets")
