#!/bin/sh
# Differential fuzzing against the built-ins, on the same random trees:
#   wdired  the wdired commit (C-c C-c) against wdired-finish-edit (wdired-diff.el)
#   jump    C-x C-j / C-x 4 C-j against dired-jump (jump-diff.el; FUZZ_DIREDX=1 loads dired-x)
# Not part of CI.
# Usage: tests/fuzz/run.sh wdired|jump BUILD [SEED [N]]   (FUZZ_ONLY=SEED replays one case)
cd "$(dirname "$0")/../.." || exit 1
usage="usage: tests/fuzz/run.sh wdired|jump BUILD [SEED [N]]"
case $1 in
  wdired) harness=tests/fuzz/wdired-diff.el; load="-L tests/ert" ;;
  jump) harness=tests/fuzz/jump-diff.el; load= ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
build=$(realpath "${2:?$usage}") || exit 2
export LANG=C.UTF-8
export DESCENT_TEST_MODULE=$build/module/descent-module.so
export DESCENT_TEST_DAEMON=$build/daemon/server/descentd
export FUZZ_SEED=${3:-${FUZZ_SEED:-1}} FUZZ_N=${4:-${FUZZ_N:-50}}
# Reports of differing cases outlive the run.
FUZZ_OUT=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/descent-fuzz-out.XXXXXX")} || exit 1
export FUZZ_OUT
echo "reports: $FUZZ_OUT"
# Its own TMPDIR, so that only its own daemons are stopped at the end.
TMPDIR=$(mktemp -d) || exit 1
export TMPDIR
# shellcheck disable=SC2086
emacs -Q --batch -L lisp $load -l "$harness" </dev/null
rc=$?
pkill -f "descentd --socket $TMPDIR/" 2>/dev/null
rm -rf "$TMPDIR"
exit $rc
