#!/usr/bin/env bash
# Checks the layering of the tree from its #include "..." lines and fails when an
# arrow points up:  core/cli -> core/agent -> core/engine -> core/base -> plugins/lib
# (an arrow only points down that list), plugins include only vigil/plugin.h,
# plugins/lib/ and their own folder, and the public header includes nothing of ours.
#   bash tests/layering.sh            (from anywhere; exit 0 clean, 1 with a list)
set -euo pipefail
cd "$(dirname "$0")/.."
layers=(cli agent engine base)
rank() { local i; for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && echo "$i" && return; done; echo -1; }
bad=0
complain() { echo "layering: $1:$2: #include \"$3\": $4" >&2; bad=1; }

# check FILE RANK: every quoted include of FILE against the rules for its place.
check() {
	local file=$1 own=$2 dir n inc top r
	dir=$(dirname "$file")
	while IFS=: read -r n inc; do
		inc=${inc#*\"}; inc=${inc%%\"*}
		case $inc in
		*..*) complain "$file" "$n" "$inc" "no relative paths: name the layer" ;;
		*/*)
			top=${inc%%/*}
			case $top in
			vigil) [ "$own" = public ] && complain "$file" "$n" "$inc" "the ABI header stands alone" ;;
			lib) [ "$own" = public ] && complain "$file" "$n" "$inc" "the ABI header stands alone" ;;
			*)
				r=$(rank "$top")
				if [ "$r" -lt 0 ]; then
					complain "$file" "$n" "$inc" "not a layer of core/ (plugins may include only vigil/plugin.h and lib/)"
				elif [[ $own != [0-9]* ]]; then
					complain "$file" "$n" "$inc" "plugins and plugins/lib include nothing from core/"
				elif [ "$r" -lt "$own" ]; then
					complain "$file" "$n" "$inc" "points up: core/${layers[$own]} may not use core/$top"
				elif [ "$r" -eq "$own" ]; then
					complain "$file" "$n" "$inc" "same folder: write \"${inc#*/}\""
				fi ;;
			esac ;;
		build_config.h) [[ $own == [0-9]* ]] || complain "$file" "$n" "$inc" "build settings are the core's" ;;
		*) [ -f "$dir/$inc" ] || complain "$file" "$n" "$inc" "not in $dir/ (name the layer)" ;;
		esac
	done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
	return 0
}

for i in "${!layers[@]}"; do
	for f in core/"${layers[$i]}"/*.[ch]; do check "$f" "$i"; done
done
for f in core/include/vigil/*.h; do check "$f" public; done
for f in plugins/*/*.[ch]; do check "$f" plugin; done
# Sources outside a layer's folder would escape the check.
for f in core/*.[ch]; do
	if [ -e "$f" ]; then echo "layering: $f: put it in one of core/{${layers[*]}}/" >&2; bad=1; fi
done
# Build files: a plugin never compiles a file of core/.
if grep -n "core/" plugins/meson.build plugins/*/meson.build 2>/dev/null | grep -v '^\s*#'; then
	echo "layering: plugins/ build files name core/ sources" >&2; bad=1
fi
if [ "$bad" -eq 0 ]; then echo "layering: ok (core/{${layers[*]}}, plugins/lib, plugins)"; fi
exit "$bad"
