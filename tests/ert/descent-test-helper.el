;;; descent-test-helper.el --- Shared setup of descent's ERT tests -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; Load this before descent.  It points XDG_RUNTIME_DIR and
;; XDG_STATE_HOME at a fresh temporary directory (with `setenv', which
;; also reaches a daemon started by Emacs), takes the module and daemon
;; under test from DESCENT_TEST_MODULE and DESCENT_TEST_DAEMON, keeps
;; the temporary directory when a test fails and says where, and stops
;; any daemon the tests started when Emacs exits.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'subr-x)

(defvar descent-test-root
  (file-name-as-directory (file-truename (make-temp-file "descent-ert-" t)))
  "Temporary directory holding everything the tests create.")

(defvar descent-test-failed nil
  "Non-nil once a test failed: keep `descent-test-root' for inspection.")

;; Before descent is loaded, so that nothing ever sees the user's state.
(let ((runtime (expand-file-name "run" descent-test-root))
      (state (expand-file-name "state" descent-test-root)))
  (make-directory runtime t)
  (set-file-modes runtime #o700)
  (make-directory state t)
  (setenv "XDG_RUNTIME_DIR" runtime)
  (setenv "XDG_STATE_HOME" state))

(defvar descent-module-file)
(defvar descent-daemon-program)
(defvar descent-record-visits)
(defvar descent--daemon-starting)

;; Visits would start daemons in the background from tests about other
;; things; the frecency tests turn recording on where they test it.
(setq descent-record-visits nil)
(let ((module (getenv "DESCENT_TEST_MODULE"))
      (daemon (getenv "DESCENT_TEST_DAEMON")))
  (when (and module (not (string-empty-p module)))
    (setq descent-module-file module))
  (when (and daemon (not (string-empty-p daemon)))
    (setq descent-daemon-program daemon)))

(defun descent-test-module-available-p ()
  "Non-nil when the tests were given a module and a daemon to use."
  (let ((module (getenv "DESCENT_TEST_MODULE"))
        (daemon (getenv "DESCENT_TEST_DAEMON")))
    (and module daemon (file-exists-p module) (file-executable-p daemon))))

(defun descent-test-pid-file ()
  "The pid file of the daemon on the tests' socket."
  (expand-file-name "descent/descentd.pid" (getenv "XDG_RUNTIME_DIR")))

(defun descent-test-daemon-pid ()
  "The pid in the daemon's pid file, or nil."
  (let ((file (descent-test-pid-file)))
    (when (file-exists-p file)
      (with-temp-buffer
        (insert-file-contents file)
        (let ((pid (string-to-number (buffer-string))))
          (and (> pid 0) pid))))))

(defun descent-test-alive-p (pid)
  "Non-nil while process PID, or any of its threads, still runs.
A daemonized descentd is reparented to PID 1, which in a container may
never reap it: a zombie counts as gone, but only once every thread has
exited, since the threads keep the socket and the lock open until then."
  (let ((attributes (process-attributes pid)))
    (and attributes
         (or (not (equal (alist-get 'state attributes) "Z"))
             (let ((tasks (format "/proc/%d/task" pid)))
               (and (file-directory-p tasks)
                    (> (length (directory-files tasks nil "\\`[0-9]")) 1)))))))

(defun descent-test-stop-daemon ()
  "Stop the daemon on the tests' socket, if one runs."
  ;; A daemon being started in the background must be up before it is
  ;; stopped, or it would outlive the tests.
  (let ((deadline (+ (float-time) 3)))
    (while (and (bound-and-true-p descent--daemon-starting)
                (process-live-p descent--daemon-starting)
                (< (float-time) deadline))
      (accept-process-output descent--daemon-starting 0.02)))
  ;; The pid before `stop': the daemon removes its pid file before it
  ;; has exited, and a test must not talk to a daemon that is leaving.
  (let ((pid (descent-test-daemon-pid))
        (deadline (+ (float-time) 2)))
    (when (and (fboundp 'descent--mod-call) (fboundp 'descent--socket-path)
               (file-exists-p (descent--socket-path)))
      (ignore-errors (descent--mod-call (descent--socket-path) "stop" [] 5)))
    ;; A daemon that did not answer must not outlive the tests either.
    (when pid
      (while (and (descent-test-alive-p pid) (< (float-time) deadline))
        (sleep-for 0.02))
      (when (descent-test-alive-p pid)
        (signal-process pid 'kill)))))

(defun descent-test--cleanup ()
  "Stop the daemon and remove the temporary directory unless a test failed."
  (descent-test-stop-daemon)
  (if descent-test-failed
      (message "descent tests: keeping %s" descent-test-root)
    (ignore-errors (delete-directory descent-test-root t))))

(add-hook 'kill-emacs-hook #'descent-test--cleanup)

(defun descent-test--note-result (test)
  "Keep `descent-test-root' when TEST did not end as expected."
  (let ((result (ert-test-most-recent-result test)))
    (when (and result (not (ert-test-result-expected-p test result)))
      (setq descent-test-failed t))))

(advice-add 'ert-run-test :after #'descent-test--note-result)

(defun descent-test-kill-buffers-under (dir)
  "Kill every buffer whose directory or file lies under DIR."
  (dolist (buffer (buffer-list))
    (let ((where (and (buffer-live-p buffer)
                      (with-current-buffer buffer
                        (or buffer-file-name default-directory)))))
      (when (and where (string-prefix-p dir (expand-file-name where)))
        (with-current-buffer buffer (set-buffer-modified-p nil))
        (kill-buffer buffer)))))

(defvar descent-test-directory nil
  "The temporary directory of the running `descent-test-with-directory'.")

(defun descent-test-file (name)
  "NAME expanded in `descent-test-directory'."
  (expand-file-name name descent-test-directory))

(defmacro descent-test-with-directory (&rest body)
  "Run BODY in a fresh temporary directory, `descent-test-directory'.
The directory and every buffer in it are removed when BODY succeeds;
when it fails, the directory is kept and its name printed."
  (declare (indent 0) (debug t))
  (let ((dir (make-symbol "dir")))
    `(let ((,dir (file-name-as-directory
                  (make-temp-file (expand-file-name "t-" descent-test-root) t))))
       (condition-case err
           (let ((default-directory ,dir)
                 (descent-test-directory ,dir))
             (save-window-excursion
               (delete-other-windows)
               ,@body))
         (error
          (setq descent-test-failed t)
          (message "Keeping test directory:\n  %s" ,dir)
          (signal (car err) (cdr err))))
       (descent-test-kill-buffers-under ,dir)
       (delete-directory ,dir t))))

(defun descent-test-make-files (&rest names)
  "Create NAMES in `descent-test-directory'; NAME/ makes a directory."
  (dolist (name names)
    (let ((file (descent-test-file name)))
      (if (directory-name-p name)
          (make-directory file t)
        (make-directory (file-name-directory file) t)
        (write-region (concat name "\n") nil file nil 'silent)))))

(defun descent-test-point-file ()
  "The absolute file name on the current Dired line, or nil."
  (dired-get-filename nil t))

(provide 'descent-test-helper)
;;; descent-test-helper.el ends here
