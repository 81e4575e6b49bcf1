#!/bin/bash
# log-escape -- text from a client or a script cannot forge or break a log
# line: CR/LF, ANSI escapes and NULs from a query string and from a script
# (log.warn, error messages) come out as \xHH inside the one line they belong to.
. "$(dirname "$0")/../../lib.sh"
t_init log-escape
. "$(dirname "$0")/../scripts-push/common.sh"

sc_keys || { t_fail "keygen"; t_done; }
sc_origin
sc_edge edge-eu eu ''
E=${EDGE_URL[edge-eu]}
L=$T_DIR/edge-eu.log
cat >"$T_DIR/say.lua" <<'EOL'
--[[minicdn
name = "say";
routes = ( { path = "/say/*"; } );
]]
function handle(req)
  if req.path == "/say/log" then log.warn("client said " .. req.args.m) return { body = "ok\n" } end
  if req.path == "/say/err" then error("client said " .. req.args.m, 0) end
end
EOL
r=$(sc_push edge-eu "$(sc_sign "$T_DIR/say.lua" 1 >"$T_DIR/say.env"; echo "$T_DIR/say.env")"); t_eq "script active" "200" "${r%% *}"
# A whole forged line, an ANSI colour and a NUL with text after it.
FORGE='%0d%0a2026-01-01T00:00:00.000Z%20ERROR%20minicdn-edge%20main:%20FORGED%1b%5b31mRED%00AFTERNUL'
t_eq "log.warn request answered" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$E/say/log?m=$FORGE")"
t_eq "error request answered 500" "500" "$(curl -s -o /dev/null -w '%{http_code}' "$E/say/err?m=$FORGE")"
# The query string raw (ESC bytes, as a client may send them): the edge
# refuses the target and, at debug level, logs it.
t_stop edge-eu
sed -i 's/log_level = "info"/log_level = "debug"/' "$T_DIR/edge-eu.conf"
t_start edge-eu2 "$BIN/minicdn-edge" -c "$T_DIR/edge-eu.conf"
t_wait_http "$E/healthz" 10 || t_fail "edge did not restart"
L2=$T_DIR/edge-eu2.log
python3 "$T_ROOT/tests/tools/rawhttp.py" 127.0.0.1 "${EDGE_PORT[edge-eu]}" \
	'GET /miss?q=\x1b[2J\x1b[31mQFORGED HTTP/1.1\r\nHost: x\r\n\r\n' --wait 5 >/dev/null
sleep 0.5
t_check "no log line starts with the forged timestamp" bash -c "! grep -a -q '^2026-01-01' '$L' '$L2'"
t_check "no raw CR, ESC or NUL in the logs" bash -c "! grep -a -q -P '[\x0d\x1b\x00]' '$L' '$L2'"
t_check "log.warn text on one line, escaped (CR LF ESC NUL and what follows it)" \
	grep -q 'say v1: client said \\x0d\\x0a2026-01-01T00:00:00.000Z ERROR minicdn-edge main: FORGED\\x1b\[31mRED\\x00AFTERNUL$' "$L"
t_check "script error message on one line, escaped" \
	grep -q 'say v1 failed on GET /say/err: runtime: client said \\x0d\\x0a2026-01-01T00:00:00.000Z ERROR .*FORGED\\x1b\[31mRED\\x00AFTERNUL$' "$L"
t_check "the raw query string of a refused target is escaped" grep -q 'refused /miss?q=\\x1b\[2J\\x1b\[31mQFORGED' "$L2"
t_done
