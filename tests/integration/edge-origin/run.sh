#!/usr/bin/env bash
# edge-origin: concurrency with the origin (collapsing, misses not blocking
# hits, streaming while fetching, timeouts, connection reuse) and bad input
# (414/431/400, smuggling patterns, absolute-form vs Host).
. "$(dirname "$0")/../../lib.sh"
t_init edge-origin
. "$T_ROOT/tests/integration/edge-common.sh"
EDGE_TIMEOUT=4s EDGE_MAXOBJ=1M edge_setup 'limits = { max_header_size = "8K"; max_url = "2K"; max_body = "64K"; };'

# --- collapsing: 30 concurrent misses for one slow URL -> 1 origin fetch
oset '{"path":"/col","headers":{"Cache-Control":"max-age=60"},"size":20000,"delay":1.0}'
pids=(); for i in $(seq 1 30); do curl -s -o "$T_DIR/col$i" "$E/col" & pids+=($!); done
wait "${pids[@]}"
t_eq "collapsing: 1 origin fetch for 30 concurrent requests" 1 "$(ocount /col)"
ok=0; for i in $(seq 1 30); do [ "$(stat -c %s "$T_DIR/col$i")" = 20000 ] && ok=$((ok + 1)); done
t_eq "collapsing: all 30 clients got the whole body" 30 "$ok"
# Not cacheable: the waiters are forwarded individually.
oset '{"path":"/colns","headers":{"Cache-Control":"no-store"},"body":"private-ish","delay":0.5}'
pids=(); for i in $(seq 1 5); do curl -s -o "$T_DIR/cn$i" "$E/colns" & pids+=($!); done
wait "${pids[@]}"
t_eq "uncacheable collapse: each request forwarded (5 fetches)" 5 "$(ocount /colns)"
ok=0; for i in $(seq 1 5); do [ "$(cat "$T_DIR/cn$i")" = private-ish ] && ok=$((ok + 1)); done
t_eq "uncacheable collapse: all 5 got the body" 5 "$ok"

# --- a miss never blocks hits
oset '{"path":"/fast","headers":{"Cache-Control":"max-age=60"},"body":"fast"}'
get /fast
# Judged by order, not by a clock: the 20 hits must all be answered while
# the 4 misses (3.5 s at the origin, under the edge's 4 s timeout) are still
# waiting, which a busy machine cannot fake and a blocked worker cannot pass.
oset '{"path":"/slowmiss","headers":{"Cache-Control":"max-age=60"},"body":"s","delay":3.5}'
pids=(); for i in 1 2 3 4; do curl -s -o /dev/null "$E/slowmiss?$i" & pids+=($!); done
sleep 0.3
t0=$(date +%s%N)
for i in $(seq 1 20); do curl -s -o /dev/null "$E/fast"; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
wait "${pids[@]}"
n=0; for i in 1 2 3 4; do n=$((n + $(ocount "/slowmiss?$i"))); done
t_eq "the 4 slow misses reached the origin" 4 "$n"
t_eq "20 hits answered ($ms ms) while all 4 slow misses were still waiting" 4 "$alive"

# --- streaming: the first bytes of a slow large object arrive before it is complete
cat >"$T_DIR/trickle.py" <<'PY'
import socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(8)
open(sys.argv[2], "w").close()  # listening: the test may start the edge
while True:
    c, _ = srv.accept()
    c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 300000\r\n\r\n")
    for i in range(30):
        c.sendall(b"x" * 10000); time.sleep(0.05)
    c.close()
PY
TPORT=$(t_free_port)
t_start trickle python3 "$T_DIR/trickle.py" "$TPORT" "$T_DIR/trickle.ready"
# A probe connection would take the one-at-a-time server's turn: wait for its
# own word that it listens.
for _ in $(seq 100); do [ -e "$T_DIR/trickle.ready" ] && break; sleep 0.1; done
t_check "trickle origin listening" test -e "$T_DIR/trickle.ready"
EPORT2=$(t_free_port)
sed -e "s/127.0.0.1:$EPORT/127.0.0.1:$EPORT2/" -e "s/127.0.0.1:$OPORT/127.0.0.1:$TPORT/" -e "s|$T_DIR/cache|$T_DIR/cache2|" "$T_DIR/edge.conf" >"$T_DIR/edge2.conf"
t_start edge2 "$BIN/minicdn-edge" -c "$T_DIR/edge2.conf"
t_wait_http "http://127.0.0.1:$EPORT2/healthz" 10
curl -s -o "$T_DIR/trickle.out" -w '%{time_starttransfer} %{time_total}\n' "http://127.0.0.1:$EPORT2/big" >"$T_DIR/times"
read -r ttfb total <"$T_DIR/times"
t_check "streaming: first byte ($ttfb s) well before the end ($total s)" python3 -c "import sys; sys.exit(0 if float('$ttfb') < 0.7 and float('$total') > 1.2 else 1)"
t_eq "streaming: all 300000 bytes" 300000 "$(stat -c %s "$T_DIR/trickle.out")"
curl -s -D "$T_DIR/h" -o /dev/null "http://127.0.0.1:$EPORT2/big"
t_check "streamed object was stored" cs_has "; hit"
t_stop edge2
t_stop trickle

# --- timeouts and unreachable origin
oset '{"path":"/hang","headers":{"Cache-Control":"max-age=60"},"body":"late","delay":8}'
t0=$(date +%s%N)
get /hang
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
t_eq "origin slower than timeout: 504" 504 "$(status)"
t_check "timeout honoured (~4 s, got $ms ms)" test "$ms" -lt 6500

# --- connection reuse: many sequential misses, few origin connections.  The
# origin counts the connections it accepted (ESTABLISHED sockets counted
# afterwards would miss an edge that opens and closes one per miss).
conns_before=$(curl -s "$O/__conns")
for i in $(seq 1 20); do curl -s -o /dev/null "$E/reuse$i"; done
conns=$(curl -s "$O/__conns")
t_eq "20 sequential misses all reached the origin" "1 1" "$(ocount /reuse1) $(ocount /reuse20)"
t_check "the origin counts the edge's connections ($conns so far)" test "$conns" -ge 1
t_check "origin connections reused (the origin accepted $((conns - conns_before)) new ones for 20 misses)" \
	test $((conns - conns_before)) -le 2

# --- bad input
long=$(head -c 3000 /dev/zero | tr '\0' a)
code=$(curl -s -o /dev/null -w '%{http_code}' "$E/$long")
t_eq "URL longer than max_url: 414" 414 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' b)" "$E/x")
t_check "headers larger than max_header_size: 431 (got $code)" test "$code" = 431
raw() { python3 - "$EPORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
try:
    d = s.recv(4096)
except socket.timeout:
    d = b""
print(d.split(b"\r\n")[0].decode("latin-1"))
PY
}
t_check "CL + TE (smuggling pattern): 400" sh -c "$(declare -f raw); EPORT=$EPORT; raw 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' | grep -q ' 400'"
t_check "two different Content-Lengths: 400" sh -c "$(declare -f raw); EPORT=$EPORT; raw 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde' | grep -q ' 400'"
t_check "missing Host on HTTP/1.1: 400" sh -c "$(declare -f raw); EPORT=$EPORT; raw 'GET /x HTTP/1.1\r\n\r\n' | grep -q ' 400'"
t_check "two Host headers: 400" sh -c "$(declare -f raw); EPORT=$EPORT; raw 'GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n' | grep -q ' 400'"
t_check "garbage request line: 400 or closed" sh -c "$(declare -f raw); EPORT=$EPORT; raw 'HELLO\r\n\r\n' | grep -Eq '^($| *HTTP/1.1 400)'"
t_check "bad percent-escape: 400" sh -c "$(declare -f raw); EPORT=$EPORT; raw 'GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n' | grep -q ' 400'"
t_check "encoded NUL in path: 400" sh -c "$(declare -f raw); EPORT=$EPORT; raw 'GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n' | grep -q ' 400'"
t_check "TE other than chunked: 400" sh -c "$(declare -f raw); EPORT=$EPORT; raw 'POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n' | grep -Eq ' (400|501)'"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@/dev/stdin" "$E/upload" < <(head -c 100000 /dev/zero))
t_eq "request body above max_body: 413" 413 "$code"
# absolute-form: the authority in the target wins over Host, so the same URL
# always maps to the same key and one cannot poison another.
oset '{"path":"/poison","headers":{"Cache-Control":"max-age=60"},"body":"real"}'
curl -s -o /dev/null "$E/poison" -H 'Host: victim.example'
out=$(python3 - "$EPORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(b"GET http://attacker.example/poison HTTP/1.1\r\nHost: victim.example\r\n\r\n")
print(s.recv(4096).decode("latin-1"))
PY
)
t_check "absolute-form keyed by its own authority (miss, not victim's entry)" sh -c "echo '$out' | grep -q 'uri-miss'"
get /poison -H 'Host: victim.example'
t_check "victim's entry untouched" cs_has "; hit"
t_eq "absolute-form: origin saw 2 requests" 2 "$(ocount /poison)"
t_check "edge still healthy after bad input" t_wait_http "$E/healthz" 2

# --- what the origin is sent: Host, the client's headers minus hop-by-hop
# ones, Via and X-Forwarded-For appended to, an empty header kept empty.
get /fwd -H 'Via: 1.0 corp-proxy' -H 'X-Forwarded-For: 203.0.113.9' -H 'X-Empty;' \
	-H 'X-Keep: yes' -H 'Connection: close, X-Drop' -H 'X-Drop: secret' -H 'Keep-Alive: 5'
last=$(curl -s "$O/__last?path=/fwd")
fwd() { python3 -c 'import json,sys; h={k.lower(): v for k, v in json.loads(sys.argv[1])["headers"].items()}; print(h.get(sys.argv[2], "<none>"))' "$last" "$1"; }
t_eq "origin request: Host" "127.0.0.1:$EPORT" "$(fwd host)"
t_eq "origin request: Via appended" "1.0 corp-proxy, 1.1 edge-test" "$(fwd via)"
t_eq "origin request: X-Forwarded-For appended" "203.0.113.9, 127.0.0.1" "$(fwd x-forwarded-for)"
t_eq "origin request: a client header passed on" "yes" "$(fwd x-keep)"
t_eq "origin request: an empty header stays empty" "" "$(fwd x-empty)"
t_eq "origin request: headers named by Connection dropped" "<none>" "$(fwd x-drop)"
t_eq "origin request: Keep-Alive dropped" "<none>" "$(fwd keep-alive)"

# --- the origin URL of each miss: the fetch thread reuses its GET handles and
# updates only path and query while the origin stays the same, so a query
# must neither linger into the next request nor be lost, and a path with
# dot segments and escapes goes as the edge normalised it.
get '/url1?a=1&b=%41'
t_eq "origin URL: path and query" "hello from /url1?a=1&b=%41" "$(body)"
get /url2
t_eq "origin URL: no query left over from the previous miss" "hello from /url2" "$(body)"
get '/url3?'
t_eq "origin URL: an empty query" "1" "$(( $(ocount '/url3?') + $(ocount /url3) ))"
get '/url4?z=9'
t_eq "origin URL: a query after none" "hello from /url4?z=9" "$(body)"
get '/url5/%7Euser/x%20y'
t_eq "origin URL: escapes kept (the edge decodes unreserved ones)" "hello from /url5/~user/x%20y" "$(body)"

t_done
