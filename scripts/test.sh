#!/usr/bin/env bash
# Build vigil and run its unit and integration tests (everything but the benchmarks).
#   sudo bash scripts/test.sh        (fresh Debian: installs what is missing first)
# BUILD_DIR (default build) picks the build folder, so CI can reuse one it set up
# (e.g. with clang or sanitizers); extra arguments go to `meson test`.
# Exit status: meson test's (non-zero when a test failed).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# Build deps, then what the tests run (scripts/lib.sh: TEST_DEPS), and for the
# system test debootstrap and systemd-nspawn: the suites unit, integration and
# system (the .deb under a real systemd in a container; SKIP_SYSTEM=1 leaves it out).
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
install_missing test "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}" debootstrap systemd-container
build "$BUILD_DIR"
suites=(--suite unit --suite integration)
[ "${SKIP_SYSTEM:-0}" = 1 ] || suites+=(--suite system)
exec meson test -C "$BUILD_DIR" --print-errorlogs "${suites[@]}" "$@"
