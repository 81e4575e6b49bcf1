#!/bin/bash
# deploy-static: fast checks of what gets installed, no daemon started.
#   `make install` honours DESTDIR, PREFIX and SBINDIR and puts each file where
#   deploy/install.mk says; nothing lands in /etc/minicdn (deployment tools own it);
#   every unit passes `systemd-analyze verify` with no output at all (it only
#   warns), has an exposure of at most 2.0 (`systemd-analyze security
#   --offline=yes`), runs as minicdn with CAP_NET_BIND_SERVICE only, is
#   Type=notify and checks its config with -t first; the sysusers file is valid;
#   the example configs pass each program's -t.
#   Hook: deploy/ansible/static-check.sh (ansible-lint, rendered templates), when
#   present, runs last and its PASS:/FAIL: lines count here.
. "$(dirname "$0")/../../lib.sh"
t_init deploy-static
cd "$T_ROOT" || exit 1
BUILDDIR=$(cd "$BIN/.." && pwd)
# make's view of the build under test (the sanitizer build has its own flags).
MK=(make -s --no-print-directory BUILD="$BUILDDIR")
[ "${BUILDDIR##*/}" = asan ] && MK+=(SAN=1)
MAXEXP=2.0

# ---- make install with PREFIX=/usr, then with another prefix
ROOT=$T_DIR/root
if "${MK[@]}" install DESTDIR="$ROOT" PREFIX=/usr >"$T_DIR/install.log" 2>&1; then
	t_pass "make install DESTDIR PREFIX=/usr"
else
	t_fail "make install DESTDIR PREFIX=/usr"; cat "$T_DIR/install.log"
fi
for f in usr/sbin/minicdn-dns usr/sbin/minicdn-edge usr/sbin/minicdn-origin usr/bin/minicdnctl \
	usr/share/man/man8/minicdn-dns.8 usr/share/man/man8/minicdn-edge.8 usr/share/man/man8/minicdn-origin.8 \
	usr/share/man/man1/minicdnctl.1 usr/lib/systemd/system/minicdn-dns.service \
	usr/lib/systemd/system/minicdn-edge.service usr/lib/systemd/system/minicdn-origin.service \
	usr/lib/sysusers.d/minicdn.conf etc/logrotate.d/minicdn-edge \
	usr/share/doc/minicdn/examples/edge.conf usr/share/doc/minicdn/examples/dns.conf \
	usr/share/doc/minicdn/examples/origin.conf usr/share/doc/minicdn/examples/ctl.conf; do
	t_check "installed: /$f" test -s "$ROOT/$f"
done
t_check "installed: nothing in /etc/minicdn (the operator's or Ansible's)" test ! -e "$ROOT/etc/minicdn"
t_check "man page: the configuration reference is in it" grep -q control_secret_file "$ROOT/usr/share/man/man8/minicdn-edge.8"
"${MK[@]}" install-programs install-systemd DESTDIR="$T_DIR/opt" \
	PREFIX=/opt/minicdn >/dev/null 2>&1
t_check "PREFIX=/opt/minicdn: daemons in /opt/minicdn/sbin" test -x "$T_DIR/opt/opt/minicdn/sbin/minicdn-edge"
t_check "PREFIX=/opt/minicdn: units start /opt/minicdn/sbin/minicdn-edge" \
	grep -q '^ExecStart=/opt/minicdn/sbin/minicdn-edge ' "$T_DIR/opt/opt/minicdn/lib/systemd/system/minicdn-edge.service"
t_check "PREFIX=/opt/minicdn: logrotate in /opt/minicdn/etc" test -s "$T_DIR/opt/opt/minicdn/etc/logrotate.d/minicdn-edge"

# ---- units: verify prints nothing, exposure, the directives that matter
# ExecStart= must name an existing program for verify: install the units with
# SBINDIR pointing at the programs under test; man pages come from the build.
"${MK[@]}" install-systemd man DESTDIR="$T_DIR/v" SBINDIR="$BIN" \
	>/dev/null 2>&1 || t_fail "make install-systemd SBINDIR=$BIN"
for d in dns edge origin; do
	u=$T_DIR/v/usr/local/lib/systemd/system/minicdn-$d.service
	out=$(MANPATH=$BUILDDIR/man systemd-analyze verify "$u" 2>&1)
	t_eq "minicdn-$d.service: systemd-analyze verify prints nothing" "" "$out"
	exp=$(systemd-analyze security --offline=yes "$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	echo "minicdn-$d.service: exposure $exp"
	t_check "minicdn-$d.service: exposure ${exp:-?} <= $MAXEXP" \
		awk -v e="${exp:-99}" -v m="$MAXEXP" 'BEGIN { exit !(e <= m) }'
	src=deploy/systemd/minicdn-$d.service
	t_eq "minicdn-$d.service: Type=notify" "Type=notify" "$(grep '^Type=' "$src")"
	t_eq "minicdn-$d.service: User=minicdn" "User=minicdn" "$(grep '^User=' "$src")"
	t_eq "minicdn-$d.service: bounding set is CAP_NET_BIND_SERVICE only" \
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE" "$(grep '^CapabilityBoundingSet=' "$src")"
	t_eq "minicdn-$d.service: ambient set is CAP_NET_BIND_SERVICE only" \
		"AmbientCapabilities=CAP_NET_BIND_SERVICE" "$(grep '^AmbientCapabilities=' "$src")"
	t_check "minicdn-$d.service: ExecStartPre checks the config (-t)" \
		grep -qE "^ExecStartPre=/usr/sbin/minicdn-$d -t -c /etc/minicdn/$d.conf$" "$src"
	t_check "minicdn-$d.service: MemoryDenyWriteExecute=yes" grep -q '^MemoryDenyWriteExecute=yes$' "$src"
	t_check "minicdn-$d.service: StateDirectory=minicdn" grep -q '^StateDirectory=minicdn$' "$src"
done

# ---- the minicdn user
out=$(mkdir -p "$T_DIR/sys/etc" && systemd-sysusers --dry-run --root="$T_DIR/sys" - <deploy/systemd/minicdn.sysusers 2>&1)
t_check "sysusers: creates the minicdn system user" grep -q "Creating user 'minicdn'" <<<"$out"

# ---- the example configs pass -t once their absolute paths point into a test root
EX=$T_DIR/ex
mkdir -p "$EX/etc" "$EX/cred" "$EX/site"
for f in deploy/examples/*; do
	sed -e "s|/etc/minicdn/|$EX/etc/|g" -e "s|/var/lib/minicdn/|$EX/var/|g" -e "s|/var/log/minicdn/|$EX/log/|g" \
		-e "s|/srv/minicdn/site|$EX/site|g" "$f" >"$EX/etc/${f##*/}"
done
for s in minicdn-edge-control minicdn-origin-control minicdn-dns-control; do
	(umask 077; echo "example-secret-$s" >"$EX/cred/$s")
done
(umask 077; echo "example-secret-ctl" >"$EX/etc/ctl.secret")
"$BIN/minicdnctl" keygen "$EX/etc/origin" >/dev/null && mv "$EX/etc/origin.key" "$EX/cred/minicdn-origin-key"
export CREDENTIALS_DIRECTORY=$EX/cred
for d in dns edge origin; do
	t_check "example $d.conf passes minicdn-$d -t" "$BIN/minicdn-$d" -t -c "$EX/etc/$d.conf"
done
t_check "example ctl.conf loads (minicdnctl explain --help)" \
	bash -c "'$BIN/minicdnctl' -c '$EX/etc/ctl.conf' status --json >/dev/null 2>&1; [ \$? -ne 2 ]"
unset CREDENTIALS_DIRECTORY

# ---- hook for the deployment's own static checks
if [ -x deploy/ansible/static-check.sh ]; then
	deploy/ansible/static-check.sh "$BIN" || t_fail "deploy/ansible/static-check.sh exited $?"
else
	echo "SKIP: deploy-static: no deploy/ansible/static-check.sh (ansible-lint, templates)"
fi
t_done
