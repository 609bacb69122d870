#!/usr/bin/env bash
# C-g during C-c C-c when descentd accepts connections but never answers
# (stopped with SIGSTOP) and Emacs has no connection yet: the wait is the
# handshake's, which C-g must cut short at once as well, not after its 5 s.
# Nothing is sent, so the tree stays as it was, also once the daemon goes on.
# Usage: wdired-quit-stopped-test.sh EMACS LISP-DIR MODULE DESCENTD
set -euo pipefail
emacs=$1 lisp=$(realpath "$2") module=$(realpath "$3") descentd=$(realpath "$4")
limit_ms=${QUIT_LIMIT_MS:-250}  # the design asks for 100 ms; the margin absorbs a loaded CI machine

source "$(dirname "$0")/tmux-emacs.sh"
tmux_emacs_setup wdired-quit-stopped
mkdir "$tmp/tree"
(cd "$tmp/tree" && touch f1 f2 f3)
snapshot() { (cd "$tmp/tree" && find . -printf '%i %p\n' | sort); }
snapshot > "$tmp/before"

cat > "$tmp/driver.el" <<LISP
(setq descent-module-file "$module" descent-daemon-program "$descentd"
      descent-native-listing nil descent-record-visits nil)
(add-to-list 'load-path "$lisp")
(require 'descent)
(require 'descent-wdired)
(descent-mode 1)
(dired "$tmp/tree/")
$(wdired_edit_f_to_g_lisp)
(advice-add 'descent--wdired-submit :before
            (lambda (&rest _) (write-region "" nil "$tmp/submitting")))
(defun descent-quit-test--drive ()
  "Commit, as C-c C-c does."
  (interactive)
  (let ((outcome (condition-case err
                     (progn (call-interactively #'descent-finish-edit) 'finished)
                   (quit 'quit)
                   (error (write-region (format "%S\n" err) nil "$tmp/error") 'error))))
    (write-region (format "%s %.6f %s\n" outcome (float-time) major-mode) nil "$tmp/result")))
(local-set-key (kbd "<f5>") #'descent-quit-test--drive)
(write-region "" nil "$tmp/ready")
LISP

tmux_emacs_start -l "$tmp/driver.el"
wait_for "$tmp/ready" 60 || { echo "FAIL: Emacs never loaded the driver"; cat "$tmp/stderr"; exit 1; }
# C-x C-q asked the daemon Emacs started for the files' inodes. A new one
# takes its place, so that the commit connects afresh, and it hangs.
first=$(cat "$tmp/run/descent/descentd.pid")
kill "$first"
while kill -0 "$first" 2>/dev/null; do sleep 0.05; done
"$descentd"  # daemonizes once it listens
pid=$(cat "$tmp/run/descent/descentd.pid")
kill -STOP "$pid"
trap 'kill -CONT "$pid" 2>/dev/null; tmux_emacs_cleanup' EXIT
tmux send-keys -t "$session" F5
wait_for "$tmp/submitting" 10 || { echo "FAIL: the commit never began"; cat "$tmp/error" 2>/dev/null; exit 1; }
sleep 0.5
pressed=$(date +%s.%N)
tmux send-keys -t "$session" C-g
wait_for_text "$tmp/result" 20 || { echo "FAIL: no result: C-g did not interrupt the commit"; exit 1; }
read -r outcome returned mode < "$tmp/result"
latency_ms=$(latency_ms "$pressed" "$returned")
echo "outcome: $outcome; control returned ${latency_ms} ms after C-g was sent; mode $mode"
[[ $outcome == quit ]] || { echo "FAIL: expected quit, got $outcome"; cat "$tmp/error" 2>/dev/null; exit 1; }
(( latency_ms < limit_ms )) || { echo "FAIL: took ${latency_ms} ms (limit ${limit_ms} ms)"; exit 1; }
[[ $mode == wdired-mode ]] || { echo "FAIL: the buffer left wdired ($mode)"; exit 1; }
kill -CONT "$pid"
sleep 1
snapshot > "$tmp/after"
cmp -s "$tmp/before" "$tmp/after" || { echo "FAIL: the tree changed"; diff "$tmp/before" "$tmp/after"; exit 1; }
passed=yes
echo "1 passed, 0 failed"
