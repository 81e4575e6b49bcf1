#!/usr/bin/env bash
# edge-ctl-purge: `minicdnctl purge` fans out to every edge, reports per edge,
# and exits non-zero unless every edge purged.
. "$(dirname "$0")/../../lib.sh"
t_init edge-ctl-purge
. "$T_ROOT/tests/integration/edge-common.sh"
edge_setup
E1=$E
# A second edge on the same origin.
EPORT2=$(t_free_port)
sed -e "s/127.0.0.1:$EPORT/127.0.0.1:$EPORT2/" -e "s|$T_DIR/cache|$T_DIR/cache2|" -e 's/edge-test/edge-two/' "$T_DIR/edge.conf" >"$T_DIR/edge2.conf"
t_start edge2 "$BIN/minicdn-edge" -c "$T_DIR/edge2.conf"
t_wait_http "http://127.0.0.1:$EPORT2/healthz" 10
E2=http://127.0.0.1:$EPORT2
DEAD=$(t_free_port)

ctlconf() { # $1: include the dead edge
	cat >"$T_DIR/ctl.conf" <<EOC
control_secret = "test-secret";
origin = "$O";
timeout = "2s";
nodes = (
  { name = "e1"; role = "edge"; url = "$E1"; },
  { name = "e2"; role = "edge"; url = "$E2"; }$( [ "$1" = dead ] && printf ',\n  { name = "e3"; role = "edge"; url = "http://127.0.0.1:%s"; }' "$DEAD")
);
EOC
}
outhas() { grep -Eq "$1" <<<"$out"; }
fill() { for e in "$E1" "$E2"; do for p in /img/a /img/b /doc; do curl -s -o /dev/null "$e$p"; done; done; }
oset '{"path":"/img/a","headers":{"Cache-Control":"max-age=300","Surrogate-Key":"pics"},"body":"a"}'
oset '{"path":"/img/b","headers":{"Cache-Control":"max-age=300","Surrogate-Key":"pics"},"body":"b"}'
oset '{"path":"/doc","headers":{"Cache-Control":"max-age=300"},"body":"d"}'
fill
ctlconf
out=$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge "http://127.0.0.1:$EPORT/img/a" 2>&1); rc=$?
t_eq "purge URL: exit 0" 0 "$rc"
t_check "purge URL: e1 reported 1" outhas '^e1 +ok +1' 
t_check "purge URL: e2 reported 0 (other host key)" outhas '^e2 +ok +0' 
out=$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge --tag pics 2>&1); rc=$?
t_eq "purge tag: exit 0" 0 "$rc"
t_check "purge tag: e2 purged both tagged objects" outhas '^e2 +ok +2' 
curl -s -D "$T_DIR/h" -o /dev/null "$E2/img/b"
t_check "tag-purged object is a miss on e2" cs_has "uri-miss"
curl -s -D "$T_DIR/h" -o /dev/null "$E2/doc"
t_check "untagged object still a hit on e2" cs_has "; hit"
out=$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge --prefix / 2>&1); rc=$?
t_eq "purge prefix /: exit 0" 0 "$rc"
t_check "purge prefix: e1 purged what it had left (1)" outhas '^e1 +ok +1' 
ctlconf dead
t_fails_with 1 "one edge unreachable: exit 1" "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge --prefix /; out=$T_OUT
t_check "unreachable edge reported" outhas '^e3 +FAILED.*unreachable' 
t_check "reachable edges still reported ok" outhas '^e1 +ok' 
sed -i 's/test-secret/wrong/' "$T_DIR/ctl.conf"
t_fails_with 1 "wrong secret: exit 1" "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge --tag pics; out=$T_OUT
t_check "wrong secret: HTTP 401 reported" outhas 'HTTP 401' 
curl -s -D "$T_DIR/h401" -o /dev/null -X POST -H 'Authorization: Bearer wrong' -d '{"tag":"pics"}' "$E1/.minicdn/purge"
t_check "edge's 401 names the scheme (WWW-Authenticate: Bearer)" grep -q $'^WWW-Authenticate: Bearer\r$' "$T_DIR/h401"
t_fails_with 2 "no argument: usage, exit 2" "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge
t_fails_with 2 "relative URL: exit 2" "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge /relative
# A purge waits for the cache's writer without holding up the worker thread
# that received it.  An edge with one worker thread, whose store's write
# lock another process holds (so no purge can commit): /metrics and a hit on
# other connections are answered while the purge is pending, and the purge
# is answered once the lock is released.  Ordered by the lock, not by time.
EPORT3=$(t_free_port)
sed -e "s/127.0.0.1:$EPORT/127.0.0.1:$EPORT3/" -e "s|$T_DIR/cache|$T_DIR/cache3|" -e 's/edge-test/edge-three/' \
	-e 's/^threads = .*/threads = 1;/' "$T_DIR/edge.conf" >"$T_DIR/edge3.conf"
t_start edge3 "$BIN/minicdn-edge" -c "$T_DIR/edge3.conf"
t_wait_http "http://127.0.0.1:$EPORT3/healthz" 10
E3=http://127.0.0.1:$EPORT3
inflight3() { curl -s --max-time 5 "$E3/metrics" | awk '/^minicdn_edge_inflight_requests /{print $2}'; }
stored3() { curl -s --max-time 5 "$E3/metrics" | awk '/^minicdn_edge_stored_total /{print $2}'; }
curl -s -o /dev/null "$E3/doc"
curl -s -o /dev/null "$E3/img/a"
for _ in $(seq 100); do [ "$(stored3)" = 2 ] && break; sleep 0.05; done
t_start hold "$BIN/lmdb-hold" "$T_DIR/cache3"
for _ in $(seq 100); do grep -q '^held' "$T_DIR/hold.log" && break; sleep 0.05; done
t_check "another process holds the store's write lock" grep -q '^held' "$T_DIR/hold.log"
curl -s --max-time 30 -o "$T_DIR/purge3.out" -w '%{http_code}' -X POST -H 'Authorization: Bearer test-secret' \
	--data "{\"url\":\"$E3/img/a\"}" "$E3/.minicdn/purge" >"$T_DIR/purge3.code" &
PURGE3=$!
seen=
for _ in $(seq 100); do
	n=$(inflight3)
	[ -z "$n" ] && break # /metrics not answered: the thread is held by the purge
	[ "$n" -ge 1 ] && { seen=1; break; }
	sleep 0.05
done
t_check "while a purge waits for the writer, /metrics is answered and counts it in flight" test -n "$seen"
E=$E3 get /doc --max-time 5
t_check "while a purge waits for the writer, a hit is answered" cs_has "; hit"
t_check "the purge is still waiting (it cannot commit yet)" kill -0 "$PURGE3"
t_stop hold
wait "$PURGE3"
t_eq "the purge is answered once the writer commits it" 200 "$(cat "$T_DIR/purge3.code")"
t_check "and reports the entry it removed" grep -q '"purged":1' "$T_DIR/purge3.out"
E=$E3 get /img/a
t_check "the purged object is a miss" cs_has "uri-miss"
t_done
