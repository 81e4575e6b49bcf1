# upgrade.sh -- the rolling-upgrade part of tests/deploy/run.sh (sourced).
# Repacks every package with a bumped version (same programs, new package
# version: what a rebuild with a new changelog entry gives apt and dpkg),
# re-runs site.yml with them while clients in every region query both DNS
# servers every 0.2 s and every edge's /healthz is polled; then checks that
# each edge was drained and upgraded, no answer named an edge drained more
# than one health interval (+0.5 s) earlier, and a cached object is still a hit.

log "rolling upgrade"
V1=$(basename "$(ls "$T_DIR"/debs-v1/minicdn-edge_*.deb)" | cut -d_ -f2)
V2="$V1+upgrade1"
for deb in "$T_DIR"/debs-v1/*.deb; do
	x=$T_DIR/repack
	rm -rf "$x"; dpkg-deb -R "$deb" "$x"
	sed -i -e "s/^Version: .*/Version: $V2/" -e "s/(= $V1)/(= $V2)/g" "$x/DEBIAN/control"
	pkg=$(awk '/^Package:/ {print $2}' "$x/DEBIAN/control"); arch=$(awk '/^Architecture:/ {print $2}' "$x/DEBIAN/control")
	dpkg-deb -b "$x" "$T_DIR/debs-v2/${pkg}_${V2}_${arch}.deb" >/dev/null
done
rm -rf "$T_DIR/repack"
sed -i "s|^minicdn_deb_dir: .*|minicdn_deb_dir: $T_DIR/debs-v2|" "$INV/group_vars/all/main.yml"

# a long-lived object (the origin gives *.css max-age=86400): still fresh after the upgrade
fetch cl-eu edge-eu /css/site.css >/dev/null
h=$(fetch cl-eu edge-eu /css/site.css)
t_check "before: edge-eu has /css/site.css cached ($h)" grep -qi '; hit' <<<"$h"

# observers (stopped by PID below)
(
	while :; do
		for c in cl-eu cl-us cl-ap; do
			for s in ns1 ns2; do
				a=$(CL "$c" dig +short +time=1 +tries=1 @"${ADDR[$s]}" www.cdn.test 2>/dev/null | grep -v '^;' | head -1)
				echo "$(date +%s.%N) $s $c ${a:-none}"
			done
		done
		sleep 0.2
	done
) >"$T_DIR/answers.log" 2>/dev/null &
OBS_DNS=$!
(
	while :; do
		for e in edge-eu edge-us edge-ap; do
			d=$(CL cl-eu curl -s --max-time 1 "http://${ADDR[$e]}/healthz" 2>/dev/null | grep -o '"draining":[a-z]*' | cut -d: -f2)
			echo "$(date +%s.%N) ${ADDR[$e]} ${d:-unknown}"
		done
		sleep 0.2
	done
) >"$T_DIR/drain.log" 2>/dev/null &
OBS_DRAIN=$!

t1=$SECONDS
play play-upgrade; rc=$?
kill "$OBS_DNS" "$OBS_DRAIN" 2>/dev/null; wait "$OBS_DNS" "$OBS_DRAIN" 2>/dev/null
t_check "the upgrade run succeeds ($((SECONDS - t1)) s)" test $rc = 0
[ $rc = 0 ] && true || tail -30 "$T_DIR/play-upgrade.log"
for n in $NODES; do
	case $n in origin1) p=minicdn-origin ;; ns*) p=minicdn-dns ;; *) p=minicdn-edge ;; esac
	t_eq "$n: $p upgraded" "$V2" "$(IN "$n" dpkg-query -W -f='${Version}' "$p")"
done
t_eq "edges were drained one at a time by minicdnctl (3 drains)" 3 "$(grep -c 'TASK \[edge : Drain this edge\]' "$T_DIR/play-upgrade.log")"
out=$(python3 - "$T_DIR/answers.log" "$T_DIR/drain.log" <<'PY'
import sys
grace = 1.0 + 0.5          # health interval + slack for one check round
drained = {}               # address -> list of [start, end] while /healthz said draining
for line in open(sys.argv[2]):
    t, addr, d = line.split()
    t = float(t)
    iv = drained.setdefault(addr, [])
    if d == "true":
        if iv and iv[-1][2]:
            iv[-1][1] = t
        else:
            iv.append([t, t, True])
    elif iv:
        iv[-1][2] = False
bad = 0
n = 0
for line in open(sys.argv[1]):
    t, server, client, a = line.split()
    t = float(t); n += 1
    for s, e, _ in drained.get(a, []):
        if s + grace < t <= e:
            bad += 1
            print(f"answer {a} from {server} to {client} at {t:.2f}: drained since {s:.2f}")
# one at a time: no poll round (one line per edge) saw two edges draining
lines = [l.split() for l in open(sys.argv[2])]
rounds = [lines[i:i + 3] for i in range(0, len(lines), 3)]
most = max((sum(1 for l in r if l[2] == "true") for r in rounds), default=0)
print(f"answers={n} drained_edges={sum(1 for v in drained.values() if v)} max_draining_at_once={most} bad={bad}")
PY
)
echo "$out" | tail -5
t_check "every edge was seen draining during the upgrade" grep -q 'drained_edges=3' <<<"$out"
t_check "never two edges draining at once" grep -q 'max_draining_at_once=1 ' <<<"$out"
t_check "answers were collected during the upgrade" grep -qE 'answers=[1-9][0-9]{2,}' <<<"$out"
t_check "no DNS answer named an edge drained > interval + 0.5 s earlier" grep -q 'bad=0$' <<<"$out"
h=$(fetch cl-eu edge-eu /css/site.css)
t_check "after: /css/site.css is still a hit on the upgraded edge-eu ($h)" grep -qi '; hit' <<<"$h"
for r in eu us ap; do
	t_eq "after: ns1 answers the $r client with edge-$r (undrained)" "${ADDR[edge-$r]}" "$(dq "cl-$r" ns1)"
done
play play-after-upgrade; rc=$?
t_eq "a run after the upgrade changes nothing" "0:0" "$rc:$(recap_changed "$T_DIR/play-after-upgrade.log")"
