#!/bin/bash
# scripts-push -- signed Lua bundles on three edges: push, activation, refusals
# (unsigned, wrong key, replay, stale version, non-compiling), rollback by
# re-signing, restart keeps the active version, KV, subrequests, cacheable
# script responses, unpush, metrics.
. "$(dirname "$0")/../../lib.sh"
t_init scripts-push
. "$(dirname "$0")/common.sh"

sc_keys || { t_fail "keygen"; t_done; }
sc_origin
EDGES="edge-eu edge-us edge-ap"
sc_edge edge-eu eu
sc_edge edge-us us
sc_edge edge-ap ap

B=$T_DIR/b; mkdir -p "$B"
hello() { # version-label -> single-file bundle
	cat >"$B/hello.lua" <<EOL
--[[minicdn
name = "geo-hello";
routes = ( { path = "/hello*"; method = "GET"; } );
]]
function handle(req)
  return { status = 200, headers = { ["Content-Type"] = "text/plain" },
           body = "$1 " .. req.edge_name .. " " .. req.edge_region .. " " .. req.region ..
                  " " .. (req.args.who or "-") .. "\n" }
end
EOL
}

hello "v1"; sc_sign "$B/hello.lua" 1 >"$B/v1.env"
for e in $EDGES; do
	r=$(sc_push $e "$B/v1.env")
	t_eq "$e activates geo-hello v1" "200" "${r%% *}"
done
for e in $EDGES; do
	region=${e#edge-}
	body=$(curl -s "${EDGE_URL[$e]}/hello?who=ann")
	t_eq "$e answers from the script" "v1 $e $region eu ann" "$body"
done
hdrs=$(curl -s -D - -o /dev/null "${EDGE_URL[edge-us]}/hello")
t_check "X-Edge-Script names bundle and version" grep -qi '^X-Edge-Script: geo-hello/1' <<<"$hdrs"
t_check "no Cache-Status on an unstored script response" bash -c '! grep -qi "^Cache-Status:" <<<"$1"' _ "$hdrs"
body=$(curl -s --interface 127.0.0.1 "${EDGE_URL[edge-eu]}/hello")
t_eq "client region from the regions map" "v1 edge-eu eu eu -" "$body"
t_eq "other paths fall through to the origin" "200" "$(curl -s -o /dev/null -w '%{http_code}' "${EDGE_URL[edge-eu]}/other.txt")"
t_eq "POST does not match a GET route" "1" "$(curl -s -o /dev/null -X POST -d x "${EDGE_URL[edge-eu]}/hello" && curl -s "$O/__count?path=/hello")"

# --- refusals: the old version stays active -------------------------------
E=edge-eu
python3 - "$B/v1.env" >"$B/unsigned.env" <<'PY'
import json, sys
e = json.load(open(sys.argv[1])); del e["sig"]; print(json.dumps(e))
PY
hello "evil"; sc_sign "$B/hello.lua" 5 "$T_DIR/other.key" >"$B/wrongkey.env"
hello "v0"; sc_sign "$B/hello.lua" 1 >"$B/samever.env"
printf -- '--[[minicdn\nname = "geo-hello";\nroutes = ( { path = "/hello*"; } );\n]]\nfunction handle(req\n' >"$B/broken.lua"
sc_sign "$B/broken.lua" 6 >"$B/broken.env"
python3 - "$B/v1.env" >"$B/tampered.env" <<'PY'
import base64, json, sys
e = json.load(open(sys.argv[1]))
b = base64.b64decode(e["bundle"]).replace(b'v1 ', b'v9 ')
assert b'v9 ' in b
e["bundle"] = base64.b64encode(b).decode(); print(json.dumps(e))
PY
r=$(sc_push $E "$B/unsigned.env");  t_eq "unsigned bundle refused (403)" "403" "${r%% *}"
r=$(sc_push $E "$B/wrongkey.env");  t_eq "bundle signed by another key refused (403)" "403" "${r%% *}"
r=$(sc_push $E "$B/tampered.env");  t_eq "tampered bundle refused (403)" "403" "${r%% *}"
r=$(sc_push $E "$B/v1.env");        t_eq "replayed bundle refused (409)" "409" "${r%% *}"
r=$(sc_push $E "$B/samever.env");   t_eq "same version, other content refused (409)" "409" "${r%% *}"
r=$(sc_push $E "$B/broken.env");    t_eq "non-compiling bundle refused (422)" "422" "${r%% *}"
t_check "refusal names the compile error" grep -q "does not compile" <<<"$r"
r=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary 'not json' "${EDGE_URL[$E]}/.minicdn/scripts")
t_eq "garbage body refused (400)" "400" "$r"
t_eq "old version still active after refusals" "v1 edge-eu eu eu -" "$(curl -s "${EDGE_URL[$E]}/hello")"
t_check "refusals logged" grep -q "refused: bad signature" "$T_DIR/$E.log"

# --- new version, rollback, list --------------------------------------------
hello "v2"; sc_sign "$B/hello.lua" 2 >"$B/v2.env"
for e in $EDGES; do sc_push $e "$B/v2.env" >/dev/null; done
t_eq "v2 active" "v2 edge-ap ap eu -" "$(curl -s "${EDGE_URL[edge-ap]}/hello")"
hello "v1"; sc_sign "$B/hello.lua" 3 >"$B/v3.env"   # rollback = v1 content, re-signed higher
for e in $EDGES; do
	r=$(sc_push $e "$B/v3.env"); t_eq "$e rollback (v1 content as version 3) accepted" "200" "${r%% *}"
done
t_eq "rolled back content served" "v1 edge-us us eu -" "$(curl -s "${EDGE_URL[edge-us]}/hello")"
list=$(curl -s "${EDGE_URL[edge-us]}/.minicdn/scripts")
t_check "GET /.minicdn/scripts lists version 3 and previous 2" \
	python3 -c 'import json,sys; s=json.loads(sys.argv[1])["scripts"][0]; assert s["name"]=="geo-hello" and s["version"]==3 and s["previous"]==2' "$list"

# --- KV, subrequests, cacheable --------------------------------------------
mkdir -p "$B/app"
cat >"$B/app/bundle.conf" <<'EOC'
name = "app";
routes = ( { path = "/count"; }, { path = "/wrap/*"; }, { path = "/cached/*"; }, { path = "/kvttl"; } );
EOC
cat >"$B/app/util.lua" <<'EOL'
local M = {}
function M.json_str(s) return '"' .. s:gsub('[%c"\\]', function(c) return string.format('\\u%04x', c:byte()) end) .. '"' end
return M
EOL
cat >"$B/app/main.lua" <<'EOL'
local util = require("util")
local n = 0
function handle(req)
  if req.path == "/count" then
    return { body = tostring(kv.incr("hits")) }
  elseif req.path == "/kvttl" then
    if req.args.set then kv.set("t", req.args.set, 1) return "set" end
    return kv.get("t") or "expired"
  elseif req.path:sub(1, 6) == "/wrap/" then
    local r, err = fetch("/" .. req.path:sub(7))
    if not r then return { status = 502, body = err } end
    return { headers = { ["Content-Type"] = "application/json" },
             body = '{"status":' .. r.status .. ',"len":' .. #r.body .. ',"body":' .. util.json_str(r.body) .. '}' }
  elseif req.path:sub(1, 8) == "/cached/" then
    n = n + 1
    return { body = "generated " .. req.path .. "\n", cache = 60 }
  end
end
EOL
sc_sign "$B/app" 1 >"$B/app.env"
for e in $EDGES; do r=$(sc_push $e "$B/app.env"); t_eq "$e activates app (directory bundle, 2 modules)" "200" "${r%% *}"; done
E=edge-eu
t_eq "kv.incr 1" "1" "$(curl -s "${EDGE_URL[$E]}/count")"
t_eq "kv.incr 2" "2" "$(curl -s "${EDGE_URL[$E]}/count")"
t_eq "kv is per edge" "1" "$(curl -s "${EDGE_URL[edge-us]}/count")"
curl -s "${EDGE_URL[$E]}/kvttl?set=yes" >/dev/null
t_eq "kv value readable before its TTL" "yes" "$(curl -s "${EDGE_URL[$E]}/kvttl")"
sleep 1.3
t_eq "kv value gone after its TTL" "expired" "$(curl -s "${EDGE_URL[$E]}/kvttl")"
curl -s -o /dev/null -X POST --data-binary '{"path":"/data.json","status":200,"headers":{"Cache-Control":"no-store"},"body":"origin-data"}' "$O/__set"
w=$(curl -s "${EDGE_URL[$E]}/wrap/data.json")
t_eq "subrequest to the origin" '{"status":200,"len":11,"body":"origin-data"}' "$w"
t_eq "subrequest reached the origin once" "1" "$(curl -s "$O/__count?path=/data.json")"
curl -s -D "$T_DIR/h1" -o /dev/null "${EDGE_URL[$E]}/cached/a"
curl -s -D "$T_DIR/h2" -o "$T_DIR/b2" "${EDGE_URL[$E]}/cached/a"
t_check "cacheable script response stored" grep -qi '^Cache-Status:.*stored' "$T_DIR/h1"
t_check "second request is a cache hit" grep -qi '^Cache-Status:.*hit' "$T_DIR/h2"
t_eq "cached body" "generated /cached/a" "$(cat "$T_DIR/b2")"
m=$(curl -s "${EDGE_URL[$E]}/metrics")
t_check "metrics: app invocations (hit did not run the script: 7)" grep -q '^minicdn_script_invocations_total{script="app"} 7$' <<<"$m"
t_check "metrics: errors by kind" grep -q '^minicdn_script_errors_total{script="app",kind="instructions"} 0$' <<<"$m"
t_check "metrics: time spent" grep -q '^minicdn_script_seconds_total{script="geo-hello"} ' <<<"$m"

# --- restart keeps the active version (and KV) --------------------------------
t_stop edge-eu
sc_edge edge-eu eu
t_eq "after restart: rolled-back version 3 still active" "v1 edge-eu eu eu -" "$(curl -s "${EDGE_URL[edge-eu]}/hello")"
t_eq "after restart: kv counter kept" "3" "$(curl -s "${EDGE_URL[edge-eu]}/count")"
r=$(sc_push edge-eu "$B/v2.env"); t_eq "after restart: replay of v2 still refused" "409" "${r%% *}"

# --- unpush ------------------------------------------------------------------
"$SIGN" delete "$T_DIR/origin.key" geo-hello 4 >"$B/del.env"
r=$(sc_push edge-eu "$B/del.env" DELETE /.minicdn/scripts/other); t_eq "DELETE with a mismatched name refused" "400" "${r%% *}"
for e in $EDGES; do
	r=$(sc_push $e "$B/del.env" DELETE /.minicdn/scripts/geo-hello); t_eq "$e unpush" "200" "${r%% *}"
done
b=$(curl -s "${EDGE_URL[edge-ap]}/hello")
t_eq "after unpush /hello comes from the origin" "hello from /hello" "$b"
r=$(sc_push edge-ap "$B/v3.env"); t_eq "unpushed bundle cannot be replayed" "409" "${r%% *}"

# --- the example bundles shipped in deploy/scripts ---------------------------
sc_sign "$T_ROOT/deploy/scripts/geo-hello/hello.lua" 10 >"$B/ex1.env"
sc_sign "$T_ROOT/deploy/scripts/kv-counter" 1 >"$B/ex2.env"
r=$(sc_push edge-us "$B/ex1.env"); t_eq "example geo-hello accepted" "200" "${r%% *}"
r=$(sc_push edge-us "$B/ex2.env"); t_eq "example kv-counter accepted" "200" "${r%% *}"
t_eq "example geo-hello answers" "Hallo bob! (you are in eu, served by edge-us in us)" "$(curl -s "${EDGE_URL[edge-us]}/hello?name=bob")"
curl -s -o /dev/null "${EDGE_URL[edge-us]}/counter"
t_eq "example kv-counter counts" '{"edge":"edge-us","recent_clients":1,"visits":2}' "$(curl -s "${EDGE_URL[edge-us]}/counter")"

t_done
