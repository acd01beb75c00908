#!/usr/bin/env bash
# Build vigil and watch a demo job from start to finish.
#   sudo bash scripts/demo.sh        (fresh Debian: installs what is missing first)
# Re-runnable: it rebuilds only what changed and reuses the job name "demo".
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
install_missing demo "${BUILD_DEPS[@]}"
build "$BUILD_DIR"
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
