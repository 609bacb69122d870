#!/usr/bin/env bash
# Dired with descent's native listing on vs off, in one run, as ratios:
# opening a Dired buffer (ready, point placed) and C-x C-j from a file into
# a new Dired buffer on generated directories of 1k, 10k and 100k entries;
# the daemon's `list` against a bare getdents64+statx loop; C-x C-j and
# dired-goto-file to a file named after the user among as many files the
# user owns as the largest size, 100k by default (every owner column is a
# false hit for a text search); the daemon's peak RSS.
# Usage: bench/listing/listing-bench.sh [BUILD_DIR] [RUNS] [SIZES]
#        (defaults: build, 5, 1000,10000,100000); or the CMake target
#        bench-listing.  The trees live in a temporary directory, removed after.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
runs=${2:-5}
sizes=${3:-1000,10000,100000}
module=$(find "$build/module" -maxdepth 1 -name 'descent-module.*' ! -name '*.o' | head -n 1)
descentd=$build/daemon/server/descentd
lister_bench=$build/bench/lister/lister_bench
[ -n "$module" ] && [ -x "$descentd" ] && [ -x "$lister_bench" ] ||
  { echo "listing-bench: build descent-module, descentd and lister_bench in $build first" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/descent-listing-bench-XXXXXX")
trap 'kill "$(cat "$tmp/run/descent/descentd.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -m 700 "$tmp/run"
export XDG_RUNTIME_DIR=$tmp/run XDG_STATE_HOME=$tmp/state
# ls and the daemon are compared in one locale; C is what ls gets most often.
export LC_ALL=${LC_ALL:-C}

echo "== generating trees, and the engine in process vs ls vs the bare loop (lister_bench)"
"$lister_bench" --runs "$runs" --sizes "$sizes" --keep "$tmp"
dirs=$(IFS=,; for n in $sizes; do printf '%s:' "$tmp/d$n"; done)
largest=$(tr , '\n' <<<"$sizes" | sort -n | tail -n 1)
owner=$tmp/owner$largest
mkdir "$owner"
(cd "$owner" && seq -f 'F%06g' 1 "$largest" | xargs touch && touch "$(id -un)")

"$descentd" --socket "$tmp/run/descent/descentd.sock"
echo "== Emacs (emacs -Q --batch, $(emacs --version | head -n 1))"
DESCENT_BENCH_MODULE=$module DESCENT_BENCH_DAEMON=$descentd DESCENT_BENCH_RUNS=$runs \
DESCENT_BENCH_DIRS=$dirs DESCENT_BENCH_OWNER_DIR=$owner DESCENT_BENCH_FLOOR=$lister_bench \
  emacs -Q --batch -L "$root/lisp" -l "$root/bench/listing/listing-bench.el"

pid=$(cat "$tmp/run/descent/descentd.pid")
echo "== descentd peak RSS after listing every tree: $(awk '/VmHWM/ { print $2, $3 }' "/proc/$pid/status")"
