#!/bin/bash
# push-edges: the real control plane end to end -- minicdnctl -> minicdn-origin
# (signs, versions, stores) -> three minicdn-edge.  Push activates everywhere,
# new versions replace old ones, rollback re-signs the previous content under a
# higher version, a bad secret is refused, a non-compiling bundle is never
# signed, an edge that was down during a push (or lost its scripts) gets the
# current version when it comes back, unpush removes it, and the history
# survives an origin restart.
. "$(dirname "$0")/../../lib.sh"
t_init push-edges

CTL=$BIN/minicdnctl
"$CTL" keygen "$T_DIR/keys/origin" >/dev/null || { t_fail "keygen"; t_done; }
OPORT=$(t_free_port)
O=http://127.0.0.1:$OPORT
EDGES="edge-eu edge-us edge-ap"
declare -A EPORT
for e in $EDGES; do EPORT[$e]=$(t_free_port); done
eurl() { echo "http://127.0.0.1:${EPORT[$1]}"; }

mkdir -p "$T_DIR/site"
echo "plain origin file" >"$T_DIR/site/file.txt"
cat >"$T_DIR/origin.conf" <<CONF
name = "origin";
listen = "127.0.0.1:$OPORT";
root = "$T_DIR/site";
control_secret = "push-secret-1";
push = {
  secret_key = "$T_DIR/keys/origin.key";
  state_dir = "$T_DIR/origin-state";
  timeout = "1s";
  retry_interval = "1s";
  edges = (
    { name = "edge-eu"; url = "$(eurl edge-eu)"; },
    { name = "edge-us"; url = "$(eurl edge-us)"; },
    { name = "edge-ap"; url = "$(eurl edge-ap)"; }
  );
};
CONF
cat >"$T_DIR/ctl.conf" <<CONF
control_secret = "push-secret-1";
origin = "$O";
timeout = "2s";
nodes = (
  { name = "origin";  role = "origin"; url = "$O"; },
  { name = "edge-eu"; role = "edge"; url = "$(eurl edge-eu)"; },
  { name = "edge-us"; role = "edge"; url = "$(eurl edge-us)"; },
  { name = "edge-ap"; role = "edge"; url = "$(eurl edge-ap)"; }
);
CONF
sed 's/push-secret-1/not-the-secret/' "$T_DIR/ctl.conf" >"$T_DIR/wrong.conf"

start_edge() { # name region
	cat >"$T_DIR/$1.conf" <<CONF
name = "$1";
region = "$2";
listen = "127.0.0.1:${EPORT[$1]}";
origin = "$O";
control_secret = "push-secret-1";
threads = 2;
cache = { path = "$T_DIR/$1-cache"; map_size = "32M"; };
scripts = { pubkey = "$T_DIR/keys/origin.pub"; path = "$T_DIR/$1-scripts"; };
CONF
	t_start "$1" "$BIN/minicdn-edge" -c "$T_DIR/$1.conf"
	t_wait_http "$(eurl "$1")/healthz" 10 || t_fail "$1 did not start"
}

t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_wait_http "$O/healthz" 10 || { t_fail "origin did not start"; t_done; }
start_edge edge-eu eu
start_edge edge-us us
start_edge edge-ap ap

hello() { # label -> $T_DIR/hello.lua
	cat >"$T_DIR/hello.lua" <<LUA
--[[minicdn
name = "hello";
routes = ( { path = "/hello*"; method = "GET"; } );
]]
function handle(req)
  return { status = 200, headers = { ["Content-Type"] = "text/plain" },
           body = "$1 from " .. req.edge_name .. "\n" }
end
LUA
}
# every edge answers /hello with "$1 from <edge>" (polls: activation is immediate,
# but retries after an outage take up to retry_interval)
all_say() { # label [secs]
	local e ok
	for e in $EDGES; do
		ok=0
		for _ in $(seq $((${2:-1} * 10))); do
			[ "$(curl -s --max-time 2 "$(eurl $e)/hello")" = "$1 from $e" ] && { ok=1; break; }
			sleep 0.1
		done
		[ $ok = 1 ] || { echo "$e says: $(curl -s --max-time 2 "$(eurl $e)/hello")"; return 1; }
	done
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- push to three edges: all activate
hello "one"
out=$("$CTL" -c "$T_DIR/ctl.conf" push "$T_DIR/hello.lua"); rc=$?
t_eq "push v1: exit 0" 0 $rc
t_check "push v1: version 1" grep -q "^push: hello version 1 " <<<"$out"
for e in $EDGES; do
	t_check "push v1: $e activated" grep -qE "^$e +http://127.0.0.1:[0-9]+ +activated" <<<"$out"
done
t_check "push v1: 3 of 3" grep -q "^3 of 3 edges activated it" <<<"$out"
t_check "every edge answers from script v1" all_say one
t_eq "other paths still come from the origin" "plain origin file" "$(curl -s "$(eurl edge-us)/file.txt")"
out=$("$CTL" -c "$T_DIR/ctl.conf" scripts); rc=$?
t_eq "scripts: exit 0 when in sync" 0 $rc
t_check "scripts: v1 at the origin and on every edge" grep -qE "^hello +v1 +v1 +v1 +v1 *$" <<<"$out"

# ---- a new version replaces the old one
hello "two"
out=$("$CTL" -c "$T_DIR/ctl.conf" push --json "$T_DIR/hello.lua"); rc=$?
t_eq "push v2: exit 0" 0 $rc
t_eq "push v2 --json: version and activations" "2 3 0 0" \
	"$(field "d['version'], d['activated'], d['rejected'], d['unreachable']" <<<"$out" | tr -d '(),')"
t_check "every edge answers from script v2" all_say two

# ---- rollback: v1's content, re-signed as v3
out=$("$CTL" -c "$T_DIR/ctl.conf" rollback hello); rc=$?
t_eq "rollback: exit 0" 0 $rc
t_check "rollback: version 3 with the content of version 1" grep -q "^rollback: hello version 3 .*content of version 1" <<<"$out"
t_check "every edge answers with v1's content again" all_say one
t_check "edges hold version 3 (not 1: replay protection intact)" bash -c \
	"'$CTL' -c '$T_DIR/ctl.conf' scripts | grep -qE '^hello +v3 +v3 +v3 +v3 *\$'"
# the original v1 envelope replayed to an edge is refused: edges only go forward
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$T_DIR/origin-state/bundles/hello/00000000000000000001.env" "$(eurl edge-eu)/.minicdn/scripts")
t_eq "replaying the signed v1 envelope is refused" 409 "$code"

# ---- a bad secret is refused; nothing changes
hello "evil"
t_fails_with 1 "push with a bad secret: exit 1" "$CTL" -c "$T_DIR/wrong.conf" push "$T_DIR/hello.lua"; out=$T_OUT
t_check "bad secret: HTTP 401" grep -q "HTTP 401" <<<"$out"
t_check "edges unchanged after the refused push" all_say one
t_check "refused push left no version behind" bash -c "[ ! -e '$T_DIR/origin-state/bundles/hello/00000000000000000004.meta' ]"
t_fails_with 1 "rollback with a bad secret: exit 1" "$CTL" -c "$T_DIR/wrong.conf" rollback hello; out=$T_OUT

# ---- a non-compiling bundle is never signed
printf -- '--[[minicdn\nname = "hello";\nroutes = ( { path = "/hello*"; } );\n]]\nfunction handle(req\n' >"$T_DIR/broken.lua"
t_fails_with 1 "non-compiling push: exit 1" "$CTL" -c "$T_DIR/ctl.conf" push "$T_DIR/broken.lua"; out=$T_OUT
t_check "non-compiling push: origin says it does not compile" grep -q "HTTP 400.*does not compile" <<<"$out"
t_check "edges keep the active version" all_say one

# ---- an unreachable edge gets the bundle when it comes back
t_stop edge-ap
hello "four"
t_fails_with 1 "push with an edge down: exit 1" "$CTL" -c "$T_DIR/ctl.conf" push "$T_DIR/hello.lua"; out=$T_OUT
t_check "down edge reported unreachable" grep -qE "^edge-ap +http://127.0.0.1:[0-9]+ +unreachable" <<<"$out"
t_check "the others activated" grep -q "^2 of 3 edges activated it; 1 unreachable" <<<"$out"
t_fails_with 1 "scripts: exit 1 while an edge is missing" "$CTL" -c "$T_DIR/ctl.conf" scripts; out=$T_OUT
t_check "scripts marks the unreachable edge" grep -qE "^hello +v4 +v4 +v4 +\? *$" <<<"$out"
start_edge edge-ap ap
t_check "edge-ap gets v4 once it is back (origin retries)" all_say four 8
t_check "scripts in sync again" "$CTL" -c "$T_DIR/ctl.conf" scripts

# ---- an edge that lost its scripts store is refilled
t_stop edge-us
rm -rf "$T_DIR/edge-us-scripts"
start_edge edge-us us
t_check "edge-us, restarted empty, gets v4 back" all_say four 8

# ---- the origin's history survives a restart
t_stop origin
t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_wait_http "$O/healthz" 10 || t_fail "origin did not restart"
curl -s -H 'Authorization: Bearer push-secret-1' "$O/.minicdn/bundles" >"$T_DIR/bundles.json"
t_eq "history after restart: versions 1-4, v3 a rollback of 1" "1 2 3 4 rb=1" \
	"$(field "' '.join(str(h['version']) for h in d['bundles'][0]['history']) + ' rb=' + str(d['bundles'][0]['history'][2]['rollback_of'])" <"$T_DIR/bundles.json")"
out=$("$CTL" -c "$T_DIR/ctl.conf" rollback hello)
# the version before v4 is v3, which carries v1's content
t_check "rollback after restart: v5 with the content of v1" grep -q "^rollback: hello version 5 .*content of version 1" <<<"$out"
t_check "every edge answers with v1's content" all_say one

# ---- unpush removes it everywhere
out=$("$CTL" -c "$T_DIR/ctl.conf" unpush hello); rc=$?
t_eq "unpush: exit 0" 0 $rc
t_check "unpush: removed on all three" grep -q "^3 of 3 edges removed it" <<<"$out"
for e in $EDGES; do
	t_eq "$e: /hello falls through to the origin (404) after unpush" 404 \
		"$(curl -s -o /dev/null -w '%{http_code}' "$(eurl $e)/hello")"
done
t_check "scripts shows it removed and absent from edges" bash -c \
	"'$CTL' -c '$T_DIR/ctl.conf' scripts | grep -qE '^hello +removed +- +- +- *\$'"
out=$("$CTL" -c "$T_DIR/ctl.conf" unpush hello 2>&1)
t_check "second unpush refused (409)" grep -q "HTTP 409" <<<"$out"
out=$("$CTL" -c "$T_DIR/ctl.conf" rollback hello); rc=$?
t_eq "rollback after unpush: exit 0" 0 $rc
t_check "rollback after unpush brings the last content back" all_say one
t_fails_with 1 "rolling back past the first version: exit 1" "$CTL" -c "$T_DIR/ctl.conf" rollback hello; out=$T_OUT
t_check "rolling back past the first version: 409" grep -q "HTTP 409.*no earlier version" <<<"$out"
# ---- a directory bundle (bundle.conf + several modules) goes through the same path
out=$("$CTL" -c "$T_DIR/ctl.conf" push "$T_ROOT/deploy/scripts/kv-counter"); rc=$?
t_eq "directory bundle push: exit 0" 0 $rc
t_check "directory bundle: kv-counter v1 on 3 edges" grep -q "^push: kv-counter version 1 " <<<"$out"
t_eq "kv-counter counts per edge" "1 2 1" "$(for e in edge-eu edge-eu edge-us; do curl -s "$(eurl $e)/counter" | field "d['visits']"; done | tr '\n' ' ' | sed 's/ $//')"
t_check "scripts lists both bundles" bash -c "out=\$('$CTL' -c '$T_DIR/ctl.conf' scripts) && grep -qE '^kv-counter +v1 +v1 +v1 +v1' <<<\"\$out\" && grep -qE '^hello ' <<<\"\$out\""

# ---- concurrent pushes get distinct versions and every edge ends on the last
pids=""
for i in 1 2 3 4; do
	"$CTL" -c "$T_DIR/ctl.conf" push --json "$T_DIR/hello.lua" >"$T_DIR/par.$i" 2>&1 &
	pids="$pids $!"
done
wait $pids # by PID: a bare `wait` would wait for the daemons too
vers=$(for i in 1 2 3 4; do field "d['version']" <"$T_DIR/par.$i"; done | sort -n | tr '\n' ' ')
t_eq "4 concurrent pushes: versions 8-11, no duplicates" "8 9 10 11 " "$vers"
t_check "after concurrent pushes every edge holds v11" bash -c \
	"'$CTL' -c '$T_DIR/ctl.conf' scripts | grep -qE '^hello +v11 +v11 +v11 +v11 *\$'"
t_check "origin metrics count activations" bash -c "curl -s '$O/metrics' | grep -qE '^minicdn_origin_bundle_sends_total\\{result=\"activated\"\\} [1-9]'"
t_done
