#!/bin/sh
# Build vigil's .deb: copy the source tree (without build folders and git) to a
# temporary folder, put packaging/debian at its top (dpkg-buildpackage needs
# ./debian), build with `dpkg-buildpackage -us -uc -b`, move the .deb files to
# OUTDIR. With VERSION, the copy's debian/changelog gets a first entry of that
# version (an upgrade to test with; the tree is not touched).
# Usage: packaging/build-deb.sh OUTDIR [VERSION]
set -eu

[ $# -eq 1 ] || [ $# -eq 2 ] || { echo "usage: $0 OUTDIR [VERSION]" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vigil-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

mkdir "$tmp/vigil-$version"
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude='./obj-*' \
	--exclude=./debian -cf - . | tar -C "$tmp/vigil-$version" -xf -
cp -r "$src/packaging/debian" "$tmp/vigil-$version/debian"
if [ $# -eq 2 ]; then
	log="$tmp/vigil-$version/debian/changelog"
	{
		printf 'vigil (%s) unstable; urgency=medium\n\n  * Test build.\n\n' "$2"
		printf ' -- vigil developers <vigil@example.com>  %s\n\n' "$(date -R)"
		cat "$log"
	} >"$log.new"
	mv "$log.new" "$log"
fi
cd "$tmp/vigil-$version"
dpkg-checkbuilddeps
dpkg-buildpackage -us -uc -b
for f in "$tmp"/*.deb; do
	mv "$f" "$out/"
	echo "$out/$(basename "$f")"
done
