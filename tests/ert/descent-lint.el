;;; descent-lint.el --- Byte-compile and checkdoc descent's Lisp -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; emacs -Q --batch -L lisp -l tests/ert/descent-lint.el FILE...
;; Byte-compiles each FILE with warnings as errors (into a temporary
;; directory: a stale .elc beside the source would shadow it), then runs
;; checkdoc on it.  Exits non-zero on the first complaint.

;;; Code:

(require 'checkdoc)

;; Compiling descent-wdired.el loads descent.el, which turns descent-mode
;; on; checkdoc then visits each file, and recording that visit would
;; load the module (an ASan build's cannot load here) and warn.
(defvar descent-record-visits)
(setq descent-record-visits nil)

(let ((out (make-temp-file "descent-lint-" t))
      (failed nil))
  (setq byte-compile-error-on-warn t)
  (setq byte-compile-dest-file-function
        (lambda (file) (expand-file-name
                        (concat (file-name-nondirectory file) "c") out)))
  (dolist (file command-line-args-left)
    (unless (byte-compile-file file)
      (message "%s: byte-compilation failed" file)
      (setq failed t))
    ;; In batch mode checkdoc reports through `display-warning'.
    (when (get-buffer "*Warnings*") (kill-buffer "*Warnings*"))
    (checkdoc-file file)
    (when (get-buffer "*Warnings*")
      (message "%s: checkdoc complained" file)
      (setq failed t)))
  (delete-directory out t)
  (setq command-line-args-left nil)
  (kill-emacs (if failed 1 0)))

;;; descent-lint.el ends here
