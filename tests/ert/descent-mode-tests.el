;;; descent-mode-tests.el --- Tests of descent-mode and loading -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; Loading turns `descent-mode' on without a prompt or a warning; turning
;; it off gives back every built-in binding and behaviour, and turning it
;; on again takes them.

;;; Code:

(require 'descent-test-helper)

(defvar descent-mode-tests--bindings-before
  (list (key-binding (kbd "C-x C-j")) (key-binding (kbd "C-x 4 C-j")))
  "The bindings of C-x C-j and C-x 4 C-j before descent was loaded.")

(defvar descent-mode-tests--load-time
  (let ((start (float-time)))
    (require 'descent)
    (- (float-time) start))
  "Seconds that `(require \\='descent)' took.")

(ert-deftest descent-mode-on-after-load ()
  "Loading turns the mode on, quietly and without loading the module."
  (should descent-mode)
  (should-not (get-buffer "*Warnings*"))
  (should-not (fboundp 'descent--mod-version))
  (should (equal descent-mode-tests--bindings-before
                 '(dired-jump dired-jump-other-window)))
  (message "require descent: %.1f ms" (* 1000 descent-mode-tests--load-time)))

(defun descent-mode-tests--bindings ()
  "What the keys and a user binding of `dired-jump' reach now."
  (list (key-binding (kbd "C-x C-j"))
        (key-binding (kbd "C-x 4 C-j"))
        (key-binding (kbd "C-c j"))
        (command-remapping 'dired-jump)
        (command-remapping 'dired-jump-other-window)))

(ert-deftest descent-mode-off-restores-built-ins ()
  "Off: every built-in binding back; on: descent's again."
  (let ((global (copy-keymap global-map)))
    (unwind-protect
        (progn
          (global-set-key (kbd "C-c j") #'dired-jump)
          (descent-mode 1)
          (pcase-dolist (`(,hook . ,function) descent--hooks)
            (should (memq function (default-value hook))))
          (should (equal (descent-mode-tests--bindings)
                         '(descent-jump descent-jump-other-window descent-jump
                                        descent-jump descent-jump-other-window)))
          (descent-mode -1)
          (should-not descent-mode)
          (should (equal (descent-mode-tests--bindings)
                         '(dired-jump dired-jump-other-window dired-jump nil nil)))
          ;; Nothing descent installs is left behind.
          (pcase-dolist (`(,symbol ,_how ,function) descent--advice)
            (should-not (advice-member-p function symbol)))
          (pcase-dolist (`(,hook . ,function) descent--hooks)
            (should-not (memq function (default-value hook))))
          (should (equal global-map global))
          (descent-mode 1)
          (pcase-dolist (`(,hook . ,function) descent--hooks)
            (should (memq function (default-value hook))))
          (should (equal (descent-mode-tests--bindings)
                         '(descent-jump descent-jump-other-window descent-jump
                                        descent-jump descent-jump-other-window))))
      (global-unset-key (kbd "C-c j"))
      (descent-mode 1))))

(ert-deftest descent-mode-off-built-in-behaviour ()
  "Off, C-x C-j runs the built-in `dired-jump' itself."
  (descent-test-with-directory
    (descent-test-make-files "f.txt")
    (find-file (descent-test-file "f.txt"))
    (let ((ran nil))
      (let ((record (lambda (&rest _) (setq ran 'descent))))
        (advice-add 'descent-jump :override record)
        (unwind-protect
            (progn
              (descent-mode -1)
              (execute-kbd-macro (kbd "C-x C-j"))
              (should-not ran)
              (should (derived-mode-p 'dired-mode))
              (should (equal (descent-test-point-file) (descent-test-file "f.txt")))
              (descent-mode 1)
              (execute-kbd-macro (kbd "C-x C-j"))
              (should (eq ran 'descent)))
          (advice-remove 'descent-jump record)
          (descent-mode 1))))))

(ert-deftest descent-mode-reload-keeps-choice ()
  "Reloading descent.el does not turn the mode back on."
  (unwind-protect
      (progn
        (descent-mode -1)
        (load (locate-library "descent.el") nil t t)
        (should-not descent-mode))
    (descent-mode 1)))

(ert-deftest descent-mode-autoloaded-toggle ()
  "M-x descent-mode before descent is loaded turns it on, not off.
A child Emacs, since this one has loaded descent already."
  (with-temp-buffer
    (should (zerop
             (call-process
              (expand-file-name invocation-name invocation-directory)
              nil t nil "-Q" "--batch"
              "-L" (file-name-directory (locate-library "descent"))
              "--eval" "(progn (autoload 'descent-mode \"descent\" nil t)
                         (setq this-command 'descent-mode)
                         (call-interactively #'descent-mode)
                         (princ (format \"mode=%s\" descent-mode)))")))
    (should (string-match-p "mode=t" (buffer-string)))))

(provide 'descent-mode-tests)
;;; descent-mode-tests.el ends here
