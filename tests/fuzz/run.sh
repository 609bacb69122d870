#!/bin/sh
# Differential fuzzing of the wdired commit: descent against the built-in,
# on the same random trees and edits (see wdired-diff.el). Not part of CI.
# Usage: tests/fuzz/run.sh BUILD [SEED [N]]   (FUZZ_ONLY=SEED replays one case)
cd "$(dirname "$0")/../.." || exit 1
build=$(realpath "${1:?usage: tests/fuzz/run.sh BUILD [SEED [N]]}")
export LANG=C.UTF-8
export DESCENT_TEST_MODULE=$build/module/descent-module.so
export DESCENT_TEST_DAEMON=$build/daemon/server/descentd
export FUZZ_SEED=${2:-${FUZZ_SEED:-1}} FUZZ_N=${3:-${FUZZ_N:-50}}
# Reports of differing cases outlive the run.
FUZZ_OUT=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/descent-fuzz-out.XXXXXX")} || exit 1
export FUZZ_OUT
echo "reports: $FUZZ_OUT"
# Its own TMPDIR, so that only its own daemons are stopped at the end.
TMPDIR=$(mktemp -d) || exit 1
export TMPDIR
emacs -Q --batch -L lisp -L tests/ert -l tests/fuzz/wdired-diff.el
rc=$?
pkill -f "descentd --socket $TMPDIR/" 2>/dev/null
rm -rf "$TMPDIR"
exit $rc
