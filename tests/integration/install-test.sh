#!/usr/bin/env bash
# `cmake --install` as README.org gives it, into a temporary prefix, then
# used as a newcomer would: Emacs with nothing but the installed Lisp on its
# load-path and a PATH without the prefix finds the module beside the Lisp
# and descentd in PREFIX/bin, runs byte-compiled code, and the systemd unit
# names the installed daemon.
# Usage: install-test.sh CMAKE BUILD-DIR EMACS
set -euo pipefail
cmake=$1 build=$2 emacs=$3
tmp=$(mktemp -d)
trap 'XDG_RUNTIME_DIR=$tmp/run "$tmp/prefix/bin/descent" stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
"$cmake" --install "$build" --prefix "$tmp/prefix" >/dev/null
lisp=$tmp/prefix/share/emacs/site-lisp/descent
for f in bin/descentd bin/descent share/systemd/user/descentd.socket share/systemd/user/descentd.service; do
  [[ -e $tmp/prefix/$f ]] || { echo "FAIL: $f was not installed"; exit 1; }
done
for f in descent.elc descent-wdired.elc descent-module.so; do
  [[ -e $lisp/$f ]] || { echo "FAIL: $lisp/$f was not installed"; exit 1; }
done
grep -qx "ExecStart=$tmp/prefix/bin/descentd --foreground --socket %t/descent/descentd.sock" \
  "$tmp/prefix/share/systemd/user/descentd.service" \
  || { echo "FAIL: the unit does not name the installed descentd"; grep ExecStart "$tmp/prefix/share/systemd/user/descentd.service"; exit 1; }
mkdir -m 700 "$tmp/run"
out=$(cd "$tmp" && env -i HOME="$tmp" PATH=/usr/bin:/bin XDG_RUNTIME_DIR="$tmp/run" XDG_STATE_HOME="$tmp/state" \
  ${LD_PRELOAD:+LD_PRELOAD=$LD_PRELOAD} ${ASAN_OPTIONS:+ASAN_OPTIONS=$ASAN_OPTIONS} \
  "$emacs" -Q --batch -L "$lisp" -l descent --eval '
(progn
  (princ (format "compiled %s\n" (byte-code-function-p (symbol-function (quote descent-jump)))))
  (princ (format "daemon %s\n" (plist-get (descent-status) :version)))
  (princ (format "module %s\n" descent--module-loaded-file))
  (princ (format "program %s\n" (descent--daemon-program))))' 2>&1)
echo "$out"
grep -qx "compiled t" <<<"$out" || { echo "FAIL: the installed Lisp is not byte-compiled"; exit 1; }
grep -qx "module $lisp/descent-module.so" <<<"$out" || { echo "FAIL: the installed module was not loaded"; exit 1; }
grep -qx "program $tmp/prefix/bin/descentd" <<<"$out" || { echo "FAIL: the installed descentd was not found"; exit 1; }
grep -q "^daemon [0-9]" <<<"$out" || { echo "FAIL: the installed daemon did not answer"; exit 1; }
echo "1 passed, 0 failed"
