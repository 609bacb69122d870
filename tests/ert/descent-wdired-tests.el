;;; descent-wdired-tests.el --- C-x C-q ... C-c C-c through descent -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; The real module and daemon commit real wdired buffers on real
;; temporary trees.  A full snapshot of the tree (names, inodes,
;; contents, link targets, modes) is the oracle: a refused or failed
;; batch must leave it exactly as it was.

;;; Code:

(require 'descent-test-helper)
(setenv "DESCENT_TEST_HOOKS" "1")
;; Confirmed overwrites go to the trash under $XDG_DATA_HOME.
(setenv "XDG_DATA_HOME" (expand-file-name "data" descent-test-root))
(require 'descent)
(require 'descent-wdired)
(require 'wdired)
(require 'ert)

(defmacro descent-wdired-test--with-tree (files &rest body)
  "Make FILES in a fresh directory, dired it, and run BODY there.
The module and daemon must be there, else the test is skipped."
  (declare (indent 1) (debug t))
  `(progn
     (skip-unless (descent-test-module-available-p))
     (should (descent--module-usable-p))
     (descent-test-with-directory
       (apply #'descent-test-make-files ,files)
       (let ((dired-listing-switches (or (bound-and-true-p descent-wdired-test-switches)
                                         "-al")))
         (dired descent-test-directory)
         ,@body))))

(defvar descent-wdired-test-switches nil
  "The `dired-listing-switches' of the next test tree, when non-nil.")

(defun descent-wdired-test--snapshot (&optional dir)
  "Every name under DIR with its inode, type, mode and contents or target."
  (let ((dir (or dir descent-test-directory))
        (entries nil))
    (dolist (file (directory-files-recursively dir "" t nil t))
      (let ((attributes (file-attributes file 'integer)))
        (push (list (file-relative-name file dir)
                    (file-attribute-inode-number attributes)
                    (file-attribute-modes attributes)
                    (cond ((stringp (file-attribute-type attributes))
                           (list 'link (file-attribute-type attributes)))
                          ((file-attribute-type attributes) 'dir)
                          (t (with-temp-buffer
                               (set-buffer-multibyte nil)
                               (insert-file-contents-literally file)
                               (buffer-string)))))
              entries)))
    (sort entries (lambda (a b) (string< (car a) (car b))))))

(defun descent-wdired-test--inode (name)
  "The inode of NAME in the test directory."
  (file-attribute-inode-number
   (file-attributes (descent-test-file name) 'integer)))

(defun descent-wdired-test--goto (name)
  "Go to the wdired line of the file NAME had when editing began."
  ;; Compared as bytes: Dired returns a name with raw bytes as a unibyte
  ;; string, `decode-coding-string' as a multibyte one.
  (let ((file (descent--path-bytes (expand-file-name name descent-test-directory)))
        (found nil))
    (goto-char (point-min))
    (while (and (not found) (not (eobp)))
      (let* ((start (dired-move-to-filename))
             (here (and start (or (get-text-property (1- start) 'old-name)
                                  (dired-get-filename nil t)))))
        (if (and here (equal (descent--path-bytes here) file))
            (setq found t)
          (forward-line 1))))
    (should found)))

(defun descent-wdired-test--edit (from to)
  "In the wdired buffer, change the name of FROM on its line to TO."
  (descent-wdired-test--goto from)
  (let ((beg (dired-move-to-filename))
        (end (dired-move-to-end-of-filename)))
    (goto-char beg)
    (delete-region beg end)
    (insert to)))

(defun descent-wdired-test--names ()
  "The file names the Dired buffer shows, in order, without . and .."
  (let ((names nil))
    (save-excursion
      (goto-char (point-min))
      (while (not (eobp))
        (let ((file (dired-get-filename 'no-dir t)))
          (when (and file (not (member file '("." ".."))))
            (push file names)))
        (forward-line 1)))
    (nreverse names)))

(defun descent-wdired-test--commit ()
  "Press C-c C-c."
  (call-interactively (key-binding (kbd "C-c C-c"))))

(defun descent-wdired-test--settle ()
  "Wait until the daemon has finished any batch (a rollback after C-g).
A daemon stopping after SIGTERM may still accept the call and then go:
this call changes nothing, so it is simply made again."
  (let ((tries 50))
    (while (condition-case err
               (progn (descent--call "rename.recent" [1]) nil)
             (descent-daemon-lost
              (if (> (cl-decf tries) 0) (progn (sleep-for 0.05) t)
                (signal (car err) (cdr err))))))))

;;;; The commit itself

(ert-deftest descent-wdired-test-commits-through-descent ()
  (descent-wdired-test--with-tree '("a" "b" "c" "d/x")
    (let ((a (descent-wdired-test--inode "a"))
          (b (descent-wdired-test--inode "b"))
          (c (descent-wdired-test--inode "c")))
      (wdired-change-to-wdired-mode)
      (should (eq (key-binding (kbd "C-c C-c")) #'descent-finish-edit))
      (should (eq (key-binding (kbd "C-x C-s")) #'descent-finish-edit))
      ;; A swap, a move into a new directory, a chain.
      (descent-wdired-test--edit "a" "b")
      (descent-wdired-test--edit "b" "a")
      (descent-wdired-test--edit "c" "new/deeper/c2")
      (descent-wdired-test--commit)
      (should (eq major-mode 'dired-mode))
      (should-not (buffer-modified-p))
      (should (= (descent-wdired-test--inode "b") a))
      (should (= (descent-wdired-test--inode "a") b))
      (should (= (descent-wdired-test--inode "new/deeper/c2") c))
      (should-not (file-exists-p (descent-test-file "c")))
      (should (equal (descent-wdired-test--names) '("a" "b" "d" "new"))))))

(defun descent-wdired-test--last-message ()
  "The last line of *Messages*."
  (with-current-buffer (messages-buffer)
    (save-excursion
      (goto-char (point-max))
      (skip-chars-backward "\n")
      (buffer-substring-no-properties (line-beginning-position) (point)))))

(ert-deftest descent-wdired-test-says-what-it-did ()
  ;; As the built-in says "Renaming...done", or that there was nothing
  ;; to do; and how to take it back.
  (descent-wdired-test--with-tree '("a" "b" "c")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--commit)
    (should (equal (descent-wdired-test--last-message) "(No changes to be performed)"))
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "a2")
    (descent-wdired-test--commit)
    (should (equal (descent-wdired-test--last-message)
                   "Renaming...done: 1 change (M-x descent-undo-rename takes it back)"))
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "b" "b2")
    (descent-wdired-test--edit "c" "c2")
    (descent-wdired-test--commit)
    (should (string-prefix-p "Renaming...done: 2 changes" (descent-wdired-test--last-message)))
    ;; And where a replaced file went.
    (let ((wdired-confirm-overwrite nil))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a2" "b2")
      (descent-wdired-test--commit)
      (should (equal (descent-wdired-test--last-message)
                     "Renaming...done: 1 change; 1 file replaced went to the trash \
(M-x descent-undo-rename takes it back)")))))

(ert-deftest descent-wdired-test-every-way-of-committing ()
  (descent-wdired-test--with-tree '("a" "b")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "a2")
    (cl-letf (((symbol-function 'y-or-n-p) (lambda (&rest _) t)))
      (wdired-exit))
    (should (eq major-mode 'dired-mode))
    (should (file-exists-p (descent-test-file "a2")))
    ;; The batch went through descent: it can be undone.
    (descent-undo-rename)
    (should (file-exists-p (descent-test-file "a")))
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "b" "b2")
    (wdired-finish-edit)
    (should (file-exists-p (descent-test-file "b2")))
    (descent-undo-rename)
    (should (file-exists-p (descent-test-file "b")))))

(ert-deftest descent-wdired-test-mode-off-gives-wdired-back ()
  (descent-wdired-test--with-tree '("a")
    (unwind-protect
        (progn
          (descent-mode -1)
          (wdired-change-to-wdired-mode)
          (should (eq (key-binding (kbd "C-c C-c")) #'wdired-finish-edit))
          (descent-wdired-test--edit "a" "b")
          (wdired-finish-edit)
          (should (file-exists-p (descent-test-file "b")))
          ;; The built-in did it: descent has nothing to undo of it.
          (should-error (descent-undo-rename) :type 'descent-error))
      (descent-mode 1))))

;;;; Refusals leave everything as it was

(ert-deftest descent-wdired-test-refused-batch-changes-nothing ()
  (descent-wdired-test--with-tree '("a" "b" "c")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "x")
    (descent-wdired-test--edit "b" "x")
    (descent-wdired-test--edit "c" "c2")
    (let ((before (descent-wdired-test--snapshot))
          (text (buffer-string)))
      (let ((err (should-error (descent-wdired-test--commit)
                               :type 'descent-rename-refused)))
        (should (string-match-p "two files would get this name" (cadr err)))
        ;; Shown as it is, titled once, not as Lisp data.
        (should (string-match-p "\\`Renaming refused, nothing changed: /[^\"]*: two files"
                                (error-message-string err))))
      (should (equal (descent-wdired-test--snapshot) before))
      (should (eq major-mode 'wdired-mode))
      (should (equal (buffer-string) text))
      ;; The offending lines are highlighted, the innocent one is not.
      (let ((lines (mapcar (lambda (o) (progn (goto-char (overlay-start o))
                                              (dired-get-filename 'no-dir t)))
                           (seq-filter (lambda (o) (overlay-get o 'descent-wdired-refused))
                                       (overlays-in (point-min) (point-max))))))
        (should (member "x" lines))
        (should-not (member "c2" lines)))
      ;; Fixed, it goes through, and the highlighting is gone.
      (descent-wdired-test--edit "b" "b")
      (descent-wdired-test--commit)
      (should (eq major-mode 'dired-mode))
      (should (file-exists-p (descent-test-file "c2")))
      (should-not (seq-some (lambda (o) (overlay-get o 'descent-wdired-refused))
                            (overlays-in (point-min) (point-max)))))))

(ert-deftest descent-wdired-test-abort-after-a-refusal-leaves-no-highlight ()
  (descent-wdired-test--with-tree '("a" "b")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "x")
    (descent-wdired-test--edit "b" "x")
    (should-error (descent-wdired-test--commit) :type 'descent-rename-refused)
    (should (overlays-in (point-min) (point-max)))
    (wdired-abort-changes)
    (should-not (seq-some (lambda (o) (overlay-get o 'descent-wdired-refused))
                          (overlays-in (point-min) (point-max))))))

(ert-deftest descent-wdired-test-file-changed-since-editing-began ()
  (descent-wdired-test--with-tree '("a" "b")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "a2")
    (descent-wdired-test--edit "b" "b2")
    ;; Someone replaces `a' while the user edits (made before the old
    ;; one goes, so that it cannot get the old inode back).
    (write-region "new" nil (descent-test-file "a.new") nil 'silent)
    (rename-file (descent-test-file "a.new") (descent-test-file "a") t)
    (let ((before (descent-wdired-test--snapshot)))
      (let ((err (should-error (descent-wdired-test--commit)
                               :type 'descent-rename-refused)))
        (should (string-match-p "changed on disk since the edit began" (cadr err))))
      (should (equal (descent-wdired-test--snapshot) before))
      (should (eq major-mode 'wdired-mode)))))

;; As with the built-in, the revert keeps point on its file: the one it
;; was on, under the name it has now.
(ert-deftest descent-wdired-test-point-stays-on-its-file ()
  (descent-wdired-test--with-tree '("a" "b" "c" "d")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "c" "c2")
    (descent-wdired-test--goto "b")
    (dired-move-to-filename)
    (descent-wdired-test--commit)
    (should (equal (dired-get-filename 'no-dir t) "b"))
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "c2" "c3")
    (descent-wdired-test--commit)
    (should (equal (dired-get-filename 'no-dir t) "c3"))))

(ert-deftest descent-wdired-test-swapped-visited-files-ask-nothing ()
  ;; Each buffer moves to a name another buffer still visits: as with the
  ;; built-in, no question (it came after the batch, and "no" left a
  ;; modified buffer on the other file), and each buffer ends up named
  ;; after its file, its lock with it.
  (descent-wdired-test--with-tree '("a" "b")
    (let ((a (find-file-noselect (descent-test-file "a")))
          (b (find-file-noselect (descent-test-file "b"))))
      (unwind-protect
          (cl-letf (((symbol-function 'yes-or-no-p) (lambda (prompt) (error "Asked %S" prompt)))
                    ((symbol-function 'y-or-n-p) (lambda (prompt) (error "Asked %S" prompt))))
            (with-current-buffer a (insert "unsaved "))
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "a" "b")
            (descent-wdired-test--edit "b" "a")
            (descent-wdired-test--commit)
            (should (eq major-mode 'dired-mode))
            (should (equal (buffer-file-name a) (descent-test-file "b")))
            (should (equal (buffer-name a) "b"))
            (should (buffer-modified-p a))
            (should (equal (file-locked-p (descent-test-file "b")) t))
            (should-not (file-locked-p (descent-test-file "a")))
            (should (equal (buffer-file-name b) (descent-test-file "a")))
            (should (equal (buffer-name b) "a"))
            (descent-undo-rename)
            (should (equal (buffer-file-name a) (descent-test-file "a")))
            (should (equal (buffer-name a) "a"))
            (should (equal (buffer-file-name b) (descent-test-file "b")))
            (should (equal (file-locked-p (descent-test-file "a")) t)))
        (dolist (buffer (list a b))
          (with-current-buffer buffer (set-buffer-modified-p nil))
          (kill-buffer buffer))))))

(ert-deftest descent-wdired-test-other-dired-buffers-keep-their-marks ()
  ;; Another Dired buffer on the directory is listed again, and a file it
  ;; had marked keeps its mark under its new name.
  (descent-wdired-test--with-tree '("a" "b" "c")
    (let ((other (clone-buffer "other view")))
      (unwind-protect
          (progn
            (with-current-buffer other
              (dolist (name '("a" "c"))
                (descent-wdired-test--goto name)
                (dired-mark 1)))
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "a" "a2")
            (descent-wdired-test--edit "b" "b2")
            (descent-wdired-test--commit)
            (with-current-buffer other
              (should (equal (descent-wdired-test--names) '("a2" "b2" "c")))
              (should (equal (dired-get-marked-files 'no-dir) '("a2" "c")))))
        (kill-buffer other)))))

(ert-deftest descent-wdired-test-an-error-as-buffers-follow-hides-none ()
  ;; Buffer names are freed for a swap before the buffers move: a hook
  ;; that fails in one buffer must not leave the other under the
  ;; temporary (hidden) name.
  (descent-wdired-test--with-tree '("a" "b")
    (let* ((a (find-file-noselect (descent-test-file "a")))
           (b (find-file-noselect (descent-test-file "b")))
           (failing (lambda () (error "A failing hook"))))
      (unwind-protect
          (progn
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "a" "b")
            (descent-wdired-test--edit "b" "a")
            (add-hook 'after-set-visited-file-name-hook failing)
            (should-error (descent-wdired-test--commit))
            (should-not (seq-some (lambda (buffer)
                                    (string-prefix-p " *descent renaming*" (buffer-name buffer)))
                                  (buffer-list)))
            (should (member (buffer-name b) '("a" "b"))))
        (remove-hook 'after-set-visited-file-name-hook failing)
        (kill-buffer a)
        (kill-buffer b)))))

(ert-deftest descent-wdired-test-find-dired-buffer ()
  ;; find-dired's revert erases the text as it is: wdired's read-only
  ;; text must be gone by then.
  (skip-unless (executable-find find-program))
  (descent-wdired-test--with-tree '("a" "d/x")
    (progn
      (find-dired descent-test-directory "-type f")
      (with-current-buffer "*Find*"
        (unwind-protect
            (progn
              (while (get-buffer-process (current-buffer)) (accept-process-output nil 0.05))
              (wdired-change-to-wdired-mode)
              (descent-wdired-test--edit "a" "a2")
              (descent-wdired-test--commit)
              (while (get-buffer-process (current-buffer)) (accept-process-output nil 0.05))
              (should (eq major-mode 'dired-mode))
              (should-not (text-property-any (point-min) (point-max) 'read-only t))
              (should (file-exists-p (descent-test-file "a2")))
              (should (save-excursion
                        (goto-char (point-min))
                        (re-search-forward "[ /]a2$" nil t))))
          (kill-buffer))))))

;; Dired's own revert replaces every line: stripping wdired's properties
;; from them first cost half a second at 100k lines, and went unnoticed
;; once (`revert-buffer-function' in wdired wraps `dired-revert').
(ert-deftest descent-wdired-test-leaving-skips-the-old-lines ()
  (descent-wdired-test--with-tree '("a" "b")
    (let ((stripped nil))
      (cl-letf* ((strip (symbol-function 'remove-text-properties))
                 ((symbol-function 'remove-text-properties)
                  (lambda (start end &rest rest)
                    (when (< start end) (push (cons start end) stripped))
                    (apply strip start end rest))))
        (wdired-change-to-wdired-mode)
        (descent-wdired-test--edit "a" "a2")
        (setq stripped nil)
        (descent-wdired-test--commit))
      (should (eq major-mode 'dired-mode))
      (should (equal (descent-wdired-test--names) '("a2" "b")))
      (should-not stripped))))

(ert-deftest descent-wdired-test-file-list-buffer ()
  ;; A Dired buffer of a file list: `sub' was never listed, yet `sub/b' is
  ;; identified when editing begins.  After the commit and after an
  ;; undo, the buffer lists the files by the names they have (the
  ;; built-in's revert looks for the old ones, and fails).
  (descent-wdired-test--with-tree '("a" "sub/b" "sub/c")
    (dolist (replace '(nil t))
      (let ((other (and (not replace)
                        (dired-noselect (cons "other" (list (descent-test-file "a"))))))
            (buffer (dired (cons (if replace "replaced" "listed")
                                 (list (descent-test-file "a") (descent-test-file "sub/b"))))))
        (with-current-buffer buffer
          (wdired-change-to-wdired-mode)
          ;; The lines show the names as listed: absolute.
          (descent-wdired-test--edit "a" (descent-test-file "a2"))
          (descent-wdired-test--edit "sub/b" (descent-test-file "sub/b2"))
          (if (not replace)
              (progn
                (descent-wdired-test--commit)
                (should (eq major-mode 'dired-mode))
                (should (file-exists-p (descent-test-file "a2")))
                (should (file-exists-p (descent-test-file "sub/b2")))
                (should-not (file-exists-p (descent-test-file "sub/b")))
                (should (dired-goto-file (descent-test-file "a2")))
                (should (dired-goto-file (descent-test-file "sub/b2")))
                (with-current-buffer other
                  (should (dired-goto-file (descent-test-file "a2"))))
                (descent-undo-rename)
                (should (file-exists-p (descent-test-file "sub/b")))
                (should (dired-goto-file (descent-test-file "a")))
                (should (dired-goto-file (descent-test-file "sub/b")))
                (should-not (buffer-modified-p))
                (with-current-buffer other
                  (should (dired-goto-file (descent-test-file "a"))))
                (kill-buffer other))
            ;; What the buffer did list is checked as always: a replaced
            ;; `a' is refused, and nothing changes.
            (write-region "new" nil (descent-test-file "a.new") nil 'silent)
            (rename-file (descent-test-file "a.new") (descent-test-file "a") t)
            (let ((before (descent-wdired-test--snapshot)))
              (should-error (descent-wdired-test--commit) :type 'descent-rename-refused)
              (should (equal (descent-wdired-test--snapshot) before))
              (should (eq major-mode 'wdired-mode))))
          (set-buffer-modified-p nil)
          (let ((kill-buffer-query-functions nil)) (kill-buffer buffer)))))))

;; The files of a file list outside its directory are identified when
;; editing begins, as the others are: one replaced meanwhile is refused,
;; not renamed.  (They were identified only when the commit started.)
(ert-deftest descent-wdired-test-file-list-replaced-in-a-subdirectory ()
  (descent-wdired-test--with-tree '("a" "sub/b" "sub/c")
    ;; With one directory a request too, as a list of more than
    ;; `descent--wdired-identify-max' directories is sent.
    (dolist (descent--wdired-identify-max '(10000 1))
      (dolist (relative '(nil t))
        (let ((buffer (dired (cons descent-test-directory
                                   (if relative '("a" "sub/b")
                                     (list (descent-test-file "a") (descent-test-file "sub/b")))))))
          (with-current-buffer buffer
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "sub/b" (if relative "sub/b2" (descent-test-file "sub/b2")))
            ;; Replaced by another program while the user edits.
            (write-region "new" nil (descent-test-file "sub/b.new") nil 'silent)
            (rename-file (descent-test-file "sub/b.new") (descent-test-file "sub/b") t)
            (let ((before (descent-wdired-test--snapshot)))
              (let ((err (should-error (descent-wdired-test--commit) :type 'descent-rename-refused)))
                (should (string-match-p "sub/b: changed on disk since the edit began" (cadr err))))
              (should (equal (descent-wdired-test--snapshot) before))
              (should (eq major-mode 'wdired-mode)))
            (set-buffer-modified-p nil)
            (let ((kill-buffer-query-functions nil)) (kill-buffer buffer))))))))

(ert-deftest descent-wdired-test-bad-names-are-refused ()
  (descent-wdired-test--with-tree '("a" "b")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" (make-string 300 ?n))
    (let ((before (descent-wdired-test--snapshot)))
      (should-error (descent-wdired-test--commit) :type 'descent-rename-refused)
      (should (equal (descent-wdired-test--snapshot) before))
      (should (eq major-mode 'wdired-mode)))))

;;;; Overwrites

(ert-deftest descent-wdired-test-overwrite-asks-once-per-conflict ()
  (descent-wdired-test--with-tree '("a" "b" "c" "taken1" "taken2")
    (let ((wdired-confirm-overwrite t)
          (questions nil)
          (a (descent-wdired-test--inode "a")))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "taken1")
      (descent-wdired-test--edit "b" "taken2")
      (descent-wdired-test--edit "c" "c2")
      ;; Saying no to one (yes to the first): nothing changes, the edits
      ;; stay, and the refusal names the declined one only.
      (let ((before (descent-wdired-test--snapshot))
            (answers '(t nil)))
        (cl-letf (((symbol-function 'yes-or-no-p)
                   (lambda (prompt) (push prompt questions) (pop answers))))
          (let ((err (should-error (descent-wdired-test--commit)
                                   :type 'descent-rename-refused)))
            (should (string-match-p (concat "not overwriting "
                                            (regexp-quote (descent-test-file "taken2")))
                                    (cadr err)))
            (should-not (string-match-p "taken1" (cadr err)))))
        (should (equal (descent-wdired-test--snapshot) before))
        (should (eq major-mode 'wdired-mode))
        (let ((lines (mapcar (lambda (o) (progn (goto-char (overlay-start o))
                                                (dired-get-filename 'no-dir t)))
                             (seq-filter (lambda (o) (overlay-get o 'descent-wdired-refused))
                                         (overlays-in (point-min) (point-max))))))
          (should (equal lines '("taken2")))))
      (setq questions nil)
      (cl-letf (((symbol-function 'yes-or-no-p)
                 (lambda (prompt) (push prompt questions) t)))
        (descent-wdired-test--commit))
      (should (= (length questions) 2))
      (should (eq major-mode 'dired-mode))
      (should (= (descent-wdired-test--inode "taken1") a))
      ;; The victims went to the trash, and undo brings them back.
      (should (= 2 (length (directory-files
                            (expand-file-name "Trash/files" (getenv "XDG_DATA_HOME"))
                            nil "\\`taken"))))
      (descent-undo-rename)
      (should (equal (with-temp-buffer
                       (insert-file-contents (descent-test-file "taken1"))
                       (buffer-string))
                     "taken1\n"))
      (should (= (descent-wdired-test--inode "a") a)))))

(ert-deftest descent-wdired-test-overwrite-without-asking ()
  (descent-wdired-test--with-tree '("a" "taken")
    (let ((wdired-confirm-overwrite nil))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "taken")
      (cl-letf (((symbol-function 'yes-or-no-p)
                 (lambda (&rest _) (error "Asked a question"))))
        (descent-wdired-test--commit))
      (should (equal (with-temp-buffer
                       (insert-file-contents (descent-test-file "taken"))
                       (buffer-string))
                     "a\n")))))

;; A file replaced on another file system goes to that file system's
;; trash (here /dev/shm/.Trash-UID), and undo brings it back.
(ert-deftest descent-wdired-test-overwrite-on-another-file-system ()
  (descent-wdired-test--with-tree '("a")
    (let* ((other (make-temp-file "/dev/shm/descent-wdired-" t))
           (victim (expand-file-name (file-name-nondirectory other) other))
           (trash (format "/dev/shm/.Trash-%d/files/%s" (user-uid) (file-name-nondirectory other)))
           (wdired-confirm-overwrite nil))
      (unwind-protect
          (progn
            (skip-unless (not (equal (file-attribute-device-number (file-attributes other))
                                     (file-attribute-device-number
                                      (file-attributes descent-test-directory)))))
            (with-temp-file victim (insert "victim\n"))
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "a" victim)
            (descent-wdired-test--commit)
            (should (string-match-p "1 file replaced went to the trash"
                                    (descent-wdired-test--last-message)))
            (should (equal (with-temp-buffer (insert-file-contents victim) (buffer-string)) "a\n"))
            (should (equal (with-temp-buffer (insert-file-contents trash) (buffer-string)) "victim\n"))
            (descent-undo-rename)
            (should (equal (with-temp-buffer (insert-file-contents victim) (buffer-string)) "victim\n"))
            (should (file-exists-p (descent-test-file "a")))
            (should-not (file-exists-p trash)))
        (delete-directory other t)))))

;;;; After success

(ert-deftest descent-wdired-test-emptied-names-are-flagged-not-deleted ()
  (descent-wdired-test--with-tree '("a" "b")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "")
    (descent-wdired-test--edit "b" "b2")
    (descent-wdired-test--commit)
    (should (file-exists-p (descent-test-file "a")))
    (should (file-exists-p (descent-test-file "b2")))
    (dired-goto-file (descent-test-file "a"))
    (should (eq (char-after (line-beginning-position)) dired-del-marker))))

(ert-deftest descent-wdired-test-marks-are-kept ()
  (descent-wdired-test--with-tree '("a" "b" "c")
    (dired-goto-file (descent-test-file "a"))
    (dired-mark 1)
    (dired-goto-file (descent-test-file "c"))
    (dired-mark 1)
    (let ((wdired-keep-marker-rename t))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "a2")
      (descent-wdired-test--edit "b" "b2")
      (descent-wdired-test--commit))
    (should (equal (dired-get-marked-files 'no-dir nil nil t) '("a2" "c")))
    (let ((wdired-keep-marker-rename ?R))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "b2" "b3")
      (descent-wdired-test--commit))
    (should (equal (let ((dired-marker-char ?R)) (dired-get-marked-files 'no-dir))
                   '("b3")))))

(ert-deftest descent-wdired-test-visiting-buffers-follow ()
  (descent-wdired-test--with-tree '("a" "d/inner" "d/sub/deep")
    (let ((file-buffer (find-file-noselect (descent-test-file "a")))
          (inner-buffer (find-file-noselect (descent-test-file "d/sub/deep")))
          (other-dired (dired-noselect (descent-test-file "d/sub/"))))
      (switch-to-buffer (dired-noselect descent-test-directory))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "a2")
      (descent-wdired-test--edit "d" "e")
      (descent-wdired-test--commit)
      (should (equal (buffer-file-name file-buffer) (descent-test-file "a2")))
      (should-not (buffer-modified-p file-buffer))
      (should (equal (buffer-file-name inner-buffer) (descent-test-file "e/sub/deep")))
      (should-not (buffer-modified-p inner-buffer))
      (with-current-buffer other-dired
        (should (equal default-directory (descent-test-file "e/sub/")))
        (should (equal (descent-wdired-test--names) '("deep")))))))

(ert-deftest descent-wdired-test-other-dired-buffers-are-updated ()
  (descent-wdired-test--with-tree '("a" "d/")
    (let ((target (dired-noselect (descent-test-file "d/"))))
      (switch-to-buffer (dired-noselect descent-test-directory))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "d/a")
      (descent-wdired-test--commit)
      (with-current-buffer target
        (should (equal (descent-wdired-test--names) '("a")))))))

(ert-deftest descent-wdired-test-directory-and-its-files-in-one-commit ()
  (descent-wdired-test--with-tree '("d/x" "d/y" "z")
    (let ((x (descent-wdired-test--inode "d/x")))
      (dired-maybe-insert-subdir (descent-test-file "d/"))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "d" "e")
      (descent-wdired-test--edit "d/x" "x2")
      (descent-wdired-test--commit)
      (should (= (descent-wdired-test--inode "e/x2") x))
      (should (file-exists-p (descent-test-file "e/y")))
      (should-not (file-exists-p (descent-test-file "d")))
      ;; The inserted subdirectory follows its new name.
      (should (assoc (descent-test-file "e/") dired-subdir-alist)))))

(ert-deftest descent-wdired-test-inserted-directories-swapped-keep-both-listings ()
  ;; Renamed one at a time, the second rename took the first one back:
  ;; two inserted listings became one.
  (descent-wdired-test--with-tree '("d/x" "e/z" "f/w")
    (dolist (dir '("d/" "e/" "f/"))
      (dired-maybe-insert-subdir (descent-test-file dir)))
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "d" "e")
    (descent-wdired-test--edit "e" "f")
    (descent-wdired-test--edit "f" "d")
    (descent-wdired-test--commit)
    (should (file-exists-p (descent-test-file "e/x")))
    (should (equal (sort (mapcar #'car dired-subdir-alist) #'string<)
                   (cons default-directory (mapcar #'descent-test-file '("d/" "e/" "f/")))))
    (dolist (file '("e/x" "f/z" "d/w"))
      (should (dired-goto-file (descent-test-file file))))))

(ert-deftest descent-wdired-test-nested-directories-and-a-file-in-one-commit ()
  ;; d/e's new name is spelled under d's new name too: the file goes to
  ;; D/E/X, not to a d/E made again (the built-in leaves it in D/e and
  ;; makes an empty d/e).
  (descent-wdired-test--with-tree '("d/e/x" "d/y" "z")
    (let ((x (descent-wdired-test--inode "d/e/x")))
      (dired-maybe-insert-subdir (descent-test-file "d/"))
      (dired-maybe-insert-subdir (descent-test-file "d/e/"))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "d" "D")
      (descent-wdired-test--edit "d/e" "E")
      (descent-wdired-test--edit "d/e/x" "X")
      (descent-wdired-test--commit)
      (should (= (descent-wdired-test--inode "D/E/X") x))
      (should (file-exists-p (descent-test-file "D/y")))
      (should-not (file-exists-p (descent-test-file "d")))
      (should (assoc (descent-test-file "D/E/") dired-subdir-alist)))))

(ert-deftest descent-wdired-test-a-non-utf-8-directory-and-a-file-typed-into-it ()
  ;; Dired names the directory with a unibyte string, the typed name has
  ;; the same bytes as raw-byte characters (or, with -b, unibyte again):
  ;; the file goes into the directory's new name either way, not into a
  ;; directory made again under the old one.  Found by tests/fuzz.
  (let* ((raw (decode-coding-string (unibyte-string ?c ?a ?f #xe9) (descent--file-name-coding)))
         (coding-system-for-write 'raw-text))
    (dolist (descent-wdired-test-switches '("-al" "-alb"))
      (descent-wdired-test--with-tree (list (concat raw "/in") "x")
        (let ((x (descent-wdired-test--inode "x")))
          (wdired-change-to-wdired-mode)
          (descent-wdired-test--edit raw "d2")
          (descent-wdired-test--edit "x" (if (equal descent-wdired-test-switches "-alb")
                                              "caf\\351/x"
                                            (concat raw "/x")))
          (descent-wdired-test--commit)
          (should (= (descent-wdired-test--inode "d2/x") x))
          (should (file-exists-p (descent-test-file "d2/in")))
          (should-not (file-exists-p (descent-test-file raw))))))))

(ert-deftest descent-wdired-test-a-directory-opened-through-a-symlink ()
  ;; rename(2) follows a link in the directory part, and so does descentd.
  (descent-wdired-test--with-tree '("d/a" "d/b")
    (let ((link (descent-test-file "link")))
      (make-symbolic-link (descent-test-file "d") link)
      (with-current-buffer (dired-noselect (file-name-as-directory link))
        (unwind-protect
            (let ((a (descent-wdired-test--inode "d/a")))
              (wdired-change-to-wdired-mode)
              (descent-wdired-test--edit "link/a" "a2")
              (descent-wdired-test--commit)
              (should (eq major-mode 'dired-mode))
              (should (= (descent-wdired-test--inode "d/a2") a)))
          (kill-buffer))))))

(ert-deftest descent-wdired-test-a-directory-into-itself-names-what-was-typed ()
  (descent-wdired-test--with-tree '("d/x")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "d" "d/sub")
    (let ((before (descent-wdired-test--snapshot))
          (err (should-error (descent-wdired-test--commit) :type 'descent-rename-refused)))
      (should (string-match-p (concat (regexp-quote (descent-test-file "d/sub")) ")")
                              (cadr err)))
      (should (equal (descent-wdired-test--snapshot) before)))))

(ert-deftest descent-wdired-test-a-name-ending-in-a-slash-moves-into-it ()
  ;; As `rename-file' takes a directory name: "sub/" is sub/a.
  (descent-wdired-test--with-tree '("a" "sub/" "d/x")
    (let ((a (descent-wdired-test--inode "a"))
          (d (descent-wdired-test--inode "d")))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "sub/")
      (descent-wdired-test--edit "d" "new/")
      (descent-wdired-test--commit)
      (should (= (descent-wdired-test--inode "sub/a") a))
      (should (= (descent-wdired-test--inode "new/d") d)))))

;; A directory moved to another file system is a copy; undo copies back.
(ert-deftest descent-wdired-test-directory-to-another-file-system ()
  (descent-wdired-test--with-tree '("d/x" "d/sub/y" "z")
    (let ((other (make-temp-file "/dev/shm/descent-wdired-" t)))
      (unwind-protect
          (progn
            (skip-unless (not (equal (file-attribute-device-number (file-attributes other))
                                     (file-attribute-device-number
                                      (file-attributes descent-test-directory)))))
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "d" (concat other "/d"))
            (descent-wdired-test--commit)
            (should (eq major-mode 'dired-mode))
            (should-not (file-exists-p (descent-test-file "d")))
            (should (file-exists-p (expand-file-name "d/sub/y" other)))
            (should (equal (directory-files other) '("." ".." "d")))
            (should (equal (descent-wdired-test--names) '("z")))
            (descent-undo-rename)
            (should (file-exists-p (descent-test-file "d/sub/y")))
            (should-not (file-exists-p (expand-file-name "d" other))))
        (delete-directory other t)))))

;;;; Names are bytes, taken literally

(ert-deftest descent-wdired-test-awkward-names-round-trip ()
  (let* ((coding (descent--file-name-coding))
         (raw (decode-coding-string (unibyte-string ?r #xff ?w) coding))
         ;; The helper writes each name into its file.
         (coding-system-for-write 'raw-text))
    (descent-wdired-test--with-tree (list "with space" "-dash" "back\\slash" raw "q\"uote")
      (let ((before (mapcar #'descent-wdired-test--inode
                            (list "with space" "-dash" "back\\slash" raw "q\"uote"))))
        (wdired-change-to-wdired-mode)
        (descent-wdired-test--edit "with space" "with  two spaces")
        (descent-wdired-test--edit "-dash" "--dash")
        (descent-wdired-test--edit "back\\slash" "back\\\\slash")
        (descent-wdired-test--edit raw (concat raw "2"))
        (descent-wdired-test--edit "q\"uote" "q\"uote2")
        (descent-wdired-test--commit)
        (should (equal (mapcar #'descent-wdired-test--inode
                               (list "with  two spaces" "--dash" "back\\slash"
                                     (concat raw "2") "q\"uote2"))
                       before))
        (should (file-exists-p (descent-test-file (concat raw "2"))))))))

;; Found by differential fuzzing against the built-in (fuzz seed 4): a
;; refusal whose message names a file that is not UTF-8 crashed Emacs,
;; the module signalling with the NULL that make_string gave back.
(ert-deftest descent-wdired-test-refusal-naming-a-non-utf-8-file ()
  (let* ((coding (descent--file-name-coding))
         (raw (decode-coding-string (unibyte-string ?c ?a ?f #xe9) coding))
         (coding-system-for-write 'raw-text))
    (descent-wdired-test--with-tree (list (concat raw "/") "a")
      (let ((before (descent-wdired-test--snapshot)))
        (wdired-change-to-wdired-mode)
        ;; A file cannot replace a directory: refused, naming both.
        (descent-wdired-test--edit "a" raw)
        (let ((err (should-error (descent-wdired-test--commit)
                                 :type 'descent-rename-refused)))
          (should (string-match-p "cannot replace the directory" (cadr err))))
        (should (eq major-mode 'wdired-mode))
        (should (equal (descent-wdired-test--snapshot) before))))))

;; Found by differential fuzzing (seed 72): a symbolic link's line was
;; read through `wdired-get-filename''s `file-relative-name', so an
;; emptied name meant the directory itself (refused, where the built-in
;; flags the link) and ~/x one's home (taken, where a file's line refuses).
(ert-deftest descent-wdired-test-symlink-lines-are-read-literally ()
  (descent-wdired-test--with-tree '("f")
    (make-symbolic-link "f" (descent-test-file "lnk"))
    (revert-buffer)
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "lnk" "")
    (descent-wdired-test--commit)
    (should (eq major-mode 'dired-mode))
    (should (equal (file-symlink-p (descent-test-file "lnk")) "f"))
    (descent-wdired-test--goto "lnk")
    (should (eq (char-after (line-beginning-position)) dired-del-marker))
    (let ((before (descent-wdired-test--snapshot)))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "lnk" "~/x")
      (should-error (descent-wdired-test--commit) :type 'descent-rename-refused)
      (should (equal (descent-wdired-test--snapshot) before))
      (wdired-abort-changes)
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "lnk" "d//lnk2")
      (descent-wdired-test--commit)
      (should (equal (file-symlink-p (descent-test-file "d/lnk2")) "f")))))

(ert-deftest descent-wdired-test-long-file-names ()
  ;; Names over a kilobyte long go to descentd whole (the module copies a
  ;; short name in one call, a long one another way).
  (let* ((level (make-string 200 ?d))
         (deep (mapconcat #'identity (list level level level level level "") "/")))
    (descent-wdired-test--with-tree (list (concat deep "f"))
      (dired (descent-test-file deep))
      (should (> (length (expand-file-name "f")) 1024))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit (concat deep "f") "g")
      (descent-wdired-test--commit)
      (should (eq major-mode 'dired-mode))
      (should (file-exists-p (descent-test-file (concat deep "g"))))
      (should-not (file-exists-p (descent-test-file (concat deep "f")))))))

(ert-deftest descent-wdired-test-b-escapes-round-trip ()
  (let ((descent-wdired-test-switches "-alb"))
    (descent-wdired-test--with-tree '("tab\there" "sp ace")
      (let ((tab (descent-wdired-test--inode "tab\there"))
            (space (descent-wdired-test--inode "sp ace")))
        (wdired-change-to-wdired-mode)
        (descent-wdired-test--edit "tab\there" "tab\\there2")
        (descent-wdired-test--edit "sp ace" "sp\\ ace2")
        (descent-wdired-test--commit)
        (should (= (descent-wdired-test--inode "tab\there2") tab))
        (should (= (descent-wdired-test--inode "sp ace2") space))))))

(ert-deftest descent-wdired-test-names-are-literal ()
  (descent-wdired-test--with-tree '("a" "b")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "$HOME-x")
    (descent-wdired-test--edit "b" "~b")
    (descent-wdired-test--commit)
    (should (file-exists-p (descent-test-file "$HOME-x")))
    (should (file-exists-p (descent-test-file "~b")))))

(ert-deftest descent-wdired-test-a-tilde-directory-is-refused ()
  ;; "~/x" is one's home to the built-in, and would be a new directory
  ;; named "~" taken literally: the line is refused, naming what was
  ;; typed; "./~/x" says which was meant.
  (descent-wdired-test--with-tree '("a" "b" "c")
    (let ((wdired-create-parent-directories t))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "~/a")
      (descent-wdired-test--edit "b" "~")
      (descent-wdired-test--edit "c" "c2")
      (let* ((before (descent-wdired-test--snapshot))
             (err (should-error (descent-wdired-test--commit) :type 'descent-rename-refused)))
        (should (string-match-p "typed ~/a: ~ is not expanded" (cadr err)))
        (should (string-match-p "typed ~: ~ is not expanded" (cadr err)))
        (should (equal (descent-wdired-test--snapshot) before))
        (should (eq major-mode 'wdired-mode)))
      (wdired-abort-changes)
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "./~/a")
      (descent-wdired-test--edit "b" "~b")
      (descent-wdired-test--edit "c" "c2")
      (descent-wdired-test--commit)
      (should (file-exists-p (descent-test-file "./~/a")))
      (should (file-exists-p (descent-test-file "~b")))
      (should (file-exists-p (descent-test-file "c2"))))))

(ert-deftest descent-wdired-test-names-are-literal-in-subdirectories-too ()
  ;; With a subdirectory inserted, names are resolved per directory.
  (descent-wdired-test--with-tree '("a" "d/b" "d/c")
    (dired-maybe-insert-subdir (descent-test-file "d/"))
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "d/b" "~root")
    (descent-wdired-test--edit "d/c" "../c2")
    (descent-wdired-test--commit)
    (should (file-exists-p (descent-test-file "d/~root")))
    (should (file-exists-p (descent-test-file "c2")))))

(ert-deftest descent-wdired-test-classify-indicators-do-not-leak ()
  (let ((descent-wdired-test-switches "-alF"))
    (descent-wdired-test--with-tree '("run" "d/" "plain")
      (set-file-modes (descent-test-file "run") #o755)
      (revert-buffer)
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "run" "run2")
      (descent-wdired-test--edit "d" "d2")
      (descent-wdired-test--commit)
      (should (file-exists-p (descent-test-file "run2")))
      (should (file-directory-p (descent-test-file "d2")))
      (should-not (directory-files descent-test-directory nil "[*/]\\'")))))

(ert-deftest descent-wdired-test-links-and-directories-under-any-switches ()
  ;; The file type is read from its column, and a symbolic link's line is
  ;; known by it; -i and -s move that column, -F decorates the names.
  (dolist (switches '("-al" "-ali" "-als" "-alF"))
    (let ((descent-wdired-test-switches switches))
      (descent-wdired-test--with-tree '("t1" "t2" "d/" "plain")
        (make-symbolic-link "t1" (descent-test-file "link"))
        (make-symbolic-link "t1" (descent-test-file "other"))
        (revert-buffer)
        (let ((wdired-allow-to-redirect-links t))
          (wdired-change-to-wdired-mode)
          (descent-wdired-test--edit "link" "link2")
          (descent-wdired-test--edit "d" "d2")
          (descent-wdired-test--goto "other")
          (search-forward "-> t1")
          (delete-char -2)
          (insert "t2")
          (descent-wdired-test--commit)
          (should (eq major-mode 'dired-mode))
          (should (equal (file-symlink-p (descent-test-file "link2")) "t1"))
          (should (equal (file-symlink-p (descent-test-file "other")) "t2"))
          (should (file-directory-p (descent-test-file "d2")))
          (should (equal (sort (directory-files descent-test-directory nil "\\`[^.]") #'string<)
                         '("d2" "link2" "other" "plain" "t1" "t2"))))))))

;;;; wdired's options

(ert-deftest descent-wdired-test-create-parent-directories-off ()
  (descent-wdired-test--with-tree '("a" "b")
    (let ((wdired-create-parent-directories nil))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "nowhere/a")
      (descent-wdired-test--edit "b" "b2")
      (let ((before (descent-wdired-test--snapshot)))
        (let ((err (should-error (descent-wdired-test--commit)
                                 :type 'descent-rename-refused)))
          (should (string-match-p "wdired-create-parent-directories" (cadr err))))
        (should (equal (descent-wdired-test--snapshot) before))
        (should (eq major-mode 'wdired-mode))))))

(ert-deftest descent-wdired-test-create-parent-directories-off-renamed-parent ()
  ;; A destination under a directory the same batch renames exists under
  ;; the directory's old name: allowed.
  (descent-wdired-test--with-tree '("a" "d/sub/")
    (let ((wdired-create-parent-directories nil))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "d" "e")
      (descent-wdired-test--edit "a" "d/sub/a")
      (descent-wdired-test--commit)
      (should (file-exists-p (descent-test-file "e/sub/a"))))))

(ert-deftest descent-wdired-test-interactive-rename ()
  ;; The built-in's keys: SPC is y, DEL is n, q stops asking (no to the
  ;; rest); its prompt names the files relative to the directory.
  (descent-wdired-test--with-tree '("a" "b" "c" "d" "e")
    (let ((wdired-use-interactive-rename t)
          (answers (list ?y ?\177 ?\s ?q))
          (prompts nil))
      (wdired-change-to-wdired-mode)
      (dolist (name '("a" "b" "c" "d" "e"))
        (descent-wdired-test--edit name (concat name "2")))
      (cl-letf (((symbol-function 'read-char-choice)
                 (lambda (prompt &rest _) (push prompt prompts) (pop answers))))
        (descent-wdired-test--commit))
      (should (string-prefix-p (format-message "Move `a' to `a2'?") (car (last prompts))))
      (should (= (length prompts) 4))
      (should (equal (descent-wdired-test--names) '("a2" "b" "c2" "d" "e"))))))

(ert-deftest descent-wdired-test-redirect-links ()
  (descent-wdired-test--with-tree '("t1" "t2")
    (make-symbolic-link "t1" (descent-test-file "link"))
    (revert-buffer)
    (let ((wdired-allow-to-redirect-links t))
      (wdired-change-to-wdired-mode)
      (goto-char (point-min))
      (search-forward "-> t1")
      (delete-char -2)
      (insert "t2")
      (descent-wdired-test--commit)
      (should (equal (file-symlink-p (descent-test-file "link")) "t2"))
      (descent-undo-rename)
      (should (equal (file-symlink-p (descent-test-file "link")) "t1")))))

(ert-deftest descent-wdired-test-change-permissions ()
  (dolist (how '(t advanced))
    (descent-wdired-test--with-tree '("f")
      (set-file-modes (descent-test-file "f") #o644)
      (revert-buffer)
      (let ((wdired-allow-to-change-permissions how))
        (wdired-change-to-wdired-mode)
        (dired-goto-file (descent-test-file "f"))
        (re-search-backward dired-re-perms (line-beginning-position))
        ;; -rw-r--r-- -> -rwxr--r--: the user's x bit.
        (forward-char 3)
        (if (eq how 'advanced)
            (progn (delete-char 1) (insert "x"))
          (wdired-set-bit ?x))
        (descent-wdired-test--commit)
        (should (= (file-modes (descent-test-file "f")) #o744))
        (descent-undo-rename)
        (should (= (file-modes (descent-test-file "f")) #o644))))))

(ert-deftest descent-wdired-test-unparsable-permissions-are-refused ()
  (descent-wdired-test--with-tree '("f")
    (let ((wdired-allow-to-change-permissions 'advanced))
      (wdired-change-to-wdired-mode)
      (dired-goto-file (descent-test-file "f"))
      (re-search-backward dired-re-perms (line-beginning-position))
      (forward-char 3)
      (insert "xx")
      (let ((before (descent-wdired-test--snapshot)))
        (should-error (descent-wdired-test--commit) :type 'descent-rename-refused)
        (should (equal (descent-wdired-test--snapshot) before))))))

;;;; Search and replace

(ert-deftest descent-wdired-test-replace-regexp-replaces-all-the-first-time ()
  (descent-wdired-test--with-tree '("a1" "a2" "a3" "xa")
    (wdired-change-to-wdired-mode)
    (goto-char (point-min))
    (with-no-warnings (replace-regexp "^a" "b"))
    (goto-char (point-min))
    (with-no-warnings (replace-regexp "a\\([0-9]\\)" "c\\1"))
    (descent-wdired-test--commit)
    (should (equal (descent-wdired-test--names) '("c1" "c2" "c3" "xa")))))

;;;; Tables of file names

(ert-deftest descent-wdired-test-name-hash-tells-numbered-names-apart ()
  ;; Emacs 28's `sxhash-equal' gives all of these 20k names one hash, or
  ;; ten (a table of them is searched through at every lookup).  A few
  ;; names to a hash cost a few comparisons.
  (dolist (form '("/tmp/pppppppppppppppppppppppp/IMG_%05d.jpg"
                  "/tmp/descent-bench-abcdef/d3/file-%06d.txt"))
    (let ((hashes (make-hash-table)))
      (dotimes (i 20000) (puthash (descent--name-hash (format form i)) t hashes))
      (should (> (hash-table-count hashes) 5000))))
  ;; Names as text and as bytes find each other, as with `equal'.
  (let ((table (make-hash-table :test 'descent-name)))
    (puthash (encode-coding-string "/d/ascii" 'utf-8) 1 table)
    (should (eql (gethash "/d/ascii" table) 1))))

;;;; Undo

(ert-deftest descent-wdired-test-undo-goes-back-one-batch-at-a-time ()
  (descent-wdired-test--with-tree '("a")
    (let ((buffer (find-file-noselect (descent-test-file "a"))))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "b")
      (descent-wdired-test--commit)
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "b" "c")
      (descent-wdired-test--commit)
      (should (equal (buffer-file-name buffer) (descent-test-file "c")))
      (descent-undo-rename)
      (should (equal (descent-wdired-test--names) '("b")))
      (should (equal (buffer-file-name buffer) (descent-test-file "b")))
      (descent-undo-rename)
      (should (equal (descent-wdired-test--names) '("a")))
      (should (equal (buffer-file-name buffer) (descent-test-file "a"))))))

(ert-deftest descent-wdired-test-undo-follows-a-batch-this-emacs-did-not-commit ()
  ;; What a batch renamed comes from descentd's journal: after a restart
  ;; (or from another Emacs), undo still points buffers back.
  (descent-wdired-test--with-tree '("d/x" "d/y" "a")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "d" "e")
    (descent-wdired-test--edit "a" "b")
    (descent-wdired-test--commit)
    (let ((descent--wdired-history nil)
          (create-lockfiles nil)
          (in-directory (find-file-noselect (descent-test-file "e/x")))
          (renamed (find-file-noselect (descent-test-file "b"))))
      (unwind-protect
          (progn
            (with-current-buffer renamed (insert "unsaved"))
            (descent-undo-rename)
            (should (equal (descent-wdired-test--names) '("a" "d")))
            (should (equal (buffer-file-name in-directory) (descent-test-file "d/x")))
            (should (equal (buffer-file-name renamed) (descent-test-file "a")))
            (should (buffer-modified-p renamed))
            (should-not (buffer-modified-p in-directory)))
        (with-current-buffer renamed (set-buffer-modified-p nil))
        (kill-buffer in-directory)
        (kill-buffer renamed)))))

(ert-deftest descent-wdired-test-undo-from-a-renamed-file-follows-it-back ()
  ;; M-x descent-undo-rename typed in the buffer of a renamed file: that
  ;; buffer follows too, or saving it would make the new name again.
  (descent-wdired-test--with-tree '("a")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "b")
    (descent-wdired-test--commit)
    (let ((create-lockfiles nil)
          (renamed (find-file-noselect (descent-test-file "b"))))
      (unwind-protect
          (progn
            (with-current-buffer renamed (descent-undo-rename))
            (should (equal (buffer-file-name renamed) (descent-test-file "a")))
            (should-not (buffer-modified-p renamed)))
        (kill-buffer renamed)))))

;; An undo removes the directory its batch made: a Dired buffer showing
;; it, current or not, is not listed again (that failed with "Setting
;; current directory", and the undo said nothing of what it did).
(ert-deftest descent-wdired-test-undo-leaves-dired-of-a-made-directory ()
  (descent-wdired-test--with-tree '("a")
    (let ((wdired-create-parent-directories t))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "sub/a")
      (descent-wdired-test--commit)
      (let ((made (dired-noselect (descent-test-file "sub/"))))
        (unwind-protect
            (progn
              (with-current-buffer made (descent-undo-rename))
              (should-not (file-exists-p (descent-test-file "sub")))
              (should (equal (descent-wdired-test--names) '("a"))))
          (kill-buffer made))))))

(ert-deftest descent-wdired-test-undo-refuses-when-files-moved ()
  (descent-wdired-test--with-tree '("a")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "b")
    (descent-wdired-test--commit)
    (rename-file (descent-test-file "b") (descent-test-file "moved"))
    (let ((before (descent-wdired-test--snapshot)))
      (let ((err (should-error (descent-undo-rename) :type 'descent-undo-refused)))
        ;; Shown as it is, not as Lisp data.
        (should (string-match-p "\\`Cannot undo the batch of .*moved\\|changed" (error-message-string err)))
        (should-not (string-search "\"" (error-message-string err))))
      (should (equal (descent-wdired-test--snapshot) before)))
    ;; Put it back so the history is clean for the next test.
    (rename-file (descent-test-file "moved") (descent-test-file "b"))
    (descent-undo-rename)))

;;;; Failures part-way and fallback

(defmacro descent-wdired-test--with-failpoint (spec &rest body)
  "Run BODY against a daemon started with DESCENT_FAILPOINT=SPEC."
  (declare (indent 1) (debug t))
  `(progn
     (descent-test-stop-daemon)
     (descent--mod-disconnect)
     (setenv "DESCENT_FAILPOINT" ,spec)
     (unwind-protect
         (progn ,@body)
       (setenv "DESCENT_FAILPOINT" nil)
       (descent-test-stop-daemon)
       (descent--mod-disconnect))))

(ert-deftest descent-wdired-test-failure-part-way-changes-nothing ()
  ;; An errno at step 2, a cancel, SIGTERM, and kill -9 followed by a
  ;; restart (the next call starts a daemon, which recovers first).
  (dolist (action '("fail" "cancel" "sigterm" "kill"))
    (descent-wdired-test--with-tree '("a" "b" "c" "d")
      (descent-wdired-test--with-failpoint (format "rename-step:2:%s" action)
        (wdired-change-to-wdired-mode)
        (descent-wdired-test--edit "a" "a2")
        (descent-wdired-test--edit "b" "b2")
        (descent-wdired-test--edit "c" "c2")
        (descent-wdired-test--edit "d" "d2")
        (let ((before (descent-wdired-test--snapshot))
              (text (buffer-string)))
          (should-error (descent-wdired-test--commit) :type 'descent-rename-failed)
          (setenv "DESCENT_FAILPOINT" nil)
          (descent-wdired-test--settle)
          (when (equal action "kill")
            (should (string-match-p "recovered an interrupted batch of 4 operations"
                                    (aref (descent--call "rename.recovery") 0))))
          (should (equal (descent-wdired-test--snapshot) before))
          (should (eq major-mode 'wdired-mode))
          (should (equal (buffer-string) text)))))))

(ert-deftest descent-wdired-test-the-next-commit-tells-what-recovery-did ()
  ;; Killed during a batch, the daemon puts the files back when it starts
  ;; again; the next C-c C-c starts it, says so, and commits.
  (descent-wdired-test--with-tree '("a" "b")
    (let ((warnings nil))
      (descent-wdired-test--with-failpoint "rename-step:1:kill"
        (wdired-change-to-wdired-mode)
        (descent-wdired-test--edit "a" "a2")
        (descent-wdired-test--edit "b" "b2")
        (should-error (descent-wdired-test--commit) :type 'descent-rename-failed)
        (setenv "DESCENT_FAILPOINT" nil)
        (cl-letf (((symbol-function 'display-warning)
                   (lambda (_type message &rest _) (push message warnings))))
          (descent-wdired-test--commit)))
      (should (eq major-mode 'dired-mode))
      (should (equal (descent-wdired-test--names) '("a2" "b2")))
      (should (equal (length warnings) 1))
      (should (string-match-p "\\`descentd recovered an interrupted batch of 2 operations from .*; nothing changed\\'"
                              (car warnings))))))

(defun descent-wdired-test--tree-becomes (snapshot)
  "Wait up to 5 s for the tree to be SNAPSHOT again; non-nil if it is.
A batch cancelled as it ended is undone on a daemon worker, after the
reply that says so."
  (let ((deadline (+ (float-time) 5)))
    (while (and (not (equal (descent-wdired-test--snapshot) snapshot))
                (< (float-time) deadline))
      (sleep-for 0.02))
    (equal (descent-wdired-test--snapshot) snapshot)))

(defun descent-wdired-test--press-c-g (&rest _)
  "Do what C-g does while quits are held off: set `quit-flag'."
  (setq quit-flag t))

(defun descent-wdired-test--commit-outcome ()
  "Press C-c C-c; return `finished', or `quit' if it quit."
  (condition-case nil
      (progn (descent-wdired-test--commit) 'finished)
    (quit 'quit)))

(defun descent-wdired-test--commit-pressing-c-g (how function)
  "Press C-c C-c, and C-g HOW (:before, :after) FUNCTION runs.
Return `finished', or `quit' if the commit quit."
  (advice-add function how #'descent-wdired-test--press-c-g)
  (unwind-protect (descent-wdired-test--commit-outcome)
    (advice-remove function #'descent-wdired-test--press-c-g)))

(ert-deftest descent-wdired-test-c-g-while-the-module-waits-cancels-the-batch ()
  ;; descent holds quits off around the module's call, and C-g only sets
  ;; `quit-flag' then: the module takes it as the cancel.  Here it comes
  ;; as a progress report runs, which is as the batch ends (a batch this
  ;; small reports only then): the batch is taken back all the same, and
  ;; the buffer stays in wdired with the edits.
  (descent-wdired-test--with-tree '("a" "b")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "a2")
    (descent-wdired-test--edit "b" "b2")
    (let ((before (descent-wdired-test--snapshot))
          (text (buffer-string))
          (descent--wdired-progress-delay 0))
      (should (eq (descent-wdired-test--commit-pressing-c-g :before 'make-progress-reporter)
                  'quit))
      (should-not quit-flag)
      (descent-wdired-test--settle)
      (should (descent-wdired-test--tree-becomes before))
      (should (eq major-mode 'wdired-mode))
      (should (equal (buffer-string) text)))))

(ert-deftest descent-wdired-test-c-g-before-the-batch-is-sent-says-so ()
  (descent-wdired-test--with-tree '("a")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "a2")
    (let ((before (descent-wdired-test--snapshot))
          (messages nil))
      (cl-letf (((symbol-function 'message)
                 (lambda (format &rest args) (push (apply #'format-message format args) messages))))
        (should (eq (descent-wdired-test--commit-pressing-c-g :before 'descent--wdired-identify)
                    'quit)))
      (should (string-match-p "cancelled before it began" (car messages)))
      (should (equal (descent-wdired-test--snapshot) before))
      (should (eq major-mode 'wdired-mode)))))

(ert-deftest descent-wdired-test-c-g-after-the-outcome-lets-the-commit-finish ()
  ;; C-g once the outcome is back: too late to cancel, and it must not lose
  ;; the outcome either.  The commit completes and says so.
  (descent-wdired-test--with-tree '("a" "b")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "a2")
    (let ((messages nil))
      (cl-letf (((symbol-function 'message)
                 (lambda (format &rest args) (push (apply #'format-message format args) messages))))
        (should (eq (descent-wdired-test--commit-pressing-c-g :after 'descent--mod-rename-submit)
                    'finished)))
      (should-not quit-flag)
      (should (eq major-mode 'dired-mode))
      (should (equal (descent-wdired-test--names) '("a2" "b")))
      (should (cl-some (lambda (m) (string-match-p "came after the batch was done" m)) messages))
      (descent-undo-rename))))

(ert-deftest descent-wdired-test-c-g-during-the-listing-after-leaves-no-empty-buffer ()
  ;; The batch is done; C-g while the buffer is listed again (the revert
  ;; has erased it) returns at once, and the listing is made again once
  ;; Emacs is idle, marks and all.
  (descent-wdired-test--with-tree '("a" "b")
    (dired-goto-file (descent-test-file "b"))
    (dired-mark 1)
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "a2")
    (descent-wdired-test--edit "b" "b2")
    (let ((quits 1)
          (timer-idle-list nil))
      (cl-letf* ((insert-listing (symbol-function 'descent--mod-insert-listing))
                 ((symbol-function 'descent--mod-insert-listing)
                  (lambda (&rest args)
                    (if (> quits 0)
                        (progn (cl-decf quits) (signal 'quit nil))
                      (apply insert-listing args)))))
        (should (eq (descent-wdired-test--commit-outcome) 'quit))
        (should (eq major-mode 'dired-mode))
        (should (file-exists-p (descent-test-file "a2")))
        (let ((timer (cl-find #'descent--wdired-show-result-in timer-idle-list
                              :key #'timer--function))
              (messages nil))
          (should timer)
          (cl-letf (((symbol-function 'message)
                     (lambda (format &rest args)
                       (push (apply #'format-message format args) messages))))
            (apply (timer--function timer) (timer--args timer)))
          ;; Once listed, the user learns that the C-g cancelled nothing.
          (should (string-match-p "came after the batch was done" (car messages)))))
      (should (equal (descent-wdired-test--names) '("a2" "b2")))
      (should (equal (dired-get-marked-files) (list (descent-test-file "b2"))))
      (should-not (buffer-modified-p))
      (descent-undo-rename))))

(ert-deftest descent-wdired-test-c-g-as-buffers-follow-waits-for-them ()
  ;; C-g while the other buffers are pointed at the new names (the batch is
  ;; done): it waits until they are, so that none is left visiting an old
  ;; name, then quits; the listing is made again once Emacs is idle.
  (descent-wdired-test--with-tree '("a")
    (let ((visiting (find-file-noselect (descent-test-file "a")))
          (dired (current-buffer))
          (timer-idle-list nil))
      (unwind-protect
          (progn
            (set-buffer dired)
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "a" "a2")
            (should (eq (descent-wdired-test--commit-pressing-c-g
                         :before 'descent--wdired-follow-renames)
                        'quit))
            (should (equal (buffer-file-name visiting) (descent-test-file "a2")))
            (should-not (buffer-modified-p visiting))
            (should (cl-find #'descent--wdired-show-result-in timer-idle-list
                             :key #'timer--function))
            (descent-undo-rename))
        (kill-buffer visiting)))))

(ert-deftest descent-wdired-test-c-g-between-the-outcome-and-the-buffers-is-caught ()
  ;; A quit that lands after the outcome is back but before the buffers
  ;; follow the batch (here, as the listing is asked for ahead): the batch
  ;; is done, so the buffer leaves wdired and undo knows the batch all the
  ;; same, and the listing comes once Emacs is idle.
  (descent-wdired-test--with-tree '("a")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "a2")
    (let ((timer-idle-list nil))
      (cl-letf (((symbol-function 'descent--listing-prefetch)
                 (lambda (&rest _) (signal 'quit nil))))
        (should (eq (descent-wdired-test--commit-outcome) 'quit)))
      (should (eq major-mode 'dired-mode))
      (should (file-exists-p (descent-test-file "a2")))
      (let ((timer (cl-find #'descent--wdired-show-result-in timer-idle-list
                            :key #'timer--function)))
        (should timer)
        (apply (timer--function timer) (timer--args timer)))
      (should (equal (descent-wdired-test--names) '("a2")))
      (descent-undo-rename)
      (should (file-exists-p (descent-test-file "a"))))))

(ert-deftest descent-wdired-test-c-g-as-an-undo-ends-lets-buffers-catch-up ()
  ;; The undo is done, but a C-g cut its outcome off: once Emacs is idle,
  ;; the buffers learn it from descentd's journal.
  (descent-wdired-test--with-tree '("a")
    (let ((visiting (find-file-noselect (descent-test-file "a")))
          (dired (current-buffer))
          (quit-after-undo (lambda (call socket method &rest args)
                             (let ((result (apply call socket method args)))
                               (when (equal method "rename.undo") (signal 'quit nil))
                               result))))
      (unwind-protect
          (progn
            (set-buffer dired)
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "a" "a2")
            (descent-wdired-test--commit)
            (should (equal (buffer-file-name visiting) (descent-test-file "a2")))
            (let ((batch (car descent--wdired-history))
                  (timer-idle-list nil))
              (advice-add 'descent--mod-call :around quit-after-undo)
              (unwind-protect
                  (should (eq (condition-case nil (progn (descent-undo-rename) 'done) (quit 'quit))
                              'quit))
                (advice-remove 'descent--mod-call quit-after-undo))
              (should (file-exists-p (descent-test-file "a")))
              (should (equal (buffer-file-name visiting) (descent-test-file "a2")))
              (let ((timer (cl-find #'descent--wdired-catch-up timer-idle-list
                                    :key #'timer--function)))
                (should timer)
                (funcall (timer--function timer)))
              (should (string-match-p "came as the undo ended: it is done"
                                      (descent-wdired-test--last-message)))
              (should (equal (buffer-file-name visiting) (descent-test-file "a")))
              (should-not (buffer-modified-p visiting))
              (should (equal (descent-wdired-test--names) '("a")))
              (should-not (memq batch descent--wdired-history))))
        (kill-buffer visiting)))))

(ert-deftest descent-wdired-test-a-failing-progress-function-cancels-the-batch ()
  ;; The module calls PROGRESS while it waits (at least once, as the batch
  ;; ends): an error there unwinds past the wait, and the batch must not
  ;; stand with nobody told how it ended.
  (descent-wdired-test--with-tree '("a")
    (let* ((before (descent-wdired-test--snapshot))
           (attributes (file-attributes (descent-test-file "a") 'integer))
           (ops (vector (vector 'rename (descent-test-file "a") (descent-test-file "a2")
                                (file-attribute-device-number attributes)
                                (file-attribute-inode-number attributes) nil))))
      (should (equal (should-error
                      (descent--with-daemon
                       (lambda (socket)
                         (descent--mod-rename-submit socket ops
                                                     (lambda (_done _total) (error "Progress broke"))))))
                     '(error "Progress broke")))
      (descent-wdired-test--settle)
      (should (descent-wdired-test--tree-becomes before)))))

(ert-deftest descent-wdired-test-garbage-waits-until-emacs-is-idle ()
  ;; The commit holds `gc-cons-threshold' up until Emacs is next idle,
  ;; then gives back the value it found, unless it was changed meanwhile.
  (descent-wdired-test--with-tree '("a" "b")
    (descent--wdired-release-gc)
    (let ((before gc-cons-threshold))
      (unwind-protect
          (progn
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "a" "a2")
            (descent-wdired-test--commit)
            (should (> gc-cons-threshold before))
            (should (memq #'descent--wdired-release-gc
                          (mapcar #'timer--function timer-idle-list)))
            (descent--wdired-release-gc)
            (should (= gc-cons-threshold before))
            ;; Held inside a let that ended before Emacs was idle: the
            ;; value the let gave back stays.
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "b" "b2")
            (let ((gc-cons-threshold (* 2 before)))
              (descent-wdired-test--commit))
            (should (= gc-cons-threshold before))
            (descent--wdired-release-gc)
            (should (= gc-cons-threshold before))
            (should (equal (descent-wdired-test--names) '("a2" "b2"))))
        (descent--wdired-release-gc)
        (setq gc-cons-threshold before)))))

(ert-deftest descent-wdired-test-only-directory-listings-are-remembered ()
  ;; The commit asks again for the listing of the buffer's directory;
  ;; the lines Dired lists one file at a time are not kept for that.
  ;; (Listed by descentd even if an earlier test stopped a daemon.)
  (let ((descent--listing-next-try 0))
    (descent-wdired-test--with-tree '("a")
      (should (equal (mapcar #'car descent--listing-requests)
                     (list descent-test-directory)))
      (descent-test-make-files "b" "c")
      (dired-add-file (descent-test-file "b"))
      (dired-add-file (descent-test-file "c"))
      (should (dired-goto-file (descent-test-file "c")))
      (should (equal (mapcar #'car descent--listing-requests)
                     (list descent-test-directory))))))

(ert-deftest descent-wdired-test-trouble-after-the-batch-is-not-a-failed-batch ()
  ;; The batch is committed; an error (or C-g) while buffers are brought
  ;; up to date must neither claim a rollback nor run the built-in.
  (descent-wdired-test--with-tree '("a")
    (wdired-change-to-wdired-mode)
    (descent-wdired-test--edit "a" "b")
    (cl-letf (((symbol-function 'descent--wdired-follow-renames)
               (lambda (&rest _) (signal 'descent-daemon-unavailable '("gone" "sock"))))
              ((symbol-function 'descent--wdired-builtin-finish)
               (lambda () (error "The built-in ran"))))
      (should-error (descent-wdired-test--commit) :type 'descent-daemon-unavailable))
    (should (file-exists-p (descent-test-file "b")))
    (should (eq major-mode 'dired-mode))
    (descent-undo-rename)))

(ert-deftest descent-wdired-test-falls-back-without-a-daemon ()
  (descent-wdired-test--with-tree '("a")
    (let ((descent-daemon-program "/nonexistent/descentd")
          (descent-socket (expand-file-name "nobody-listens.sock" descent-test-directory))
          (descent--warned nil)
          (warnings nil))
      (wdired-change-to-wdired-mode)
      (descent-wdired-test--edit "a" "b")
      (cl-letf (((symbol-function 'display-warning)
                 (lambda (_type message &rest _) (push message warnings))))
        (descent-wdired-test--commit))
      (should (eq major-mode 'dired-mode))
      (should (file-exists-p (descent-test-file "b")))
      ;; One warning, for the commit and the listing that follows: it
      ;; names the program and every fallback, without Lisp's or a
      ;; child process's prefixes.
      (should (= (length warnings) 1))
      (should (string-match-p "\\`/nonexistent/descentd does not exist .*\
Dired lists with ls, wdired commits with the built-in"
                              (car warnings))))))

(ert-deftest descent-wdired-test-a-daemon-slow-to-start-is-not-bypassed ()
  ;; A daemon that does not listen yet may be recovering an interrupted
  ;; batch: the built-in must not rename files behind its back.
  (descent-wdired-test--with-tree '("a")
    (let* ((slow (make-temp-file "slow-descentd" nil nil "#!/bin/sh\nexec sleep 3\n"))
           (descent-daemon-program slow)
           (descent-daemon-start-timeout 0.3)
           (descent-socket (expand-file-name "slow/descentd.sock" temporary-file-directory))
           (descent--warned nil)
           (before (descent-wdired-test--snapshot)))
      (unwind-protect
          (progn
            (set-file-modes slow #o700)
            (wdired-change-to-wdired-mode)
            (descent-wdired-test--edit "a" "b")
            (let ((err (should-error (descent-wdired-test--commit)
                                     :type 'descent-rename-failed)))
              (should (string-match-p "recovering an interrupted batch" (cadr err))))
            (should (eq major-mode 'wdired-mode))
            (should (equal (descent-wdired-test--snapshot) before)))
        (delete-file slow)))))

(provide 'descent-wdired-tests)
;;; descent-wdired-tests.el ends here
