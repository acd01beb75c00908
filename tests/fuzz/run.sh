#!/bin/bash
# Run the libFuzzer targets: tests/fuzz/run.sh [SECONDS] [TARGET...]
# Builds them (clang, ASan+UBSan, coverage) into BUILD_DIR unless it already
# holds a fuzz build, then runs each TARGET (default: all) for SECONDS
# (default 30) on a corpus folder outside the clone, FUZZ_CACHE/TARGET
# (default FUZZ_CACHE=/var/cache/vigil-fuzz), into which the committed seeds
# (tests/fuzz/corpus/TARGET) are merged first, so corpora grow across runs.
# JOBS=N runs N processes per target on the same corpus (default 1);
# MAX_LEN=N tries inputs up to N bytes (default: per target, below).
# Prints one line per target: executions, coverage (libFuzzer's final cov:),
# crashes; exits 1 when any target crashed (artifacts under
# FUZZ_CACHE/artifacts/TARGET/), 2 on a usage or build error.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
all_targets=(ini success_expr event_json spool control log log_lines notify_templates cron)
seconds=${1:-30}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
build=${BUILD_DIR:-$src/build-fuzz}
cache=${FUZZ_CACHE:-/var/cache/vigil-fuzz}
jobs=${JOBS:-1}

case $seconds in ''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2;; esac

# Inputs bigger than this are not tried: small enough to keep each target
# fast, big enough for the deep and long seeds.
max_len() {
	[ -n "${MAX_LEN:-}" ] && { echo "$MAX_LEN"; return; }
	case $1 in
	log) echo 4096;;
	log_lines) echo 4096;;
	cron) echo 512;;
	control|notify_templates) echo 16384;;
	*) echo 65536;;
	esac
}

build_targets() {
	if [ ! -f "$build/build.ninja" ]; then
		CC=clang meson setup "$build" "$src" -Dfuzz=true -Db_sanitize=address,undefined \
			-Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link >/dev/null || return 2
	fi
	# the targets and the plugins they load, not the whole tree
	local want=(plugins/log.so plugins/webhook.so plugins/email.so)
	for t in "${targets[@]}"; do
		want+=("tests/fuzz/fuzz_$t")
	done
	ninja -C "$build" "${want[@]}" >/dev/null ||
		{ ninja -C "$build" "${want[@]}" | tail -20; return 2; }
}

# Sum "stat::number_of_executed_units" over the logs; the best final cov:.
stats() {
	local execs=0 cov=0 n c
	for log in "$@"; do
		n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
		c=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
		execs=$((execs + ${n:-0}))
		[ "${c:-0}" -gt "$cov" ] && cov=$c
	done
	echo "$execs $cov"
}

run_target() {
	local t=$1 exe="$build/tests/fuzz/fuzz_$1" corpus="$cache/$1" art="$cache/artifacts/$1/"
	local logs=() pids=() before after rc=0 logdir
	if [ ! -x "$exe" ]; then
		echo "fuzz $t: not built ($exe)"
		return 2
	fi
	mkdir -p "$corpus" "$art" || return 2
	cp -n "$here/corpus/$t/"* "$corpus/" 2>/dev/null
	before=$(ls "$art" | wc -l)
	# each run's own logs: runs that share the cache must not write into
	# each other's (a CI smoke step while a long run goes on)
	logdir=$(mktemp -d "$cache/artifacts/$t.log.XXXXXX") || return 2
	for j in $(seq 1 "$jobs"); do
		logs+=("$logdir/$j.log")
		"$exe" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=25 \
			-rss_limit_mb=3072 -print_final_stats=1 -artifact_prefix="$art" \
			"$corpus" >"${logs[-1]}" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || rc=1
	done
	after=$(ls "$art" | wc -l)
	read -r execs cov < <(stats "${logs[@]}")
	echo "fuzz $t: executions=$execs cov=$cov crashes=$((after - before)) seconds=$seconds jobs=$jobs"
	if [ $rc -ne 0 ] || [ "$after" -gt "$before" ]; then
		echo "  see ${logs[*]} and $art" >&2
		return 1
	fi
	rm -rf "$logdir"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
build_targets || exit 2
status=0
for t in "${targets[@]}"; do
	run_target "$t"
	r=$?
	[ $r -gt $status ] && status=$r
done
exit $((status == 0 ? 0 : status == 2 ? 2 : 1))
