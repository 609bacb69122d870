;;; descent-module-tests.el --- The module's conversions and errors -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; The real module against the real daemon, started as a user's Emacs
;; would start it.  The daemon runs with DESCENT_TEST_HOOKS=1 so that
;; `test.echo' returns its parameters: every value crosses the wire twice.

;;; Code:

(require 'descent-test-helper)
(setenv "DESCENT_TEST_HOOKS" "1")
(require 'descent)

(defun descent-module-test--echo (&rest values)
  "Send VALUES through descentd and back; return the vector that came back."
  (descent--call "test.echo" (apply #'vector values)))

(defmacro descent-module-test--with-daemon (&rest body)
  "Run BODY when the module and daemon are there, else skip."
  (declare (indent 0) (debug t))
  `(progn
     (skip-unless (descent-test-module-available-p))
     (should (descent--module-usable-p))
     ,@body
     (garbage-collect)))

(ert-deftest descent-module-test-version-matches-the-lisp ()
  (descent-module-test--with-daemon
    (should (equal (descent--mod-version) descent-version))))

(ert-deftest descent-module-test-round-trips-scalars ()
  (descent-module-test--with-daemon
    (should (equal (descent-module-test--echo nil t 0 -1 42 most-positive-fixnum 1.5 -0.25)
                   (vector nil t 0 -1 42 most-positive-fixnum 1.5 -0.25)))))

(ert-deftest descent-module-test-round-trips-text-and-bytes ()
  (descent-module-test--with-daemon
    (let* ((text "naïve café – 日本語 \t\n \\ \"q\" -dash")
           (all-bytes (apply #'unibyte-string (number-sequence 0 255)))
           (latin1 (encode-coding-string "é" 'latin-1))
           (back (descent-module-test--echo text all-bytes latin1 "")))
      (should (equal (aref back 0) text))
      (should (multibyte-string-p (aref back 0)))
      ;; Bytes come back as the same unibyte string, byte for byte.
      (should (equal (aref back 1) all-bytes))
      (should-not (multibyte-string-p (aref back 1)))
      (should (equal (aref back 2) latin1))
      (should (equal (aref back 3) "")))))

(ert-deftest descent-module-test-round-trips-containers ()
  (descent-module-test--with-daemon
    (let ((back (descent-module-test--echo [1 [2 [3]]] '(:state-dir "x" :n 3) '(1 2 3))))
      (should (equal (aref back 0) [1 [2 [3]]]))
      (should (equal (aref back 1) '(:state-dir "x" :n 3)))
      ;; A list that is not a plist travels as an array.
      (should (equal (aref back 2) [1 2 3])))))

(ert-deftest descent-module-test-refuses-what-cannot-travel ()
  (descent-module-test--with-daemon
    (should-error (descent-module-test--echo (make-marker)) :type 'descent-error)
    (should-error (descent-module-test--echo '(:odd)) :type 'descent-error)
    (let ((deep 1))
      (dotimes (_ 40) (setq deep (vector deep)))
      (should-error (descent-module-test--echo deep) :type 'descent-error))
    ;; Nothing was sent half-way: the connection still works.
    (should (equal (descent-module-test--echo 1) [1]))))

(ert-deftest descent-module-test-signals-daemon-errors-with-their-kind ()
  (descent-module-test--with-daemon
    (let ((err (should-error (descent--call "frobnicate" []) :type 'descent-daemon-error)))
      (should (string-match-p "unknown method 'frobnicate'" (cadr err)))
      (should (equal (nth 2 err) "unknown-method")))
    (let ((err (should-error (descent--call "status" [1]) :type 'descent-daemon-error)))
      (should (equal (nth 2 err) "bad-params")))))

(ert-deftest descent-module-test-unreachable-socket ()
  (descent-module-test--with-daemon
    (let ((err (should-error (descent--mod-call (expand-file-name "nowhere.sock" descent-test-root)
                                                "status" [])
                             :type 'descent-daemon-unavailable)))
      (should (string-match-p "cannot connect to descentd at .*nowhere.sock" (cadr err))))
    (should-not (descent--mod-notify (expand-file-name "nowhere.sock" descent-test-root) "status" []))))

(ert-deftest descent-module-test-timeout ()
  (descent-module-test--with-daemon
    (should-error (descent--mod-call (descent--socket-path) "test.sleep" [2000] 0.1)
                  :type 'descent-timeout)
    ;; The call was cancelled and the next one gets a fresh connection.
    (should (equal (descent-module-test--echo "after") ["after"]))))

(ert-deftest descent-module-test-notify-does-not-wait ()
  (descent-module-test--with-daemon
    (descent--call "status" [])
    (let ((start (float-time)))
      (should (eq (descent--mod-notify (descent--socket-path) "test.sleep" [1000]) t))
      (should (< (- (float-time) start) 0.5)))
    (should (equal (descent-module-test--echo 7) [7]))))

(ert-deftest descent-module-test-lost-connection-is-not-retried ()
  (descent-module-test--with-daemon
    (descent--call "status" [])
    (let ((pid (plist-get (descent--call "status" []) :pid)))
      ;; Killed while the call runs: the call may have had an effect, so it
      ;; is reported, not silently sent again to a new daemon.
      (start-process "killer" nil "sh" "-c" (format "sleep 0.3; kill -9 %d" pid))
      (let ((err (should-error (descent--call "test.sleep" [5000])
                               :type 'descent-daemon-lost)))
        (should (string-match-p "may or may not have been carried out" (cadr err))))
      ;; The next call starts a new daemon and works.
      (should-not (equal (plist-get (descent--call "status" []) :pid) pid)))))

(defun descent-module-test--ls (dir)
  "What `ls --dired -al' prints for DIR under LC_ALL=C, as raw bytes.
Return (TEXT . NAMES): the listing without the //DIRED// trailer, and
the names its offsets delimit."
  (with-temp-buffer
    (set-buffer-multibyte nil)
    (let ((process-environment (cons "LC_ALL=C" process-environment)))
      (call-process "ls" nil t nil "--dired" "-al" "--" dir))
    (goto-char (point-min))
    (re-search-forward "^//DIRED// \\(.*\\)$")
    (let* ((text (buffer-substring (point-min) (match-beginning 0)))
           ;; After TEXT: `split-string' clobbers the match data.
           (numbers (mapcar #'string-to-number (split-string (match-string 1))))
           names)
      (while numbers
        (push (substring text (pop numbers) (pop numbers)) names))
      (cons text (nreverse names)))))

(ert-deftest descent-module-test-inserts-a-listing-with-name-properties ()
  (descent-module-test--with-daemon
    (descent--call "status" [])         ; starts the daemon if needed
    (descent-test-with-directory
      (let ((names (list "plain" "with space" "-dash" "back\\slash"
                         (decode-coding-string "caf\351" 'utf-8-emacs))))
        (dolist (name names)
          (write-region "" nil (descent-test-file name) nil 'silent))
        (let ((expected (descent-module-test--ls descent-test-directory)))
          (with-temp-buffer
            (insert "before\n")
            (let* ((start (point))
                   (result (descent--mod-insert-listing
                            (descent--socket-path)
                            (vector (encode-coding-string descent-test-directory 'utf-8)
                                    ["-al"] '(:LC_ALL "C")))))
              (should (equal (car result) (point)))
              (should (equal (nth 1 result) "literal"))
              ;; Raw bytes, exactly what ls prints.
              (should (equal (encode-coding-string
                              (buffer-substring-no-properties start (point)) 'raw-text)
                             (car expected)))
              (let (found (pos start))
                (while (setq pos (next-single-property-change pos 'dired-filename))
                  (when (get-text-property pos 'dired-filename)
                    (push (encode-coding-string
                           (buffer-substring-no-properties
                            pos (next-single-property-change pos 'dired-filename))
                           'raw-text)
                          found)))
                (should (equal (nreverse found) (cdr expected)))))))))))

(ert-deftest descent-module-test-a-prefetched-listing-is-taken-once ()
  ;; The listing asked for ahead is the one inserted when the same is
  ;; asked for (made before "late" existed), once; anything else drops it.
  (descent-module-test--with-daemon
    (descent--call "status" [])
    (descent-test-with-directory
      (write-region "" nil (descent-test-file "early") nil 'silent)
      (let* ((socket (descent--socket-path))
             (params (vector (encode-coding-string descent-test-directory 'utf-8)
                             ["-al"] '(:LC_ALL "C")))
             (other (vector (encode-coding-string descent-test-directory 'utf-8)
                            ["-alt"] '(:LC_ALL "C")))
             (listing (lambda (params)
                        (with-temp-buffer
                          (descent--mod-insert-listing socket params)
                          (buffer-string)))))
        (should (eq (descent--mod-list-prefetch socket params) t))
        (sleep-for 0.3)                 ; listed by now
        (write-region "" nil (descent-test-file "late") nil 'silent)
        (let ((ahead (funcall listing params)))
          (should (string-match-p "early" ahead))
          (should-not (string-match-p "late" ahead)))
        (should (string-match-p "late" (funcall listing params)))
        ;; Other params: the prefetched listing is not taken.
        (should (eq (descent--mod-list-prefetch socket params) t))
        (sleep-for 0.3)
        (write-region "" nil (descent-test-file "later") nil 'silent)
        (should (string-match-p "later" (funcall listing other)))
        (should (string-match-p "later" (funcall listing params)))
        ;; A prefetched listing that failed fails as the call would have,
        ;; and the next listing works.
        (let* ((gone (file-name-as-directory (descent-test-file "gone")))
               (gone-params (vector (encode-coding-string gone 'utf-8)
                                    ["-al"] '(:LC_ALL "C"))))
          (should (eq (descent--mod-list-prefetch socket gone-params) t))
          (with-temp-buffer
            (should-error (descent--mod-insert-listing socket gone-params)
                          :type 'descent-daemon-error))
          (should (eq (descent--mod-list-prefetch socket params) t))
          (should (string-match-p "later" (funcall listing params))))
        ;; No daemon: nil, no error.
        (should-not (descent--mod-list-prefetch
                     (expand-file-name "nobody.sock" descent-test-directory) params))))))

(provide 'descent-module-tests)
;;; descent-module-tests.el ends here
