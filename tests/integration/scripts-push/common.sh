# common.sh -- shared by the scripts-* scenarios (source after tests/lib.sh and t_init).
#   sc_keys                      # $T_DIR/origin.pub/.key and a wrong pair other.pub/.key
#   sc_origin                    # scripted test origin on $OPORT ($O)
#   sc_edge NAME REGION [extra]  # an edge with scripts enabled; URL in ${EDGE_URL[NAME]}
#   sc_sign PATH VERSION [KEY]   # envelope on stdout
#   sc_push NAME ENVFILE         # POST to the edge; prints "STATUS BODY"
SIGN=$BIN/bundle-sign
declare -A EDGE_URL EDGE_PORT

sc_keys() {
	"$SIGN" keygen "$T_DIR/origin.pub" "$T_DIR/origin.key" &&
	"$SIGN" keygen "$T_DIR/other.pub" "$T_DIR/other.key"
}

sc_origin() {
	OPORT=$(t_free_port)
	t_start origin python3 "$T_ROOT/tests/tools/edge_origin.py" "$OPORT"
	O=http://127.0.0.1:$OPORT
	t_wait_http "$O/__count" 10 || { t_fail "origin did not start"; t_done; }
}

sc_edge_conf() { # name region port extra
	cat >"$T_DIR/$1.conf" <<EOC
name = "$1";
region = "$2";
listen = "127.0.0.1:$3";
origin = "$O";
control_secret = "test-secret";
log_level = "info";
threads = ${EDGE_THREADS:-2};
cache = { path = "$T_DIR/$1-cache"; map_size = "64M"; };
scripts = {
  pubkey = "$T_DIR/origin.pub";
  path = "$T_DIR/$1-scripts";
  regions = "$T_DIR/regions";
  $4
};
EOC
}

sc_edge() {
	local name=$1 region=$2 extra=${3:-}
	local port=${EDGE_PORT[$name]:-$(t_free_port)}
	EDGE_PORT[$name]=$port
	EDGE_URL[$name]=http://127.0.0.1:$port
	[ -f "$T_DIR/regions" ] || printf '127.0.0.0/24 eu\n127.0.2.0/24 us\n127.0.3.0/24 ap\n' >"$T_DIR/regions"
	sc_edge_conf "$name" "$region" "$port" "$extra"
	t_start "$name" "$BIN/minicdn-edge" -c "$T_DIR/$name.conf"
	t_wait_http "${EDGE_URL[$name]}/healthz" 10 || { t_fail "$name did not start"; cat "$T_DIR/$name.log"; t_done; }
}

sc_sign() { "$SIGN" sign "${3:-$T_DIR/origin.key}" "$1" "$2"; }

sc_push() { # edge envfile [method path]
	curl -s -o "$T_DIR/push.out" -w '%{http_code}' --max-time 20 -X "${3:-POST}" \
		--data-binary "@$2" "${EDGE_URL[$1]}${4:-/.minicdn/scripts}"
	echo " $(cat "$T_DIR/push.out")"
}
