#!/bin/bash
# origin-ctl: `minicdnctl status` (parallel health table, JSON, exit codes,
# timeouts), `keygen` (files, modes, no silent overwrite) and the origin's
# control API guards (secret, bad bundles, versions) -- no edges needed.
. "$(dirname "$0")/../../lib.sh"
t_init origin-ctl

PORT=$(t_free_port)
URL=http://127.0.0.1:$PORT
CTL=$BIN/minicdnctl

# ---- keygen
t_check "keygen writes a key pair" "$CTL" keygen "$T_DIR/keys/origin"
t_eq "secret key mode 0600" 600 "$(stat -c %a "$T_DIR/keys/origin.key")"
t_check "public key is 32 bytes of base64" bash -c "[ \$(base64 -d <'$T_DIR/keys/origin.pub' | wc -c) = 32 ]"
t_check "secret key is 64 bytes of base64" bash -c "[ \$(base64 -d <'$T_DIR/keys/origin.key' | wc -c) = 64 ]"
pub1=$(cat "$T_DIR/keys/origin.pub")
t_fails_with 1 "keygen refuses to overwrite (exit 1)" "$CTL" keygen "$T_DIR/keys/origin"
t_eq "key unchanged after refused keygen" "$pub1" "$(cat "$T_DIR/keys/origin.pub")"
t_check "keygen --force replaces" "$CTL" keygen --force "$T_DIR/keys/origin"
t_check "new key differs" bash -c "[ '$pub1' != \"\$(cat '$T_DIR/keys/origin.pub')\" ]"

# The site doubles as a fake DNS stats listener: /fakedns/healthz and /fakedns/stats.
mkdir -p "$T_DIR/site/fakedns"
cp -r "$T_ROOT/deploy/demo-site/." "$T_DIR/site/"
echo '{"status":"ok","role":"dns","name":"minicdn-dns","version":"0.1.0","uptime_s":5,"load":0}' >"$T_DIR/site/fakedns/healthz"
echo '{"edges":[{"name":"edge-a","region":"eu","up":true,"usable":true,"checked":true,"load":0.25,"error":"","answers":7},
  {"name":"edge-b","region":"us","up":false,"usable":false,"checked":true,"load":0,"error":"connection refused","answers":0},
  {"name":"edge-c","region":"ap","up":true,"usable":false,"checked":true,"load":0.97,"error":"","answers":2}]}' >"$T_DIR/site/fakedns/stats"
cat >"$T_DIR/origin.conf" <<CONF
name = "origin-t";
region = "us";
listen = "127.0.0.1:$PORT";
root = "$T_DIR/site";
control_secret = "test-secret-123";
push = { secret_key = "$T_DIR/keys/origin.key"; state_dir = "$T_DIR/state"; timeout = "1s"; retry_interval = "1s"; };
CONF
t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_wait_http "$URL/healthz" || t_fail "origin did not start"

# A listener that accepts connections and never answers: status must time out
# on it without waiting for it serially.
HANG=$(t_free_port)
t_start hang python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $HANG)); s.listen(16)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
"
DOWN=$(t_free_port)
sleep 0.3

cat >"$T_DIR/up.conf" <<CONF
control_secret = "test-secret-123";
origin = "$URL";
timeout = "1s";
nodes = ( { name = "origin"; role = "origin"; url = "$URL"; },
          { name = "origin-again"; role = "origin"; url = "$URL/"; },
          { name = "dns1"; role = "dns"; url = "$URL/fakedns"; } );
CONF
cat >"$T_DIR/mixed.conf" <<CONF
control_secret = "test-secret-123";
origin = "$URL";
timeout = "1s";
nodes = ( { name = "origin"; role = "origin"; url = "$URL"; },
          { name = "closed"; role = "edge"; url = "http://127.0.0.1:$DOWN"; },
          { name = "hung1"; role = "edge"; url = "http://127.0.0.1:$HANG"; },
          { name = "hung2"; role = "dns"; url = "http://127.0.0.1:$HANG"; },
          { name = "notjson"; role = "edge"; url = "$URL/index.html?"; },
          { name = "http404"; role = "edge"; url = "$URL/nope"; } );
CONF

# ---- status
out=$("$CTL" -c "$T_DIR/up.conf" status); rc=$?
t_eq "status exit 0 when all up" 0 $rc
t_check "status table header" bash -c 'grep -q "^NAME *ROLE *URL *STATE *REGION *VERSION *UPTIME *LOAD *LATENCY" <<<"$1"' _ "$out"
t_check "status row: origin up in region us, version" bash -c 'grep -qE "^origin +origin +http://127.0.0.1:[0-9]+ +up +us +0\.[0-9]+\.[0-9]+ " <<<"$1"' _ "$out"
t_check "status summary" bash -c 'grep -q "^3 up, 0 down" <<<"$1"' _ "$out"
t_check "DNS view of the edges printed" bash -c 'grep -q "^edges as seen by dns1" <<<"$1"' _ "$out"
t_check "DNS view: healthy edge with load and answers" bash -c 'grep -qE "^edge-a +eu +up +0\.25 +7 *$" <<<"$1"' _ "$out"
t_check "DNS view: down edge with its error" bash -c 'grep -qE "^edge-b +us +down .*connection refused" <<<"$1"' _ "$out"
t_check "DNS view: edge over the load threshold" bash -c 'grep -qE "^edge-c +ap +overloaded +0\.97" <<<"$1"' _ "$out"
"$CTL" -c "$T_DIR/up.conf" status --json >"$T_DIR/up.json"
t_check "status --json carries the DNS view" python3 -c "
import json,sys; d=json.load(open('$T_DIR/up.json')); n={x['name']:x for x in d['nodes']}
sys.exit(0 if [e['name'] for e in n['dns1']['edges']]==['edge-a','edge-b','edge-c'] else 1)"

start=$(date +%s%N)
t_fails_with 1 "status exit 1 when a node is down" "$CTL" -c "$T_DIR/mixed.conf" status; out=$T_OUT
ms=$(( ($(date +%s%N) - start) / 1000000 ))
t_check "closed port reported down" bash -c 'grep -qE "^closed .* down .*onnect" <<<"$1"' _ "$out"
t_check "hung node reported down (timeout)" bash -c 'grep -qE "^hung1 .* down .*(imeout|timed out)" <<<"$1"' _ "$out"
t_check "non-JSON healthz reported down" bash -c 'grep -qE "^notjson .* down .*not JSON" <<<"$1"' _ "$out"
t_check "404 healthz reported down" bash -c 'grep -qE "^http404 .* down " <<<"$1"' _ "$out"
t_check "origin still up in the mixed table" bash -c 'grep -qE "^origin +origin .* up " <<<"$1"' _ "$out"
t_check "nodes asked in parallel (two 1 s timeouts took ${ms} ms < 1900)" test "$ms" -lt 1900

t_fails_with 1 "status --json exit 1 too" sh -c '"$0" -c "$1" status --json >"$2"' "$CTL" "$T_DIR/mixed.conf" "$T_DIR/st.json"
t_check "status --json content" python3 -c "
import json,sys; d=json.load(open('$T_DIR/st.json')); n={x['name']:x for x in d['nodes']}
ok = d['up']==1 and d['down']==5 and n['origin']['state']=='up' and n['origin']['healthz']['role']=='origin' \
     and n['closed']['state']=='down' and 'error' in n['closed'] and n['hung2']['role']=='dns'
sys.exit(0 if ok else 1)"

# ---- ctl config errors
printf 'nodes = ( { name = "x"; role = "cache"; url = "http://a"; } );\n' >"$T_DIR/badrole.conf"
t_fails_with 2 "bad role: exit 2" "$CTL" -c "$T_DIR/badrole.conf" status; out=$T_OUT
t_check "bad role named" bash -c 'grep -q "role .cache." <<<"$1"' _ "$out"
printf 'nodes = ( { name = "x"; role = "edge"; url = "http://a"; } )\nbogus = 1;\n' >"$T_DIR/badsyn.conf"
t_fails_with 2 "syntax error: exit 2" "$CTL" -c "$T_DIR/badsyn.conf" status; out=$T_OUT
t_check "syntax error names file:line" bash -c 'grep -q "badsyn.conf:2:" <<<"$1"' _ "$out"
t_fails_with 2 "missing -c file is an error (exit 2)" "$CTL" -c "$T_DIR/nonexistent.conf" status
t_fails_with 2 "unknown command refused (exit 2)" "$CTL" -c "$T_DIR/up.conf" frobnicate
t_check "--help lists every command" bash -c "'$CTL' --help | grep -q 'rollback' && '$CTL' --help | grep -q 'status'"

# ---- control API guards (no edges configured)
mkdir -p "$T_DIR/b"
cat >"$T_DIR/b/hello.lua" <<'LUA'
--[[minicdn
name = "hello";
routes = ( { path = "/hello*"; method = "GET"; } );
]]
function handle(req) return { status = 200, body = "hi\n" } end
LUA
sed 's/test-secret-123/wrong-secret-1/' "$T_DIR/up.conf" >"$T_DIR/wrong.conf"
t_fails_with 1 "push with a bad secret fails (exit 1)" "$CTL" -c "$T_DIR/wrong.conf" push "$T_DIR/b/hello.lua"; out=$T_OUT
t_check "bad secret: origin says 401" bash -c 'grep -q "HTTP 401" <<<"$1"' _ "$out"
t_eq "no Authorization -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/.minicdn/push")"
t_check "origin's 401 names the scheme (WWW-Authenticate: Bearer)" bash -c "curl -s -D - -o /dev/null -X POST -d '{}' '$URL/.minicdn/push' | grep -q \$'^WWW-Authenticate: Bearer\r\$'"
t_eq "wrong scheme -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Basic dGVzdA==' -d '{}' "$URL/.minicdn/push")"
t_eq "prefix of the secret -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer test-secret' -d '{}' "$URL/.minicdn/push")"
t_check "nothing stored after refused pushes" bash -c "[ -z \"\$(ls '$T_DIR/state/bundles')\" ]"
t_refusal_log_limited "origin: refused pushes" POST "$URL/.minicdn/push" "$T_DIR/origin.log" \
	'control request POST /.minicdn/push refused: bad or missing secret'
AUTH='Authorization: Bearer test-secret-123'
t_eq "malformed JSON -> 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$AUTH" -d '{nope' "$URL/.minicdn/push")"
t_eq "bundle not a string -> 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$AUTH" -d '{"bundle":1}' "$URL/.minicdn/push")"
t_eq "invalid bundle -> 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$AUTH" -d '{"bundle":"{\"format\":1,\"name\":\"x\",\"version\":1}"}' "$URL/.minicdn/push")"
t_eq "binary chunk bundle -> 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$AUTH" --data-binary @- "$URL/.minicdn/push" <<<'{"bundle":"{\"format\":1,\"name\":\"x\",\"version\":1,\"routes\":[{\"path\":\"/x\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\\u001bLua\"}]}"}')"
head -c 5000000 /dev/zero | tr '\0' 'a' >"$T_DIR/huge"
t_eq "oversized control body -> 413" 413 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$AUTH" --data-binary @"$T_DIR/huge" "$URL/.minicdn/push")"
t_eq "GET /.minicdn/push -> 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" "$URL/.minicdn/push")"
t_eq "unknown control path -> 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" "$URL/.minicdn/nope")"
t_eq "rollback of an unknown bundle -> 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$AUTH" -d '{"name":"ghost"}' "$URL/.minicdn/rollback")"
t_eq "bundle name with a leading dot refused" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$AUTH" -d '{"name":".."}' "$URL/.minicdn/unpush")"

# a push with no edges configured: stored and versioned, but ctl says it reached nobody
t_fails_with 1 "push with no edges: exit 1" "$CTL" -c "$T_DIR/up.conf" push "$T_DIR/b/hello.lua"; out=$T_OUT
t_check "push with no edges: says so" bash -c 'grep -q "no edges configured" <<<"$1"' _ "$out"
t_check "version 1 assigned" bash -c 'grep -q "hello version 1 " <<<"$1"' _ "$out"
"$CTL" -c "$T_DIR/up.conf" push "$T_DIR/b/hello.lua" >/dev/null 2>&1
t_fails_with 1 "explicit version not higher: exit 1" "$CTL" -c "$T_DIR/up.conf" push --version 2 "$T_DIR/b/hello.lua"; out=$T_OUT
t_check "explicit version not higher -> refused (409)" bash -c 'grep -q "HTTP 409" <<<"$1"' _ "$out"
out=$("$CTL" -c "$T_DIR/up.conf" push --version 10 "$T_DIR/b/hello.lua" 2>&1)
t_check "explicit higher version accepted" bash -c 'grep -q "hello version 10 " <<<"$1"' _ "$out"
t_check "state on disk: envelope + meta per version" bash -c "[ \$(ls '$T_DIR/state/bundles/hello' | wc -l) = 6 ]"
t_check "stored envelope verifies as signed JSON" python3 -c "
import json,base64,sys; e=json.load(open('$T_DIR/state/bundles/hello/00000000000000000010.env'))
b=json.loads(base64.b64decode(e['bundle'])); sys.exit(0 if e['format']=='minicdn-bundle-1' and b['version']==10 and len(base64.b64decode(e['sig']))==64 else 1)"
curl -s "$URL/healthz" >"$T_DIR/hz"
t_check "healthz reports the bundle count" python3 -c "import json,sys; d=json.load(open('$T_DIR/hz')); sys.exit(0 if d['scripts']['bundles']==1 else 1)"

# restart: the history survives and versions keep increasing
t_stop origin
t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_wait_http "$URL/healthz" || t_fail "origin did not restart"
out=$("$CTL" -c "$T_DIR/up.conf" push "$T_DIR/b/hello.lua" 2>&1)
t_check "after restart the next version is 11" bash -c 'grep -q "hello version 11 " <<<"$1"' _ "$out"
out=$("$CTL" -c "$T_DIR/up.conf" rollback hello 2>&1)
t_check "rollback re-signs version 10's content as 12" bash -c 'grep -q "hello version 12 .*content of version 10" <<<"$1"' _ "$out"

# a damaged newest version on disk is ignored at start; its number is reused
t_stop origin
echo garbage >"$T_DIR/state/bundles/hello/00000000000000000012.env"
t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_wait_http "$URL/healthz" || t_fail "origin did not restart"
t_check "damaged version logged" grep -q "00000000000000000012.env: missing or not signed by our key" "$T_DIR/origin.log"
t_eq "current version falls back to 11" 11 "$(curl -s -H "$AUTH" "$URL/.minicdn/bundles" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bundles"][0]["version"])')"
out=$("$CTL" -c "$T_DIR/up.conf" push "$T_DIR/b/hello.lua" 2>&1)
t_check "next push takes version 12 again, with a valid envelope" bash -c 'grep -q "hello version 12 " <<<"$1"' _ "$out"
t_check "rewritten v12 envelope is valid JSON" python3 -c "import json; json.load(open('$T_DIR/state/bundles/hello/00000000000000000012.env'))"
t_stop hang

# ---- control plane only: no document root, push and status still work
P2=$(t_free_port)
cat >"$T_DIR/cp.conf" <<CONF
name = "origin-cp";
region = "us";
listen = "127.0.0.1:$P2";
control_secret = "test-secret-123";
push = { secret_key = "$T_DIR/keys/origin.key"; state_dir = "$T_DIR/state-cp"; timeout = "1s"; retry_interval = "1s"; };
CONF
t_start origin-cp "$BIN/minicdn-origin" -c "$T_DIR/cp.conf"
t_wait_http "http://127.0.0.1:$P2/healthz" || t_fail "control-plane origin did not start"
t_eq "control plane only: files are 404" 404 \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/index.html")"
sed "s|$URL|http://127.0.0.1:$P2|g" "$T_DIR/up.conf" >"$T_DIR/cp-ctl.conf"
out=$("$CTL" -c "$T_DIR/cp-ctl.conf" push "$T_DIR/b/hello.lua" 2>&1)
t_check "control plane only: a push is signed and recorded" bash -c 'grep -q "hello version 1 " <<<"$1"' _ "$out"
t_stop origin-cp
t_done
