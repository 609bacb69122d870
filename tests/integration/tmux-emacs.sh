# Sourced by the C-g tests: a real, interactive `emacs -nw` in a private
# tmux server, on a temporary directory that is kept when the test fails.
#
#   tmux_emacs_setup NAME        make $tmp, the tmux wrapper, the clean-up
#                                trap and temporary XDG directories
#   tmux_emacs_start ARGS...     run `$emacs -nw -Q ARGS...` in tmux
#   tmux_emacs_drive SECS ARGS...  the same, wait (at most SECS) for the
#                                driver to write $tmp/ready, then press F5
#   wait_for FILE [SECONDS]      wait until FILE exists (default 10 s);
#                                status 1 if it never does
#   wait_for_text FILE [SECONDS] the same, until FILE is not empty
#   latency_ms FROM TO           milliseconds between two `date +%s.%N` stamps
#   wdired_edit_f_to_g_lisp      Lisp for a driver: wdired on the current Dired
#                                buffer, every name f... edited to g...
#
# Set `passed=yes` at the end of a successful test.

tmux_emacs_setup() {
  tmp=$(mktemp -d "/tmp/descent-$1-XXXXXX")
  session=descent-$1-$$
  trap tmux_emacs_cleanup EXIT
  mkdir -m 700 "$tmp/run"
  export XDG_RUNTIME_DIR=$tmp/run XDG_STATE_HOME=$tmp/state XDG_DATA_HOME=$tmp/data
}

# A private tmux server: it starts with the test's environment (and so
# passes LD_PRELOAD of a sanitizer build on), and leaves the user's alone.
tmux() { command tmux -L "$session" "$@"; }

tmux_emacs_cleanup() {
  tmux kill-server 2>/dev/null || true
  [[ -e $tmp/run/descent/descentd.pid ]] && kill "$(cat "$tmp/run/descent/descentd.pid")" 2>/dev/null || true
  if [[ ${passed:-no} == yes ]]; then rm -rf "$tmp"; else echo "kept $tmp for inspection"; fi
}

tmux_emacs_start() {
  tmux new-session -d -s "$session" -x 100 -y 30 "TERM=xterm $emacs -nw -Q $* 2>$tmp/stderr"
}

tmux_emacs_drive() {
  local secs=$1
  shift
  tmux_emacs_start "$@"
  wait_for "$tmp/ready" "$secs" || { echo "FAIL: Emacs never loaded the driver"; cat "$tmp/stderr"; exit 1; }
  sleep 0.2  # let Emacs go back to reading keys
  tmux send-keys -t "$session" F5
}

wait_for() {
  local tries=$(( ${2:-10} * 100 ))
  for _ in $(seq "$tries"); do [[ -e $1 ]] && return 0; sleep 0.01; done
  return 1
}

wait_for_text() {
  local tries=$(( ${2:-10} * 100 ))
  for _ in $(seq "$tries"); do [[ -s $1 ]] && return 0; sleep 0.01; done
  return 1
}

latency_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

wdired_edit_f_to_g_lisp() {
  cat <<'LISP'
(wdired-change-to-wdired-mode)
;; Every name f... becomes g...
(wdired--before-change-fn (point-min) (point-max))
(let ((pos (point-min)))
  (while (setq pos (next-single-property-change pos 'old-name))
    (when (get-text-property pos 'old-name)
      (goto-char (1+ pos))
      (when (eq (char-after) ?f) (delete-char 1) (insert "g")))
    (setq pos (1+ pos))))
LISP
}
