;;; descent-fallback-tests.el --- descent without its module -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; A module that is not built: the commands use the built-ins, one
;; warning says how to build it, and C-x C-j keeps working.  This file
;; runs in its own Emacs, since a loaded module cannot be unloaded.

;;; Code:

(require 'descent-test-helper)
(require 'descent)

(defun descent-fallback-tests--warnings ()
  "The text of the *Warnings* buffer, or the empty string."
  (if (get-buffer "*Warnings*")
      (with-current-buffer "*Warnings*" (buffer-string))
    ""))

(defun descent-fallback-tests--count (regexp string)
  "How many times REGEXP matches in STRING."
  (let ((count 0) (start 0))
    (while (string-match regexp string start)
      (setq count (1+ count) start (match-end 0)))
    count))

(ert-deftest descent-fallback-missing-module ()
  "Missing module: built-ins, one warning naming the cause and the fix."
  (let* ((descent-test-directory descent-test-root)
         (descent-module-file (descent-test-file "no/descent-module.so"))
         (descent--module-status nil)
         (descent--warned nil))
    (when (get-buffer "*Warnings*") (kill-buffer "*Warnings*"))
    (should-not (descent--module-usable-p))
    (should-not (descent--module-usable-p))
    (let ((warnings (descent-fallback-tests--warnings)))
      (should (= 1 (descent-fallback-tests--count "Warning (descent)" warnings)))
      (should (string-match-p "descent-build-module\\|not found\\|does not exist" warnings)))
    ;; A command that needs the daemon says so instead of failing obscurely.
    (let ((err (should-error (descent-status) :type 'user-error)))
      (should (string-match-p "module" (cadr err))))
    ;; Still one warning.
    (should (= 1 (descent-fallback-tests--count
                  "Warning (descent)" (descent-fallback-tests--warnings))))))

(ert-deftest descent-fallback-jump-still-works ()
  "Without the module, C-x C-j still jumps."
  (let ((descent-module-file "/nonexistent/descent-module.so"))
    (descent-test-with-directory
      (descent-test-make-files "a/b.txt")
      (find-file (descent-test-file "a/b.txt"))
      (execute-kbd-macro (kbd "C-x C-j"))
      (should (derived-mode-p 'dired-mode))
      (should (equal (descent-test-point-file) (descent-test-file "a/b.txt"))))))

(ert-deftest descent-fallback-module-found-later ()
  "A missing module is looked for again: it may have been built since."
  (let ((descent-module-file "/nonexistent/descent-module.so")
        (descent--module-status nil))
    (should-not (descent--module-usable-p))
    (should (eq (car descent--module-status) 'missing))
    (let* ((descent-test-directory descent-test-root)
           (descent-module-file (descent-test-file "not-a-module.so")))
      ;; Not a module at all: refused for good, with the file named.
      (write-region "not an ELF file" nil descent-module-file nil 'silent)
      (should-not (descent--module-usable-p))
      (should (eq (car descent--module-status) 'load-failed))
      (should (string-match-p "not-a-module" (cdr descent--module-status))))))

(ert-deftest descent-fallback-prefix-reads-file-name ()
  "Without the module, C-u C-x C-j reads a file name, as the built-in does.
Only the minibuffer is replaced: batch Emacs reads it from stdin."
  (let ((descent-module-file "/nonexistent/descent-module.so")
        (descent--module-status nil)
        (asked nil))
    (descent-test-with-directory
      (descent-test-make-files "r/f.txt")
      (cl-letf (((symbol-function 'read-file-name)
                 (lambda (prompt &rest _)
                   (setq asked prompt)
                   (descent-test-file "r/f.txt"))))
        (let ((current-prefix-arg '(4)))
          (call-interactively #'descent-jump)))
      (should asked)
      (should (derived-mode-p 'dired-mode))
      (should (equal (descent-test-point-file) (descent-test-file "r/f.txt"))))))

;; `descent--checkout' is a constant for users; the tests bind it to a
;; made-up checkout.
(ert-deftest descent-fallback-module-search-order ()
  "build/default first, then other build trees but never a sanitizer one."
  (descent-test-with-directory
    (let ((descent--checkout descent-test-directory)
          (descent-module-file nil)
          (name (descent--module-name)))
      (descent-test-make-files "CMakePresets.json"
                               (concat "build/asan/module/" name))
      ;; Only a sanitizer build: it would abort Emacs, so none is found
      ;; (unless one is on `load-path').
      (let ((load-path nil))
        (should-not (descent--module-locate)))
      (descent-test-make-files (concat "build/lisp/module/" name))
      (should (equal (descent--module-locate)
                     (descent-test-file (concat "build/lisp/module/" name))))
      (descent-test-make-files (concat "build/default/module/" name))
      (should (equal (descent--module-locate)
                     (descent-test-file (concat "build/default/module/" name))))
      ;; And the daemon beside the module that was loaded.
      (descent-test-make-files "build/default/daemon/server/descentd")
      (set-file-modes (descent-test-file "build/default/daemon/server/descentd")
                      #o755)
      (let ((descent--module-loaded-file
             (descent-test-file (concat "build/default/module/" name)))
            (descent-daemon-program nil))
        (should (equal (descent--daemon-program)
                       (descent-test-file "build/default/daemon/server/descentd")))))))

(ert-deftest descent-fallback-build-module ()
  "`descent-build-module' runs CMake asynchronously from the checkout.
Only `compilation-start' is replaced: a real build takes minutes."
  (let ((started nil))
    (cl-letf (((symbol-function 'compilation-start)
               (lambda (command &rest _)
                 (push (list command default-directory) started)
                 (get-buffer-create "*descent-build-test*"))))
      (if (not descent--checkout)
          (should-error (descent-build-module) :type 'user-error)
        (descent-build-module)
        (should (equal (cadr (car started)) descent--checkout))
        (should (string-match-p "\\`cmake --preset default && cmake --build \
--preset default --target descent-module descentd descent\\'"
                                (caar started)))
        ;; Auto-compile: a missing module starts one build, once.
        (setq started nil)
        (let ((descent-module-file "/nonexistent/descent-module.so")
              (descent-module-auto-compile t)
              (descent--module-status nil)
              (descent--build-buffer nil))
          (should-not (descent--module-usable-p))
          (should-not (descent--module-usable-p))
          (should (= 1 (length started)))))
      (kill-buffer "*descent-build-test*"))))

(provide 'descent-fallback-tests)
;;; descent-fallback-tests.el ends here
