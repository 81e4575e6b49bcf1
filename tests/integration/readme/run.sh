#!/bin/bash
# readme: the README's "Try it" block, run literally against `make run`'s CDN.
# scripts/run-local starts in a copy of the tree (README, deploy/, scripts/,
# build -> the real one) so its state in run/ is the test's own; then every
# command of the block runs, as pasted, from that copy, and what it prints is
# checked against what the README says it prints.  A command the README no
# longer has fails here too, so the two stay in step.
. "$(dirname "$0")/../../lib.sh"
t_init readme

for hp in 127.0.0.1:5353 127.0.0.1:8053 127.0.0.10:8080 127.0.0.11:8080 127.0.0.12:8080 127.0.0.13:8080 \
          127.0.0.11:8443 127.0.0.12:8443 127.0.0.13:8443; do
	if (exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}") 2>/dev/null; then
		t_fail "$hp is in use (a 'make run' going?): the README's addresses must be free"
		t_done
	fi
done

TREE=$T_DIR/tree
mkdir -p "$TREE/scripts"
cp -r "$T_ROOT/README.md" "$T_ROOT/deploy" "$TREE/"
cp "$T_ROOT/scripts/run-local" "$TREE/scripts/"
ln -s "$T_ROOT/build" "$TREE/build"

# The block: the fenced code after "### Try it", one command per line.
mapfile -t CMDS < <(awk '/^### Try it/ {on=1; next} on && /^```/ {n++; if (n == 2) exit; next}
	on && n == 1 && !/^[[:space:]]*(#|$)/' "$TREE/README.md")
t_check "README has a Try-it block" test "${#CMDS[@]}" -gt 10

# The Configuration section shows the files make run uses, whole.
for f in origin.conf edge-eu.conf dns.conf ctl.conf; do
	shown=$(awk -v h="\`deploy/local/$f\`" 'index($0, h) && /^### / {on=1; next}
		on && /^```/ {n++; if (n == 2) exit; next} on && n == 1' "$TREE/README.md")
	t_eq "README shows deploy/local/$f as it is" "$(cat "$TREE/deploy/local/$f")" "$shown"
done

t_start run-local env MINICDN_BIN="$BIN" "$TREE/scripts/run-local"
up=0
for _ in $(seq 300); do
	grep -q "minicdn is running" "$T_DIR/run-local.log" && { up=1; break; }
	kill -0 "$(t_pid run-local)" 2>/dev/null || break
	sleep 0.1
done
t_eq "run-local says the CDN is running" 1 $up
[ $up = 1 ] || t_done
# Relative paths in the configs are relative to the file: -t works from any
# directory (after run-local, which made the origin's key).
for p in origin:origin.conf edge:edge-eu.conf dns:dns.conf; do
	t_check "minicdn-${p%%:*} -t accepts deploy/local/${p#*:} from another directory" \
		sh -c "cd / && '$BIN/minicdn-${p%%:*}' -t -c '$TREE/deploy/local/${p#*:}'"
done

# run PATTERN: the first README command containing PATTERN, run from the tree;
# its output in $OUT, its status in $RC.
OUT= RC=
run() {
	local c
	for c in "${CMDS[@]}"; do
		[[ $c == *"$1"* ]] || continue
		OUT=$(cd "$TREE" && bash -c "$c" 2>&1); RC=$?
		return 0
	done
	OUT= RC=127
	t_fail "the README no longer has a command with '$1'"
}
# nth PATTERN N: the Nth such command (the block repeats some on purpose).
nth() {
	local c i=0
	for c in "${CMDS[@]}"; do
		[[ $c == *"$1"* ]] || continue
		i=$((i + 1)); [ $i = "$2" ] || continue
		OUT=$(cd "$TREE" && bash -c "$c" 2>&1); RC=$?
		return 0
	done
	OUT= RC=127
	t_fail "the README has no command number $2 with '$1'"
}
has() { grep -qE "$1" <<<"$OUT"; }

run "-b 127.0.1.1 www.cdn.test +short"
t_eq "dig from eu answers edge-eu, as the comment says" 127.0.0.11 "$OUT"
run "-b 127.0.2.1 www.cdn.test +short"
t_eq "dig from us answers edge-us" 127.0.0.12 "$OUT"
run "+subnet=127.0.3.0/24"
t_check "ECS for an ap subnet answers edge-ap" has $'www\\.cdn\\.test\\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+A[[:space:]]+127\\.0\\.0\\.13'
t_check "the ECS answer carries scope /24" has 'CLIENT-SUBNET: 127\.0\.3\.0/24/24'
run "explain www.cdn.test 127.0.3.7"
t_check "explain names region ap" has 'region ap'
t_check "explain marks edge-ap picked" has '^ +edge-ap .* yes$'

nth "--resolve www.cdn.test:8080:127.0.0.12 | grep -i cache-status" 1
t_check "first request through edge-us is a stored miss" has '^Cache-Status: edge-us; fwd=uri-miss; fwd-status=200; stored'
nth "--resolve www.cdn.test:8080:127.0.0.12 | grep -i cache-status" 2
t_check "the same request again is a hit" has '^Cache-Status: edge-us; hit'

run "--compressed http://www.cdn.test:8080/"
t_check "--compressed: gzip" has '^Content-Encoding: gzip'
t_check "--compressed: its own variant, stored" has '^Cache-Status: edge-us; fwd=vary-miss; fwd-status=200; stored'
run "https://www.cdn.test:8443/"
t_eq "HTTPS with the local CA exits 0" 0 "$RC"
t_check "HTTPS through edge-eu: a stored miss" has '^Cache-Status: edge-eu; fwd=uri-miss; fwd-status=200; stored'
run "ctl.conf status"
t_eq "status exits 0" 0 "$RC"
t_check "status: 5 up, 0 down" has '^5 up, 0 down$'

run "purge http://www.cdn.test:8080/"
t_eq "purge by URL exits 0" 0 "$RC"
t_check "purge by URL removes both cached variants (identity, gzip)" has 'url=http://www.cdn.test:8080/: 2 entries purged on 3 edge'
run "purge --tag css"
t_eq "purge by tag exits 0" 0 "$RC"
run "purge --site cdn --prefix /img/"
t_eq "purge of one site's prefix exits 0" 0 "$RC"
t_check "it names the site in its summary" has 'prefix=/img/ site=cdn: [0-9]+ entries purged on 3 edge'

run "push deploy/scripts/geo-hello"
t_eq "push geo-hello exits 0" 0 "$RC"
t_check "all three edges activate geo-hello" has '^3 of 3 edges activated it$'
run "/hello --resolve www.cdn.test:8080:127.0.0.13"
t_check "the script answers on edge-ap, in ap's language" has '^Ni hao .*served by edge-ap in ap'
run "/hello --resolve www.cdn.test:8080:127.0.0.11"
t_check "and on edge-eu, in eu's" has '^Hallo .*served by edge-eu in eu'

nth "push deploy/scripts/kv-counter" 1
t_check "kv-counter first push activated everywhere" has '^3 of 3 edges activated it$'
v1=$(sed -n 's/^push: kv-counter version \([0-9]*\) .*/\1/p' <<<"$OUT")
nth "push deploy/scripts/kv-counter" 2
v2=$(sed -n 's/^push: kv-counter version \([0-9]*\) .*/\1/p' <<<"$OUT")
t_eq "the second push is the next version (N, N+1)" "$((v1 + 1))" "$v2"
run "/counter --resolve"
t_eq "the counter counts its first visit on edge-us" '{"edge":"edge-us","recent_clients":1,"visits":1}' "$OUT"
run "ctl.conf scripts"
t_check "scripts: every edge runs kv-counter v$v2" has "^kv-counter +v$v2 +v$v2 +v$v2 +v$v2 *$"
t_check "scripts: all current" has "^all edges run the origin's current versions$"
run "rollback kv-counter"
t_eq "rollback exits 0" 0 "$RC"
t_check "rollback re-signs version N's content as N+2" has "^rollback: kv-counter version $((v1 + 2)) .*content of version $v1$"
run "unpush kv-counter"
t_eq "unpush exits 0" 0 "$RC"
t_check "unpush removes it from all three edges" has '^3 of 3 edges removed it$'

# Ctrl-C's work, by PID: run-local stops every daemon it started.
pids=$(pgrep -f "$TREE/|deploy/local/" -P "$(t_pid run-local)" | tr '\n' ' ')
t_eq "run-local started five daemons" 5 "$(wc -w <<<"$pids")"

# Failover, last: it stops edge-us.
run "kill \$(cat run/edge-us.pid)"
t_eq "failover: the kill command exits 0" 0 "$RC"
run "sleep 6; dig @127.0.0.1 -p 5353 -b 127.0.2.1 www.cdn.test +short"
t_eq "failover: a us client now gets edge-eu, as the comment says" 127.0.0.11 "$OUT"
t_check "failover: run-local says edge-us stopped and keeps the others" \
	grep -q "run-local: edge-us stopped; the others keep running" "$T_DIR/run-local.log"
nth "ctl.conf status" 2
t_check "failover: status shows 4 up, 1 down" has '^4 up, 1 down$'
t_check "failover: status names edge-us down" has '^edge-us +edge .* down '
t_check "failover: run-local still runs" kill -0 "$(t_pid run-local)"
t_stop run-local
left=0
for p in $pids; do kill -0 "$p" 2>/dev/null && { left=$((left + 1)); kill -KILL "$p"; }; done
t_eq "no daemon outlives run-local" 0 $left
t_check "run-local said it stopped them" grep -q '^stopped\. Logs are in run/logs/\.$' "$T_DIR/run-local.log"
t_check "edge-us's access log has the README's miss and hit of /" \
	sh -c "grep -q '\"GET / HTTP/1.1\" 200 [0-9]* \"-\" \"curl/[^\"]*\" uri-miss [0-9.]* edge-us cdn\$' '$TREE/run/logs/edge-us-access.log' &&
	       grep -q '\"GET / HTTP/1.1\" 200 [0-9]* \"-\" \"curl/[^\"]*\" hit [0-9.]* edge-us cdn\$' '$TREE/run/logs/edge-us-access.log'"
for log in "$TREE"/run/logs/*.log; do
	if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$log"; then
		t_fail "sanitizer report in ${log##*/}"; grep -E -A20 'Sanitizer|runtime error:' "$log" | head -30
	fi
done

t_done
