#!/usr/bin/env bash
# edge-reload: SIGHUP applies the reloadable settings (control secret, load,
# query rules, limits, stale_if_error, log level) without a restart; a bad
# file is rejected with FILE:LINE and the running settings stay; restart-only
# changes are reported and ignored.
. "$(dirname "$0")/../../lib.sh"
t_init edge-reload
. "$T_ROOT/tests/integration/edge-common.sh"
edge_setup 'load_override = 0.25;'
AUTH() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" -X POST -d '{"tag":"none"}' "$E/.minicdn/purge"; }
load() { curl -s "$E/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["load"])'; }
# SIGHUP, then NEW = what the edge logged since, once it logged the outcome
# (each check below reads only its own reload's lines, never an earlier one's).
hup() {
	local m; m=$(t_log_mark edge)
	kill -HUP "$(t_pid edge)"
	for _ in $(seq 50); do
		NEW=$(t_log_since edge "$m")
		grep -qE 'SIGHUP: (reloaded|.*rejected)' <<<"$NEW" && return 0
		sleep 0.1
	done
}
pid0=$(t_pid edge)

# --- before: the start-up settings
t_eq "start: load_override 0.25" 0.25 "$(load)"
t_eq "start: the first secret works" 200 "$(AUTH test-secret)"
get "/q?a=1"; get "/q?a=2"
t_check "start: query kept in the key (?a=2 is a miss)" cs_has "uri-miss"
long=$(printf 'x%.0s' $(seq 1 600))
get "/$long"
t_eq "start: a 600-byte target passes (max_url 4K)" 200 "$(status)"
oset '{"path":"/sie","headers":{"Cache-Control":"max-age=1"},"body":"old"}'
get /sie
sleep 2.1
oset '{"path":"/sie","status":500,"headers":{"Cache-Control":"no-store"},"body":"err"}'
get /sie
t_eq "start: stale_if_error 0: the origin's 500 passes" 500 "$(status)"

# --- reload: every reloadable setting changes
EDGE_EXTRA='load_override = 0.75; limits = { max_url = 512; }; query_rules = ( { path = "/q*"; query = "ignore"; } );'
EDGE_SIE=60s edge_write_conf
sed -i 's/control_secret = "test-secret"/control_secret = "second-secret"/; s/log_level = "info"/log_level = "debug"/' "$T_DIR/edge.conf"
hup
t_check "reload: logged" grep -q "SIGHUP: reloaded" <<<"$NEW"
t_eq "reload: same process" "$pid0" "$(t_pid edge)"
t_eq "reload: load_override 0.75" 0.75 "$(load)"
t_eq "reload: the old secret is refused" 401 "$(AUTH test-secret)"
t_eq "reload: the new secret works" 200 "$(AUTH second-secret)"
get "/q?a=3"; get "/q?a=4"
t_check "reload: query ignored now (?a=4 is a hit)" cs_has "; hit"
get "/$long"
t_eq "reload: max_url 512: the 600-byte target gets 414" 414 "$(status)"
get /sie
t_eq "reload: stale_if_error 60s: stale served on the 500" 200 "$(status)"
t_eq "reload: the stale body" old "$(body)"
m=$(t_log_mark edge)
get /dbg-$RANDOM
t_check "reload: log_level debug applies" grep -q "DEBUG" <<<"$(t_log_since edge "$m")"

# --- a bad file: rejected with FILE:LINE, the running settings stay
cp "$T_DIR/edge.conf" "$T_DIR/edge.good"
sed -i 's/load_override = 0.75;/load_override = 0.5;/; s/log_level = "debug"/log_level = "loud"/' "$T_DIR/edge.conf"
hup
t_check "bad log_level: rejected with FILE:LINE" grep -qE "ERROR .*SIGHUP: $T_DIR/edge.conf:[0-9]+: 'log_level': 'loud' .*rejected" <<<"$NEW"
t_eq "bad log_level: load stays 0.75" 0.75 "$(load)"
cp "$T_DIR/edge.good" "$T_DIR/edge.conf"; printf 'capacity = 5\nbogus\n' >>"$T_DIR/edge.conf"
hup
# libconfig names the line where it noticed the error: in the appended lines
# or the end of file just after them, never the file's earlier lines.
g=$(wc -l <"$T_DIR/edge.good")
t_check "syntax error: rejected with FILE:LINE (a line of the bad part)" \
	grep -qE "ERROR .*SIGHUP: $T_DIR/edge.conf:($((g + 1))|$((g + 2))|$((g + 3))): syntax error.*rejected" <<<"$NEW"
cp "$T_DIR/edge.good" "$T_DIR/edge.conf"; sed -i 's/query = "ignore"/query = "shuffle"/' "$T_DIR/edge.conf"
hup
t_check "bad query mode: rejected with FILE:LINE" grep -qE "ERROR .*SIGHUP: $T_DIR/edge.conf:[0-9]+: .*shuffle.*rejected" <<<"$NEW"
t_eq "after rejections: the second secret still works" 200 "$(AUTH second-secret)"
get "/q?a=5"
t_check "after rejections: query rules unchanged (hit)" cs_has "; hit"

# --- restart-only settings are reported, not applied
cp "$T_DIR/edge.good" "$T_DIR/edge.conf"; sed -i 's/threads = 2;/threads = 3;/' "$T_DIR/edge.conf"
hup
t_check "restart-only: threads change reported" grep -q "SIGHUP: threads changed: takes effect at the next restart" <<<"$NEW"
t_check "restart-only: still serving" t_wait_http "$E/healthz" 2
m=$(t_log_mark edge)
t_stop edge
t_check "clean stop after reloads" grep -q "stopped" <<<"$(t_log_since edge "$m")"
t_done
