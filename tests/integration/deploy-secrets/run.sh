#!/bin/bash
# deploy-secrets: secrets from files, no secret in any config.  Each daemon
# and minicdnctl read control_secret_file (and the origin its signing key)
# from "%credentials%/NAME" ($CREDENTIALS_DIRECTORY, what systemd's
# LoadCredential= fills) or a plain path; a file group or others may read is
# refused with the reason; during a rotation two secrets are both accepted and
# an edge accepts bundles signed by either of two origin keys; a SIGHUP
# finishes the rotation without a restart.
. "$(dirname "$0")/../../lib.sh"
t_init deploy-secrets
CTL=$BIN/minicdnctl
SIGN=$BIN/bundle-sign
CRED=$T_DIR/credentials
mkdir -p "$CRED" "$T_DIR/site"
export CREDENTIALS_DIRECTORY=$CRED
echo "plain file" >"$T_DIR/site/a.txt"
secret() { printf '%s\n' "$2" >"$1"; chmod "${3:-600}" "$1"; }
secret "$CRED/edge-old" "edge-secret-old"
secret "$CRED/edge-new" "edge-secret-new" 400
secret "$CRED/origin-old" "origin-secret-old"
secret "$CRED/origin-new" "origin-secret-new"
secret "$CRED/dns-old" "dns-secret-old"
secret "$CRED/dns-new" "dns-secret-new"
"$CTL" keygen "$T_DIR/keys/old" >/dev/null && "$CTL" keygen "$T_DIR/keys/new" >/dev/null &&
	"$CTL" keygen "$T_DIR/keys/third" >/dev/null || { t_fail "keygen"; t_done; }
cp "$T_DIR/keys/new.key" "$CRED/origin-key" # keygen wrote it 0600; cp keeps that

OPORT=$(t_free_port); EPORT=$(t_free_port)
O=http://127.0.0.1:$OPORT; E=http://127.0.0.1:$EPORT

# ---- the edge: two control secrets from credentials, two origin keys
edge_conf() { # control_secret_file value
	cat >"$T_DIR/edge.conf" <<EOC
name = "edge-s"; region = "eu"; listen = "127.0.0.1:$EPORT"; origin = "$O";
control_secret_file = $1;
cache = { path = "$T_DIR/cache"; map_size = "64M"; };
scripts = { pubkey = [ "keys/old.pub", "keys/new.pub" ]; path = "$T_DIR/scripts"; };
EOC
}
edge_conf '[ "%credentials%/edge-old", "%credentials%/edge-new" ]'
t_check "edge -t: secrets from credentials" "$BIN/minicdn-edge" -t -c "$T_DIR/edge.conf"
t_check "edge: no secret in the config file" bash -c "! grep -q 'edge-secret' '$T_DIR/edge.conf'"
t_start edge "$BIN/minicdn-edge" -c "$T_DIR/edge.conf"
t_wait_http "$E/healthz" 10 || { t_fail "edge did not start"; cat "$T_DIR/edge.log"; t_done; }
purge() { # secret -> HTTP status of a purge request
	curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $1" \
		--data-binary '{"prefix":"/"}' "$E/.minicdn/purge"
}
t_eq "edge: the first secret is accepted" 200 "$(purge edge-secret-old)"
t_eq "edge: the second secret is accepted" 200 "$(purge edge-secret-new)"
t_eq "edge: another secret is refused" 401 "$(purge edge-secret-other)"

# bundles signed by either key
for k in old new third; do
	"$SIGN" sign "$T_DIR/keys/$k.key" "$T_ROOT/deploy/scripts/geo-hello/hello.lua" "$( [ $k = old ] && echo 1 || echo 2 )" >"$T_DIR/$k.env"
done
push() { curl -s -o "$T_DIR/push.out" -w '%{http_code}' -X POST --data-binary "@$1" "$E/.minicdn/scripts"; }
t_eq "edge: a bundle signed by the first key is accepted" 200 "$(push "$T_DIR/old.env")"
t_eq "edge: a bundle signed by a third key is refused" 403 "$(push "$T_DIR/third.env")"
t_check "edge: ... saying no configured key signed it" grep -q "any of the configured origin keys" "$T_DIR/push.out"
t_eq "edge: a bundle signed by the second key is accepted" 200 "$(push "$T_DIR/new.env")"

# ---- a file group or others may read is refused, with the reason
chmod 640 "$CRED/edge-new"
t_fails_with 1 "edge -t: a group-readable secret file fails the check" "$BIN/minicdn-edge" -t -c "$T_DIR/edge.conf"; out=$T_OUT
t_check "edge -t: ... naming the file and why" grep -q "$CRED/edge-new: mode 640 lets group or others in" <<<"$out"
chmod 644 "$CRED/edge-new"
t_fails_with 1 "edge -t: a world-readable one fails too" "$BIN/minicdn-edge" -t -c "$T_DIR/edge.conf"
chmod 400 "$CRED/edge-new"
out=$(env -u CREDENTIALS_DIRECTORY "$BIN/minicdn-edge" -t -c "$T_DIR/edge.conf" 2>&1)
t_check "edge -t outside systemd: %credentials% is /etc/credstore" grep -q "/etc/credstore/edge-old" <<<"$out"
sed 's|control_secret_file = .*|control_secret_file = "../credentials/edge-old";|' "$T_DIR/edge.conf" >"$T_DIR/sub.conf"
mkdir -p "$T_DIR/sub"; mv "$T_DIR/sub.conf" "$T_DIR/sub/edge.conf"; sed -i 's|"keys/|"../keys/|g' "$T_DIR/sub/edge.conf"
t_check "edge -t: a relative secret file is taken from the config's folder" "$BIN/minicdn-edge" -t -c "$T_DIR/sub/edge.conf"

# ---- end of the rotation: only the new secret, by SIGHUP, no restart
PID=$(t_pid edge)
edge_conf '"%credentials%/edge-new"'
kill -HUP "$PID"
for _ in $(seq 50); do [ "$(purge edge-secret-old)" = 401 ] && break; sleep 0.1; done
t_eq "after SIGHUP: the old secret is refused" 401 "$(purge edge-secret-old)"
t_eq "after SIGHUP: the new one still works" 200 "$(purge edge-secret-new)"
t_eq "after SIGHUP: same process" "$PID" "$(t_pid edge)"
t_check "after SIGHUP: still running" kill -0 "$PID"
edge_conf '[ "%credentials%/edge-old", "%credentials%/edge-new" ]' # the origin below sends the old one
kill -HUP "$PID"
for _ in $(seq 50); do [ "$(purge edge-secret-old)" = 200 ] && break; sleep 0.1; done

# ---- the origin: two control secrets, the signing key as a credential
cat >"$T_DIR/origin.conf" <<CONF
listen = "127.0.0.1:$OPORT"; root = "$T_DIR/site";
control_secret_file = [ "%credentials%/edge-old", "%credentials%/origin-new" ];
push = { secret_key = "%credentials%/origin-key"; state_dir = "$T_DIR/origin-state"; timeout = "2s";
         edges = ( { name = "edge-s"; url = "$E"; } ); };
CONF
t_check "origin -t: secrets and key from credentials" "$BIN/minicdn-origin" -t -c "$T_DIR/origin.conf"
chmod 644 "$CRED/origin-key"
out=$("$BIN/minicdn-origin" -t -c "$T_DIR/origin.conf" 2>&1)
t_check "origin -t: a world-readable signing key is refused" grep -q "push.secret_key $CRED/origin-key: mode 644" <<<"$out"
chmod 600 "$CRED/origin-key"
t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_wait_http "$O/healthz" 10 || { t_fail "origin did not start"; cat "$T_DIR/origin.log"; t_done; }

# ---- minicdnctl with the origin's second secret, from a file
secret "$T_DIR/ctl.secret" "origin-secret-new"
cat >"$T_DIR/ctl.conf" <<CONF
control_secret_file = "ctl.secret";
origin = "$O";
nodes = ( { name = "edge-s"; role = "edge"; url = "$E"; }, { name = "origin"; role = "origin"; url = "$O"; } );
CONF
out=$("$CTL" -c "$T_DIR/ctl.conf" push --version 7 "$T_ROOT/deploy/scripts/geo-hello/hello.lua" 2>&1); rc=$?
t_eq "minicdnctl push with the origin's second secret: exit 0" 0 "$rc"
t_check "the edge took the bundle signed by the rotated-in key" grep -qE '"version": ?7' <<<"$(curl -s "$E/.minicdn/scripts")"
chmod 644 "$T_DIR/ctl.secret"
out=$("$CTL" -c "$T_DIR/ctl.conf" status 2>&1); rc=$?
t_eq "minicdnctl: a world-readable secret file: exit 2" 2 "$rc"
t_check "minicdnctl: ... saying why" grep -q "lets group or others in" <<<"$out"

# ---- the DNS server: POST /reload with either secret
P=$(t_free_port); SP=$(t_free_port)
printf '$ORIGIN cdn.test.\n@ 300 IN SOA ns1 h 1 3600 600 86400 60\n@ 300 IN NS ns1\nns1 300 IN A 127.0.0.1\n' >"$T_DIR/cdn.test.zone"
printf '127.0.1.0/24 eu\n' >"$T_DIR/map.txt"
cat >"$T_DIR/dns.conf" <<CONF
listen = [ "127.0.0.1:$P" ]; stats_listen = "127.0.0.1:$SP"; workers = 1;
control_secret_file = [ "%credentials%/dns-old", "%credentials%/dns-new" ];
zones = ( { name = "cdn.test."; file = "cdn.test.zone"; } );
dynamic = [ "www.cdn.test." ]; map = "map.txt"; default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; } );
edges = ( { name = "edge-eu"; region = "eu"; address = "127.0.0.11"; } );
CONF
t_start dns "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
t_wait_http "http://127.0.0.1:$SP/healthz" 10 || { t_fail "dns did not start"; cat "$T_DIR/dns.log"; t_done; }
reload() { curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $1" "http://127.0.0.1:$SP/reload"; }
t_eq "dns: POST /reload with the first secret" 200 "$(reload dns-secret-old)"
t_eq "dns: POST /reload with the second secret" 200 "$(reload dns-secret-new)"
t_eq "dns: POST /reload with another secret" 401 "$(reload dns-secret-x)"
chmod 604 "$CRED/dns-old"
out=$("$BIN/minicdn-dns" -t -c "$T_DIR/dns.conf" 2>&1)
t_check "dns -t: a world-readable secret file is refused" grep -q "dns-old: mode 604" <<<"$out"
t_done
