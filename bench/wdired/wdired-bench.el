;;; wdired-bench.el --- C-c C-c: descent vs the built-in vs the floor -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; Run by bench/wdired/run.sh.  For each size N, in one run: a directory
;; of N files f000000..., opened in Dired, every name edited to g...
;; in wdired (not timed), then the commit timed from C-c C-c until the
;; buffer is back in Dired showing the new names: with descent-mode on
;; (`descent-finish-edit'), with it off (the built-in
;; `wdired-finish-edit'), and the bare renameat2 loop on a fresh tree of
;; the same size (the floor).  Prints medians and ratios, and the
;; garbage collection descent leaves until Emacs is idle (after the
;; buffer shows: not in "descent s", timed apart).  The built-in
;; is quadratic: above DESCENT_BENCH_BUILTIN_MAX entries (default 10000)
;; it is skipped.

;;; Code:

(require 'descent)
(require 'descent-wdired)
(require 'wdired)

(defvar wdired-bench-floor (getenv "DESCENT_BENCH_FLOOR"))
(defvar wdired-bench-root (file-name-as-directory (make-temp-file "descent-wdired-bench-" t)))
(defvar wdired-bench-counter 0)

(defun wdired-bench--populate (n)
  "A fresh directory of N files; return its name."
  (let ((dir (expand-file-name (format "d%d" (cl-incf wdired-bench-counter)) wdired-bench-root)))
    (unless (zerop (call-process wdired-bench-floor nil nil nil "populate" dir (number-to-string n)))
      (error "Populating %s failed" dir))
    (file-name-as-directory dir)))

(defun wdired-bench--edited-buffer (dir)
  "Dired DIR, enter wdired and rename every f... to g...; return the buffer."
  (let ((buffer (dired-noselect dir))
        ;; Emacs's own messages ("Press C-c C-c when finished") would
        ;; interleave with the table.
        (inhibit-message t))
    (with-current-buffer buffer
      (wdired-change-to-wdired-mode)
      (wdired--before-change-fn (point-min) (point-max))
      (let ((pos (point-min)))
        (while (setq pos (next-single-property-change pos 'old-name))
          (when (get-text-property pos 'old-name)
            (goto-char (1+ pos))
            (when (eq (char-after) ?f)
              (delete-char 1)
              (insert "g")))
          (setq pos (1+ pos)))))
    buffer))

(defun wdired-bench--commit (dir descent)
  "Seconds to commit the edited Dired buffer of DIR, with DESCENT or not.
With DESCENT, a cons: those seconds and the seconds of the garbage
collection that descent leaves until Emacs is idle (batch Emacs never
is: it is run here, timed apart)."
  (let ((buffer (wdired-bench--edited-buffer dir)))
    (garbage-collect)
    (descent-mode (if descent 1 -1))
    (prog1 (with-current-buffer buffer
             (let ((start (float-time))
                   (inhibit-message t))
               (if descent (descent-finish-edit) (wdired-finish-edit))
               (let ((seconds (- (float-time) start)))
                 (unless (and (eq major-mode 'dired-mode)
                              (file-exists-p (expand-file-name "g000000" dir))
                              (not (file-exists-p (expand-file-name "f000000" dir))))
                   (error "The commit of %s did not happen" dir))
                 (if (not descent)
                     seconds
                   (let ((idle (float-time)))
                     (descent--wdired-release-gc)
                     (garbage-collect)
                     (cons seconds (- (float-time) idle)))))))
      (descent-mode 1)
      (kill-buffer buffer)
      (delete-directory dir t))))

(defun wdired-bench--floor (n)
  "Seconds of the bare renameat2 loop over N files."
  (let ((dir (wdired-bench--populate n)))
    (prog1 (with-temp-buffer
             (call-process wdired-bench-floor nil t nil "rename" dir (number-to-string n))
             (string-to-number (buffer-string)))
      (delete-directory dir t))))

(defun wdired-bench--median (values)
  "The median of VALUES, or nil."
  (when values
    (nth (/ (length values) 2) (sort (copy-sequence values) #'<))))

(defun wdired-bench-run ()
  "Measure and print the table."
  (let* ((sizes (mapcar #'string-to-number
                        (split-string (or (getenv "DESCENT_BENCH_SIZES") "1000 10000 100000"))))
         (runs (string-to-number (or (getenv "DESCENT_BENCH_RUNS") "5")))
         (builtin-max (string-to-number (or (getenv "DESCENT_BENCH_BUILTIN_MAX") "10000")))
         (rows nil))
    ;; Warm up: the module, the daemon, the Lisp.
    (wdired-bench--commit (wdired-bench--populate 10) t)
    (dolist (n sizes)
      (let (floor descent idle-gc builtin)
        (dotimes (_ (if (>= n 100000) (max 1 (/ runs 2)) runs))
          (push (wdired-bench--floor n) floor)
          (let ((times (wdired-bench--commit (wdired-bench--populate n) t)))
            (push (car times) descent)
            (push (cdr times) idle-gc))
          (when (<= n builtin-max)
            (push (wdired-bench--commit (wdired-bench--populate n) nil) builtin)))
        (push (list n (wdired-bench--median floor) (wdired-bench--median descent)
                    (wdired-bench--median builtin) (wdired-bench--median idle-gc))
              rows)
        (message "%d done" n)))
    (princ (format "%-8s %10s %10s %10s %12s %10s %10s %12s\n"
                   "renames" "floor s" "descent s" "built-in s" "target s" "d/floor" "b/d"
                   "idle GC s"))
    (pcase-dolist (`(,n ,floor ,descent ,builtin ,idle-gc) (nreverse rows))
      (princ (format "%-8d %10.3f %10.3f %10s %12.3f %10.2f %10s %12.3f\n"
                     n floor descent
                     (if builtin (format "%.3f" builtin) "skipped")
                     (+ (* 1.5 floor) 0.1)
                     (/ descent floor)
                     (if builtin (format "%.1f" (/ builtin descent)) "-")
                     idle-gc)))
    (delete-directory wdired-bench-root t)))

(wdired-bench-run)

;;; wdired-bench.el ends here
