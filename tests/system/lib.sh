# Helpers of tests/system/run.sh: the transcript, checks, the container.
# shellcheck shell=bash

phase_name=
phase_start=
script_start=$(date +%s.%N)

elapsed() { echo "$(date +%s.%N) $1" | awk '{printf "%.1f", $1 - $2}'; }

say() { printf '    %s\n' "$*"; }

# Ends the previous phase (its time) and opens the next.
phase() {
	[ -n "$phase_name" ] && printf '=== %-8s %6ss\n' "$phase_name" "$(elapsed "$phase_start")"
	phase_name=$1
	phase_start=$(date +%s.%N)
	[ "$1" = end ] && printf '=== total    %6ss\n' "$(elapsed "$script_start")"
	printf -- '--- %s\n' "$1"
}

# check DESCRIPTION CMD...: PASS or FAIL (counted), the command's output shown on failure.
check() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then
		say "PASS $what"
	else
		say "FAIL $what"
		printf '%s\n' "$out" | sed 's/^/         | /' | tail -n 20
		failures=$((failures + 1))
	fi
}

# xfail ISSUE DESCRIPTION CMD...: a check the core does not pass yet (ISSUE
# says which work it waits for). XFAIL when it fails, XPASS when it passes.
xfail() {
	local why=$1 what=$2
	shift 2
	if "$@" >/dev/null 2>&1; then
		say "XPASS $what (was expected to fail: $why)"
	else
		say "XFAIL $what ($why)"
	fi
}

# Run a command inside the container, in all its namespaces, with a clean
# environment (nothing of the host's leaks in).
inside() {
	nsenter -t "$leader" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

# in_sh SCRIPT: a shell script inside; its output is part of the transcript.
in_sh() { inside /bin/sh -c "$1"; }

# wait_for SECONDS CMD...: until CMD succeeds; a deadline only against hangs.
wait_for() {
	local limit=$1 t0=$SECONDS
	shift
	until "$@" >/dev/null 2>&1; do
		[ $((SECONDS - t0)) -ge "$limit" ] && return 1
		sleep 0.2
	done
}

# Boot the cached root as an ephemeral copy (removed when nspawn exits) with
# the .deb folder at /mnt/debs. --register=no: no machined on the host, so
# commands go in through nsenter on the container's PID 1 (the leader).
container_boot() {
	systemd-nspawn --boot --register=no --keep-unit --ephemeral --quiet \
		-D "$rootfs" --bind-ro="$1:/mnt/debs" --console=pipe \
		</dev/null >"$work/console.log" 2>&1 &
	nspawn_pid=$!
	# the child is nspawn's own until it execs the container's init
	wait_for 120 pgrep -x -P "$nspawn_pid" systemd || { cat "$work/console.log"; return 1; }
	leader=$(pgrep -x -P "$nspawn_pid" systemd)
	wait_for 60 inside test -S /run/systemd/private
	say "nspawn $nspawn_pid, container PID 1 is host PID $leader"
}

# SIGTERM to nspawn powers the container off; SIGKILL when it does not stop.
container_stop() {
	[ -n "$nspawn_pid" ] || return 0
	kill -TERM "$nspawn_pid" 2>/dev/null || true
	if ! wait_for 60 sh -c "! kill -0 $nspawn_pid"; then
		kill -KILL "$nspawn_pid" 2>/dev/null || true
	fi
	wait "$nspawn_pid" 2>/dev/null || true
	nspawn_pid=
}

# unit_is STATE/SUB: the unit's ActiveState/SubState.
unit_state() { inside systemctl show -p ActiveState -p SubState --value vigil | paste -sd/; }
unit_is() { [ "$(unit_state)" = "$1" ]; }
