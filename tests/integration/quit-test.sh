#!/usr/bin/env bash
# C-g in a real, interactive Emacs (in tmux) while the module waits on a long
# call: control must come back at once, the quit must be an ordinary `quit`,
# and the module and daemon must keep working afterwards.
# Usage: quit-test.sh EMACS MODULE DESCENTD
set -euo pipefail
emacs=$1 module=$2 descentd=$3
limit_ms=${QUIT_LIMIT_MS:-250}  # the design asks for 100 ms; the margin absorbs a loaded CI machine

tmp=$(mktemp -d /tmp/descent-quit-XXXXXX)
session=descent-quit-$$
# A private tmux server: it starts with this script's environment (and so
# passes LD_PRELOAD of a sanitizer build on), and leaves the user's alone.
tmux() { command tmux -L "$session" "$@"; }
cleanup() {
  tmux kill-server 2>/dev/null || true
  [[ -S $tmp/run/descent/descentd.sock ]] && "$descentd" --version >/dev/null && kill "$(cat "$tmp/run/descent/descentd.pid")" 2>/dev/null || true
  if [[ ${passed:-no} == yes ]]; then rm -rf "$tmp"; else echo "kept $tmp for inspection"; fi
}
trap cleanup EXIT

mkdir -m 700 "$tmp/run"
export XDG_RUNTIME_DIR=$tmp/run XDG_STATE_HOME=$tmp/state DESCENT_TEST_HOOKS=1
socket=$tmp/run/descent/descentd.sock
"$descentd" --socket "$socket" --state-dir "$tmp/state/descent"

cat > "$tmp/driver.el" <<LISP
(module-load "$module")
(defun descent-quit-test--drive ()
  "Start a long call, as a command a user runs with a key."
  (interactive)
  (let (outcome (start (float-time)))
    (write-region "" nil "$tmp/started")
    (setq outcome (condition-case nil
                      (progn (descent--mod-call "$socket" "test.sleep" [20000]) 'finished)
                    (quit 'quit)))
    (write-region (format "%s %.6f\n" outcome (float-time)) nil "$tmp/result")
    ;; The next call must work: a fresh connection, a daemon still serving.
    (write-region (format "%S\n" (plist-get (descent--mod-call "$socket" "status" []) :version))
                  nil "$tmp/after")
    (kill-emacs 0)))
(global-set-key (kbd "<f5>") #'descent-quit-test--drive)
(write-region "" nil "$tmp/ready")
LISP

tmux new-session -d -s "$session" -x 100 -y 30 \
  "TERM=xterm $emacs -nw -Q -l $tmp/driver.el 2>$tmp/stderr"
for _ in $(seq 200); do [[ -e $tmp/ready ]] && break; sleep 0.05; done
sleep 0.2
tmux send-keys -t "$session" F5
for _ in $(seq 200); do [[ -e $tmp/started ]] && break; sleep 0.05; done
[[ -e $tmp/started ]] || { echo "FAIL: the driver never started"; exit 1; }
sleep 0.3
pressed=$(date +%s.%N)
tmux send-keys -t "$session" C-g
for _ in $(seq 200); do [[ -s $tmp/after ]] && break; sleep 0.05; done

[[ -s $tmp/result ]] || { echo "FAIL: no result: C-g did not interrupt the call"; exit 1; }
read -r outcome returned < "$tmp/result"
latency_ms=$(awk -v a="$pressed" -v b="$returned" 'BEGIN { printf "%d", (b - a) * 1000 }')
echo "outcome: $outcome; control returned ${latency_ms} ms after C-g was sent"
[[ $outcome == quit ]] || { echo "FAIL: expected quit, got $outcome"; exit 1; }
(( latency_ms < limit_ms )) || { echo "FAIL: took ${latency_ms} ms (limit ${limit_ms} ms)"; exit 1; }
[[ $(cat "$tmp/after") == '"0.1.0"' || -s $tmp/after ]] || { echo "FAIL: the module did not work after C-g"; exit 1; }
grep -q "cancel" "$tmp/state/descent/descentd.log" || { echo "FAIL: the daemon never heard of the cancel"; cat "$tmp/state/descent/descentd.log"; exit 1; }
passed=yes
echo "1 passed, 0 failed"
