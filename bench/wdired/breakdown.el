;;; breakdown.el --- where a C-c C-c's time goes -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; A preload for bench/wdired/run.sh:
;;   DESCENT_BENCH_PRELOAD=bench/wdired/breakdown.el bench/wdired/run.sh BUILD
;; Times each phase of `descent-finish-edit' with advice and prints one
;; line per commit of 1000 renames or more, to stderr.

;;; Code:

(require 'descent-wdired)

(defvar breakdown--times nil "Alist (PHASE . SECONDS) of the commit being timed.")

(defconst breakdown--phases
  '((descent--wdired-collect . collect)
    (descent--wdired-translate . translate)
    (descent--wdired-check-parents . parents)
    (descent--wdired-identify . identify)
    (descent--wdired-ops . ops)
    (descent--mod-rename-submit . submit)
    (descent--wdired-leave . leave)
    (revert-buffer . revert)
    (descent--wdired-mark-new-names . marks)
    (descent--wdired-revert-all . others))
  "The functions timed, and the name each phase is printed under.")

(defun breakdown--timer (phase)
  "Advice that adds the time of the advised call to PHASE."
  (lambda (function &rest args)
    (let ((start (float-time)))
      (unwind-protect (apply function args)
        (push (cons phase (- (float-time) start)) breakdown--times)))))

(pcase-dolist (`(,function . ,phase) breakdown--phases)
  (advice-add function :around (breakdown--timer phase) `((name . ,phase))))

(advice-add 'descent-finish-edit :around
            (lambda (function &rest args)
              (setq breakdown--times nil)
              (let ((lines (count-lines (point-min) (point-max)))
                    (start (float-time)))
                (prog1 (apply function args)
                  (when (>= lines 1000)
                    ;; The bench silences Emacs's messages; not this one.
                    (let ((inhibit-message nil))
                      (message "%7d lines %.3f s: %s" lines (- (float-time) start)
                               (mapconcat (lambda (entry)
                                            (format "%s %.3f" (car entry) (cdr entry)))
                                          (reverse breakdown--times) ", ")))))))
            '((name . breakdown)))

;;; breakdown.el ends here
