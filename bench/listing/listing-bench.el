;;; listing-bench.el --- Dired with descent's listing on vs off -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; Run by listing-bench.sh in `emacs -Q --batch', with the module, the
;; daemon and the generated directories given in the environment:
;; DESCENT_BENCH_MODULE, DESCENT_BENCH_DAEMON, DESCENT_BENCH_DIRS (the
;; directories, colon-separated), DESCENT_BENCH_OWNER_DIR (as many files
;; as the largest directory has, and one named after the user, who owns
;; them all), DESCENT_BENCH_RUNS and DESCENT_BENCH_FLOOR (a program
;; printing the bare loop's median ms for a directory).  Every case is
;; timed alternately on and off, the median of the runs is printed, with
;; the ratio off/on.

;;; Code:

(require 'cl-lib)
(require 'dired)

(setq descent-module-file (getenv "DESCENT_BENCH_MODULE")
      descent-daemon-program (getenv "DESCENT_BENCH_DAEMON")
      descent-record-visits nil)
(require 'descent)
(descent-mode 1)

(defvar listing-bench-runs (string-to-number (or (getenv "DESCENT_BENCH_RUNS") "5")))

(defun listing-bench-time (thunk)
  "Milliseconds THUNK takes, after a garbage collection."
  (garbage-collect)
  (let ((t0 (float-time)))
    (funcall thunk)
    (* 1000 (- (float-time) t0))))

(defun listing-bench-median (times)
  "The median of TIMES."
  (nth (/ (length times) 2) (sort (copy-sequence times) #'<)))

(defun listing-bench-kill-dired (dir)
  "Kill every Dired buffer of DIR."
  (dolist (buffer (dired-buffers-for-dir (expand-file-name dir)))
    (kill-buffer buffer)))

(defun listing-bench-on-off (setup thunk check)
  "Median ms of THUNK with the native listing on and off, as (ON . OFF).
SETUP runs untimed before each run, CHECK after it (it signals when
the result is wrong).  One untimed warm-up run of each comes first."
  (let (on off)
    (dotimes (i (1+ listing-bench-runs))
      (dolist (native '(t nil))
        (let ((descent-native-listing native))
          (funcall setup)
          (let ((ms (listing-bench-time thunk)))
            (funcall check)
            (when (> i 0)
              (if native (push ms on) (push ms off)))))))
    (cons (listing-bench-median on) (listing-bench-median off))))

(defun listing-bench-open (dir)
  "Open DIR in Dired until it is ready with point placed."
  (listing-bench-on-off
   (lambda () (listing-bench-kill-dired dir))
   (lambda () (dired dir))
   (lambda ()
     (unless (and (derived-mode-p 'dired-mode) (dired-get-filename nil t))
       (error "Dired on %s has point on no file" dir)))))

(defun listing-bench-jump (file)
  "C-x C-j from a buffer visiting FILE into a new Dired buffer."
  (let ((dir (file-name-directory file))
        (visiting (find-file-noselect file)))
    (prog1 (listing-bench-on-off
            (lambda ()
              (listing-bench-kill-dired dir)
              (set-buffer visiting))
            (lambda () (descent-jump))
            (lambda ()
              (unless (equal (dired-get-filename nil t) file)
                (error "Jump to %s landed on %s" file (dired-get-filename nil t)))))
      (kill-buffer visiting))))

(defun listing-bench-goto (file)
  "`dired-goto-file' FILE in its ready Dired buffer, as (ON . OFF).
Off is the built-in text search; on, descent's advice finds the name."
  (let ((dir (file-name-directory file)) on off)
    (listing-bench-kill-dired dir)
    (let ((descent-native-listing t)) (dired dir))
    (dotimes (i (1+ listing-bench-runs))
      (dolist (native '(t nil))
        (goto-char (point-min))
        (let ((ms (let ((descent-native-listing native))
                    (listing-bench-time (lambda () (dired-goto-file file))))))
          (unless (equal (dired-get-filename nil t) file)
            (error "goto %s landed on %s" file (dired-get-filename nil t)))
          (when (> i 0)
            (if native (push ms on) (push ms off))))))
    (listing-bench-kill-dired dir)
    (cons (listing-bench-median on) (listing-bench-median off))))

(defun listing-bench-revert (file)
  "`g' in FILE's Dired buffer with point on FILE, as (ON . OFF).
Dired puts point back with `dired-goto-file' after listing again."
  (let ((dir (file-name-directory file)))
    (listing-bench-kill-dired dir)
    (let ((descent-native-listing t)) (dired dir))
    (prog1 (listing-bench-on-off
            (lambda () (dired-goto-file file))
            (lambda () (revert-buffer))
            (lambda ()
              (unless (equal (dired-get-filename nil t) file)
                (error "Revert left point on %s" (dired-get-filename nil t)))))
      (listing-bench-kill-dired dir))))

(defun listing-bench-daemon-list (dir)
  "Median ms of the daemon's `list' of DIR with -al, through the module."
  (let ((socket (descent--socket-path))
        (params (vector (encode-coding-string (expand-file-name dir) 'utf-8)
                        ["--dired" "-al"] (descent--listing-environment)))
        times)
    (descent--mod-call socket "list" params)
    (dotimes (_ listing-bench-runs)
      (push (listing-bench-time (lambda () (descent--mod-call socket "list" params)))
            times))
    (listing-bench-median times)))

(defun listing-bench-floor (dir &optional plain)
  "Median ms of the bare getdents64+statx loop over DIR.
Scheduled as the engine schedules its statx calls; with PLAIN, one
thread in directory order."
  (with-temp-buffer
    (apply #'call-process (getenv "DESCENT_BENCH_FLOOR") nil t nil
           "floor-ms" dir (number-to-string listing-bench-runs)
           (and plain '("plain")))
    (string-to-number (buffer-string))))

(defun listing-bench-row (entries case pair)
  "Print one row: ENTRIES, CASE and the (ON . OFF) PAIR with its ratio."
  (princ (format "%8s  %-22s %10.1f %10.1f %8.2fx\n" entries case
                 (cdr pair) (car pair) (/ (cdr pair) (car pair)))))

(defun listing-bench-main ()
  "Run every case and print the table."
  (princ (format "dired-listing-switches %S, %s, median of %d runs\n"
                 dired-listing-switches
                 (or (getenv "LC_ALL") (getenv "LANG") "no locale")
                 listing-bench-runs))
  (princ (format "%8s  %-22s %10s %10s %9s\n" "entries" "case" "off ms" "on ms" "off/on"))
  (dolist (dir (split-string (getenv "DESCENT_BENCH_DIRS") ":" t))
    (let* ((dir (file-name-as-directory dir))
           (entries (length (directory-files dir nil nil t)))
           (entries (- entries 2))
           (file (expand-file-name (format "file-%07d.txt" (+ (/ entries 2) 2)) dir)))
      (listing-bench-row entries "open dired" (listing-bench-open dir))
      (listing-bench-row entries "C-x C-j from a file" (listing-bench-jump file))
      (let ((daemon (listing-bench-daemon-list dir))
            (floor (listing-bench-floor dir))
            (plain (listing-bench-floor dir t)))
        (princ (format "%8s  %-22s %10.1f %10.1f %8.2fx  (daemon list / floor, scheduled as the engine)\n"
                       entries "daemon list vs floor" floor daemon (/ daemon floor)))
        (princ (format "%8s  %-22s %10.1f %10.1f %8.2fx  (daemon list / floor, one thread in directory order)\n"
                       entries "daemon list vs loop" plain daemon (/ daemon plain))))))
  (let* ((dir (file-name-as-directory (getenv "DESCENT_BENCH_OWNER_DIR")))
         (entries (- (length (directory-files dir nil nil t)) 2))
         (file (expand-file-name (user-login-name) dir)))
    (listing-bench-row entries (format "C-x C-j to `%s'" (user-login-name))
                       (listing-bench-jump file))
    (listing-bench-row entries (format "dired-goto-file `%s'" (user-login-name))
                       (listing-bench-goto file))
    (listing-bench-row entries (format "g on `%s'" (user-login-name))
                       (listing-bench-revert file))))

(listing-bench-main)

;;; listing-bench.el ends here
