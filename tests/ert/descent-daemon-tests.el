;;; descent-daemon-tests.el --- descent with its real module and daemon -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; The real module (DESCENT_TEST_MODULE) and the real descentd
;; (DESCENT_TEST_DAEMON), on a socket and state directory inside a
;; temporary directory: started on demand, `descent-status', a daemon
;; killed under Emacs's feet, a daemon that cannot start, a module of
;; the wrong version.  Skipped when the environment names no module.

;;; Code:

(require 'descent-test-helper)
(require 'descent)

(defmacro descent-daemon-tests--with-module (&rest body)
  "Run BODY when the module and daemon under test are given, else skip."
  (declare (indent 0) (debug t))
  `(progn
     (skip-unless (getenv "DESCENT_TEST_MODULE"))
     ;; Named but missing is a broken build, not a reason to skip.
     (should (descent-test-module-available-p))
     (unwind-protect
         (progn
           (should (descent--module-usable-p))
           ,@body)
       (garbage-collect))))

(defun descent-daemon-tests--wait-dead (pid)
  "Wait at most 5 s for PID to be gone; return non-nil when it is."
  (let ((deadline (+ (float-time) 5)))
    (while (and (descent-test-alive-p pid) (< (float-time) deadline))
      (sleep-for 0.02))
    (not (descent-test-alive-p pid))))

(ert-deftest descent-daemon-module-loads ()
  "The module loads, reports this Lisp's version, and says how long it took."
  (skip-unless (getenv "DESCENT_TEST_MODULE"))
  (should (descent-test-module-available-p))
  (let* ((fresh (not (fboundp 'descent--mod-version)))
         (start (float-time))
         (usable (descent--module-usable-p))
         (elapsed (- (float-time) start)))
    (should usable)
    (when fresh
      (message "module load and version check: %.2f ms" (* 1000 elapsed)))
    (should (equal (descent--mod-version) descent-version))
    (should (equal descent--module-loaded-file
                   (expand-file-name (getenv "DESCENT_TEST_MODULE"))))
    (garbage-collect)))

(ert-deftest descent-daemon-status-starts-daemon ()
  "`descent-status' starts the daemon on demand and shows what it says."
  (descent-daemon-tests--with-module
    (descent-test-stop-daemon)
    (should-not (descent-test-daemon-pid))
    (let* ((status (descent-status t))
           (pid (plist-get status :pid)))
      (should (equal (plist-get status :version) descent-version))
      (should (integerp pid))
      (should (descent-test-alive-p pid))
      (should (equal (plist-get status :socket) (descent--socket-path)))
      (should (string-prefix-p (getenv "XDG_RUNTIME_DIR") (descent--socket-path)))
      (should (string-prefix-p (getenv "XDG_STATE_HOME")
                               (plist-get status :state-dir)))
      (should (numberp (plist-get status :uptime)))
      (should (equal (descent-test-daemon-pid) pid))
      ;; The process Emacs started has exited; the daemon lives on.
      (should-not (seq-find (lambda (process)
                              (and (equal (process-name process) "descentd")
                                   (process-live-p process)))
                            (process-list)))
      (with-current-buffer "*descent-status*"
        (should (string-match-p (format "Pid: +%d$" pid) (buffer-string)))
        (should (string-match-p (regexp-quote (descent--socket-path))
                                (buffer-string)))
        (should (string-match-p (format "Module: +%s" (regexp-quote descent-version))
                                (buffer-string)))
        (should (string-match-p "Uptime:" (buffer-string)))))))

(ert-deftest descent-daemon-round-trip ()
  "Calls on the persistent connection; print the mean round trip."
  (descent-daemon-tests--with-module
    (descent--call "status")
    (let ((start (float-time))
          (count 200))
      (dotimes (_ count) (descent--call "status"))
      (message "status round trip: %.1f us (mean of %d)"
               (/ (* 1e6 (- (float-time) start)) count) count))))

(ert-deftest descent-daemon-killed-restarts ()
  "The daemon killed with SIGKILL: the next command starts a new one."
  (descent-daemon-tests--with-module
    (let ((old (plist-get (descent-status) :pid)))
      (should (equal (descent-test-daemon-pid) old))
      (signal-process old 'kill)
      (should (descent-daemon-tests--wait-dead old))
      (let ((new (plist-get (descent-status) :pid)))
        (should (integerp new))
        (should-not (equal new old))
        (should (descent-test-alive-p new))
        ;; And it keeps working on the new connection.
        (should (equal (plist-get (descent--call "status") :pid) new))))))

(ert-deftest descent-daemon-program-missing ()
  "No descentd to start: a clear error naming it, and no hang."
  (descent-daemon-tests--with-module
    (let* ((descent-test-directory descent-test-root)
           (descent-daemon-program (descent-test-file "no/such/descentd"))
           (descent-socket (descent-test-file "lonely/descentd.sock")))
      (let ((err (should-error (descent--call "status")
                               :type 'descent-daemon-unavailable)))
        (should (string-match-p "no/such/descentd" (cadr err))))
      (let ((err (should-error (descent-status) :type 'user-error)))
        (should (string-match-p "no/such/descentd" (cadr err)))))))

(ert-deftest descent-daemon-cannot-start ()
  "A daemon that refuses to start: its one-line reason reaches the user."
  (descent-daemon-tests--with-module
    (let* ((descent-test-directory descent-test-root)
           (dir (descent-test-file "open-to-all/"))
           (descent-socket (expand-file-name "descentd.sock" dir)))
      (make-directory dir t)
      ;; A socket directory others can write to must be refused.
      (set-file-modes dir #o777)
      (let* ((start (float-time))
             (err (should-error (descent--call "status")
                                :type 'descent-daemon-unavailable)))
        (should (< (- (float-time) start) (+ descent-daemon-start-timeout 1)))
        (should (string-match-p "could not start: ." (cadr err)))))))

(ert-deftest descent-daemon-version-mismatch ()
  "A module of another version is refused with restart advice."
  (descent-daemon-tests--with-module
    (let ((descent-version "0.0.0-other"))
      (let ((status (descent--module-check-version)))
        (should (eq (car status) 'version))
        (should (string-match-p "restart Emacs" (cdr status)))))))

(ert-deftest descent-daemon-notify-never-blocks ()
  "A notification to a socket nobody listens on returns nil at once."
  (descent-daemon-tests--with-module
    (let* ((descent-test-directory descent-test-root)
           (socket (descent-test-file "nobody/descentd.sock"))
           (start (float-time)))
      (should-not (descent--mod-notify socket "status" []))
      (should (< (- (float-time) start) 1)))))

(ert-deftest descent-daemon-record-failure-never-breaks-find-file ()
  "A visit that cannot be recorded warns once; the file is still visited."
  (descent-daemon-tests--with-module
    (descent-test-with-directory
      (descent-test-make-files "f.txt" "g.txt")
      (let ((descent-record-visits t)
            (descent-socket 42)             ; not a file name: recording fails
            (descent--last-visit nil)
            (descent--warned nil))
        (should (bufferp (find-file (descent-test-file "f.txt"))))
        (should (equal buffer-file-name (descent-test-file "f.txt")))
        (setq descent--last-visit nil)
        (find-file (descent-test-file "g.txt"))
        (should (memq 'record-visit descent--warned))
        (should (= 1 (length descent--warned)))))))

(provide 'descent-daemon-tests)
;;; descent-daemon-tests.el ends here
