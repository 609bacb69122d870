;;; descent-listing-tests.el --- Dired listings from descentd, against ls -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; GNU ls is the oracle: every Dired buffer made with
;; `descent-native-listing' on must have the text and the
;; `dired-filename' properties of the one made with it off, on a
;; generated tree of awkward names, for the switches people put in
;; `dired-listing-switches', under LC_ALL=C and C.UTF-8.  Each test also
;; checks that the daemon did make the listing, so that a silent fall
;; back to ls cannot pass for a match.

;;; Code:

(require 'descent-test-helper)
(setenv "DESCENT_TEST_HOOKS" "1")
(require 'descent)
(require 'dired)
(require 'dired-aux)

(defconst descent-listing-test-switches
  '("-al" "-alh" "-alhv --group-directories-first" "-lA" "-alt" "-altr"
    "-alS" "-alX" "-alF" "-alib" "-algG" "-aln"
    "--time-style=long-iso -al" "-al --si" "-alL" "-alps" "-ald")
  "The switch sets of issue #3, -L for the symlinks, and -d (no total line).")

(defconst descent-listing-test-locales '("C" "C.UTF-8")
  "The values of LC_ALL the listings are compared under.")

(defconst descent-listing-test-tree-script
  "set -e
cd \"$1\"
: > plain
: > 'with space'
: > '  two leading spaces'
: > -dash
: > --double-dash
printf 'x' > \"$(printf 'new\\nline')\"
printf 'x' > \"$(printf 'cr\\rreturn')\"
: > 'back\\slash'
: > \"it's\"
: > '\"dq\"'
: > \"$(printf 'latin1-caf\\351')\"
: > \"$(printf 'bad-\\377\\376-bytes')\"
: > 'café-utf8'
: > '日本語のファイル'
: > \"$(printf 'e\\314\\201-combining')\"
: > \"$(printf '%0255d' 0)\"
: > name.tar.gz
: > name.c
: > file10
: > file9
: > file1.2.10
: > file1.2.9
mkdir dir 'dir with space' .hidden-dir
: > dir/inside
: > .hidden
ln -s plain link-good
ln -s nowhere link-broken
ln -s dir link-dir
ln -s \"$(printf 'new\\nline')\" link-to-newline
mkfifo fifo
printf '#!/bin/sh\\n' > exec.sh
chmod 755 exec.sh
: > setuid; chmod 4755 setuid
: > setgid; chmod 2755 setgid
mkdir sticky; chmod 1777 sticky
: > future; touch -d '2100-01-01 12:00:00' future
: > ancient; touch -d '1990-06-15 08:30:00' ancient
: > half-year; touch -d '-200 days' half-year
for n in 999 1000 1023 1024 1025 999999 1000000 1048575 1048576 1048577; do
  head -c $n /dev/zero > size-$n
done
: > hard1; ln hard1 hard2; ln hard1 hard3
if [ \"$(id -u)\" = 0 ]; then
  : > no-owner; chown 54321:54322 no-owner
fi
"
  "A shell script that fills the directory $1 with awkward entries.")

(defun descent-listing-test--make-tree (dir)
  "Fill DIR with the awkward entries of the tests; return DIR."
  (let ((status (call-process "sh" nil "*descent-tree*" nil "-c"
                              descent-listing-test-tree-script "sh" dir)))
    (unless (eq status 0)
      (error "Making the test tree failed: %s"
             (with-current-buffer "*descent-tree*" (buffer-string)))))
  ;; A socket, which the shell cannot make.
  (let ((server (make-network-process
                 :name "descent-socket-entry" :family 'local :server t
                 :service (expand-file-name "socket" dir))))
    (delete-process server))
  dir)

(defvar descent-listing-test--fetches nil
  "What `descent--listing-fetch' returned, newest first, while recording.")

(defvar descent-listing-test--propertized nil
  "Whether the module put Dired's properties, per fetch, newest first.")

(defun descent-listing-test--record-fetch (fetch &rest args)
  "Call FETCH with ARGS and record the quoting style it returned."
  (let ((result (apply fetch args)))
    (push (nth 1 result) descent-listing-test--fetches)
    (push (nth 3 result) descent-listing-test--propertized)
    result))

(defmacro descent-listing-test--with-daemon (&rest body)
  "Run BODY with the daemon running and fetches recorded, else skip."
  (declare (indent 0) (debug t))
  `(progn
     (skip-unless (descent-test-module-available-p))
     (should (descent--module-usable-p))
     (descent--call "status" [])
     (advice-add 'descent--listing-fetch :around
                 #'descent-listing-test--record-fetch)
     (unwind-protect
         (let ((descent-listing-test--fetches nil)
               (descent--listing-next-try 0))
           ,@body)
       (advice-remove 'descent--listing-fetch
                      #'descent-listing-test--record-fetch))))

(defun descent-listing-test--snapshot (start end)
  "The text between START and END, where its names are, and its properties.
Return (TEXT RUNS . INTERVALS), RUNS the (BEGIN . END) of every run of
the `dired-filename' property, relative to START, and INTERVALS every
text property as `object-intervals' gives them (the module puts Dired's
properties itself)."
  (cons (buffer-substring-no-properties start end)
        (cons (mapcar (lambda (run)
                        (cons (- (car run) start) (- (cdr run) start)))
                      (descent--listing-names start end))
              (descent-listing-test--intervals
               (object-intervals (buffer-substring start end))))))

(defun descent-listing-test--intervals (intervals)
  "INTERVALS without those with no property, neighbours with equal ones merged.
How Emacs splits text with the same properties into intervals depends
on how it was inserted, not on what a user sees; nor does a property
whose value is nil differ from one that is absent (ls's own offsets
can make `insert-directory-clean' put `dired-filename' nil)."
  (let (merged)
    (dolist (interval intervals)
      (let ((plist nil))
        (cl-loop for (property value) on (nth 2 interval) by #'cddr
                 when value do (setq plist (nconc plist (list property value))))
        (setq interval (list (nth 0 interval) (nth 1 interval) plist)))
      (when (nth 2 interval)
        (if (and merged
                 (= (nth 1 (car merged)) (car interval))
                 (equal (nth 2 (car merged)) (nth 2 interval)))
            (setcar merged (list (car (car merged)) (nth 1 interval)
                                 (nth 2 interval)))
          (push interval merged))))
    (nreverse merged)))

(defun descent-listing-test--dired (dir switches native)
  "The snapshot of a Dired buffer on DIR with SWITCHES.
NATIVE is the value of `descent-native-listing'."
  (let ((descent-native-listing native))
    (cl-letf (((symbol-function 'get-free-disk-space)
               ;; Other processes write to this disk meanwhile.
               (lambda (_dir) "4242")))
      (let ((buffer (dired-noselect dir switches)))
        (unwind-protect
            (with-current-buffer buffer
              (descent-listing-test--snapshot (point-min) (point-max)))
          (kill-buffer buffer))))))

(defun descent-listing-test--insert (file switches full native)
  "The snapshot of `insert-directory' of FILE with SWITCHES and FULL.
NATIVE is the value of `descent-native-listing'.  The listing is
inserted between two lines of text, as Dired inserts a single file."
  (let ((descent-native-listing native))
    (cl-letf (((symbol-function 'get-free-disk-space)
               (lambda (_dir) "4242")))
      (with-temp-buffer
        (insert "before\n")
        (save-excursion (insert "after\n"))
        (insert-directory file switches nil full)
        (descent-listing-test--snapshot (point-min) (point-max))))))

(defun descent-listing-test--show (a b)
  "Where snapshots A and B first differ, for the failure message."
  (let ((i (or (compare-strings (car a) nil nil (car b) nil nil) t)))
    (if (eq i t)
        (list :names-on (cdr a) :names-off (cdr b))
      (let ((at (1- (abs i))))
        (list :at at
              :on (substring (car a) (max 0 (- at 60))
                             (min (length (car a)) (+ at 60)))
              :off (substring (car b) (max 0 (- at 60))
                              (min (length (car b)) (+ at 60))))))))

(defmacro descent-listing-test--same (on off &rest context)
  "Check that snapshots ON and OFF are equal; CONTEXT goes in the message."
  `(let ((on ,on) (off ,off))
     (unless (equal on off)
       (ert-fail (list ,@context (descent-listing-test--show on off))))))

(defun descent-listing-test--has (letter switches)
  "Non-nil when the short switches in SWITCHES include LETTER."
  (let ((case-fold-search nil))
    (string-match-p (concat "\\(\\`\\| \\)-[^- ]*" letter) switches)))

(ert-deftest descent-listing-test-dired-buffers-are-identical ()
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (let ((dir (descent-listing-test--make-tree descent-test-directory)))
        (dolist (locale descent-listing-test-locales)
          (let ((process-environment
                 (cons (concat "LC_ALL=" locale) process-environment)))
            (dolist (switches descent-listing-test-switches)
              (setq descent-listing-test--fetches nil)
              (let ((on (descent-listing-test--dired dir switches t))
                    (off (descent-listing-test--dired dir switches nil)))
                ;; The daemon made it; ls did not.  With -L, ls complains
                ;; about the broken link: the daemon leaves that to ls.
                (should (equal descent-listing-test--fetches
                               (list (cond ((descent-listing-test--has
                                             "L" switches)
                                            nil)
                                           ((descent-listing-test--has
                                             "b" switches)
                                            "escape")
                                           (t "literal")))))
                (descent-listing-test--same on off locale switches)
                ;; Names do have properties (except where ls's own
                ;; offsets make Dired drop them), every name but with -d.
                (unless (or (descent-listing-test--has "F" switches)
                            (descent-listing-test--has "d" switches))
                  (should (> (length (cadr on)) 40)))))))))))

(defconst descent-listing-test-plain-tree-script
  "set -e
cd \"$1\"
: > plain
: > 'with space'
: > -dash
: > 'café-utf8'
: > '日本語のファイル'
: > \"$(printf 'e\\314\\201-combining')\"
: > \"it's\"
mkdir dir 'dir with space'
ln -s plain link-good
ln -s nowhere link-broken
ln -s 'café-utf8' link-to-utf8
printf '#!/bin/sh\\n' > exec.sh
chmod 755 exec.sh
: > ancient; touch -d '1990-06-15 08:30:00' ancient
"
  "A shell script that fills $1 with names that are plain UTF-8.")

(ert-deftest descent-listing-test-module-puts-dired-properties ()
  ;; ASCII and plain UTF-8 listings are decoded and given Dired's
  ;; properties by the module: the same text and intervals as Dired's.
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (let ((status (call-process "sh" nil nil nil "-c"
                                  descent-listing-test-plain-tree-script
                                  "sh" descent-test-directory)))
        (should (eq status 0)))
      (dolist (coding '(utf-8 nil))
        (dolist (locale descent-listing-test-locales)
          (let ((process-environment
                 (cons (concat "LC_ALL=" locale) process-environment))
                (file-name-coding-system coding))
            (dolist (switches '("-al" "-alh" "-alt" "-alb" "-aln"
                                "--time-style=long-iso -al"))
              (setq descent-listing-test--fetches nil
                    descent-listing-test--propertized nil)
              (let ((on (descent-listing-test--dired
                         descent-test-directory switches t))
                    (off (descent-listing-test--dired
                          descent-test-directory switches nil)))
                (should (car descent-listing-test--fetches))
                ;; In utf-8 every listing here is inserted decoded;
                ;; otherwise only ASCII ones (-b escapes the rest).
                (when coding
                  (should (car descent-listing-test--propertized)))
                (descent-listing-test--same on off coding locale switches)
                (should (> (length (cadr on)) 10)))))))
      ;; The subdirectory alist, which the advice builds without
      ;; searching the listing, is Dired's, with or without a name that
      ;; ends in a colon (which Dired takes for a header with -i).
      (dolist (colon '(nil t))
        (when colon (write-region "" nil "ends-in-colon:"))
        (dolist (switches '("-al" "-ali"))
          (let (alists)
            (dolist (native '(t nil))
              (let ((descent-native-listing native)
                    (file-name-coding-system 'utf-8)
                    (descent-listing-test--propertized nil))
                (with-current-buffer (dired-noselect descent-test-directory
                                                     switches)
                  (should (eq (car descent-listing-test--propertized) native))
                  (push (mapcar (lambda (entry)
                                  (cons (car entry) (marker-position (cdr entry))))
                                dired-subdir-alist)
                        alists)
                  (push (buffer-string) alists)
                  (kill-buffer))))
            (should (equal (nth 0 alists) (nth 2 alists)))
            (should (equal (nth 1 alists) (nth 3 alists)))))))))

(defun descent-listing-test--no-goto-file (&rest _)
  "Stand-in for `dired-goto-file' where it must not be called."
  (error "Called dired-goto-file"))

(defmacro descent-listing-test--without-goto-file (&rest body)
  "Run BODY with `dired-goto-file' signalling an error, descent's advice too.
An outermost :override advice, since `descent-mode' advises it."
  (declare (indent 0) (debug t))
  `(progn
     (advice-add 'dired-goto-file :override #'descent-listing-test--no-goto-file)
     (unwind-protect (progn ,@body)
       (advice-remove 'dired-goto-file #'descent-listing-test--no-goto-file))))

(ert-deftest descent-listing-test-jump-finds-the-name-in-the-listing ()
  ;; Point goes where the listing found the name, not to the first
  ;; text that looks like it (here, every owner column).
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (let* ((owner (user-login-name))
             (file (expand-file-name owner descent-test-directory))
             (descent-native-listing t))
        (dotimes (i 30) (write-region "" nil (format "A%02d" i)))
        (write-region "" nil file)
        (with-current-buffer (find-file-noselect file)
          (unwind-protect
              (progn
                (setq descent-listing-test--propertized nil)
                (descent-listing-test--without-goto-file
                  (descent-jump))
                (should (car descent-listing-test--propertized))
                (should (derived-mode-p 'dired-mode))
                (should (equal (dired-get-filename nil t) file))
                (should (eq (point) (save-excursion
                                      (dired-move-to-filename))))
                ;; Into the Dired buffer that exists: no listing, the
                ;; name is found as a name, still without a search.
                (let ((dired-buffer (current-buffer)))
                  (goto-char (point-min))
                  (with-current-buffer (get-file-buffer file)
                    (descent-listing-test--without-goto-file
                      (descent-jump))
                    (should (eq (current-buffer) dired-buffer))
                    (should (equal (dired-get-filename nil t) file)))
                  (kill-buffer dired-buffer)))
            (kill-buffer (get-file-buffer file))))))))

;; `dired-goto-file' (which `g' uses to put point back) finds the name
;; as a name: one `dired-get-filename', not one per owner column.
(ert-deftest descent-listing-test-goto-file-and-revert-find-the-name ()
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (let* ((owner (user-login-name))
             (file (expand-file-name owner descent-test-directory))
             (descent-native-listing t)
             (dired-listing-switches "-al")
             (calls 0)
             (count (lambda (&rest _) (setq calls (1+ calls)))))
        (dotimes (i 30) (write-region "" nil (format "A%02d" i)))
        (write-region "" nil file)
        (with-current-buffer (dired-noselect descent-test-directory)
          (unwind-protect
              (progn
                (goto-char (point-min))
                (advice-add 'dired-get-filename :before count)
                (unwind-protect (should (dired-goto-file file))
                  (advice-remove 'dired-get-filename count))
                (should (equal (dired-get-filename nil t) file))
                (should (eq (point) (save-excursion (dired-move-to-filename))))
                (should (< calls 3))
                (revert-buffer)
                (should (equal (dired-get-filename nil t) file))
                ;; A name it does not find as a name: the built-in decides.
                (should-not (dired-goto-file (expand-file-name "absent" descent-test-directory))))
            (kill-buffer)))))))

(ert-deftest descent-listing-test-subdirectory-insertion ()
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (let ((dir (descent-listing-test--make-tree descent-test-directory)))
        (dolist (native '(t nil))
          (cl-letf (((symbol-function 'get-free-disk-space)
                     (lambda (_dir) "4242")))
            (let ((descent-native-listing native))
              (with-current-buffer (dired-noselect dir "-al")
                (dired-insert-subdir (expand-file-name "dir with space/" dir))
                (dired-insert-subdir (expand-file-name "dir/" dir))
                (push (descent-listing-test--snapshot (point-min) (point-max))
                      descent-listing-test--fetches)
                (kill-buffer)))))
        (let ((off (pop descent-listing-test--fetches))
              (on (pop descent-listing-test--fetches)))
          (descent-listing-test--same
           (cons (replace-regexp-in-string "available [0-9]+" "" (car on))
                 (cdr on))
           (cons (replace-regexp-in-string "available [0-9]+" "" (car off))
                 (cdr off))
           "i"))
        ;; Three listings each from the daemon for the buffer with
        ;; the option on.
        (should (equal (delq nil descent-listing-test--fetches)
                       '("literal" "literal" "literal")))))))

(ert-deftest descent-listing-test-symlinked-directory ()
  ;; Dired lists the directory a link points to when given the link's
  ;; directory name.
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (let ((dir (descent-listing-test--make-tree descent-test-directory)))
        (dolist (name '("link-dir/" "link-dir" "dir" "sticky/"))
          (setq descent-listing-test--fetches nil)
          (let ((file (expand-file-name name dir)))
            (descent-listing-test--same
             (descent-listing-test--dired file "-al" t)
             (descent-listing-test--dired file "-al" nil)
             name)
            (should (equal descent-listing-test--fetches '("literal")))))
        ;; -L without a broken link to complain about.
        (delete-file (expand-file-name "link-broken" dir))
        (setq descent-listing-test--fetches nil)
        (descent-listing-test--same
         (descent-listing-test--dired dir "-alL" t)
         (descent-listing-test--dired dir "-alL" nil)
         "-alL")
        (should (equal descent-listing-test--fetches '("literal")))))))

(ert-deftest descent-listing-test-single-files ()
  ;; Dired inserts one line with -d after a rename or a copy.
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (let ((dir (descent-listing-test--make-tree descent-test-directory)))
        (dolist (name (list "plain" "with space" "-dash" "back\\slash"
                            "new\nline" "日本語のファイル" "link-dir"
                            "link-broken" "fifo" "dir" "dir/" "exec.sh"))
          (dolist (switches '("--dired -al" "--dired -alF" "--dired -alb"
                              "-al" ("--dired" "-al" "-d")))
            (let ((file (expand-file-name name dir)))
              (setq descent-listing-test--fetches nil)
              (descent-listing-test--same
               (descent-listing-test--insert file switches nil t)
               (descent-listing-test--insert file switches nil nil)
               name switches)
              (should (car descent-listing-test--fetches)))))
        ;; As `dired-add-file' does it, through Dired.
        (let ((snapshots nil))
          (dolist (native '(t nil))
            (let ((descent-native-listing native)
                  (new (expand-file-name "added \\ x" dir))
                  ;; Both runs must show the same times, whatever the
                  ;; clock's minute meanwhile.
                  (fixed (encode-time '(0 30 12 1 6 2026 nil nil t))))
              (set-file-times dir fixed)
              (with-current-buffer (dired-noselect dir "-al")
                (write-region "" nil new nil 'silent)
                (set-file-times new fixed)
                (setq descent-listing-test--fetches nil)
                (dired-add-file new)
                (should (eq (and (car descent-listing-test--fetches) t)
                            native))
                (push (descent-listing-test--snapshot (point-min) (point-max))
                      snapshots)
                (kill-buffer)
                (delete-file new))))
          (descent-listing-test--same
           (cons (replace-regexp-in-string "available [0-9]+" ""
                                           (car (nth 1 snapshots)))
                 (cdr (nth 1 snapshots)))
           (cons (replace-regexp-in-string "available [0-9]+" ""
                                           (car (nth 0 snapshots)))
                 (cdr (nth 0 snapshots)))
           "dired-add-file"))))))

(ert-deftest descent-listing-test-without-dired-switch ()
  ;; `list-directory' and others call `insert-directory' without --dired:
  ;; no indentation, no properties.
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (let ((dir (descent-listing-test--make-tree descent-test-directory)))
        (dolist (switches '("-al" "-alF" ("-a" "-l" "-h") "-lA"))
          (setq descent-listing-test--fetches nil)
          (let ((on (descent-listing-test--insert dir switches t t))
                (off (descent-listing-test--insert dir switches t nil)))
            (should (car descent-listing-test--fetches))
            (should (equal (cdr on) '(nil)))
            (descent-listing-test--same on off switches)))))))

(ert-deftest descent-listing-test-falls-through ()
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (let ((dir (descent-listing-test--make-tree descent-test-directory)))
        ;; Wildcards: the daemon is not asked.
        (setq descent-listing-test--fetches nil)
        (descent-listing-test--same
         (descent-listing-test--dired (expand-file-name "size-*" dir) "-al" t)
         (descent-listing-test--dired (expand-file-name "size-*" dir) "-al" nil)
         "wildcard")
        (should (null descent-listing-test--fetches))
        ;; Switches outside the supported set: the daemon says
        ;; "unsupported" and ls runs, without a warning.
        (dolist (switches '("-alR" "-al --author" "-alc" "-alu"))
          (setq descent-listing-test--fetches nil)
          (let ((descent--warned nil))
            (descent-listing-test--same
             (descent-listing-test--dired dir switches t)
             (descent-listing-test--dired dir switches nil)
             switches)
            (should (null descent--warned)))
          (should (equal descent-listing-test--fetches '(nil))))
        ;; -D is --dired to ls, but insert-directory keeps its trailer.
        (setq descent-listing-test--fetches nil)
        (descent-listing-test--same
         (descent-listing-test--insert dir "-alD" t t)
         (descent-listing-test--insert dir "-alD" t nil)
         "-D")
        (should (null descent-listing-test--fetches))
        ;; A directory that does not exist: ls's error, unchanged.
        (let ((descent-native-listing t))
          (should-error (dired-noselect (expand-file-name "missing/" dir)
                                        "-al")
                        :type 'file-missing))))))

(defvar descent-listing-test--remote-calls nil
  "The arguments of the `insert-directory' calls the fake remote handler got.")

(defun descent-listing-test--remote-handler (operation &rest args)
  "A file name handler standing for TRAMP: OPERATION on ARGS."
  (if (eq operation 'insert-directory)
      (progn (push args descent-listing-test--remote-calls)
             (insert "remote\n"))
    (let ((inhibit-file-name-handlers
           (cons 'descent-listing-test--remote-handler
                 inhibit-file-name-handlers))
          (inhibit-file-name-operation operation))
      (apply operation args))))

(ert-deftest descent-listing-test-remote-falls-through ()
  (descent-listing-test--with-daemon
    (let ((descent-listing-test--remote-calls nil)
          (file-name-handler-alist
           (cons (cons "\\`/descent-remote|"
                       #'descent-listing-test--remote-handler)
                 file-name-handler-alist))
          (descent-native-listing t))
      (with-temp-buffer
        (insert-directory "/descent-remote|host/tmp/" "--dired -al" nil t)
        (should (equal (buffer-string) "remote\n")))
      (should (equal (length descent-listing-test--remote-calls) 1))
      (should (null descent-listing-test--fetches)))))

(ert-deftest descent-listing-test-unavailable-daemon-falls-back-with-a-warning ()
  (skip-unless (descent-test-module-available-p))
  (should (descent--module-usable-p))
  (descent-test-with-directory
    (descent-test-make-files "a" "b/")
    (let ((descent-socket (expand-file-name "none/nowhere.sock"
                                            descent-test-directory))
          (descent-daemon-program "false")
          (descent--listing-next-try 0)
          (descent--warned nil)
          (off (descent-listing-test--dired descent-test-directory "-al" nil)))
      (let ((on (descent-listing-test--dired descent-test-directory "-al" t)))
        (descent-listing-test--same on off "unavailable"))
      (should (memq 'listing-unavailable descent--warned))
      ;; Later listings do not wait for a daemon start again.
      (should (> descent--listing-next-try (float-time)))
      (let ((descent--warned nil))
        (descent-listing-test--same
         (descent-listing-test--dired descent-test-directory "-al" t) off
         "unavailable, later")
        (should (null descent--warned))))))

;; A daemon killed while it lists: ls lists instead, and the warning
;; says so plainly (a listing has no effect to be unsure about).
(ert-deftest descent-listing-test-daemon-killed-while-listing-falls-back ()
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (descent-test-make-files "a" "b/")
      (let* ((off (descent-listing-test--dired descent-test-directory "-al" nil))
             (pid (plist-get (descent--call "status" []) :pid))
             (descent--listing-next-try 0)
             (descent--warned nil))
        (descent--call "test.list-delay" [2000000])
        (start-process "killer" nil "sh" "-c" (format "sleep 0.3; kill -9 %d" pid))
        (descent-listing-test--same
         (descent-listing-test--dired descent-test-directory "-al" t) off "killed")
        (should (memq 'listing-lost descent--warned))
        ;; The next listing starts descentd again and lists natively.
        (should-not (equal (plist-get (descent--call "status" []) :pid) pid))))))

(ert-deftest descent-listing-test-interrupted-listing-inserts-nothing ()
  ;; A C-g cannot be typed in batch; a timeout ends the call the same way.
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (apply #'descent-test-make-files
             (mapcar (lambda (i) (format "f%02d" i)) (number-sequence 1 20)))
      (descent--call "test.list-delay" [100000])
      (unwind-protect
          (with-temp-buffer
            (insert "before\n")
            (save-excursion (insert "after\n"))
            (let ((text (buffer-string))
                  (where (point))
                  (start (float-time)))
              (should-error
               (descent--mod-insert-listing
                (descent--socket-path)
                (vector (descent--path-bytes descent-test-directory)
                        ["-al"] '(:LC_ALL "C"))
                0.1)
               :type 'descent-timeout)
              (should (< (- (float-time) start) 1.0))
              (should (equal (buffer-string) text))
              (should (equal (point) where))))
        (descent--call "test.list-delay" [0]))
      ;; The daemon lists again at once.
      (let ((on (descent-listing-test--dired descent-test-directory "-al" t))
            (off (descent-listing-test--dired descent-test-directory "-al" nil)))
        (descent-listing-test--same on off "after the interruption")))))

(ert-deftest descent-listing-test-quit-in-the-advice-leaves-nothing ()
  ;; A quit (as C-g makes) while the listing is being inserted: the
  ;; buffer is as it was, and the quit is not turned into a fall back.
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (descent-test-make-files "a" "b")
      (cl-letf (((symbol-function 'descent--listing-total-line)
                 (lambda (&rest _) (signal 'quit nil))))
        (with-temp-buffer
          (insert "before\n")
          (let ((descent-native-listing t)
                (text (buffer-string)))
            ;; `should-error' does not catch a quit.
            (should (eq (condition-case nil
                            (progn (insert-directory descent-test-directory
                                                     "--dired -al" nil t)
                                   'no-quit)
                          (quit 'quit))
                        'quit))
            (should (equal (buffer-string) text))))))))

(ert-deftest descent-listing-test-c-g-after-a-long-wait-uses-ls-for-a-while ()
  ;; A daemon that accepts and never answers is left only by C-g (which
  ;; batch Emacs cannot type: the wait quits by itself here).  After a long
  ;; wait the next listings use ls; after a short one, nothing changes.
  (descent-listing-test--with-daemon
    (descent-test-with-directory
      (descent-test-make-files "a")
      (dolist (wait '(0 2.1))
        (let ((descent--listing-next-try 0)
              (descent--warned nil))
          (cl-letf (((symbol-function 'descent--mod-insert-listing)
                     (lambda (&rest _) (sleep-for wait) (signal 'quit nil))))
            (with-temp-buffer
              (let ((descent-native-listing t))
                (should (eq (condition-case nil
                                (progn (insert-directory descent-test-directory
                                                         "--dired -al" nil t)
                                       'no-quit)
                              (quit 'quit))
                            'quit)))))
          (if (zerop wait)
              (should (= descent--listing-next-try 0))
            (should (> descent--listing-next-try (float-time)))
            (should (memq 'listing-unanswered descent--warned))))))))

(provide 'descent-listing-tests)
;;; descent-listing-tests.el ends here
