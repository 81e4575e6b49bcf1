#!/bin/bash
# image.sh -- builds (or reuses) the Debian 12 tree the deployment test boots
# with systemd-nspawn: systemd, python3 for Ansible, python3-apt for its apt
# module, logrotate, and the runtime libraries the minicdn packages depend on
# (the containers have no route to a mirror, so apt must find everything
# already installed).  Prints the tree's path.
#
# Cached under $MINICDN_IMAGE_CACHE (default /var/cache/minicdn-test), keyed
# by a hash of the package list and suite: changing the list builds a new
# tree, an unchanged list reuses the old one.  The build needs Debian's
# mirror (mmdebstrap on the host); nothing else leaves the machine.
set -eu
CACHE=${MINICDN_IMAGE_CACHE:-/var/cache/minicdn-test}
SUITE=bookworm
MIRROR=${MINICDN_MIRROR:-http://deb.debian.org/debian}
PKGS="systemd systemd-sysv dbus python3 python3-apt logrotate iproute2 procps curl
libldns3 libmicrohttpd12 liblmdb0 libcurl4 libsodium23 libconfig9 libmaxminddb0 libjansson4
zlib1g libsystemd0"
key=$(printf '%s\n' "$SUITE" $PKGS | sort | sha256sum | cut -c1-16)
tree=$CACHE/image-$key
if [ -e "$tree/.complete" ]; then
	echo "$tree"
	exit 0
fi
command -v mmdebstrap >/dev/null || { echo "image.sh: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
mkdir -p "$CACHE"
rm -rf "$tree.tmp"
t0=$SECONDS
echo "image.sh: building $tree (first run only)" >&2
# --variant=apt: essential + apt only; the list adds what we need.
mmdebstrap --variant=apt --include="$(echo $PKGS | tr ' ' ',')" \
	--customize-hook='echo minicdn-test > "$1/etc/hostname"' \
	--customize-hook='rm -f "$1/etc/machine-id"; : > "$1/etc/machine-id"' \
	--customize-hook='chroot "$1" systemctl mask systemd-networkd-wait-online.service getty@tty1.service console-getty.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true' \
	"$SUITE" "$tree.tmp" "$MIRROR" >&2
touch "$tree.tmp/.complete"
mv "$tree.tmp" "$tree"
echo "image.sh: built in $((SECONDS - t0)) s" >&2
echo "$tree"
