#!/usr/bin/env bash
# edge-wire: the edge's own HTTP/1.1 origin client (GET/HEAD misses to a
# plain-http origin) against exact bytes from tests/tools/wire_origin.py --
# every framing (length, chunked with extensions and trailers, close,
# HTTP/1.0, LF-only lines, 1xx interims), hostile responses refused with 502
# and never stored (two framings, duplicate lengths, bare CR, obs-fold,
# whitespace before the colon, bad status, bad chunk size, a 70 KiB head),
# a smuggled second response never served, a body cut short never stored,
# kept-alive connections the origin drops (idle, or as a request arrives:
# sent once more), and the per-origin connection limit.
. "$(dirname "$0")/../../lib.sh"
t_init edge-wire
. "$T_ROOT/tests/integration/edge-common.sh"
OPORT=$(t_free_port)
EPORT=$(t_free_port)
t_start origin python3 "$T_ROOT/tests/tools/wire_origin.py" "$OPORT"
t_wait_http "http://127.0.0.1:$OPORT/__conns" 10 || { t_fail "origin did not start"; t_done; }
EDGE_EXTRA='upstream = { connect_timeout = "1s"; timeout = "3s"; max_connections = 2; };'
edge_write_conf
# the common file's upstream line comes first; ours (later) must win: drop it
sed -i '/^upstream = { connect_timeout = "1s"; timeout = "[0-9]*s"; };$/d' "$T_DIR/edge.conf"
edge_start || { t_fail "edge did not start"; t_done; }
E=http://127.0.0.1:$EPORT
O=http://127.0.0.1:$OPORT
wcount() { curl -s "$O/__count?path=$1"; }

# --- framings: served whole, stored, a second request is a hit -------------
check_ok() { # NAME PATH BODY
	get "$2"
	t_eq "$1: served" "200 $3" "$(status) $(body)"
	get "$2"
	t_eq "$1: stored (second request is a hit, origin saw one)" "200 $3 1" "$(status) $(body) $(wcount "$2")"
	t_check "$1: second answer says hit" cs_has "hit"
}
check_ok "content-length" /ok/1 "plain body"
check_ok "chunked with extension and trailer" /chunked/1 "hello world"
check_ok "close-delimited" /close/1 "until the close"
check_ok "HTTP/1.0 close-delimited" /http10/1 "old style body"
check_ok "100 and 103 interims before the 200" /interim/1 "after interims"
check_ok "LF-only line ends" /lf-only/1 "lf body"
t_eq "the origin's trailer is not a response header" "" "$(get /chunked/1; hdr X-Trailer)"
get /ok/head -I
t_eq "HEAD: the origin's Content-Length, no body read" "200 10" "$(status) $(hdr Content-Length)"
get /ok/after-head
t_eq "the connection that carried the HEAD serves the next GET" "200 plain body" "$(status) $(body)"

# --- hostile responses: 502, not stored, the next request is fine -----------
for c in cl-te cl-dup bare-cr fold space-name bad-status big-head; do
	get "/$c/1"
	got=$(status)
	get "/$c/1"
	t_eq "$c: refused with 502, twice (never stored)" "502 502 2" "$got $(status) $(wcount "/$c/1")"
	if grep -q "EVIL\|smugg" "$T_DIR/b"; then t_fail "$c: origin bytes leaked into the error"; fi
done
# A bad chunk size is in the body: the client may have its head already, so
# it gets a 502 or a cut transfer -- never a complete answer -- and nothing
# is stored.
bc_try() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$E/bad-chunk/1"; echo " $?"; }
for r in "$(bc_try)" "$(bc_try)"; do
	case $r in "502 0" | "200 18") t_pass "bad-chunk: '$r' (a 502, or a cut transfer)" ;;
	*) t_fail "bad-chunk: the client saw '$r'" ;; esac
done
t_eq "bad-chunk: asked twice (never stored)" 2 "$(wcount /bad-chunk/1)"
t_check "the edge logs why (malformed response)" grep -q "malformed response from the origin" "$T_DIR/edge.log"
get /ok/after-hostile
t_eq "after them an ordinary miss still works" "200 plain body" "$(status) $(body)"

# --- a second response smuggled after a body ---------------------------------
get /split/1
t_eq "split: the first response's body only" "200 abc" "$(status) $(body)"
for i in 1 2 3; do
	get "/ok/after-split-$i"
	t_eq "split: the next request ($i) gets its own answer, not the smuggled one" "200 plain body" \
		"$(status) $(body)"
done

# --- a body cut short: the client's transfer fails, nothing stored ----------
# Either the edge learns of the cut before it answers (502), or the client
# was answered already and its transfer is cut too (curl: 18, partial file):
# never a complete-looking 200.
short_try() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$E/short/1"; echo " $?"; }
a=$(short_try); b=$(short_try)
for r in "$a" "$b"; do
	case $r in "502 0" | "200 18") t_pass "short: '$r' (a 502, or a cut transfer)" ;;
	*) t_fail "short: the client saw '$r': neither a 502 nor a cut transfer" ;; esac
done
t_eq "short: the origin was asked twice (nothing stored)" "2" "$(wcount /short/1)"
# The same failures while the client, answered and given the first bytes,
# waits for more: its transfer is cut at once -- the close must reach it, not
# leave it waiting out a timeout (curl: 28) -- and its bytes are the first.
# Idle connections opened first keep the client's from being the edge's
# least recently active one, which the edge's event loop looks at anyway.
for fd in 5 6 7 8; do eval "exec $fd<>/dev/tcp/127.0.0.1/$EPORT"; done
for c in late-bad-chunk late-short; do
	r=$(curl -s -o "$T_DIR/late" --max-time 3 -w '%{http_code} %{time_total}' "$E/$c/1"; echo " $?")
	set -- $r
	t_eq "$c: a cut transfer (200, curl 18), not a hang" "200 18" "$1 $3"
	t_check "$c: cut within 1.5 s of the request (took $2 s; the origin fails at 0.3 s)" \
		awk -v t="$2" 'BEGIN { exit !(t < 1.5) }'
	t_check "$c: the bytes before the failure came through" grep -q "^hel\|^only" "$T_DIR/late"
done
t_eq "late failures: nothing stored" "1 1" "$(wcount /late-bad-chunk/1) $(wcount /late-short/1)"
for fd in 5 6 7 8; do eval "exec $fd>&-"; done
get /nothing/1
t_eq "a new connection closed with no answer: 502, asked once (no retry on a fresh one)" "502 1" \
	"$(status) $(wcount /nothing/1)"

# --- connections the origin drops ---------------------------------------------
for i in 1 2 3 4; do
	get "/idle-close/$i"
	t_eq "idle-close $i: served" "200 then closed" "$(status) $(body)"
	sleep 0.4 # the origin has closed that kept-alive connection by now
done
get /drop-next/1
t_eq "drop-next: first answer" "200 first answer" "$(status) $(body)"
get /ok/retried
t_eq "a request the origin dropped on a reused connection is sent again and served" \
	"200 plain body 2" "$(status) $(body) $(wcount /ok/retried)"

# --- back-pressure: a 32 MiB object (not kept: over max_object_size) to a
# client reading at 16 MiB/s; the origin sends it at loopback speed, so the
# edge must stop reading it while 4 MiB are unread, and go on
rss0=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$(t_pid edge)/status)
curl -s --limit-rate 16M --max-time 20 -o "$T_DIR/big" "$E/big/1" &
cpid=$!
peak=$rss0
while kill -0 "$cpid" 2>/dev/null; do
	r=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$(t_pid edge)/status)
	[ "$r" -gt "$peak" ] && peak=$r
	sleep 0.1
done
wait "$cpid"
want=$(python3 -c 'import sys, hashlib; b = bytes(range(256)) * 256; print(hashlib.sha256(b * 512).hexdigest())')
t_eq "big: the slow client got all 32 MiB intact" "$want" "$(sha256sum <"$T_DIR/big" | cut -d' ' -f1)"
t_check "big: edge RSS bounded while it streamed (${rss0} -> peak ${peak} MiB, < +20)" \
	test "$peak" -lt $((rss0 + 20))
# the same at full speed: read in shares of a round, then on (no edge event
# says more is waiting), to the last byte
curl -s --max-time 20 -o "$T_DIR/big2" "$E/big/2"
t_eq "big at full speed: all 32 MiB intact" "$want" "$(sha256sum <"$T_DIR/big2" | cut -d' ' -f1)"

# --- turns: a body arriving at full speed for seconds (origin, edge and
# client all at loopback speed) keeps flowing -- a connection whose turn is
# up is read again next round though no edge says so -- and does not starve
# a small miss beside it
curl -s -o /dev/null --max-time 4 -w '%{size_download}' "$E/endless/1" >"$T_DIR/endless" &
epid=$!
sleep 1
r=$(curl -s -o "$T_DIR/beside" --max-time 10 -w '%{http_code} %{time_total}' "$E/ok/beside-endless")
wait "$epid"
set -- $r
t_eq "turns: the miss beside a full-speed transfer is served" "200 plain body" "$1 $(cat "$T_DIR/beside")"
t_check "turns: ... within 1 s (took $2 s; the big transfer ran 4 s)" awk -v t="$2" 'BEGIN { exit !(t < 1) }'
got=$(cat "$T_DIR/endless")
t_check "turns: the big transfer was flowing meanwhile ($((got >> 20)) MiB in 4 s, > 256)" \
	test "$got" -gt $((256 << 20))

# --- reuse and the connection limit (max_connections = 2) ---------------------
c0=$(curl -s "$O/__conns")
for i in $(seq 1 10); do curl -s -o /dev/null "$E/ok/seq-$i"; done
c1=$(curl -s "$O/__conns")
t_check "10 sequential misses on at most one new connection (kept alive; got $((c1 - c0 - 1)))" \
	test $((c1 - c0 - 1)) -le 1
pids=()
for i in $(seq 1 8); do curl -s -o "$T_DIR/slow$i" --max-time 10 "$E/slow/$i" & pids+=($!); done
wait "${pids[@]}"
ok=0; for i in $(seq 1 8); do [ "$(cat "$T_DIR/slow$i")" = "slow one" ] && ok=$((ok + 1)); done
t_eq "8 concurrent slow misses all served" 8 "$ok"
t_eq "... through at most 2 connections at once (max_connections)" 2 "$(curl -s "$O/__maxbusy")"
t_done
