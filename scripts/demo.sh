#!/usr/bin/env bash
# Build vigil and watch a demo job from start to finish.
#   sudo bash scripts/demo.sh        (fresh Debian: installs what is missing first)
# Re-runnable: it rebuilds only what changed and reuses the job name "demo".
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
DEPS=(meson ninja-build gcc pkg-config libinih-dev libcurl4-openssl-dev libssl-dev
	libpcre2-dev libcmocka-dev libjson-c-dev python3)

# apt-get install the packages that dpkg does not list as installed, if any.
install_missing() {
	local missing=() p sudo=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null; then
			echo "demo: missing packages: ${missing[*]}; run as root to install them" >&2
			exit 1
		fi
		sudo=(sudo)
	fi
	echo "demo: installing ${missing[*]}"
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_missing "${DEPS[@]}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
	meson setup "$BUILD_DIR"
fi
ninja -C "$BUILD_DIR"
vigil="$BUILD_DIR/core/vigil"

# A job of the same name still running (the demo started twice at once): let it end.
if "$vigil" status --json demo 2>/dev/null | grep -q '"state":"running"'; then
	echo "demo: a previous demo job is still running; waiting for it"
	"$vigil" watch demo >/dev/null || true
fi

echo
echo "\$ vigil run --name demo --progress 'progress ([0-9]+)%' --success '^done\$' -- sh -c '...'"
"$vigil" run --name demo --progress 'progress ([0-9]+)%' --success '^done$' -- \
	sh -c 'for p in 20 40 60 80 100; do echo "progress $p%"; sleep 1; done; echo done'
echo
echo "\$ vigil watch demo"
rc=0
"$vigil" watch demo || rc=$?
echo "(vigil watch exited $rc: 0 succeeded, 1 failed, 3 timed out, 4 unknown)"
echo
echo "\$ vigil status demo"
"$vigil" status demo
echo
echo "\$ vigil logs demo | tail -n 6        (the log is appended to by each run)"
"$vigil" logs demo | tail -n 6
echo
echo "vigil is $vigil; try: $vigil status, $vigil --help"
exit "$rc"
