;;; descent-frecency-tests.el --- C-u C-x C-j and visit recording -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; Issue #6 from Emacs, with the real module and daemon: visits recorded
;; without waiting (and delivered once a daemon started in the
;; background listens), completion best first with category `file' and
;; annotations, keywords or paths typed at the prompt, `descent-jump-to',
;; and non-UTF-8 directory names.  Only the minibuffer is replaced (batch
;; Emacs reads it from stdin): `completing-read' answers for the user.

;;; Code:

(require 'descent-test-helper)
(require 'descent)

(defmacro descent-frecency-tests--with-daemon (&rest body)
  "Run BODY with the module, a daemon and visit recording, else skip.
Each run gets a fresh state directory, so that the index starts empty."
  (declare (indent 0) (debug t))
  `(progn
     (skip-unless (getenv "DESCENT_TEST_MODULE"))
     (should (descent-test-module-available-p))
     (should (descent--module-usable-p))
     (descent-test-with-directory
       (descent-test-stop-daemon)
       (let ((descent-state-directory (descent-test-file "state/"))
             (descent-record-visits t)
             (descent--last-visit nil))
         (unwind-protect
             (progn
               (descent--call "status")
               (should (descent-frecency-tests--methods-p))
               ,@body)
           (descent-test-stop-daemon)
           (garbage-collect))))))

(defun descent-frecency-tests--methods-p ()
  "Non-nil when the daemon serves the frecency methods."
  (condition-case err
      (progn (descent--call "frecency.list") t)
    (descent-daemon-error
     (message "descentd does not serve frecency.list: %s"
              (error-message-string err))
     nil)))

(defun descent-frecency-tests--listed ()
  "The directories in the index, best first."
  (mapcar (lambda (match)
            (file-name-as-directory
             (descent--path-text (plist-get match :path))))
          (descent--call "frecency.list")))

(defun descent-frecency-tests--wait-listed (directories)
  "Wait at most 3 s until every one of DIRECTORIES is in the index.
Visits are notifications: nothing says when the daemon has them."
  (let ((deadline (+ (float-time) 3)))
    (while (and (cl-set-difference directories (descent-frecency-tests--listed)
                                   :test #'equal)
                (< (float-time) deadline))
      (sleep-for 0.02))
    (should-not (cl-set-difference directories (descent-frecency-tests--listed)
                                   :test #'equal))))

(defun descent-frecency-tests--visit (directory times)
  "Record TIMES visits of DIRECTORY, and wait for the daemon to have them."
  (dotimes (_ times)
    (descent--call "frecency.add" (vector (descent--path-bytes directory)))))

(defmacro descent-frecency-tests--answering (input &rest body)
  "Run BODY with the minibuffer answering INPUT; return the prompt's table.
The completion table and prompt are kept in `descent-frecency-tests--asked'."
  (declare (indent 1))
  `(cl-letf (((symbol-function 'completing-read)
              (lambda (prompt table _predicate _require-match _initial _history
                              &optional default &rest _)
                (setq descent-frecency-tests--asked (list prompt table default)
                      descent-frecency-tests--space
                      (lookup-key minibuffer-local-completion-map " "))
                (if (string-empty-p ,input) (or default "") ,input))))
     ,@body))

(defvar descent-frecency-tests--space nil
  "What SPC did in the last `completing-read's minibuffer.")

(defvar descent-frecency-tests--asked nil
  "The last (PROMPT TABLE DEFAULT) given to `completing-read'.")

(ert-deftest descent-frecency-records-visits ()
  "Visiting files and Dired buffers records their directories."
  (descent-frecency-tests--with-daemon
    (descent-test-make-files "code/f.txt" "docs/")
    (find-file (descent-test-file "code/f.txt"))
    (dired (descent-test-file "docs/"))
    (descent-frecency-tests--wait-listed
     (list (descent-test-file "code/") (descent-test-file "docs/")))))

(ert-deftest descent-frecency-records-when-daemon-is-down ()
  "With no daemon, a visit starts one in the background and is delivered."
  (descent-frecency-tests--with-daemon
    (descent-test-make-files "later/")
    (descent-test-stop-daemon)
    (should-not (descent-test-daemon-pid))
    (let ((start (float-time)))
      (dired (descent-test-file "later/"))
      ;; The command did not wait for the daemon to start.
      (should (< (- (float-time) start) 1)))
    (descent-frecency-tests--wait-listed (list (descent-test-file "later/")))))

(ert-deftest descent-frecency-records-after-daemon-killed ()
  "The daemon killed with SIGKILL: the next visit starts a new one."
  (descent-frecency-tests--with-daemon
    (descent-test-make-files "before/" "after/")
    (dired (descent-test-file "before/"))
    (descent-frecency-tests--wait-listed (list (descent-test-file "before/")))
    (let ((old (descent-test-daemon-pid)))
      (signal-process old 'kill)
      (let ((deadline (+ (float-time) 5)))
        (while (and (descent-test-alive-p old) (< (float-time) deadline))
          (sleep-for 0.02)))
      (dired (descent-test-file "after/"))
      ;; Wait for the background start without calling the daemon, which
      ;; would start it in the foreground instead.  (It may be done before
      ;; `dired' returns: look at the pid file, not at the process.)
      (let ((deadline (+ (float-time) 3)))
        (while (and (let ((pid (descent-test-daemon-pid)))
                      (or (equal pid old) (not pid)
                          (not (descent-test-alive-p pid))))
                    (< (float-time) deadline))
          (accept-process-output nil 0.02)))
      (should-not (equal (descent-test-daemon-pid) old))
      (descent-frecency-tests--wait-listed
       (list (descent-test-file "before/") (descent-test-file "after/"))))))

(ert-deftest descent-frecency-a-daemon-that-does-not-answer-costs-little ()
  "A stopped daemon: visits queue up without holding Emacs, and arrive later.
Once its socket buffer is full a visit waits for the handshake of a new
connection; after one such wait visits are held back for a while."
  (descent-frecency-tests--with-daemon
    (let ((pid (descent-test-daemon-pid))
          (descent--visits-next-try 0)
          (descent--pending-visits nil)
          (descent--warned nil)
          (slowest 0))
      (dotimes (i 400) (make-directory (descent-test-file (format "d%d/" i))))
      (signal-process pid 'SIGSTOP)
      (unwind-protect
          (dotimes (i 400)
            (let ((start (float-time))
                  (descent--last-visit nil))
              (descent--record-visit (descent-test-file (format "d%d/" i)))
              (setq slowest (max slowest (- (float-time) start)))))
        (signal-process pid 'SIGCONT))
      ;; Before, every visit after the first few hundred waited 5 s.
      (should (< slowest 2))
      (should (> descent--visits-next-try (float-time)))
      (should (memq 'visits-unanswered descent--warned))
      (should (= (length descent--pending-visits) descent--pending-visits-max))
      ;; Once the pause is over, the next visit takes the kept ones along.
      (setq descent--visits-next-try 0)
      (make-directory (descent-test-file "later/"))
      (let ((descent--last-visit nil))
        (descent--record-visit (descent-test-file "later/")))
      (should-not descent--pending-visits)
      (descent-frecency-tests--wait-listed
       (list (descent-test-file "d399/") (descent-test-file "later/"))))))

(ert-deftest descent-frecency-remote-not-recorded ()
  "Remote directories are never recorded (nor connected to)."
  (let ((descent-record-visits t)
        (descent--last-visit nil))
    (descent--record-visit "/ssh:nobody@host.invalid:/tmp/")
    (should-not descent--last-visit)))

(ert-deftest descent-frecency-completion-best-first ()
  "C-u C-x C-j offers the index best first, as files, annotated."
  (descent-frecency-tests--with-daemon
    (descent-test-make-files "often/" "seldom/" "middle/")
    (descent-frecency-tests--visit (descent-test-file "often/") 5)
    (descent-frecency-tests--visit (descent-test-file "middle/") 3)
    (descent-frecency-tests--visit (descent-test-file "seldom/") 1)
    (descent-frecency-tests--answering ""
      (let ((current-prefix-arg '(4)))
        (call-interactively #'descent-jump)))
    ;; Empty input: the best directory, opened itself.
    (should (derived-mode-p 'dired-mode))
    (should (equal default-directory (descent-test-file "often/")))
    (pcase-let ((`(,prompt ,table ,default) descent-frecency-tests--asked))
      (should (string-match-p "often" prompt))
      (should (equal default (abbreviate-file-name (descent-test-file "often/"))))
      (let ((metadata (completion-metadata "" table nil)))
        (should (eq (completion-metadata-get metadata 'category) 'file))
        (let* ((sort (completion-metadata-get metadata 'display-sort-function))
               (annotate (completion-metadata-get metadata 'annotation-function))
               (shown (funcall sort (all-completions "" table))))
          (should (equal (seq-take shown 3)
                         (mapcar (lambda (name)
                                   (abbreviate-file-name (descent-test-file name)))
                                 '("often/" "middle/" "seldom/"))))
          (should (string-match-p "[0-9.]+ +just now" (funcall annotate (car shown)))))))
    ;; From there, not there again: the best of the others.
    (descent-frecency-tests--answering ""
      (let ((current-prefix-arg '(4)))
        (call-interactively #'descent-jump)))
    (should (equal default-directory (descent-test-file "middle/")))))

(ert-deftest descent-frecency-completion-keywords-and-paths ()
  "Typed words mean the best match; a typed path is taken as it is."
  (descent-frecency-tests--with-daemon
    (descent-test-make-files "projects/alpha/" "projects/beta/" "notes/todo.txt")
    (descent-frecency-tests--visit (descent-test-file "projects/alpha/") 2)
    (descent-frecency-tests--visit (descent-test-file "projects/beta/") 1)
    (descent-frecency-tests--answering "proj bet"
      (let ((current-prefix-arg '(4)))
        (call-interactively #'descent-jump)))
    (should (equal default-directory (descent-test-file "projects/beta/")))
    ;; Typed, not completed: SPC separates the words.
    (should (eq descent-frecency-tests--space #'self-insert-command))
    ;; A file name typed: its directory with point on it, in another window.
    (let ((window (selected-window)))
      (descent-frecency-tests--answering (descent-test-file "notes/todo.txt")
        (let ((current-prefix-arg '(4)))
          (call-interactively #'descent-jump-other-window)))
      (should-not (eq window (selected-window))))
    (should (equal (descent-test-point-file) (descent-test-file "notes/todo.txt")))
    ;; A word naming a directory here is that directory, as in zoxide.
    ;; (notes/ is not in the index.)
    (let ((default-directory descent-test-directory))
      (descent-frecency-tests--answering "notes"
        (let ((current-prefix-arg '(4)))
          (call-interactively #'descent-jump))))
    (should (equal default-directory (descent-test-file "notes/")))
    ;; And a file here, that file.
    (let ((default-directory (descent-test-file "notes/")))
      (descent-frecency-tests--answering "todo.txt"
        (let ((current-prefix-arg '(4)))
          (call-interactively #'descent-jump))))
    (should (equal (descent-test-point-file) (descent-test-file "notes/todo.txt")))
    ;; Words nothing matches.
    (descent-frecency-tests--answering "zzz-nothing"
      (let ((current-prefix-arg '(4)))
        (should-error (call-interactively #'descent-jump) :type 'user-error)))))

(ert-deftest descent-frecency-jump-to ()
  "`descent-jump-to' takes keywords from Lisp, with zoxide's smart case."
  (descent-frecency-tests--with-daemon
    (descent-test-make-files "src/Emacs/" "src/emacs-lisp/")
    (descent-frecency-tests--visit (descent-test-file "src/emacs-lisp/") 3)
    (descent-frecency-tests--visit (descent-test-file "src/Emacs/") 1)
    (should (equal (descent-jump-to "src emacs") (descent-test-file "src/emacs-lisp/")))
    (should (equal default-directory (descent-test-file "src/emacs-lisp/")))
    (should (equal (descent-jump-to '("src" "Emacs")) (descent-test-file "src/Emacs/")))
    (should-error (descent-jump-to "no-such-place") :type 'user-error)))

(ert-deftest descent-frecency-non-utf-8-name ()
  "A directory whose name is not UTF-8 survives the round trip."
  (descent-frecency-tests--with-daemon
    (let* ((name (concat (decode-coding-string "caf\351" 'utf-8-unix) "/"))
           (directory (descent-test-file name)))
      (make-directory directory)
      (should (equal (encode-coding-string directory 'utf-8-unix)
                     (concat (encode-coding-string descent-test-directory 'utf-8-unix)
                             "caf\351/")))
      (descent-frecency-tests--visit directory 1)
      (should (member directory (descent-frecency-tests--listed)))
      (should (equal (descent-jump-to "caf") directory))
      (should (equal default-directory directory)))))

(provide 'descent-frecency-tests)
;;; descent-frecency-tests.el ends here
