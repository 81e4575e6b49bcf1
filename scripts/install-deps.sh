#!/bin/sh
# install-deps.sh -- install every build, run and test dependency (idempotent).
# Usage: scripts/install-deps.sh [--bench] [--deb] [--deploy] [--check]
#   --bench  also install the benchmark peers (nginx, varnish, gdnsd, knot, wrk, dnsperf)
#   --deb    also install what `make deb` needs (debhelper, help2man, lintian, ...)
#   --deploy also install what the deployment tests need (Ansible, linters; and for
#            `make test-deploy` mmdebstrap and systemd-nspawn)
#   --check  only report what is missing; exit 1 if anything is
set -eu

BUILD="build-essential pkg-config libldns-dev libmicrohttpd-dev liblmdb-dev liblua5.4-dev
libcurl4-openssl-dev libsodium-dev libconfig-dev libmaxminddb-dev libcmocka-dev libjansson-dev
zlib1g-dev libsystemd-dev"
TEST="bind9-dnsutils knot-dnsutils curl clang libclang-rt-14-dev iproute2 procps psmisc
lmdb-utils mmdb-bin libmaxmind-db-writer-perl gnuplot-nox python3 dnsperf bc help2man
python3-seccomp"
DEB="debhelper help2man lintian libsystemd-dev fakeroot dpkg-dev"
DEPLOY="ansible-core ansible-lint yamllint mmdebstrap systemd-container openssl"
BENCH="wrk dnsperf nginx libnginx-mod-http-lua libnginx-mod-http-echo varnish trafficserver nghttp2-client gdnsd knot knot-module-geoip valgrind"

want="$BUILD $TEST"
check_only=0
for a in "$@"; do
	case "$a" in
	--bench) want="$want $BENCH" ;;
	--deb) want="$want $DEB" ;;
	--deploy) want="$want $DEPLOY" ;;
	--check) check_only=1 ;;
	*) echo "install-deps: unknown option $a" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

[ -z "$missing" ] && exit 0
if [ "$check_only" = 1 ]; then
	echo "install-deps: missing:$missing" >&2
	exit 1
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$missing" >&2

# Debian starts services (nginx, varnish, knot, gdnsd) on install; we start our own
# instances on loopback, so keep the packaged ones stopped while installing.
prc=/usr/sbin/policy-rc.d
made_prc=0
if [ ! -e "$prc" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$prc" >/dev/null
	$SUDO chmod 755 "$prc"
	made_prc=1
fi
trap '[ "$made_prc" = 1 ] && $SUDO rm -f "$prc"' EXIT

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends $missing; then
	$SUDO apt-get update
	$SUDO apt-get install -y --no-install-recommends $missing
fi
