#!/usr/bin/env bash
# C-c C-c in wdired: descent vs the built-in vs the renameat2 floor, in one run.
#   bench/wdired/run.sh [BUILD-DIR]      (default build/default)
# Environment: DESCENT_BENCH_SIZES ("1000 10000 100000"), DESCENT_BENCH_RUNS
# (5; halved at 100k), DESCENT_BENCH_BUILTIN_MAX (10000: the built-in is
# quadratic and takes minutes above that), DESCENT_BENCH_PRELOAD (a Lisp
# file loaded first: timers or advice for a breakdown; breakdown.el here
# prints each phase), DESCENT_BENCH_NATIVE=1 (descent's Lisp natively
# compiled as well, as an Emacs with native compilation does on its own
# soon after the first load; Debian 12's Emacs has it).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/default}" && pwd)
scratch=$(mktemp -d)
trap '"$build/daemon/cli/descent" stop >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
mkdir -m 700 "$scratch/run"
export XDG_RUNTIME_DIR="$scratch/run" XDG_STATE_HOME="$scratch/state" XDG_DATA_HOME="$scratch/data"
export DESCENT_BENCH_FLOOR="$build/bench/wdired/descent-bench-wdired-floor"
# Byte-compiled, as a package manager installs it (the checkout has no .elc).
mkdir "$scratch/lisp"
cp "$top"/lisp/*.el "$scratch/lisp/"
emacs -Q --batch -L "$scratch/lisp" -f batch-byte-compile "$scratch"/lisp/*.el 2>/dev/null
native=()
if [[ ${DESCENT_BENCH_NATIVE:-} == 1 ]]; then
  native=(--eval "(setq native-comp-eln-load-path (list \"$scratch/eln/\"))")
  emacs -Q --batch -L "$scratch/lisp" "${native[@]}" -f batch-native-compile "$scratch"/lisp/*.el 2>/dev/null
  native+=(--eval "(setq native-comp-eln-load-path (append native-comp-eln-load-path (default-value 'native-comp-eln-load-path)))")
fi
cd "$scratch"
emacs -Q --batch -L "$scratch/lisp" "${native[@]}" \
  --eval "(setq descent-module-file \"$(ls "$build"/module/descent-module.*)\" descent-daemon-program \"$build/daemon/server/descentd\")" \
  ${DESCENT_BENCH_PRELOAD:+-l "$DESCENT_BENCH_PRELOAD"} -l "$top/bench/wdired/wdired-bench.el"
