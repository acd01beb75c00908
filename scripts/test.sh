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
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
install_missing test "${BUILD_DEPS[@]}" python3-aiosmtpd logrotate prometheus-alertmanager \
	dpkg-dev debhelper scdoc systemd
build "$BUILD_DIR"
exec meson test -C "$BUILD_DIR" --print-errorlogs --suite unit --suite integration "$@"
