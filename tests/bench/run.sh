#!/usr/bin/env bash
# Exit-detection latency benchmark: vigil watch against tail --pid (see README.md).
# Builds vigil if needed, then runs bench_exit_latency.py; extra arguments go to it
# (--runs N, --seed N). Run as root: vigil reads a foreign process's exit code
# through the kernel's process-events connector, which needs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
	meson setup "$BUILD_DIR" >/dev/null
fi
ninja -C "$BUILD_DIR" >/dev/null
# The watched process: a tiny C program (built here, not by meson: no bench in the
# default build or test suites).
target="$BUILD_DIR/tests/bench/bench_exit_target"
mkdir -p "$(dirname "$target")"
if [ ! -x "$target" ] || [ tests/bench/bench_exit_target.c -nt "$target" ]; then
	${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror \
		-o "$target" tests/bench/bench_exit_target.c
fi
python=/usr/bin/python3
[ -x "$python" ] || python=python3
exec "$python" tests/bench/bench_exit_latency.py --vigil "$BUILD_DIR/core/vigil" \
	--target "$target" "$@"
