#!/usr/bin/env bash
# The skeleton's figures: module load time in Emacs, hello round trips from
# C++ and from Lisp, and what loading descent adds to Emacs's start-up.
# Usage: bench/skeleton.sh [BUILD_DIR]   (default build/default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/default}
module=$build/module/descent-module.so
descentd=$build/daemon/server/descentd
tmp=$(mktemp -d)
trap 'kill "$(cat "$tmp/run/descent/descentd.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -m 700 "$tmp/run"
export XDG_RUNTIME_DIR=$tmp/run XDG_STATE_HOME=$tmp/state
socket=$tmp/run/descent/descentd.sock
"$descentd" --socket "$socket"

echo "== module-load, each in a fresh Emacs (ms)"
for _ in 1 2 3 4 5 6 7; do
  emacs -Q --batch --eval "(let ((t0 (float-time))) (module-load \"$module\") (princ (format \"%.2f\n\" (* 1000 (- (float-time) t0)))))"
done | sort -n | awk '{ a[NR] = $1 } END { printf "min %s  median %s  max %s\n", a[1], a[int((NR + 1) / 2)], a[NR] }'

echo "== round trips from C++ (the protocol client the CLI uses)"
"$build/bench/descent-bench-roundtrip" "$socket" 2000

echo "== round trips from Lisp through the module (status on a warm connection)"
emacs -Q --batch --eval "(progn (module-load \"$module\")
  (descent--mod-call \"$socket\" \"status\" [])
  (let* ((n 2000) (t0 (float-time)))
    (dotimes (_ n) (descent--mod-call \"$socket\" \"status\" []))
    (princ (format \"mean %.1f us per call over %d calls\n\" (/ (* 1e6 (- (float-time) t0)) n) n))))"

echo "== (require 'descent) in emacs -Q --batch, whole process, 10 runs each (s)"
time_runs() { local t0 t1; t0=$(date +%s.%N); for _ in $(seq 10); do "$@" >/dev/null 2>&1; done; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", (b - a) / 10 }'; }
plain=$(time_runs emacs -Q --batch --eval t)
with=$(time_runs emacs -Q --batch -L "$root/lisp" --eval "(require 'descent)")
echo "emacs -Q: $plain s   with (require 'descent): $with s"
