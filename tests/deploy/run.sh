#!/bin/bash
# tests/deploy/run.sh -- `make test-deploy`: the Ansible deployment on booted
# containers.  Builds the packages (or takes MINICDN_DEB_DIR), builds or
# reuses a Debian 12 image (image.sh), boots six containers with
# systemd-nspawn -b (origin, two DNS servers, three edges in three regions)
# on a private bridge in namespaces this script makes, with no route out,
# plus three client namespaces (one per region), runs deploy/ansible/site.yml
# against them through nsenter (connection_plugins/nsenter_pid.py), and
# checks the CDN works: answers per region with and without ECS, miss then
# hit, script push and purge on every edge, units as minicdn with only
# CAP_NET_BIND_SERVICE, a rolling upgrade that keeps a cached object and
# never answers a drained edge, one DNS server down, logrotate.
# Needs root.  Every container and namespace is removed at exit.
. "$(dirname "$0")/../lib.sh"
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: deploy: needs root (network namespaces, systemd-nspawn)"
	exit 0
fi
t_init deploy
HERE=$T_ROOT/tests/deploy
ANS=$T_ROOT/deploy/ansible
T0=$SECONDS
NET=10.77
P=mcd$$                                   # prefix of every namespace name
NODES="origin1 ns1 ns2 edge-eu edge-us edge-ap"
declare -A ADDR=([origin1]=$NET.0.10 [ns1]=$NET.0.2 [ns2]=$NET.0.3 [edge-eu]=$NET.0.11 [edge-us]=$NET.0.12 [edge-ap]=$NET.0.13
                 [cl-eu]=$NET.1.10 [cl-us]=$NET.2.10 [cl-ap]=$NET.3.10)
declare -A NSPAWN
log() { echo "deploy: [$((SECONDS - T0)) s] $*"; }

# ---------- cleanup (also on failure) ----------
deploy_cleanup() {
	local n pid
	for n in "${!NSPAWN[@]}"; do
		pid=${NSPAWN[$n]}
		kill -TERM "$pid" 2>/dev/null
	done
	for n in "${!NSPAWN[@]}"; do
		pid=${NSPAWN[$n]}
		for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
		kill -0 "$pid" 2>/dev/null && { echo "deploy: container $n did not halt, killing"; kill -KILL "$pid"; }
		wait "$pid" 2>/dev/null
	done
	for n in $NODES cl-eu cl-us cl-ap hub; do ip netns del "$P-$n" 2>/dev/null; done
	t_cleanup
}
trap deploy_cleanup EXIT

# ---------- packages and image ----------
if [ -n "${MINICDN_DEB_DIR:-}" ]; then
	cp "$MINICDN_DEB_DIR"/*.deb "$T_DIR/" 2>/dev/null
else
	log "building packages (make deb)"
	(cd "$T_ROOT" && make deb >"$T_DIR/make-deb.log" 2>&1) || { t_fail "make deb failed"; tail -20 "$T_DIR/make-deb.log"; t_done; }
fi
mkdir -p "$T_DIR/debs-v1" "$T_DIR/debs-v2"
cp "${MINICDN_DEB_DIR:-$T_ROOT/build/deb}"/*.deb "$T_DIR/debs-v1/"
ls "$T_DIR"/debs-v1/minicdn-edge_*.deb >/dev/null 2>&1 || { t_fail "no packages"; t_done; }
log "image"
IMG=$("$HERE/image.sh") || { t_fail "image build failed"; t_done; }

# ---------- network: a bridge in a hub namespace, one namespace per node ----------
ip netns add "$P-hub"
ip -n "$P-hub" link add br0 type bridge
ip -n "$P-hub" link set br0 up
i=0
for n in $NODES cl-eu cl-us cl-ap; do
	i=$((i + 1))
	ip netns add "$P-$n"
	ip -n "$P-$n" link set lo up
	ip link add "vh$$-$i" netns "$P-hub" type veth peer name eth0 netns "$P-$n"
	ip -n "$P-hub" link set "vh$$-$i" master br0 up
	ip -n "$P-$n" addr add "${ADDR[$n]}/16" dev eth0
	ip -n "$P-$n" link set eth0 up
done

# ---------- containers ----------
for n in $NODES; do
	setsid systemd-nspawn -q -b -D "$IMG" --volatile=overlay --register=no --keep-unit -M "$n" \
		--hostname="$n" --network-namespace-path="/run/netns/$P-$n" </dev/null >"$T_DIR/console-$n.txt" 2>&1 &
	NSPAWN[$n]=$!
done
mkdir -p "$T_DIR/pids"
for n in $NODES; do
	ok=0
	for _ in $(seq 120); do
		leader=$(ps --ppid "${NSPAWN[$n]}" -o pid= | head -1 | tr -d ' ')
		if [ -n "$leader" ] && nsenter -t "$leader" -a -- systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'; then
			echo "$leader" >"$T_DIR/pids/$n"; ok=1; break
		fi
		sleep 0.5
	done
	[ $ok = 1 ] || { t_fail "container $n did not boot"; tail -20 "$T_DIR/console-$n.txt"; t_done; }
done
log "six containers booted"
IN() { local n=$1; shift; nsenter -t "$(cat "$T_DIR/pids/$n")" -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
CL() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
t_check "no route out of a container" test -z "$(IN edge-eu ip route show default)"

# ---------- inventory (the example's shape, test addresses), vault ----------
INV=$T_DIR/inventory
mkdir -p "$INV/group_vars/all"
host() { # name region
	printf '        %s:\n          ansible_host: %s\n          minicdn_region: %s\n          minicdn_address: %s\n' \
		"$1" "$T_DIR/pids/$1" "$2" "${ADDR[$1]}"
}
write_inventory() { # edges... (the rest of edge-eu edge-us edge-ap is retired)
	local e
	echo "all:"
	echo "  vars:"
	echo "    ansible_connection: nsenter_pid"
	echo "    ansible_become: false          # already root inside"
	echo "  children:"
	echo "    origin:"; echo "      hosts:"; host origin1 eu
	echo "    dns:"; echo "      hosts:"; host ns1 eu; host ns2 us
	echo "    edges:"; echo "      hosts:"
	for e in edge-eu edge-us edge-ap; do [[ " $* " == *" $e "* ]] && host "$e" "${e#edge-}"; done
	echo "    edges_retired:"; echo "      hosts:"
	for e in edge-eu edge-us edge-ap; do [[ " $* " == *" $e "* ]] || host "$e" "${e#edge-}"; done
	return 0
}
write_inventory edge-eu edge-us edge-ap >"$INV/hosts.yml"
sed -e 's/^minicdn_zone: .*/minicdn_zone: cdn.test./' \
    -e 's/^minicdn_hostmaster: .*/minicdn_hostmaster: hostmaster.cdn.test./' \
    -e 's/^minicdn_dynamic: .*/minicdn_dynamic: ["www.cdn.test.", "*.cdn.test."]/' \
    -e "s/^  - \"origin IN A .*/  - \"origin IN A $NET.0.10\"/" \
    -e 's/^minicdn_dns_ttl: .*/minicdn_dns_ttl: 3/' \
    -e 's/^minicdn_health_interval_s: .*/minicdn_health_interval_s: 1/' \
    -e "s|^minicdn_deb_dir: .*|minicdn_deb_dir: $T_DIR/debs-v1|" \
    -e "s|^minicdn_origin_site_src: .*|minicdn_origin_site_src: $T_ROOT/deploy/demo-site|" \
    -e 's/^minicdn_edge_threads: .*/minicdn_edge_threads: 2/' \
    -e 's/^minicdn_edge_cache_size: .*/minicdn_edge_cache_size: 64M/' \
    -e "s|192.0.2.0/24|$NET.1.0/24|; s|198.51.100.0/24|$NET.2.0/24|; s|203.0.113.0/24|$NET.3.0/24|" \
    "$ANS/inventory/example/group_vars/all/main.yml" >"$INV/group_vars/all/main.yml"
openssl rand -hex 24 >"$T_DIR/vault-pass"
SECRET=$(openssl rand -hex 24)
printf -- '---\nvault_minicdn_control_secret: "%s"\n' "$SECRET" >"$INV/group_vars/all/vault.yml"
ansible-vault encrypt --vault-password-file "$T_DIR/vault-pass" "$INV/group_vars/all/vault.yml" >/dev/null
t_check "the vault file is encrypted" grep -q '^\$ANSIBLE_VAULT' "$INV/group_vars/all/vault.yml"

play() { # log name, extra args
	local name=$1; shift
	( cd "$ANS" && ANSIBLE_CONNECTION_PLUGINS="$HERE/connection_plugins" ANSIBLE_FORCE_COLOR=0 \
		ANSIBLE_HOST_KEY_CHECKING=0 ansible-playbook -i "$INV" --vault-password-file "$T_DIR/vault-pass" site.yml "$@" ) \
		>"$T_DIR/$name.log" 2>&1
}
recap_changed() { # log -> sum of changed= in PLAY RECAP
	sed -n '/PLAY RECAP/,$p' "$1" | grep -oE 'changed=[0-9]+' | cut -d= -f2 | paste -sd+ | bc
}

# ---------- first run, second run ----------
log "ansible-playbook (first run)"
t1=$SECONDS
if play play1; then t_pass "first run of site.yml succeeds ($((SECONDS - t1)) s)"
else t_fail "first run of site.yml failed"; tail -40 "$T_DIR/play1.log"; t_done; fi
log "ansible-playbook (second run)"
t1=$SECONDS
play play2; rc=$?
t_check "second run succeeds ($((SECONDS - t1)) s)" test $rc = 0
c=$(recap_changed "$T_DIR/play2.log")
t_eq "second run reports changed=0 on every host" 0 "$c"
[ "$c" = 0 ] || grep -E '^changed:' "$T_DIR/play2.log" | head -20

# ---------- DNS answers per region, with and without ECS ----------
dq() { # client server [extra dig args]
	local c=$1 s=$2; shift 2
	CL "$c" dig +short +time=1 +tries=2 @"${ADDR[$s]}" www.cdn.test "$@"
}
for s in ns1 ns2; do
	for r in eu us ap; do
		t_eq "$s answers the $r client with edge-$r" "${ADDR[edge-$r]}" "$(dq "cl-$r" "$s")"
	done
	t_eq "$s: ECS $NET.3.0/24 from the eu client -> edge-ap" "${ADDR[edge-ap]}" "$(dq cl-eu "$s" +subnet=$NET.3.0/24)"
	t_eq "$s: ECS $NET.2.0/24 from the ap client -> edge-us" "${ADDR[edge-us]}" "$(dq cl-ap "$s" +subnet=$NET.2.0/24)"
done
t_eq "NS records name both DNS servers" "ns1.cdn.test. ns2.cdn.test." "$(CL cl-eu dig +short @"${ADDR[ns1]}" cdn.test NS | sort | xargs)"
t_eq "glue for ns2" "${ADDR[ns2]}" "$(CL cl-eu dig +short @"${ADDR[ns1]}" ns2.cdn.test A)"
d1=$(CL cl-eu curl -s "http://${ADDR[ns1]}:8053/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
d2=$(CL cl-eu curl -s "http://${ADDR[ns2]}:8053/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
t_check "both DNS servers report the same digest ($d1)" test -n "$d1" -a "$d1" = "$d2"
st=$(IN origin1 minicdnctl status 2>&1); rc=$?
t_check "minicdnctl status on the origin: every node up, no digest flagged" test $rc = 0
[ $rc = 0 ] || echo "$st"

# ---------- miss then hit through an edge ----------
fetch() { # client edge path -> Cache-Status
	CL "$1" curl -s -o /dev/null -D - -H 'Host: www.cdn.test' "http://${ADDR[$2]}$3" | tr -d '\r' | grep -i '^cache-status:'
}
h1=$(fetch cl-eu edge-eu /index.html); h2=$(fetch cl-eu edge-eu /index.html)
t_check "first fetch through edge-eu is a miss ($h1)" grep -qi 'miss\|fwd=' <<<"$h1"
t_check "second fetch is a hit ($h2)" grep -qi 'hit' <<<"$h2"
for e in edge-us edge-ap; do fetch cl-eu "$e" /index.html >/dev/null; done

# ---------- script push and purge reach every edge ----------
IN origin1 sh -c 'cat > /root/hello.lua' <"$T_ROOT/deploy/scripts/geo-hello/hello.lua"
out=$(IN origin1 minicdnctl push /root/hello.lua 2>&1); rc=$?
t_check "minicdnctl push succeeds on every edge" test $rc = 0
[ $rc = 0 ] || echo "$out"
for e in edge-eu edge-us edge-ap; do
	t_eq "the pushed script answers on $e" 200 "$(CL cl-eu curl -s -o /dev/null -w '%{http_code}' -H 'Host: www.cdn.test' "http://${ADDR[$e]}/hello")"
done
out=$(IN origin1 minicdnctl purge --prefix / 2>&1); rc=$?
t_check "minicdnctl purge reaches every edge" test $rc = 0
t_eq "purge answered by 3 edges" 3 "$(grep -cE '^edge-(eu|us|ap) +ok' <<<"$out")"
h3=$(fetch cl-eu edge-eu /index.html)
t_check "after the purge the object is a miss again ($h3)" grep -qvi 'hit' <<<"$h3"
fetch cl-eu edge-eu /index.html >/dev/null

# ---------- units: user minicdn, only CAP_NET_BIND_SERVICE ----------
for pair in origin1:minicdn-origin ns1:minicdn-dns ns2:minicdn-dns edge-eu:minicdn-edge edge-us:minicdn-edge edge-ap:minicdn-edge; do
	n=${pair%%:*} u=${pair#*:}
	pid=$(IN "$n" systemctl show -p MainPID --value "$u")
	t_eq "$n: $u active" active "$(IN "$n" systemctl is-active "$u")"
	uid=$(IN "$n" awk '/^Uid:/ {print $2}' "/proc/$pid/status")
	t_eq "$n: $u runs as minicdn" "$(IN "$n" id -u minicdn)" "$uid"
	t_eq "$n: $u CapEff = CAP_NET_BIND_SERVICE only" 0000000000000400 "$(IN "$n" awk '/^CapEff:/ {print $2}' "/proc/$pid/status")"
done

. "$HERE/upgrade.sh"

# ---------- one DNS server stopped: the other answers ----------
IN ns1 systemctl stop minicdn-dns
t_eq "ns1 stopped: ns2 still answers the us client" "${ADDR[edge-us]}" "$(dq cl-us ns2)"
t_check "ns1 really stopped (no answer)" sh -c "! ip netns exec $P-cl-us dig +time=1 +tries=1 @${ADDR[ns1]} www.cdn.test"
IN ns1 systemctl start minicdn-dns

# ---------- logrotate starts a new access log ----------
fetch cl-eu edge-eu /index.html >/dev/null
sleep 1.5    # the edge writes its log buffer once a second
IN edge-eu logrotate -f /etc/logrotate.d/minicdn-edge
fetch cl-eu edge-eu /about.html >/dev/null
sleep 1.5
t_check "logrotate moved the old access log" IN edge-eu test -s /var/log/minicdn/edge-access.log.1
t_check "the edge writes a new access log after the rotation" IN edge-eu grep -q about.html /var/log/minicdn/edge-access.log
t_check "and the old one has no line from after it" IN edge-eu sh -c '! grep -q about.html /var/log/minicdn/edge-access.log.1'

# ---------- removing an edge: drained first, then stopped, then dropped ----------
log "retiring edge-ap"
write_inventory edge-eu edge-us >"$INV/hosts.yml"
play play-retire; rc=$?
t_check "the run retiring edge-ap succeeds" test $rc = 0
[ $rc = 0 ] || tail -30 "$T_DIR/play-retire.log"
order=$(grep -oE 'TASK \[edge_retire : (Drain|Stop and disable)[^]]*' "$T_DIR/play-retire.log" | cut -d: -f2 | cut -c2-6 | xargs)
t_eq "edge-ap was drained, then stopped" "Drain Stop" "$order"
t_eq "edge-ap's unit is stopped" inactive "$(IN edge-ap systemctl is-active minicdn-edge)"
for s in ns1 ns2; do
	a=$(dq cl-ap "$s")
	t_check "$s no longer answers edge-ap to the ap client (answers $a)" test -n "$a" -a "$a" != "${ADDR[edge-ap]}"
done
t_check "the DNS servers' edge list dropped edge-ap" sh -c "! nsenter -t $(cat "$T_DIR/pids/ns1") -a grep -q edge-ap /etc/minicdn/dns.conf"
t_check "minicdnctl no longer lists edge-ap, and every node is up" IN origin1 sh -c '! grep -q edge-ap /etc/minicdn/ctl.conf && minicdnctl status'

log "done in $((SECONDS - T0)) s"
t_done
