#!/usr/bin/env bash
# Build vigil and run its unit and integration tests (everything but the benchmarks).
#   sudo bash scripts/test.sh        (fresh Debian: installs what is missing first)
# BUILD_DIR (default build) picks the build folder, so CI can reuse one it set up
# (e.g. with clang or sanitizers); extra arguments go to `meson test`.
# Exit status: meson test's (non-zero when a test failed).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# Build deps, then what the integration tests run: aiosmtpd (SMTP receiver),
# logrotate (rotation), setpriv and unshare (util-linux, always there), and for the
# package test dpkg-buildpackage, dh, scdoc (man pages), systemd-analyze.
DEPS=(meson ninja-build gcc pkg-config libinih-dev libcurl4-openssl-dev libssl-dev
	libpcre2-dev libcmocka-dev libjson-c-dev python3 python3-aiosmtpd logrotate prometheus-alertmanager
	dpkg-dev debhelper scdoc systemd)

install_missing() {
	local missing=() p sudo=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null; then
			echo "test: missing packages: ${missing[*]}; run as root to install them" >&2
			exit 1
		fi
		sudo=(sudo)
	fi
	echo "test: installing ${missing[*]}"
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_missing "${DEPS[@]}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
	meson setup "$BUILD_DIR"
fi
ninja -C "$BUILD_DIR"
exec meson test -C "$BUILD_DIR" --print-errorlogs --suite unit --suite integration "$@"
