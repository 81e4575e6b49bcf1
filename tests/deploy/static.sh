#!/bin/bash
# tests/deploy/static.sh -- the deployment's fast checks (no containers, no
# root): ansible-lint and yamllint on deploy/ansible, then every config the
# example inventory generates, rendered locally (render.yml), must pass the
# daemon's -t, and the DNS servers must all be given the same files.
. "$(dirname "$0")/../lib.sh"
t_init deploy-static
ANS=$T_ROOT/deploy/ansible
for tool in ansible-lint ansible-playbook yamllint; do
	command -v $tool >/dev/null || { t_fail "$tool is missing (scripts/install-deps.sh installs it)"; t_done; }
done
out=$(cd "$ANS" && ansible-lint --offline -p 2>&1); rc=$?
t_check "ansible-lint passes on deploy/ansible" test $rc = 0
[ $rc = 0 ] || echo "$out" | tail -30
out=$(cd "$ANS" && yamllint -d '{extends: default, rules: {line-length: {max: 160}, document-start: disable, truthy: disable}}' . 2>&1); rc=$?
t_check "yamllint passes on deploy/ansible" test $rc = 0
[ $rc = 0 ] || echo "$out" | tail -20

# The example inventory, its vault replaced by a plain test secret.
OUT=$T_DIR/render
mkdir -p "$T_DIR/inv/group_vars/all"
cp "$ANS/inventory/example/hosts.yml" "$T_DIR/inv/"
cp "$ANS/inventory/example/group_vars/all/main.yml" "$T_DIR/inv/group_vars/all/"
cp "$ANS/inventory/example/group_vars/all/vault.yml.example" "$T_DIR/inv/group_vars/all/vault.yml"
out=$(cd "$T_ROOT/tests/deploy" && ANSIBLE_LOCALHOST_WARNING=0 ansible-playbook -i "$T_DIR/inv" render.yml \
	-e "render_out=$OUT" -e "minicdn_origin_root=$T_ROOT/deploy/demo-site" \
	-e 'minicdn_conf_dir={{ render_out }}/{{ inventory_hostname }}' 2>&1); rc=$?
t_check "the example inventory's configs render" test $rc = 0
[ $rc = 0 ] || echo "$out" | tail -30
"$BIN/minicdnctl" keygen "$T_DIR/origin" >/dev/null
n=0
for d in "$OUT"/*/; do
	h=$(basename "$d")
	# what the play puts in /etc/credstore (here $CREDENTIALS_DIRECTORY) and ctl.secret
	cp "$T_DIR/origin.pub" "$d/origin.pub"; cp "$T_DIR/origin.key" "$d/minicdn-origin-key"
	for f in minicdn-edge-control minicdn-dns-control minicdn-origin-control ctl.secret; do
		echo static-test-secret >"$d/$f"
	done
	chmod 600 "$d"/minicdn-* "$d/ctl.secret"
	for c in origin:minicdn-origin ctl:minicdnctl dns:minicdn-dns edge:minicdn-edge; do
		f=$d/${c%%:*}.conf
		[ -f "$f" ] || continue
		n=$((n + 1))
		out=$(cd "$d" && CREDENTIALS_DIRECTORY=$d "$BIN/${c#*:}" -t -c "$f" 2>&1); rc=$?
		t_check "$h: ${c%%:*}.conf passes ${c#*:} -t" test $rc = 0
		[ $rc = 0 ] || echo "$out"
	done
done
t_eq "configs checked (1 origin + 1 ctl + 2 dns + 6 edges)" 10 "$n"
t_check "both DNS servers get the same zone" cmp "$OUT/ns1/zones/cdn.example.net.zone" "$OUT/ns2/zones/cdn.example.net.zone"
t_check "the zone has an NS and glue for each DNS server" \
	test "$(grep -cE '^(@ IN NS ns[12]\.cdn\.example\.net\.|ns1\.cdn\.example\.net\. IN A 192\.0\.2\.53|ns2\.cdn\.example\.net\. IN A 198\.51\.100\.53)$' "$OUT/ns1/zones/cdn.example.net.zone")" = 4
t_eq "the DNS edge list has the six edges" 6 "$(grep -c 'healthz = "http://' "$OUT/ns1/dns.conf")"
t_eq "the origin pushes to the six edges" 6 "$(grep -cE '\{ name = "edge-[a-z]+[12]"; url = ' "$OUT/origin1/origin.conf")"
t_eq "minicdnctl lists 9 nodes" 9 "$(grep -cE 'role = "(dns|edge|origin)"' "$OUT/origin1/ctl.conf")"
t_check "an edge gets its region" grep -q 'region = "ap";' "$OUT/edge-ap1/edge.conf"
t_check "no secret in any generated config" sh -c "! grep -rE 'control_secret *=|change-me' '$OUT' --include='*.conf'"
t_done
