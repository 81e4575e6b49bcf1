# edge-common.sh -- shared set-up for the edge-* integration scenarios (source it
# after tests/lib.sh and t_init).  Starts the scripted origin
# (tests/tools/edge_origin.py) and one edge on free loopback ports.
#
#   edge_setup [extra config lines]   # origin + edge, waits until both answer
#   oset JSON                         # configure an origin path
#   ocount PATH                       # requests for PATH that reached the origin
#   get PATH [curl args...]           # GET through the edge; headers in $T_DIR/h, body in $T_DIR/b
#   hdr NAME                          # a header of the last get
#   status                            # status of the last get

ORIGIN_PY=$T_ROOT/tests/tools/edge_origin.py

edge_write_conf() {
	cat >"$T_DIR/edge.conf" <<EOC
name = "edge-test";
region = "eu";
listen = "127.0.0.1:$EPORT";
origin = "http://127.0.0.1:$OPORT";
control_secret = "test-secret";
log_level = "info";
threads = 2;
cache = { path = "$T_DIR/cache"; map_size = "${EDGE_MAP:-64M}"; max_object_size = "${EDGE_MAXOBJ:-4M}"; stale_if_error = "${EDGE_SIE:-0}"; ${EDGE_CACHE_EXTRA:-} };
upstream = { connect_timeout = "1s"; timeout = "${EDGE_TIMEOUT:-3s}"; };
$EDGE_EXTRA
EOC
}

edge_start() {
	t_start edge "$BIN/minicdn-edge" -c "$T_DIR/edge.conf"
	t_wait_http "http://127.0.0.1:$EPORT/healthz" 10
}

edge_setup() {
	OPORT=$(t_free_port)
	EPORT=$(t_free_port)
	EDGE_EXTRA=${1:-}
	t_start origin python3 "$ORIGIN_PY" "$OPORT"
	t_wait_http "http://127.0.0.1:$OPORT/__count" 10 || { t_fail "origin did not start"; t_done; }
	edge_write_conf
	edge_start || { t_fail "edge did not start"; t_done; }
	E=http://127.0.0.1:$EPORT
	O=http://127.0.0.1:$OPORT
}

oset() { curl -s -o /dev/null -X POST --data-binary "$1" "$O/__set"; }
ocount() { curl -s "$O/__count?path=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1]))' "$1")"; }
olast() { curl -s "$O/__last?path=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1]))' "$1")"; }

get() {
	local p=$1; shift
	curl -s -D "$T_DIR/h" -o "$T_DIR/b" --max-time 10 "$@" "$E$p"
}
hdr() { grep -i "^$1:" "$T_DIR/h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
status() { head -1 "$T_DIR/h" | cut -d' ' -f2; }
body() { cat "$T_DIR/b"; }
cs_has() { hdr Cache-Status | grep -q -- "$1"; }
# Responses stored so far (/metrics), and a wait until more than N are: a
# store commits in the writer thread just after the response was served.
stored_total() { curl -s "$E/metrics" | awk '/^minicdn_edge_stored_total /{print $2}'; }
wait_stored() { for _ in $(seq 100); do [ "$(stored_total)" -gt "$1" ] && return 0; sleep 0.02; done; return 1; }
