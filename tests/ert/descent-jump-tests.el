;;; descent-jump-tests.el --- Tests of descent-jump -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; Every case of issue #2's "what a user must be able to do" for
;; C-x C-j, on real temporary trees.  `descent-jump' needs neither the
;; module nor the daemon.

;;; Code:

(require 'descent-test-helper)
(require 'descent)
(require 'dired-x)
(require 'tar-mode)
(require 'arc-mode)

(defun descent-jump-tests--visit (file)
  "Visit FILE in the selected window and return its buffer."
  (find-file (descent-test-file file)))

(ert-deftest descent-jump-from-file ()
  "From a file buffer: its directory, point on the file."
  (descent-test-with-directory
    (descent-test-make-files "a/b.txt" "a/c.txt" "a/d.txt")
    (descent-jump-tests--visit "a/c.txt")
    (call-interactively #'descent-jump)
    (should (derived-mode-p 'dired-mode))
    (should (equal default-directory (descent-test-file "a/")))
    (should (equal (descent-test-point-file) (descent-test-file "a/c.txt")))))

(ert-deftest descent-jump-again-climbs ()
  "Pressed again in Dired: the parent, point on the directory left."
  (descent-test-with-directory
    (descent-test-make-files "x/a/b.txt" "x/a2/" "x/z/")
    (descent-jump-tests--visit "x/a/b.txt")
    (descent-jump)
    (descent-jump)
    (should (derived-mode-p 'dired-mode))
    (should (equal default-directory (descent-test-file "x/")))
    (should (equal (descent-test-point-file) (descent-test-file "x/a")))
    (descent-jump)
    (should (equal (descent-test-point-file) (descent-test-file "x")))))

(ert-deftest descent-jump-through-keys ()
  "C-x C-j reaches `descent-jump' while the mode is on."
  (descent-test-with-directory
    (descent-test-make-files "k/f.txt")
    (descent-jump-tests--visit "k/f.txt")
    (should (eq (key-binding (kbd "C-x C-j")) #'descent-jump))
    (execute-kbd-macro (kbd "C-x C-j"))
    (should (derived-mode-p 'dired-mode))
    (should (equal (descent-test-point-file) (descent-test-file "k/f.txt")))))

(ert-deftest descent-jump-other-window ()
  "C-x 4 C-j: the same in another window; the file stays shown."
  (descent-test-with-directory
    (descent-test-make-files "o/f.txt" "o/g.txt")
    (let ((file-buffer (descent-jump-tests--visit "o/g.txt"))
          (file-window (selected-window)))
      (call-interactively #'descent-jump-other-window)
      (should (derived-mode-p 'dired-mode))
      (should-not (eq (selected-window) file-window))
      (should (eq (window-buffer file-window) file-buffer))
      (should (equal (descent-test-point-file) (descent-test-file "o/g.txt")))
      ;; And from there, up a level in yet another window.
      (let ((dired-window (selected-window)))
        (descent-jump-other-window)
        (should-not (eq (selected-window) dired-window))
        (should (equal (descent-test-point-file) (descent-test-file "o")))))))

(ert-deftest descent-jump-from-buffer-without-file ()
  "From a buffer visiting no file: Dired of `default-directory'."
  (descent-test-with-directory
    (descent-test-make-files "n/f.txt")
    (let ((buffer (get-buffer-create "*descent-test-no-file*")))
      (unwind-protect
          (progn
            (switch-to-buffer buffer)
            (setq default-directory (descent-test-file "n/"))
            (descent-jump)
            (should (derived-mode-p 'dired-mode))
            (should (equal default-directory (descent-test-file "n/"))))
        (kill-buffer buffer)))))

(ert-deftest descent-jump-to-file-name ()
  "FILE-NAME: its line; a name ending in a slash: that directory."
  (descent-test-with-directory
    (descent-test-make-files "f/a.txt" "f/sub/b.txt")
    (descent-jump nil "f/sub/b.txt")
    (should (equal (descent-test-point-file) (descent-test-file "f/sub/b.txt")))
    (descent-jump nil (descent-test-file "f/sub/"))
    (should (equal default-directory (descent-test-file "f/sub/")))))

(ert-deftest descent-jump-omitted-file ()
  "A file hidden by `dired-omit-mode' gets point: omitting turns off.
The built-in fails here; checking it too keeps the test honest."
  (descent-test-with-directory
    (descent-test-make-files "h/.hidden" "h/seen.txt")
    (let ((dired-omit-files "\\`\\.hidden\\'")
          (dired-mode-hook (cons #'dired-omit-mode dired-mode-hook)))
      ;; The built-in leaves omitting on and point off the file.
      (descent-jump-tests--visit "h/.hidden")
      (dired-jump)
      (should dired-omit-mode)
      (should-not (equal (descent-test-point-file) (descent-test-file "h/.hidden")))
      (kill-buffer (current-buffer))
      ;; descent turns it off and finds the file.
      (descent-jump-tests--visit "h/.hidden")
      (descent-jump)
      (should-not dired-omit-mode)
      (should (equal (descent-test-point-file) (descent-test-file "h/.hidden"))))))

(ert-deftest descent-jump-up-to-omitted-directory ()
  "Going up onto a directory that omitting hides turns omitting off."
  (descent-test-with-directory
    (descent-test-make-files "u/.cache/f.txt" "u/seen/")
    (let ((dired-omit-files "\\`\\.cache\\'")
          (dired-mode-hook (cons #'dired-omit-mode dired-mode-hook)))
      (dired (descent-test-file "u/.cache/"))
      (descent-jump)
      (should (equal default-directory (descent-test-file "u/")))
      (should-not dired-omit-mode)
      (should (equal (descent-test-point-file) (descent-test-file "u/.cache"))))))

(ert-deftest descent-jump-refreshes-stale-listing ()
  "A file created after its Dired buffer was made still gets point.
Going up refreshes the parent only: the directory left is not inserted
as a subdirectory (as the built-in does)."
  (descent-test-with-directory
    (descent-test-make-files "s/old.txt")
    (dired (descent-test-file "s/"))
    (let ((dired-buffer (current-buffer)))
      (descent-test-make-files "s/new.txt")
      (descent-jump-tests--visit "s/new.txt")
      (descent-jump)
      (should (eq (current-buffer) dired-buffer))
      (should (equal (descent-test-point-file) (descent-test-file "s/new.txt"))))
    ;; A directory created after its parent's listing.
    (dired descent-test-directory)
    (let ((parent (current-buffer)))
      (descent-test-make-files "later/")
      (dired (descent-test-file "later/"))
      (descent-jump)
      (should (eq (current-buffer) parent))
      (should (equal (descent-test-point-file) (descent-test-file "later")))
      (should (= 1 (length dired-subdir-alist))))))

(ert-deftest descent-jump-new-unsaved-file ()
  "A new, unsaved file: its directory, or the nearest that exists."
  (descent-test-with-directory
    (descent-test-make-files "w/old.txt")
    (descent-jump-tests--visit "w/new.txt")
    (should-not (file-exists-p buffer-file-name))
    (descent-jump)
    (should (derived-mode-p 'dired-mode))
    (should (equal default-directory (descent-test-file "w/")))
    (descent-jump-tests--visit "w/not/yet/new.txt")
    (descent-jump)
    (should (derived-mode-p 'dired-mode))
    (should (equal default-directory (descent-test-file "w/")))))

(ert-deftest descent-jump-deleted-directory-still-in-dired ()
  "A file whose directory was deleted while a Dired buffer shows it.
The built-in switches to that buffer, point on the file: so does
descent, rather than go to the nearest directory that exists."
  (descent-test-with-directory
    (descent-test-make-files "gone/f.txt" "gone/g.txt")
    (dired (descent-test-file "gone/"))
    (let ((dired-buffer (current-buffer)))
      (descent-jump-tests--visit "gone/g.txt")
      (delete-directory (descent-test-file "gone/") t)
      (descent-jump)
      (should (eq (current-buffer) dired-buffer))
      (should (equal (descent-test-point-file) (descent-test-file "gone/g.txt"))))
    ;; Without such a buffer: the nearest directory that exists.
    (descent-test-make-files "gone2/h.txt")
    (descent-jump-tests--visit "gone2/h.txt")
    (delete-directory (descent-test-file "gone2/") t)
    (descent-jump)
    (should (equal default-directory descent-test-directory))))

(define-derived-mode descent-jump-tests--listing-mode dired-mode "Listing"
  "A mode derived from Dired whose buffer lists no one directory, as
`locate-mode' is.")

(ert-deftest descent-jump-from-a-mode-derived-from-dired ()
  "Like the built-in: only Dired itself goes up; others dired their directory."
  (descent-test-with-directory
    (descent-test-make-files "d/")
    (with-current-buffer (get-buffer-create "*descent listing*")
      (let ((default-directory (descent-test-file "d/")))
        (descent-jump-tests--listing-mode)
        (descent-jump)
        (should (eq major-mode 'dired-mode))
        (should (equal default-directory (descent-test-file "d/"))))
      (kill-buffer "*descent listing*"))))

(ert-deftest descent-jump-goto-file-wants-an-absolute-name ()
  "`dired-goto-file' finds lines by name, and refuses what the built-in refuses."
  (descent-test-with-directory
    (descent-test-make-files "a" "b")
    (dired descent-test-directory)
    (should (dired-goto-file (descent-test-file "b")))
    (should (equal (descent-test-point-file) (descent-test-file "b")))
    (should-error (dired-goto-file "a") :type 'error)))

(ert-deftest descent-jump-at-root ()
  "Going up from / stays at / without an error."
  (dired "/")
  (unwind-protect
      (progn
        (descent-jump)
        (should (equal (expand-file-name default-directory) "/")))
    (kill-buffer (current-buffer))))

(ert-deftest descent-jump-tar-member ()
  "A tar member's buffer returns to its tar buffer."
  (skip-unless (executable-find "tar"))
  (descent-test-with-directory
    (descent-test-make-files "t/m.txt")
    (should (zerop (call-process "tar" nil nil nil "-cf" "t.tar" "-C" "t" "m.txt")))
    (let ((tar-buffer (descent-jump-tests--visit "t.tar")))
      (should (derived-mode-p 'tar-mode))
      (goto-char (point-min))
      (tar-extract)
      (should tar-subfile-mode)
      (should-not (eq (current-buffer) tar-buffer))
      (descent-jump)
      (should (eq (current-buffer) tar-buffer))
      ;; In another window, too.
      (tar-extract)
      (let ((member-window (selected-window)))
        (descent-jump-other-window)
        (should (eq (current-buffer) tar-buffer))
        (should-not (eq (selected-window) member-window)))
      ;; The archive's buffer killed: its directory, with point on it.
      (let ((member (window-buffer (next-window))))
        (delete-other-windows)
        (kill-buffer tar-buffer)
        (switch-to-buffer member)
        (descent-jump)
        (should (derived-mode-p 'dired-mode))
        (should (equal default-directory descent-test-directory))
        (should (equal (descent-test-point-file) (descent-test-file "t.tar")))))))

(ert-deftest descent-jump-zip-member ()
  "A zip member's buffer returns to its archive buffer."
  (skip-unless (and (executable-find "zip") (executable-find "unzip")))
  (descent-test-with-directory
    (descent-test-make-files "z/m.txt")
    (let ((default-directory (descent-test-file "z/")))
      (should (zerop (call-process "zip" nil nil nil "-q" "../z.zip" "m.txt"))))
    (let ((zip-buffer (descent-jump-tests--visit "z.zip")))
      (should (derived-mode-p 'archive-mode))
      (goto-char (point-min))
      (re-search-forward "m\\.txt")
      (archive-extract)
      (should archive-subfile-mode)
      (should-not (eq (current-buffer) zip-buffer))
      (descent-jump)
      (should (eq (current-buffer) zip-buffer)))))

(defmacro descent-jump-tests--recording-built-in (calls &rest body)
  "Run BODY with `dired-jump' recording its arguments in CALLS.
The built-in must not run: it would connect to the remote host."
  (declare (indent 1))
  (let ((record (make-symbol "record")))
    `(let ((,record (lambda (&rest args) (push args ,calls))))
       (advice-add 'dired-jump :override ,record)
       (unwind-protect (progn ,@body)
         (advice-remove 'dired-jump ,record)))))

(ert-deftest descent-jump-remote-uses-built-in ()
  "TRAMP buffers and names go to the built-in, arguments unchanged."
  (let ((calls nil)
        (buffer (get-buffer-create "*descent-test-remote*")))
    (unwind-protect
        (descent-jump-tests--recording-built-in calls
          (with-current-buffer buffer
            (setq default-directory "/ssh:nobody@host.invalid:/tmp/")
            (descent-jump)
            (descent-jump-other-window)
            (setq default-directory "/")
            (descent-jump nil "/sudo::/etc/hosts")))
      (kill-buffer buffer))
    (should (equal (reverse calls)
                   '((nil nil) (t nil) (nil "/sudo::/etc/hosts"))))))

(provide 'descent-jump-tests)
;;; descent-jump-tests.el ends here
