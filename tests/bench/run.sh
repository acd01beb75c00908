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
rc=0
"$python" tests/bench/bench_exit_latency.py --vigil "$BUILD_DIR/core/vigil" \
	--target "$target" "$@" || rc=$?

# The agent at scale (10,000 monitors; root): RSS, start-up, idle CPU, mass exit vs tail --pid:
#   python3 tests/bench/bench_agent.py --vigil "$BUILD_DIR/core/vigil" [--n N] [--idle S]

# Detectors (root for the connector and strace): log catch-up vs grep -E -c on a 1 GiB
# log cached in /tmp; live match/file latency; idle wakeups and CPU of a 4-detector monitor.
"$python" tests/bench/bench_log.py --vigil "$BUILD_DIR/core/vigil" || true
"$python" tests/bench/bench_latency_live.py --vigil "$BUILD_DIR/core/vigil" --runs 100 || true
"$python" tests/bench/bench_idle.py --vigil "$BUILD_DIR/core/vigil" --seconds 10 || true
# 10,000 events through the webhook notifier (spool fsync on) vs curl in a shell loop.
VIGIL="$BUILD_DIR/core/vigil" "$python" tests/bench/bench_webhook.py || true

# The exit-latency benchmark's status: 0 targets met, 1 missed, 2 it failed.
exit "$rc"
