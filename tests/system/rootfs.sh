#!/bin/sh
# Build (once) the cached Debian 12 root filesystem the system test boots:
# minbase + systemd as PID 1 + the package's runtime dependencies, so that
# `dpkg -i vigil_*.deb` works inside without network. Built into a temporary
# folder next to the cache and renamed into place, so an interrupted build never
# leaves a half root that a later run would trust.
# Usage: tests/system/rootfs.sh [CACHE_ROOT]   (default /var/cache/vigil-system/rootfs)
set -eu

root=${1:-${VIGIL_SYSTEM_ROOTFS:-/var/cache/vigil-system/rootfs}}
# Runtime dependencies of vigil (see packaging/debian/control and ldd core/vigil)
# plus what the test itself uses inside (logrotate to check the snippet).
include=systemd,systemd-sysv,dbus,libinih1,libcurl4,libssl3,libpcre2-8-0,libjson-c5,passwd,logrotate,procps,ca-certificates

# The mirror the host's apt uses: the only network there is.
host_mirror() {
	{
		sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null
		sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) bookworm .*/\2/p' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
	} | grep -v security | grep -m 1 '/debian/\{0,1\}$'
}

if [ -x "$root/lib/systemd/systemd" ]; then
	echo "rootfs: cached $root"
	exit 0
fi
mirror=$(host_mirror) || { echo "rootfs: no Debian mirror in /etc/apt" >&2; exit 1; }
mkdir -p "$(dirname "$root")"
tmp=$(mktemp -d "$root.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
echo "rootfs: debootstrap bookworm from $mirror into $tmp"
debootstrap --variant=minbase --include="$include" bookworm "$tmp" "$mirror" \
	>"$tmp.log" 2>&1 || { tail -n 20 "$tmp.log" >&2; rm -f "$tmp.log"; exit 1; }
rm -f "$tmp.log"
# Boot quietly and fast: no getty on the console, no root password prompt.
chroot "$tmp" systemctl mask console-getty.service getty@tty1.service \
	systemd-networkd-wait-online.service >/dev/null 2>&1 || true
echo vigil-system >"$tmp/etc/hostname"
apt_clean() { rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages; }
apt_clean
chmod 0755 "$tmp"
mv -T "$tmp" "$root"
trap - EXIT INT TERM
echo "rootfs: built $root"
