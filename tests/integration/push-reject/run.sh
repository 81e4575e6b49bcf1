#!/bin/bash
# push-reject: an edge that refuses a bundle (it trusts another public key) is
# reported "rejected" with the edge's reason, the push exits non-zero, the
# refused version is not re-sent every retry round, and once the edge is fixed
# (right key, restarted) the origin brings it up to date.
. "$(dirname "$0")/../../lib.sh"
t_init push-reject

CTL=$BIN/minicdnctl
"$CTL" keygen "$T_DIR/keys/origin" >/dev/null && "$CTL" keygen "$T_DIR/keys/other" >/dev/null || { t_fail "keygen"; t_done; }
OPORT=$(t_free_port); O=http://127.0.0.1:$OPORT
APORT=$(t_free_port); BPORT=$(t_free_port)
mkdir -p "$T_DIR/site"; echo hi >"$T_DIR/site/index.html"
cat >"$T_DIR/origin.conf" <<CONF
listen = "127.0.0.1:$OPORT";
root = "$T_DIR/site";
control_secret = "reject-secret";
push = { secret_key = "$T_DIR/keys/origin.key"; state_dir = "$T_DIR/state"; timeout = "1s";
         retry_interval = "500ms"; retry_rejected = "4s";
         edges = ( { name = "good"; url = "http://127.0.0.1:$APORT"; },
                   { name = "wrongkey"; url = "http://127.0.0.1:$BPORT"; } ); };
CONF
cat >"$T_DIR/ctl.conf" <<CONF
control_secret = "reject-secret";
origin = "$O";
nodes = ( { name = "good"; role = "edge"; url = "http://127.0.0.1:$APORT"; },
          { name = "wrongkey"; role = "edge"; url = "http://127.0.0.1:$BPORT"; } );
CONF
edge_conf() { # name port pubkey
	cat >"$T_DIR/$1.conf" <<CONF
name = "$1"; region = "eu"; listen = "127.0.0.1:$2"; origin = "$O"; control_secret = "reject-secret";
threads = 1;
cache = { path = "$T_DIR/$1-cache"; map_size = "16M"; };
scripts = { pubkey = "$3"; path = "$T_DIR/$1-scripts"; };
CONF
}
edge_conf good "$APORT" "$T_DIR/keys/origin.pub"
edge_conf wrongkey "$BPORT" "$T_DIR/keys/other.pub"
t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_start good "$BIN/minicdn-edge" -c "$T_DIR/good.conf"
t_start wrongkey "$BIN/minicdn-edge" -c "$T_DIR/wrongkey.conf"
for u in "$O" "http://127.0.0.1:$APORT" "http://127.0.0.1:$BPORT"; do
	t_wait_http "$u/healthz" 10 || t_fail "$u did not start"
done

cat >"$T_DIR/hi.lua" <<'LUA'
--[[minicdn
name = "hi";
routes = ( { path = "/hi"; } );
]]
function handle(req) return { status = 200, body = "hi from " .. req.edge_name .. "\n" } end
LUA
t_fails_with 1 "push with one refusing edge: exit 1" "$CTL" -c "$T_DIR/ctl.conf" push "$T_DIR/hi.lua"; out=$T_OUT
t_check "good edge activated" grep -qE "^good +http://[0-9.:]+ +activated" <<<"$out"
t_check "wrong-key edge rejected, with the edge's reason" grep -qE "^wrongkey +http://[0-9.:]+ +rejected +HTTP 403: .*signature" <<<"$out"
t_check "summary: 1 of 2" grep -q "^1 of 2 edges activated it" <<<"$out"
t_eq "good edge serves the script" "hi from good" "$(curl -s "http://127.0.0.1:$APORT/hi")"
t_eq "wrong-key edge does not" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BPORT/hi")"
sleep 2 # four retry rounds
t_eq "refused version not re-sent every round (refusals in 2 s)" 1 "$(grep -c 'refused: bad signature' "$T_DIR/wrongkey.log")"
t_check "origin lists the edge as not in sync" bash -c \
	"curl -s -H 'Authorization: Bearer reject-secret' '$O/.minicdn/bundles' | python3 -c \"import json,sys; d=json.load(sys.stdin); e={x['name']:x for x in d['edges']}; sys.exit(0 if not e['wrongkey']['synced'] and e['good']['synced'] and 'rejected' in e['wrongkey']['error'] else 1)\""
t_fails_with 1 "scripts: exit 1 (an edge is behind)" "$CTL" -c "$T_DIR/ctl.conf" scripts

# fix the edge (right key) and restart it: the origin re-sends
t_stop wrongkey
edge_conf wrongkey "$BPORT" "$T_DIR/keys/origin.pub"
t_start wrongkey "$BIN/minicdn-edge" -c "$T_DIR/wrongkey.conf"
t_wait_http "http://127.0.0.1:$BPORT/healthz" 10 || t_fail "wrongkey did not restart"
ok=0
for _ in $(seq 80); do
	[ "$(curl -s "http://127.0.0.1:$BPORT/hi")" = "hi from wrongkey" ] && { ok=1; break; }
	sleep 0.1
done
t_eq "fixed edge receives the bundle" 1 $ok
t_check "scripts: in sync now" "$CTL" -c "$T_DIR/ctl.conf" scripts

# an edge added to the origin's config by SIGHUP gets the current bundles
LPORT=$(t_free_port)
edge_conf late "$LPORT" "$T_DIR/keys/origin.pub"
t_start late "$BIN/minicdn-edge" -c "$T_DIR/late.conf"
t_wait_http "http://127.0.0.1:$LPORT/healthz" 10 || t_fail "late did not start"
sed -i "s#{ name = \"good\";#{ name = \"late\"; url = \"http://127.0.0.1:$LPORT\"; },\n                   &#" "$T_DIR/origin.conf"
kill -HUP "$(t_pid origin)"
ok=0
for _ in $(seq 50); do
	[ "$(curl -s "http://127.0.0.1:$LPORT/hi")" = "hi from late" ] && { ok=1; break; }
	sleep 0.1
done
t_eq "edge added by SIGHUP receives the bundle" 1 $ok
t_check "origin now lists three edges" bash -c \
	"curl -s -H 'Authorization: Bearer reject-secret' '$O/.minicdn/bundles' | python3 -c \"import json,sys; sys.exit(0 if len(json.load(sys.stdin)['edges'])==3 else 1)\""
t_done
