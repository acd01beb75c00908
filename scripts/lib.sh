# Shared by scripts/*.sh: the build dependencies and an installer for what is missing.
# shellcheck shell=bash
BUILD_DEPS=(meson ninja-build gcc pkg-config libinih-dev libcurl4-openssl-dev libssl-dev zlib1g-dev
	libpcre2-dev libcmocka-dev libjson-c-dev libsystemd-dev python3)
# What the tests drive for real: an SMTP receiver (aiosmtpd), logrotate, pv (progress),
# openssl (test certificates), Prometheus, its node exporter and Alertmanager, make
# and pkg-config (an out-of-tree plugin), and for the package test dpkg-buildpackage,
# dh, scdoc (man pages) and systemd-analyze.
TEST_DEPS=(python3-aiosmtpd logrotate pv openssl make prometheus prometheus-node-exporter
	prometheus-alertmanager dpkg-dev debhelper scdoc systemd)

# install_missing WHO PKG...: apt-get install the packages dpkg does not list as
# installed, if any (as root, or through sudo).
install_missing() {
	local who=$1 missing=() p sudo=()
	shift
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null; then
			echo "$who: missing packages: ${missing[*]}; run as root to install them" >&2
			exit 1
		fi
		sudo=(sudo)
	fi
	echo "$who: installing ${missing[*]}"
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# build DIR: configure once, then build what changed.
build() {
	[ -f "$1/build.ninja" ] || meson setup "$1"
	ninja -C "$1"
}
