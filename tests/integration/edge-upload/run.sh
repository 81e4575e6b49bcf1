#!/bin/bash
# edge-upload -- request bodies go to the origin as they arrive, not held
# whole: a 50 MiB POST reaches the origin byte-identical while the edge's RSS
# stays far below 50 MiB; a chunked body is forwarded chunked; 40 concurrent
# slow 8 MiB uploads and an origin slower than its client keep RSS bounded; a
# client that dies mid-body aborts the origin's transfer and the edge stays
# healthy; an origin that fails mid-upload gives the client a 502 and a
# closed connection; limits.bodies_memory bounds the in-flight windows (503
# before "100 Continue" above it); the body deadline still closes a client
# that stops sending.
. "$(dirname "$0")/../../lib.sh"
t_init edge-upload
. "$(dirname "$0")/../edge-common.sh"
EDGE_TIMEOUT=10s edge_setup 'limits = { max_body = "64M"; bodies_memory = "15M"; body_timeout = "20s"; };'
oset '{"path":"/a","body":"hello","headers":{"Cache-Control":"max-age=60"}}'
PID=$(t_pid edge)
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$PID/status; }
# A generated body (deterministic, not compressible) and its sha256.
mkbody() { python3 -c 'import sys,random; r=random.Random(int(sys.argv[2])); sys.stdout.buffer.write(r.randbytes(int(sys.argv[1])))' "$1" "$2"; }
field() { olast "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$2"; }
held() { curl -s "$E/metrics" | awk '/^minicdn_edge_request_body_bytes /{print $2}'; }
# Samples the edge's RSS every 20 ms while a command runs; prints the peak (MiB).
peak_while() {
	"$@" &
	local job=$! peak=0 r
	while kill -0 "$job" 2>/dev/null; do
		r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
		sleep 0.02
	done
	wait "$job"
	echo "$peak" >"$T_DIR/peak"
}
asan=0; grep -q __asan_init "$BIN/minicdn-edge" && asan=1

rss0=$(rss)
mkbody 52428800 1 >"$T_DIR/big"
want=$(sha256sum "$T_DIR/big" | cut -c1-64)
up() { curl -s -o "$T_DIR/up.out" -w '%{http_code}' --max-time 60 --data-binary @"$T_DIR/big" "$@" >"$T_DIR/up.code"; }

# 1. 50 MiB with Content-Length (curl sends Expect: 100-continue for it).
peak_while up "$E/big"
# The high-water mark too: nothing before this needed more than the start.
hwm=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$PID/status)
peak=$(cat "$T_DIR/peak"); [ "$hwm" -gt "$peak" ] && peak=$hwm
t_eq "50 MiB POST answered" "200" "$(cat "$T_DIR/up.code")"
t_eq "the origin got 52428800 bytes" "52428800" "$(field /big body_size)"
t_eq "byte-identical at the origin (sha256)" "$want" "$(field /big body_sha256)"
t_eq "sent with its length, not chunked" "False" "$(field /big chunked)"
lim=$((rss0 + 24 + asan * 8))
echo "edge-upload: RSS ${rss0} MiB before, peak ${peak} MiB during the 50 MiB POST"
t_check "RSS far below 50 MiB while it passed (peak ${peak} MiB < ${lim})" test "$peak" -lt "$lim"

# 2. The same body chunked: forwarded chunked, byte-identical.
peak_while up -H 'Transfer-Encoding: chunked' "$E/chunked"
peak=$(cat "$T_DIR/peak")
t_eq "chunked POST answered" "200" "$(cat "$T_DIR/up.code")"
t_eq "forwarded chunked" "True" "$(field /chunked chunked)"
t_eq "chunked body byte-identical (sha256)" "$want" "$(field /chunked body_sha256)"
t_check "RSS bounded during the chunked POST (peak ${peak} MiB < ${lim})" test "$peak" -lt "$lim"

# 3. An origin slower than its client (50 ms a 64 KiB read): the client waits
#    (its connection suspended), the edge does not buffer the difference.
oset '{"path":"/slow","body":"ok","read_delay":0.05}'
head -c 8388608 "$T_DIR/big" >"$T_DIR/b8"
want8=$(sha256sum "$T_DIR/b8" | cut -c1-64)
r0=$(rss)
peak_while curl -s -o /dev/null --max-time 60 --data-binary @"$T_DIR/b8" "$E/slow"
peak=$(cat "$T_DIR/peak")
t_eq "8 MiB to a slow origin byte-identical" "$want8" "$(field /slow body_sha256)"
lim=$((r0 + 8 + asan * 20))
t_check "RSS bounded while the origin was slower (peak ${peak} MiB < ${lim})" test "$peak" -lt "$lim"

# 4. 40 concurrent slow uploads of 8 MiB (64 KiB every 20 ms per client).
r0=$(rss)
python3 - "$EPORT" "$PID" "$T_DIR/b8" >"$T_DIR/forty.txt" 2>&1 <<'PY'
import socket, sys, threading, time
port, pid, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
codes, peak, done = [], [0], [False]
def client(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(b"PUT /forty/%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (i, len(data)))
        for o in range(0, len(data), 65536):
            s.sendall(data[o:o + 65536])
            time.sleep(0.02)
        resp = b""
        while b"\r\n" not in resp:
            c = s.recv(4096)
            if not c: break
            resp += c
        codes.append(resp.split(b" ")[1].decode() if resp else "none")
        s.close()
    except OSError as e:
        codes.append("err")
def sample():
    while not done[0]:
        rss = int([l for l in open("/proc/%s/status" % pid) if l.startswith("VmRSS")][0].split()[1]) // 1024
        peak[0] = max(peak[0], rss)
        time.sleep(0.05)
ts = [threading.Thread(target=client, args=(i,)) for i in range(40)]
sm = threading.Thread(target=sample); sm.start()
for t in ts: t.start()
for t in ts: t.join(90)
done[0] = True; sm.join()
print("ok", sum(1 for c in codes if c == "200"), "peak", peak[0])
PY
read -r _ ok _ peak <"$T_DIR/forty.txt"
echo "edge-upload: RSS ${r0} MiB, peak ${peak} MiB during 40 concurrent 8 MiB uploads"
t_eq "40 concurrent slow 8 MiB uploads all answered 200" "40" "$ok"
good=0
for i in $(seq 0 39); do [ "$(field /forty/$i body_sha256)" = "$want8" ] && good=$((good + 1)); done
t_eq "all 40 byte-identical at the origin" "40" "$good"
lim=$((r0 + 40 + asan * 40))
t_check "RSS bounded during them (peak ${peak} MiB < ${lim})" test "${peak:-9999}" -lt "$lim"

# 5. A client that dies mid-body: the origin sees the request cut short, the
#    edge keeps serving and holds nothing for it.
python3 - "$EPORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"POST /dies HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n" + b"y" * 1000000)
time.sleep(0.5)
s.close()
PY
n=0
for _ in $(seq 50); do n=$(curl -s "$O/__aborts?path=/dies"); [ "$n" = 1 ] && break; sleep 0.1; done
t_eq "a client gone mid-body: the origin's request aborted" "1" "$n"
t_eq "the edge still serves" "hello" "$(curl -s --max-time 5 "$E/a")"
for _ in $(seq 50); do [ "$(held)" = 0 ] && break; sleep 0.1; done
t_eq "no body bytes held after it" "0" "$(held)"

# 6. An origin that fails mid-upload: 502 and the connection closed (once
#    the client has sent its body: one still sending would lose the answer).
oset '{"path":"/fails","body":"never","fail_after":1048576}'
out=$(python3 - "$EPORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"POST /fails HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n\r\n")
resp = b""
try:
    for o in range(0, 8000000, 65536):
        s.sendall(b"z" * min(65536, 8000000 - o))
        time.sleep(0.002)
except OSError:
    pass
try:
    while True:
        c = s.recv(4096)
        if not c: break
        resp += c
except OSError:
    pass
head = resp.split(b"\r\n\r\n")[0].decode("latin-1").lower()
print(head.split(" ")[1] if head else "none", "close" if "connection: close" in head else "open")
PY
)
t_eq "origin failing mid-upload: 502, connection closed" "502 close" "$out"
t_eq "the edge still serves after it" "hello" "$(curl -s --max-time 5 "$E/a")"

# 7. limits.bodies_memory bounds the windows in flight: 15M holds 60 windows
#    of 256 KiB; with 60 uploads waiting on a stalled origin, the next is
#    refused with 503 before "100 Continue" (64 connections a client at most).
oset '{"path":"/stall2","body":"ok","read_delay":4}'
out=$(python3 - "$EPORT" "$E" <<'PY'
import socket, sys, time, urllib.request
port = int(sys.argv[1])
socks = []
for i in range(60):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /stall2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"w" * 4096)
    socks.append(s)
time.sleep(0.5)
held = [l.split()[1] for l in urllib.request.urlopen(sys.argv[2] + "/metrics").read().decode().splitlines()
        if l.startswith("minicdn_edge_request_body_bytes ")][0]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"POST /stall2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n")
r = s.recv(4096).decode("latin-1")
print(held, r.split(" ")[1] if r else "none", "100" in r.split("\r\n")[0])
for s in socks: s.close()
PY
)
t_eq "60 windows held, the 61st upload refused with 503 (no 100 Continue)" "15728640 503 False" "$out"
for _ in $(seq 100); do [ "$(held)" = 0 ] && break; sleep 0.1; done
t_eq "windows released once those clients left" "0" "$(held)"
t_eq "still serving" "hello" "$(curl -s --max-time 5 "$E/a")"

# 8. The body deadline (here 2 s) still holds for a streamed body: a client
#    that stops sending is closed, and the origin's transfer aborted.
t_stop edge
EDGE_EXTRA='limits = { body_timeout = "2s"; };'
edge_write_conf
edge_start || { t_fail "edge did not restart"; t_done; }
out=$(python3 - "$EPORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"POST /stalls HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"s" * 300000)
t0 = time.time()
try:
    while s.recv(4096):
        pass
except OSError:
    pass
print("%.1f" % (time.time() - t0))
PY
)
t_check "a stalled streamed body closed by the 2 s body deadline (after ${out} s)" \
	python3 -c 'import sys; sys.exit(not 1.5 <= float(sys.argv[1]) < 5)' "${out:-99}"
n=0
for _ in $(seq 50); do n=$(curl -s "$O/__aborts?path=/stalls"); [ "$n" = 1 ] && break; sleep 0.1; done
t_eq "its origin transfer aborted" "1" "$n"
bt=$(curl -s "$E/metrics" | awk '/^minicdn_edge_body_timeouts_total /{print $2}')
t_eq "counted as a body timeout" "1" "$bt"
t_scan_log edge
t_done
