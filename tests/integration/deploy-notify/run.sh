#!/bin/bash
# deploy-notify: the systemd readiness protocol (Type=notify) of every daemon,
# against a stand-in for systemd's notify socket (tests/tools/notify_listen.py):
# READY=1 arrives once and only when the listeners accept connections,
# RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP, STOPPING=1 at
# SIGTERM.  Each daemon runs under the seccomp filters its unit asks of
# systemd (tests/tools/unit_sandbox.py: SystemCallFilter=, RestrictAddress-
# Families=, MemoryDenyWriteExecute=): the edge's LMDB cache (a miss, then a
# hit) and a Lua script work without writable-and-executable memory, and no
# daemon needs a system call or socket family its unit forbids.
. "$(dirname "$0")/../../lib.sh"
t_init deploy-notify
LISTEN=$T_ROOT/tests/tools/notify_listen.py
SANDBOX=$T_ROOT/tests/tools/unit_sandbox.py
# The command prefix that runs a program under minicdn-NAME.service's seccomp
# settings (it execs the program: t_start records the daemon's own PID).
sandbox() { echo /usr/bin/python3 "$SANDBOX" "$T_ROOT/deploy/systemd/minicdn-$1.service"; }

# notify_start NAME PORT... : a notify socket for daemon NAME; NOTIFY_SOCKET is
# exported for the daemon started next.
notify_start() {
	local name=$1; shift
	t_start "notify-$name" python3 "$LISTEN" "$T_DIR/$name.sock" "$T_DIR/$name.notify" "$@"
	for _ in $(seq 50); do [ -S "$T_DIR/$name.sock" ] && break; sleep 0.1; done
	export NOTIFY_SOCKET=$T_DIR/$name.sock
}
# wait_msg NAME REGEX [secs] : until a notify line matches
wait_msg() {
	local i
	for i in $(seq $((${3:-10} * 10))); do
		grep -qE -- "$2" "$T_DIR/$1.notify" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
count() { grep -cE -- "$2" "$T_DIR/$1.notify" 2>/dev/null || true; }

# check_daemon NAME [WHAT CMD...] : the protocol around start, SIGHUP and
# SIGTERM; CMD (checked as WHAT) runs against the daemon once it is ready.
check_daemon() {
	local n=$1
	t_check "$n: READY=1 sent" wait_msg "$n" '(^|\|)READY=1'
	t_eq "$n: listeners accepted connections when READY=1 arrived" 1 "$(count "$n" 'READY=1.*accept=ok')"
	t_eq "$n: no other message before READY=1" 1 "$(wc -l <"$T_DIR/$n.notify")"
	[ $# -gt 2 ] && t_check "$n sandboxed: $2" "${@:3}"
	kill -HUP "$(t_pid "$n")"
	local i
	for i in $(seq 100); do [ "$(wc -l <"$T_DIR/$n.notify")" -ge 3 ] && break; sleep 0.1; done
	t_eq "$n: SIGHUP: two messages" 3 "$(wc -l <"$T_DIR/$n.notify")"
	local l2 l3
	l2=$(sed -n 2p "$T_DIR/$n.notify"); l3=$(sed -n 3p "$T_DIR/$n.notify")
	t_check "$n: SIGHUP: RELOADING=1 with MONOTONIC_USEC" grep -qE '^RELOADING=1\|.*MONOTONIC_USEC=[0-9]+' <<<"$l2"
	t_check "$n: SIGHUP: READY=1 after it" grep -qE '^READY=1' <<<"$l3"
	# MONOTONIC_USEC is CLOCK_MONOTONIC when the reload began (systemd compares
	# it with the time it sent SIGHUP): within a few seconds of now.
	local mono now
	mono=$(sed -n 's/.*MONOTONIC_USEC=\([0-9]*\).*/\1/p' <<<"$l2")
	now=$(python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)')
	t_check "$n: MONOTONIC_USEC is the monotonic clock (within 10 s)" \
		test "$(( now - ${mono:-0} ))" -ge 0 -a "$(( now - ${mono:-0} ))" -lt 10000000
	t_stop "$n"
	t_check "$n: SIGTERM: STOPPING=1" grep -qE '^STOPPING=1' "$T_DIR/$n.notify"
	t_stop "notify-$n"
	unset NOTIFY_SOCKET
}

# ---- the filters refuse what the units forbid (else the checks below would
# prove nothing)
py() { $(sandbox edge) /usr/bin/python3 -c "$1" 2>/dev/null; }
py_refused() { ! py "$1"; }
t_check "sandbox: an RWX mapping is refused (MemoryDenyWriteExecute)" \
	py_refused 'import mmap; mmap.mmap(-1, 4096, prot=7)'
t_check "sandbox: an RW mapping is allowed" py 'import mmap; mmap.mmap(-1, 4096, prot=3)'
t_check "sandbox: setpriority is refused (SystemCallFilter=~@resources)" \
	py_refused 'import os; os.setpriority(os.PRIO_PROCESS, 0, 5)'
t_check "sandbox: a netlink socket is refused (RestrictAddressFamilies)" \
	py_refused 'import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)'
t_check "sandbox: an IPv6 socket is allowed" py 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_STREAM)'

# ---- edge, sandboxed, with a cache and a script
SIGN=$BIN/bundle-sign
"$SIGN" keygen "$T_DIR/origin.pub" "$T_DIR/origin.key" >/dev/null || { t_fail "keygen"; t_done; }
OPORT=$(t_free_port); EPORT=$(t_free_port)
t_start upstream python3 "$T_ROOT/tests/tools/edge_origin.py" "$OPORT"
t_wait_http "http://127.0.0.1:$OPORT/__count" 10 || { t_fail "origin did not start"; t_done; }
cat >"$T_DIR/edge.conf" <<EOC
name = "edge-n"; region = "eu"; listen = "127.0.0.1:$EPORT"; origin = "http://127.0.0.1:$OPORT";
control_secret = "notify-secret";
cache = { path = "$T_DIR/cache"; map_size = "64M"; };
scripts = { pubkey = "$T_DIR/origin.pub"; path = "$T_DIR/scripts"; };
EOC
notify_start edge "$EPORT"
t_start edge $(sandbox edge) "$BIN/minicdn-edge" -c "$T_DIR/edge.conf"
E=http://127.0.0.1:$EPORT
if t_wait_http "$E/healthz" 10; then
	curl -s -o /dev/null -X POST --data-binary '{"path":"/a.txt","body":"cached","headers":{"Cache-Control":"max-age=60"}}' \
		"http://127.0.0.1:$OPORT/__set"
	cstatus() { curl -s -o /dev/null -D - "$E/a.txt" | grep -i '^Cache-Status:'; }
	t_check "edge sandboxed: a miss, stored" grep -q 'fwd=uri-miss.*stored' <<<"$(cstatus)"
	t_check "edge sandboxed: then a hit from LMDB" grep -q '; hit' <<<"$(cstatus)"
	cat >"$T_DIR/hello.lua" <<'LUA'
--[[minicdn
name = "hello";
routes = ( { path = "/hello"; } );
]]
function handle(req) return { status = 200, body = "hello from lua " .. tostring(2 ^ 10) } end
LUA
	"$SIGN" sign "$T_DIR/origin.key" "$T_DIR/hello.lua" 1 >"$T_DIR/hello.env"
	t_eq "edge sandboxed: script push accepted" 200 \
		"$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$T_DIR/hello.env" "$E/.minicdn/scripts")"
	t_eq "edge sandboxed: the Lua script runs" "hello from lua 1024.0" "$(curl -s "$E/hello")"
else
	t_fail "edge did not start in its unit's sandbox"; cat "$T_DIR/edge.log"
fi
check_daemon edge

# ---- origin
mkdir -p "$T_DIR/site"; for i in $(seq 40); do echo "a line of text to compress"; done >"$T_DIR/site/index.html"
OP2=$(t_free_port)
printf 'listen = "127.0.0.1:%s";\nroot = "%s/site";\n' "$OP2" "$T_DIR" >"$T_DIR/origin.conf"
notify_start origin "$OP2"
t_start origin $(sandbox origin) "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
gz_ok() { curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$OP2/index.html" | gzip -dc | grep -q 'a line of text'; }
check_daemon origin "serves a gzip representation" gz_ok

# ---- dns (UDP+TCP listener and the stats listener)
P=$(t_free_port); SP=$(t_free_port)
printf '$ORIGIN cdn.test.\n@ 300 IN SOA ns1 h 1 3600 600 86400 60\n@ 300 IN NS ns1\nns1 300 IN A 127.0.0.1\n' >"$T_DIR/cdn.test.zone"
printf '127.0.1.0/24 eu\n' >"$T_DIR/map.txt"
cat >"$T_DIR/dns.conf" <<CONF
listen = [ "127.0.0.1:$P" ]; stats_listen = "127.0.0.1:$SP"; workers = 1;
zones = ( { name = "cdn.test."; file = "cdn.test.zone"; } );
dynamic = [ "www.cdn.test." ]; map = "map.txt"; default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; } );
edges = ( { name = "edge-eu"; region = "eu"; address = "127.0.0.11"; healthz = "http://127.0.0.1:$EPORT/healthz"; } );
health = { interval = "500ms"; timeout = "300ms"; initial = "up"; fall = 100; };
CONF
notify_start dns "$P" "$SP"
t_start dns $(sandbox dns) "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
dns_ok() { [ "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$P" www.cdn.test)" = 127.0.0.11 ] &&
	[ "$(dig +short +tcp +time=1 +tries=1 @127.0.0.1 -p "$P" www.cdn.test)" = 127.0.0.11 ]; }
check_daemon dns "answers over UDP and TCP while health checks run" dns_ok

for d in edge origin dns; do
	t_check "$d: no EPERM or EAFNOSUPPORT in its log" \
		bash -c "! grep -qiE 'operation not permitted|address family not supported' '$T_DIR/$d.log'"
done

# ---- without NOTIFY_SOCKET nothing changes (the daemons run outside systemd too)
t_check "-t ignores NOTIFY_SOCKET" env NOTIFY_SOCKET="$T_DIR/nowhere.sock" "$BIN/minicdn-dns" -t -c "$T_DIR/dns.conf"
t_done
