;;; descent.el --- Fast, safe dired jumping and batch renaming -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors

;; Author: The descent authors
;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1"))
;; Keywords: files, convenience
;; URL: https://example.invalid/descent

;; This file is not part of GNU Emacs.

;; This program is free software; you can redistribute it and/or modify
;; it under the terms of the GNU General Public License as published by
;; the Free Software Foundation, either version 3 of the License, or
;; (at your option) any later version.

;; This program is distributed in the hope that it will be useful,
;; but WITHOUT ANY WARRANTY; without even the implied warranty of
;; MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
;; GNU General Public License for more details.

;; You should have received a copy of the GNU General Public License
;; along with this program.  If not, see <https://www.gnu.org/licenses/>.

;;; Commentary:

;; descent makes two everyday Dired motions fast and safe.  `C-x C-j'
;; (`descent-jump') opens the directory of whatever you are looking at
;; with point on the file you came from, and climbs one level when
;; pressed again in Dired; it keeps the semantics of the built-in
;; `dired-jump' and fixes the cases where the built-in misses them.
;; The heavy lifting of the other features is done by a native Emacs
;; module and a small per-user daemon, `descentd', which Emacs starts on
;; demand.
;;
;; Loading the package turns on the global minor mode `descent-mode',
;; as loading dired-x always did for `C-x C-j'; `(descent-mode -1)'
;; gives back every built-in binding and behaviour.  When the module is
;; not built yet or the daemon cannot be started, every command falls
;; back to the built-in one and says once why, and how to fix it
;; (`M-x descent-build-module').

;;; Code:

(require 'dired)
(require 'seq)
(require 'subr-x)

;; Provided by the module, descent-module.so, once `descent--module-ensure'
;; has loaded it.
(declare-function descent--mod-version "descent-module" ())
(declare-function descent--mod-call "descent-module"
                  (socket method params &optional timeout))
(declare-function descent--mod-notify "descent-module" (socket method params))
(declare-function descent--mod-disconnect "descent-module" ())
(declare-function descent--mod-insert-listing "descent-module"
                  (socket params &optional timeout decoding
                          name-properties wanted))
(declare-function descent--mod-list-prefetch "descent-module" (socket params))
(declare-function insert-directory-clean "files" (beg switches))
(defvar ls-lisp-use-insert-directory-program)

(declare-function dired-omit-mode "dired-x" (&optional arg))
(declare-function compilation-start "compile"
                  (command &optional mode name-function highlight-regexp
                           continue))
(defvar dired-omit-mode)
(defvar archive-subfile-mode)
(defvar archive-superior-buffer)
(defvar tar-subfile-mode)
(defvar tar-superior-buffer)

;;;; Customization

(defgroup descent nil
  "Fast, safe Dired jumping and batch renaming."
  :group 'dired
  :prefix "descent-")

(defcustom descent-daemon-program nil
  "The descentd program that Emacs starts when the daemon is not running.
nil means the descentd next to the module: in the checkout's build
tree, or in the install prefix's bin/ (the module installed in
PREFIX/share/emacs/site-lisp/descent/); else \"descentd\" on variable
`exec-path'."
  :type '(choice (const :tag "Next to the module, else on exec-path" nil)
                 (string :tag "Program")))

(defcustom descent-socket nil
  "The Unix socket on which the daemon listens.
nil means the daemon's default: $XDG_RUNTIME_DIR/descent/descentd.sock,
or /tmp/descent-UID/descentd.sock when XDG_RUNTIME_DIR is not set."
  :type '(choice (const :tag "Default" nil) file))

(defcustom descent-state-directory nil
  "Where a daemon started by Emacs keeps its durable state.
nil means the daemon's default, $XDG_STATE_HOME/descent/ (that is
~/.local/state/descent/ when XDG_STATE_HOME is not set).  A daemon
already running on `descent-socket', started by the shell's
\"descent\" command or by systemd, keeps its own state directory;
to move the state for all of them, set XDG_STATE_HOME instead."
  :type '(choice (const :tag "Default" nil) directory))

(defcustom descent-daemon-start-timeout 2.0
  "Seconds to wait for a daemon started by Emacs to listen."
  :type 'number)

(defcustom descent-record-visits t
  "Non-nil means record visits of directories for \\[universal-argument] \\[descent-jump].
Every Dired buffer and the directory of every visited file count as a
visit, sent to the daemon without waiting for it.  Remote directories
are never recorded."
  :type 'boolean)

(defcustom descent-jump-candidates 1000
  "How many directories \\[universal-argument] \\[descent-jump] offers, best first.
nil means every directory in the index.  Directories beyond the
limit can still be reached by typing keywords or a path."
  :type '(choice (const :tag "All" nil) natnum))

(defcustom descent-module-file nil
  "The module file, descent-module.so.
nil means search the checkout's build directories (build/default
first) and then `load-path'."
  :type '(choice (const :tag "Search" nil) file))

(defcustom descent-module-auto-compile nil
  "Non-nil means build a missing module when it is first needed.
It is built from the source tree descent was loaded from, in the
background, as \\[descent-build-module] does; until it has finished the
built-in commands are used.  With nil, a missing module is reported
once, with that command to build it."
  :type 'boolean)

(defcustom descent-native-listing t
  "Non-nil means local Dired listings come from descentd instead of ls.
The daemon prints what GNU ls prints, byte for byte, for the
switches and locales it supports (see the README); wildcards,
remote directories, other switches and other listing programs use
ls as before.  Dired then also finds a file's line by its name, not
by searching the text (`dired-goto-file', which `g' uses to put point
back).  It applies while `descent-mode' is on."
  :type 'boolean)

;;;; Internals

(defconst descent-version "0.1.0"
  "The version of this Lisp; the module must report the same.")

(defconst descent--checkout
  (let* ((here (macroexp-file-name))
         (root (and here (file-name-directory
                          (directory-file-name (file-name-directory here))))))
    (and root (file-exists-p (expand-file-name "CMakePresets.json" root))
         root))
  "The root of the source checkout this file was loaded from, or nil.")

(define-error 'descent-error "descent error")
(define-error 'descent-module-unavailable "descent module unavailable"
  'descent-error)
(define-error 'descent-daemon-unavailable "descent daemon unavailable"
  'descent-error)
(define-error 'descent-protocol-mismatch "descent protocol mismatch"
  'descent-error)
;; Started but not listening yet: it may be recovering a batch a crash
;; interrupted, so nothing may touch those files behind its back.
(define-error 'descent-daemon-starting "descent daemon still starting"
  'descent-daemon-unavailable)
(define-error 'descent-daemon-error "descent daemon error" 'descent-error)
(define-error 'descent-timeout "descent call timed out" 'descent-error)
;; Not a child of `descent-daemon-unavailable': a call whose connection
;; broke after it was sent may have been carried out, and is not retried.
(define-error 'descent-daemon-lost "connection to descentd lost during a call"
  'descent-error)

(defvar descent--warned nil
  "Causes already warned about in this session, as symbols.")

(defun descent--warn-once (cause format-string &rest args)
  "Warn with FORMAT-STRING and ARGS unless CAUSE was already warned about."
  (unless (memq cause descent--warned)
    (push cause descent--warned)
    (display-warning 'descent
                     ;; The warning is titled "(descent)" already.
                     (string-remove-prefix
                      "descent: " (apply #'format-message format-string args)))))

(defun descent--warn-daemon-down (cause reason)
  "Warn that descentd cannot run, for REASON (a string), under CAUSE.
Every feature that falls back shares one warning, which names them
all: the reason is said once, and the fallbacks that follow quietly
are not a surprise."
  (unless (memq cause descent--warned)
    (push cause descent--warned)
    (descent--warn-once
     'daemon-down "%s.  Until it runs, Dired lists with ls, wdired commits \
with the built-in, and visits are not recorded"
     reason)))

;;;;; The module

(defvar descent--module-status nil
  "State of the module: nil, `loaded', or (CAUSE . MESSAGE) if unusable.
It is nil before the first use.
Only the cause `missing' is looked at again: the module may have been
built since.  A refused or broken module stays refused, since a loaded
module cannot be unloaded.")

(defvar descent--module-loaded-file nil
  "The module file that was loaded, for `descent-status'.")

(defvar descent--build-buffer nil
  "The compilation buffer of a running `descent-build-module', or nil.")

(defun descent--module-name ()
  "The module's file name without directory."
  (concat "descent-module" module-file-suffix))

(defun descent--module-locate ()
  "Return the module file to load, or nil when there is none."
  (if descent-module-file
      (and (file-exists-p descent-module-file)
           (expand-file-name descent-module-file))
    (let ((name (descent--module-name)))
      (or (and descent--checkout
               (let ((build (expand-file-name "build" descent--checkout)))
                 (locate-file
                  name
                  (cons (expand-file-name "default/module" build)
                        (mapcar (lambda (dir) (expand-file-name "module" dir))
                                (descent--loadable-build-directories build))))))
          (locate-file "descent-module" load-path (list module-file-suffix))))))

(defun descent--loadable-build-directories (build)
  "The build directories under BUILD whose module Emacs can load.
A sanitizer build cannot be loaded into an Emacs that was not started
with its runtime: the process would abort."
  (let ((directories nil))
    (dolist (dir (and (file-directory-p build)
                      (directory-files build t "\\`[^.]")))
      (unless (string-match-p "asan\\|san\\'" (file-name-nondirectory dir))
        (push dir directories)))
    (nreverse directories)))

(defun descent--module-try-load ()
  "Load the module if needed and check its version.
Return `loaded' or (CAUSE . MESSAGE)."
  (cond
   ((not module-file-suffix)
    (cons 'unsupported "This Emacs was built without dynamic module support"))
   ((fboundp 'descent--mod-version)
    (descent--module-check-version))
   (t
    (let ((file (descent--module-locate)))
      (if (not file)
          (cons 'missing
                (cond
                 (descent-module-file
                  (format-message "`descent-module-file' is %s, which does \
not exist" descent-module-file))
                 (descent--checkout
                  (substitute-command-keys
                   "The descent module is not built yet; build it with \
\\[descent-build-module] (or set `descent-module-auto-compile')"))
                 (t
                  (format-message
                   "%s was not found on `load-path'; set `descent-module-file'"
                   (descent--module-name)))))
        (condition-case err
            (progn
              (module-load file)
              (setq descent--module-loaded-file file)
              (descent--module-check-version))
          (error
           (cons 'load-failed
                 (format "Could not load %s: %s"
                         file (error-message-string err))))))))))

(defun descent--module-check-version ()
  "Return `loaded' when the module's version is this Lisp's, else a cause."
  (let ((version (descent--mod-version)))
    (if (equal version descent-version)
        'loaded
      (cons 'version
            (format "The loaded module %s is version %s, but this Lisp is %s: \
rebuild it (M-x descent-build-module) and restart Emacs, since a loaded \
module cannot be unloaded"
                    (or descent--module-loaded-file "descent-module")
                    version descent-version)))))

(defun descent--module-ensure ()
  "Make the module usable, or signal `descent-module-unavailable'."
  (unless (eq descent--module-status 'loaded)
    (when (or (null descent--module-status)
              (eq (car descent--module-status) 'missing))
      (setq descent--module-status (descent--module-try-load))
      (when (and (eq (car-safe descent--module-status) 'missing)
                 descent-module-auto-compile descent--checkout
                 (not (buffer-live-p descent--build-buffer)))
        (descent-build-module)))
    (unless (eq descent--module-status 'loaded)
      (signal 'descent-module-unavailable
              (list (cdr descent--module-status))))))

(defun descent--module-usable-p ()
  "Return non-nil when the module is usable; else warn once why."
  (condition-case err
      (progn (descent--module-ensure) t)
    (descent-module-unavailable
     (descent--warn-once (car-safe descent--module-status)
                         "%s; using the built-in commands" (cadr err))
     nil)))

;;;;; The daemon

(defun descent--socket-path ()
  "Return the socket path of the daemon, from `descent-socket'."
  (if descent-socket
      (expand-file-name descent-socket)
    (let ((runtime (getenv "XDG_RUNTIME_DIR")))
      ;; The same rule as the daemon's default_socket_path().
      (if (and runtime (string-prefix-p "/" runtime))
          (expand-file-name "descent/descentd.sock" runtime)
        (format "/tmp/descent-%d/descentd.sock" (user-uid))))))

(defun descent--daemon-program ()
  "The descentd program to start, or nil when there is none."
  (or (and descent-daemon-program
           (if (file-name-directory descent-daemon-program)
               (expand-file-name descent-daemon-program)
             descent-daemon-program))
      (and descent--module-loaded-file
           ;; build/X/module/descent-module.so -> build/X/daemon/...;
           ;; installed, PREFIX/share/emacs/site-lisp/descent/ -> PREFIX/bin/.
           (let ((build (file-name-directory
                         (directory-file-name
                          (file-name-directory descent--module-loaded-file)))))
             (locate-file "descentd"
                          (mapcar (lambda (dir) (expand-file-name dir build))
                                  '("daemon" "daemon/server" "bin" "." "../../../bin"))
                          nil #'file-executable-p)))
      (executable-find "descentd")))

(defun descent--daemon-spawn (socket on-exit)
  "Start descentd for SOCKET and return its process.
Without --foreground descentd daemonizes itself: the process started
here exits 0 once the daemon listens (or at once when one already
runs), and non-zero with a reason on stderr when it cannot start.
When that process has exited, call ON-EXIT with nil on success, else
with the reason as a one-line string.  Signal
`descent-daemon-unavailable' when the program cannot be run at all."
  (let* ((program (descent--daemon-program))
         ;; make-process needs a local, existing working directory (and
         ;; the buffer is no one directory's).
         (default-directory "/")
         (buffer (generate-new-buffer " *descentd*" t)))
    (unless program
      (kill-buffer buffer)
      (signal 'descent-daemon-unavailable
              (list "descentd not found: build it (M-x descent-build-module) \
or set `descent-daemon-program'"
                    socket)))
    ;; Said here: run anyway, it would fail in the child, which says
    ;; "emacs: ...".
    (unless (or (not (file-name-absolute-p program)) (file-executable-p program))
      (kill-buffer buffer)
      (signal 'descent-daemon-unavailable
              (list (format-message "%s %s (see `descent-daemon-program')" program
                                    (if (file-exists-p program) "is not executable" "does not exist"))
                    socket)))
    (condition-case err
        (make-process
         :name "descentd" :buffer buffer :noquery t :connection-type 'pipe
         :command `(,program "--socket" ,socket
                             ,@(and descent-state-directory
                                    (list "--state-dir"
                                          (expand-file-name
                                           descent-state-directory))))
         :sentinel
         (lambda (process _event)
           (unless (process-live-p process)
             (let ((reason
                    (and (/= 0 (process-exit-status process))
                         (format "%s could not start: %s" program
                                 (descent--last-line
                                  buffer (format "exit status %d"
                                                 (process-exit-status
                                                  process)))))))
               (when (buffer-live-p buffer) (kill-buffer buffer))
               (funcall on-exit reason)))))
      (file-error
       (kill-buffer buffer)
       (signal 'descent-daemon-unavailable
               (list (format "Cannot run %s: %s"
                             program (error-message-string err))
                     socket))))))

(defun descent--last-line (buffer default)
  "The last non-empty line of BUFFER's text, or DEFAULT."
  (let ((text (if (buffer-live-p buffer)
                  (with-current-buffer buffer (string-trim (buffer-string)))
                "")))
    (if (string-empty-p text)
        default
      (car (last (split-string text "\n"))))))

(defun descent--daemon-start (socket)
  "Start descentd listening on SOCKET and wait until it listens.
Wait at most `descent-daemon-start-timeout' seconds, in short slices
so that \\[keyboard-quit] works at once.  Signal
`descent-daemon-unavailable' when it does not start."
  (let* ((done nil)
         (reason nil)
         (process (descent--daemon-spawn
                   socket (lambda (why) (setq done t reason why))))
         (deadline (+ (float-time) descent-daemon-start-timeout)))
    (while (and (not done) (< (float-time) deadline))
      (accept-process-output process 0.02))
    (cond
     ((not done)
      (signal 'descent-daemon-starting
              (list (format "%s did not listen within %s s"
                            (car (process-command process))
                            descent-daemon-start-timeout)
                    socket)))
     (reason (signal 'descent-daemon-unavailable (list reason socket))))))

(defun descent--with-daemon (function)
  "Call FUNCTION with the daemon's socket; return its value.
When FUNCTION signals `descent-daemon-unavailable' (nothing was sent),
start the daemon and call it again.  Signal `descent-module-unavailable'
without the module, and the module's `descent-error' children otherwise."
  (descent--module-ensure)
  (let ((socket (descent--socket-path)))
    (condition-case nil
        (funcall function socket)
      (descent-daemon-unavailable
       (let ((deadline (+ (float-time) descent-daemon-start-timeout)))
         (descent--daemon-start socket)
         ;; A started descentd that found another instance starting (one
         ;; started in the background, say) exits 0 at once, maybe before
         ;; that one listens: keep trying until the start timeout.
         (catch 'done
           (while t
             (condition-case err
                 (throw 'done (funcall function socket))
               (descent-daemon-unavailable
                (if (< (float-time) deadline)
                    (accept-process-output nil 0.02)
                  (signal (car err) (cdr err))))))))))))

(defun descent--call (method &optional params timeout)
  "Call the daemon's METHOD with PARAMS (a vector) and return its result.
Start the daemon when it is not running, then retry once.  TIMEOUT is
in seconds, nil for no limit; \\[keyboard-quit] always works.  Signal
`descent-module-unavailable' without the module, and the module's
`descent-error' children otherwise."
  (let ((params (or params [])))
    (descent--with-daemon
     (lambda (socket) (descent--mod-call socket method params timeout)))))

(defun descent--error-text (err)
  "A one-line text for the `descent-error' ERR, for the echo area."
  (pcase err
    (`(descent-daemon-unavailable ,(and (pred stringp) message)
                                  ,(and (pred stringp) socket))
     (format "descent: %s (socket %s)" message socket))
    (`(,_ ,(and (pred stringp) message) . ,_)
     (format "descent: %s" message))
    (_ (format "descent: %s" (error-message-string err)))))

;;;;; Frecency

(defun descent--file-name-coding ()
  "The coding system of file names on this system."
  (or file-name-coding-system default-file-name-coding-system 'utf-8-unix))

(defun descent--name-hash (name)
  "A hash of the string NAME for the `descent-name' hash table test.
Emacs 28's `sxhash-equal' reads a few words of a string, spread from
its start: names that differ elsewhere hash alike, and a table of them
is searched through at every lookup (100k names such as
/tmp/pppppppppppppppppppppppp/IMG_00001.jpg all hashed alike: 70 s to
fill and read a table, 0.3 s with this hash).  Reversed, the same
sampling reads other bytes, the end first, where numbered names
differ."
  (logxor (sxhash-equal name) (sxhash-equal (reverse name))))

(define-hash-table-test 'descent-name #'equal #'descent--name-hash)

(defun descent--path-bytes (path)
  "PATH, expanded, as the unibyte string of its bytes on disk."
  (encode-coding-string (expand-file-name path) (descent--file-name-coding)))

(defun descent--path-text (bytes)
  "The file name whose bytes on disk are BYTES."
  (decode-coding-string bytes (descent--file-name-coding)))

(defvar descent--last-visit nil
  "The last visit recorded, as (DIRECTORY . FLOAT-TIME).")

(defvar descent--pending-visits nil
  "Visits not delivered yet, newest first: (PATH-BYTES . UNIX-TIME).")

(defconst descent--pending-visits-max 100
  "At most this many visits wait for a daemon being started.")

(defvar descent--daemon-starting nil
  "The process starting the daemon in the background, or nil.")

(defvar descent--daemon-next-background-start 0
  "The earliest `float-time' for another background start of the daemon.")

(defvar descent--module-next-search 0
  "The earliest `float-time' at which to look for a missing module again.")

(defvar descent--visits-next-try 0
  "The earliest `float-time' at which to send visits again.
Set when the daemon accepted a connection and did not answer (stopped,
or hung): each try would hold Emacs for the whole handshake timeout.")

(defconst descent--visits-pause 30
  "Seconds visits wait for, once the daemon did not answer.")

(defun descent--send-visit (socket params)
  "Send the visit PARAMS to the daemon on SOCKET; nil if it could not be.
Fails at once while `descent--visits-next-try' is ahead.  A failure
that took a quarter of a second is a daemon that does not answer (the
module gives its handshake half a second): leave it alone for
`descent--visits-pause' seconds, so that commands stay quick."
  (and (>= (float-time) descent--visits-next-try)
       (let ((start (float-time)))
         (or (descent--mod-notify socket "frecency.add" params)
             (progn
               (when (> (- (float-time) start) 0.25)
                 (setq descent--visits-next-try (+ (float-time) descent--visits-pause))
                 (descent--warn-once
                  'visits-unanswered
                  "descentd at %s does not answer; visits wait (the last %d are kept)"
                  socket descent--pending-visits-max))
               nil)))))

(defun descent--record-visit (directory)
  "Record a visit of DIRECTORY in the frecency index, without waiting.
Nothing is recorded for remote directories, or twice for the same
directory within a second (a jump that creates a Dired buffer counts
once).  When the daemon is not running, start it in the background
and deliver the visit once it listens."
  (when (and descent-record-visits directory
             (not (file-remote-p directory))
             ;; Looking for a missing module costs file system calls:
             ;; not on every `find-file'.
             (or (eq descent--module-status 'loaded)
                 (>= (float-time) descent--module-next-search)))
    (let ((directory (file-name-as-directory (expand-file-name directory)))
          (now (float-time)))
      (unless (and (equal (car descent--last-visit) directory)
                   (< (- now (cdr descent--last-visit)) 1))
        (setq descent--last-visit (cons directory now))
        (if (not (descent--module-usable-p))
            (setq descent--module-next-search (+ now 10))
          (let ((bytes (descent--path-bytes directory)))
            (if (descent--send-visit (descent--socket-path) (vector bytes))
                ;; Visits kept while the daemon did not answer go now.
                (when descent--pending-visits
                  (descent--deliver-pending-visits (descent--socket-path)))
              (push (cons bytes (truncate now)) descent--pending-visits)
              (when (> (length descent--pending-visits)
                       descent--pending-visits-max)
                (setcdr (nthcdr (1- descent--pending-visits-max)
                                descent--pending-visits)
                        nil))
              (when (>= (float-time) descent--visits-next-try)
                (descent--daemon-start-in-background)))))))))

(defconst descent--background-retries-max 5
  "Quick retries when a daemon reported listening could not be reached.")

(defvar descent--background-retries 0
  "Quick retries made since visits were last delivered.")

(defun descent--daemon-start-in-background ()
  "Start the daemon without waiting; deliver pending visits when it listens.
After a failure, wait 30 s before trying again, and warn once."
  (unless (or (process-live-p descent--daemon-starting)
              (< (float-time) descent--daemon-next-background-start))
    (setq descent--daemon-next-background-start (+ (float-time) 30))
    (let ((socket (descent--socket-path)))
      (condition-case err
          (setq descent--daemon-starting
                (descent--daemon-spawn
                 socket
                 (lambda (reason)
                   (setq descent--daemon-starting nil)
                   (if reason
                       (descent--warn-daemon-down 'daemon-start reason)
                     (descent--deliver-pending-visits socket)))))
        (descent-daemon-unavailable
         (descent--warn-daemon-down 'daemon-start (cadr err)))))))

(defun descent--deliver-pending-visits (socket)
  "Send the visits waiting for the daemon on SOCKET, oldest first.
A daemon that was killed can still hold its lock for a moment, so
that the new one exits at once thinking one runs: when the visits
cannot be sent, keep them and start again shortly, a few times."
  (let ((visits (reverse descent--pending-visits)))
    (while (and visits
                (descent--send-visit socket (vector (caar visits) (cdar visits))))
      (pop visits))
    (setq descent--pending-visits (nreverse visits))
    (cond
     ((null visits)
      ;; Delivered: if the daemon dies later, start it again at once.
      (setq descent--background-retries 0
            descent--daemon-next-background-start 0))
     ((< (float-time) descent--visits-next-try))  ; it does not answer: later
     ((< descent--background-retries descent--background-retries-max)
      (setq descent--background-retries (1+ descent--background-retries)
            descent--daemon-next-background-start 0)
      (run-with-timer 0.2 nil #'descent--daemon-start-in-background)))))

(defun descent--record-visit-from-hook (directory)
  "Record a visit of DIRECTORY; a failure never breaks the command."
  (condition-case err
      (descent--record-visit directory)
    (error (descent--warn-once 'record-visit "Recording a visit failed: %s"
                               (error-message-string err)))))

(defun descent--record-file-visit ()
  "Record a visit of the directory of the file just visited."
  (when buffer-file-name
    (descent--record-visit-from-hook (file-name-directory buffer-file-name))))

(defun descent--record-dired-visit ()
  "Record a visit of the directory of the new Dired buffer."
  (descent--record-visit-from-hook default-directory))

(defun descent--frecency-query (keywords &optional limit)
  "The index's best matches for KEYWORDS (strings), best first.
At most LIMIT of them (nil for all).  Each is a plist (:path PATH
:score SCORE :rank RANK :last UNIX-TIME), PATH a directory name."
  (mapcar (lambda (match)
            (list :path (file-name-as-directory
                         (descent--path-text (plist-get match :path)))
                  :score (plist-get match :score)
                  :rank (plist-get match :rank)
                  :last (plist-get match :last)))
          (descent--call "frecency.query"
                         (vector (vconcat (mapcar #'descent--path-bytes-of-word
                                                  keywords))
                                 (or limit 0))
                         10)))

(defun descent--path-bytes-of-word (word)
  "WORD as the bytes of a file name, for matching paths byte for byte."
  (encode-coding-string word (descent--file-name-coding)))

(defun descent--format-age (unix-time)
  "How long ago UNIX-TIME was, briefly."
  (let ((seconds (max 0 (- (float-time) unix-time))))
    (cond ((< seconds 60) "just now")
          ((< seconds 3600) (format "%d min ago" (/ seconds 60)))
          ((< seconds 86400) (format "%d h ago" (/ seconds 3600)))
          (t (format "%d days ago" (/ seconds 86400))))))

(defun descent--abbreviator ()
  "A function that abbreviates a file name under the home directory to ~.
Cheaper than `abbreviate-file-name' over thousands of candidates."
  (let ((home (file-name-as-directory (expand-file-name "~"))))
    (lambda (file)
      (if (string-prefix-p home file)
          (concat "~/" (substring file (length home)))
        file))))

(defun descent--frecency-table (matches)
  "A completion table of MATCHES' directories, kept in rank order."
  (let* ((abbreviate (descent--abbreviator))
         (by-candidate (make-hash-table :test 'descent-name :size (length matches)))
         (candidates (mapcar (lambda (match)
                               (let ((candidate (funcall abbreviate
                                                         (plist-get match :path))))
                                 (puthash candidate match by-candidate)
                                 candidate))
                             matches))
         ;; Only the candidates on screen are annotated.
         (annotate (lambda (candidate)
                     (when-let ((match (gethash candidate by-candidate)))
                       (format "  %8.1f  %s" (plist-get match :score)
                               (descent--format-age (plist-get match :last)))))))
    (lambda (string predicate action)
      (if (eq action 'metadata)
          `(metadata (category . file)
                     (display-sort-function . identity)
                     (cycle-sort-function . identity)
                     (annotation-function . ,annotate))
        (complete-with-action action candidates string predicate)))))

(defvar descent--jump-history nil
  "History of \\[universal-argument] \\[descent-jump].")

(defvar descent-jump-minibuffer-map
  (let ((map (make-sparse-keymap)))
    (set-keymap-parent map minibuffer-local-completion-map)
    ;; Keywords are separated by spaces (as in zoxide): SPC must not
    ;; complete a word, as it does in `minibuffer-local-completion-map'.
    (define-key map " " #'self-insert-command)
    map)
  "Keymap of the minibuffer of \[universal-argument] \[descent-jump].")

(defun descent--path-like-p (input)
  "Non-nil when INPUT is a file name rather than keywords."
  (or (string-prefix-p "~" input) (string-match-p "/" input)))

(defun descent--best-match (keywords)
  "The best directory of the index for KEYWORDS, or nil."
  (plist-get (car (descent--frecency-query keywords 1)) :path))

(defun descent--read-directory (prompt)
  "Read a directory (or file) with PROMPT, from the frecency index.
Candidates come best first.  Input with a slash or starting with ~ is
a file name, and so is a word naming a directory in `default-directory'
\(as zoxide does); other input is keywords, and means the index's best
match for them.  Without the module or the daemon, read a file name."
  (let ((matches (and (descent--module-usable-p)
                      (condition-case err
                          (descent--frecency-query nil descent-jump-candidates)
                        (descent-error
                         (descent--warn-once 'frecency "%s; reading a file name"
                                             (descent--error-text err))
                         'unavailable)))))
    ;; Not where you are, as zoxide leaves out $PWD: the best would often
    ;; be the directory you jump from.
    (when (consp matches)
      (let ((here (file-name-as-directory (expand-file-name default-directory))))
        (setq matches (cl-remove-if (lambda (match) (equal (plist-get match :path) here))
                                    matches))))
    (if (or (null (eq descent--module-status 'loaded)) (eq matches 'unavailable))
        (read-file-name (concat prompt ": "))
      (let* ((abbreviate (descent--abbreviator))
             (best (and matches (funcall abbreviate
                                         (plist-get (car matches) :path))))
             (input (let ((minibuffer-local-completion-map descent-jump-minibuffer-map))
                      (completing-read (format-prompt prompt best)
                                       (descent--frecency-table matches)
                                       nil nil nil 'descent--jump-history best))))
        (cond ((string-empty-p input) (user-error "No directory given"))
              ;; Candidates are all absolute or under ~.
              ((descent--path-like-p input) (expand-file-name input))
              ;; As zoxide does: a word that names a directory here is
              ;; that directory (and a file here, that file).
              ((file-exists-p input) (expand-file-name input))
              ((descent--best-match (split-string input)))
              (t (user-error "No directory in the index matches %s" input)))))))

(defun descent--jump-target (file)
  "FILE as `descent-jump' wants it: a directory ends in a slash."
  (if (file-directory-p file) (file-name-as-directory file) file))

;;;;; Jumping

(defun descent--superior-buffer ()
  "The live archive buffer of this archive or tar member buffer, or nil."
  (cond ((and (bound-and-true-p archive-subfile-mode)
              (buffer-live-p archive-superior-buffer))
         archive-superior-buffer)
        ((and (bound-and-true-p tar-subfile-mode)
              (buffer-live-p tar-superior-buffer))
         tar-superior-buffer)))

(defun descent--orphan-member-archive ()
  "The archive of this archive or tar member buffer whose archive buffer is gone.
Its name is ARCHIVE!MEMBER (tar) or ARCHIVE:MEMBER: the archive is the
first such prefix that is a file.  Nil in any other buffer."
  (when (and buffer-file-name
             (or (bound-and-true-p archive-subfile-mode)
                 (bound-and-true-p tar-subfile-mode)))
    (let ((start 0) found)
      (while (and (not found) (string-match "[!:]" buffer-file-name start))
        (let ((candidate (substring buffer-file-name 0 (match-beginning 0))))
          (when (file-regular-p candidate) (setq found candidate)))
        (setq start (match-end 0)))
      found)))

(defun descent--existing-directory (dir)
  "DIR, or its nearest ancestor that exists.
DIR itself when a Dired buffer still shows it, even if it was deleted
since: the built-in `dired-jump' switches to that buffer, and so does
`descent-jump'."
  (let ((dir (file-name-as-directory dir)))
    (unless (dired-find-buffer-nocreate dir)
      (while (and (not (file-directory-p dir))
                  (not (equal dir (file-name-directory (directory-file-name dir)))))
        (setq dir (file-name-directory (directory-file-name dir)))))
    dir))

(defun descent--goto-file (file)
  "Move point to FILE's line in this Dired buffer; return non-nil if found.
When the line is missing, refresh FILE's directory listing, then turn
`dired-omit-mode' off if it hides FILE.  A file that does not exist
has no line to find, so nothing is refreshed for it."
  (or (descent--listing-goto-found file)
      (dired-goto-file file)
      (and (or (file-exists-p file) (file-symlink-p file))
           (or (progn
                 (dired-insert-subdir
                  (file-name-directory (directory-file-name file)))
                 (dired-goto-file file))
               (when (bound-and-true-p dired-omit-mode)
                 ;; Turn omitting off: a call without argument from
                 ;; Lisp, as the built-in makes, turns it on.
                 (dired-omit-mode -1)
                 (dired-goto-file file))))))

(defun descent--jump-up (other-window)
  "From Dired, go up one level, with point on the directory left.
OTHER-WINDOW non-nil means show the parent in another window."
  (let* ((dir (dired-current-directory))
         (up (file-name-directory (directory-file-name dir))))
    (if (equal up dir)
        (message "%s is the root" dir)
      (dired-up-directory other-window)
      (descent--goto-file (directory-file-name dir)))))

(defvar descent--listing-wanted nil
  "The absolute name of a file whose position the next listing finds.
Bound by `descent-jump' around the Dired call that lists its
directory, so that point goes to the file without a text search.")

(defun descent--jump-into (file-name other-window)
  "Dired the directory of FILE-NAME, or of this buffer, with point on the file.
OTHER-WINDOW non-nil means in another window."
  (let* ((file (if file-name (expand-file-name file-name) buffer-file-name))
         (dir (descent--existing-directory
               (if file (file-name-directory file) default-directory))))
    (let ((descent--listing-wanted (and file (directory-file-name file))))
      (if other-window (dired-other-window dir) (dired dir)))
    (when (and file (not (directory-name-p file)))
      (descent--goto-file file))))

;;;;; Native listing

(defconst descent--listing-variables
  '("LC_ALL" "LC_COLLATE" "LC_CTYPE" "LC_TIME" "LC_NUMERIC" "LC_MESSAGES"
    "LANG" "LANGUAGE" "TZ" "TIME_STYLE" "BLOCK_SIZE" "LS_BLOCK_SIZE"
    "BLOCKSIZE" "POSIXLY_CORRECT" "QUOTING_STYLE")
  "The environment variables that change what ls prints.
The daemon reads these and no others; it refuses the last five when
they are set, so that ls runs.")

(defvar descent--listing-next-try 0
  "The earliest `float-time' to ask the daemon for a listing again.
After the daemon could not be reached, Dired lists with ls for a
while instead of waiting for a daemon start on every listing.")

(defun descent--listing-environment ()
  "Return the `descent--listing-variables' that ls would see, as a plist."
  (let (env)
    (dolist (name descent--listing-variables)
      (let ((value (getenv name)))
        (when value
          (setq env (nconc (list (intern (concat ":" name)) value) env)))))
    env))

(defun descent--listing-arguments (switches full-directory-p)
  "Return the list of options that ls gets from `insert-directory'.
SWITCHES is split as `insert-directory' splits it; FULL-DIRECTORY-P
nil adds \"-d\"."
  (unless full-directory-p
    (setq switches (cond ((stringp switches) (concat switches " -d"))
                         ((member "-d" switches) switches)
                         (t (append switches '("-d"))))))
  (if (listp switches)
      switches
    (unless (equal switches "")
      (split-string-and-unquote switches))))

(defun descent--listing-option-p (arguments letters &optional long)
  "Non-nil when ARGUMENTS hold a short option among LETTERS, or LONG.
LETTERS are the inside of a regexp character class; LONG is a regexp
for what follows \"--\" at the start of an argument."
  (let ((case-fold-search nil)
        (short (concat "\\`-[^-]*[" letters "]"))
        (long (and long (concat "\\`--" long))))
    (seq-some (lambda (arg)
                (or (string-match-p short arg)
                    (and long (string-match-p long arg))))
              arguments)))

(defun descent--listing-indicators-p (arguments)
  "Non-nil when ARGUMENTS may make ls print an indicator after a name.
A name followed by an indicator makes `insert-directory-clean' drop
every `dired-filename' property: such listings take its own path."
  (descent--listing-option-p arguments "Fp"
                             "\\(classify\\|file-type\\|indicator-style\\)"))

(defun descent--listing-no-total-p (arguments)
  "Non-nil when ARGUMENTS (-d, --directory) list a directory as one entry.
Such a listing has no total line for Dired to hide."
  (descent--listing-option-p arguments "d" "directory\\'"))

(defconst descent--listing-requests-max 16
  "How many directories' requests `descent--listing-requests' keeps.")

(defvar-local descent--listing-requests nil
  "Alist of (FILE . PARAMS): the last `list' request for each FILE here.
`descent--listing-prefetch' asks for the same again ahead of a revert.")

(defun descent--listing-fetch (file arguments &optional decoding
                                     name-properties wanted)
  "Insert at point descentd's raw listing of FILE for ARGUMENTS.
Return what `descent--mod-insert-listing' returns for DECODING,
NAME-PROPERTIES and WANTED, or nil when ls must run instead: the
daemon does not reproduce this listing, or it cannot be reached (then
warn once).  Start the daemon when it is not running."
  (let* ((coding (descent--file-name-coding))
         (params (vector (encode-coding-string file coding)
                         (vconcat (mapcar (lambda (arg)
                                            (encode-coding-string arg coding))
                                          arguments))
                         (descent--listing-environment)))
         (socket (descent--socket-path))
         ;; A 100k-entry listing makes some 400k intervals: collecting
         ;; the whole heap every 800 kB of them would cost more than
         ;; making them.  The debt is paid once, by the next collection.
         (gc-cons-threshold (max gc-cons-threshold (* 64 1024 1024))))
    ;; Whole directories only (Dired names them with a final slash), a
    ;; few: Dired lists each file it adds alone, thousands after a copy.
    (when (directory-name-p file)
      (setq descent--listing-requests
            (cons (cons file params)
                  (seq-take (assoc-delete-all file descent--listing-requests)
                            (1- descent--listing-requests-max)))))
    (condition-case err
        (let ((start (float-time)))
          (condition-case nil
              (descent--mod-insert-listing socket params nil decoding
                                           name-properties wanted)
            (descent-daemon-unavailable
             (descent--call "status" nil 10)
             (descent--mod-insert-listing socket params nil decoding
                                          name-properties wanted))
            (quit
             ;; A listing waits for no timeout (a slow file system takes
             ;; what it takes), so a daemon that accepts and never answers
             ;; (stopped, hung) is only left by C-g: after a long wait, the
             ;; next listings use ls for a while instead of waiting again.
             (when (> (- (float-time) start) 2)
               (setq descent--listing-next-try (+ (float-time) 10))
               (descent--warn-once
                'listing-unanswered
                "descentd did not answer a listing of %s in %.0f s; Dired lists with ls for ten seconds"
                file (- (float-time) start)))
             (signal 'quit nil))))
      (descent-daemon-error
       (unless (equal (nth 2 err) "unsupported")
         (descent--warn-once 'listing-error "Listing %s failed: %s; using ls"
                             file (descent--error-text err)))
       nil)
      (descent-daemon-lost
       ;; A listing changes nothing, so ls simply lists instead; the next
       ;; listing starts descentd again.
       (descent--warn-once 'listing-lost "descentd stopped while listing %s; using ls"
                           file)
       nil)
      (descent-error
       (setq descent--listing-next-try (+ (float-time) 10))
       (if (eq (car err) 'descent-daemon-unavailable)
           (descent--warn-daemon-down 'listing-unavailable (descent--error-text err))
         (descent--warn-once 'listing-unavailable "%s; Dired lists with ls"
                             (descent--error-text err)))
       nil))))

(defun descent--listing-prefetch (directory)
  "Have descentd list DIRECTORY as this buffer last listed it, right away.
The revert that follows finds the listing made or under way instead of
asking and waiting: descentd lists while Emacs does what comes first
\(remembering marks, erasing the old text).  Nothing happens if this
buffer has not listed DIRECTORY through descentd, or the revert asks
for something else."
  (let ((params (cdr (assoc directory descent--listing-requests))))
    (when (and params descent-native-listing (descent--module-usable-p))
      (descent--mod-list-prefetch (descent--socket-path) params))))

(defun descent--listing-names (beg end)
  "Return the (BEGIN . END) of every `dired-filename' run from BEG to END."
  (let ((pos beg) names)
    (while (< pos end)
      (let ((next (next-single-property-change pos 'dired-filename nil end)))
        (when (get-text-property pos 'dired-filename)
          (push (cons pos next) names))
        (setq pos next)))
    (nreverse names)))

(defun descent--listing-as-ls-dired (beg end switches quoting-style)
  "Turn the listing from BEG to END into the output of `insert-directory-clean'.
Put the //DIRED// trailer that ls would have printed after it and
let `insert-directory-clean' read it, with SWITCHES: it mistakes lines
that start without a space for error messages, and drops every
property after a name followed by an indicator, and Dired shows what
it made of them.  QUOTING-STYLE is the daemon's."
  (let ((names (descent--listing-names beg end)))
    (remove-list-of-text-properties beg end '(dired-filename))
    (goto-char end)
    (when names
      (insert "//DIRED//")
      (dolist (name names)
        (insert (format " %d %d" (- (car name) beg) (- (cdr name) beg))))
      (insert "\n"))
    (insert "//DIRED-OPTIONS// --quoting-style=" quoting-style "\n")
    (insert-directory-clean beg switches)))

(defun descent--listing-without-dired (beg end)
  "Make the listing between BEG and END what ls prints without --dired.
The daemon always lists as `ls --dired' does: take off the two
spaces that start each line and the names' properties.  Return nil,
changing nothing, when a line does not start with them."
  (let ((starts (list beg)))
    (save-excursion
      (pcase-dolist (`(,name . ,_) (descent--listing-names beg end))
        (goto-char name)
        (let ((start (line-beginning-position)))
          (unless (eql start (car starts))
            (push start starts)))))
    (when (seq-every-p (lambda (start)
                         (equal (buffer-substring-no-properties
                                 start (min end (+ start 2)))
                                "  "))
                       starts)
      (remove-list-of-text-properties beg end '(dired-filename))
      ;; From the last line up: deleting moves what follows.
      (dolist (start starts)
        (delete-region start (+ start 2)))
      t)))

(defun descent--listing-coding ()
  "The coding system `insert-directory' decodes a listing with."
  (or coding-system-for-read
      file-name-coding-system
      default-file-name-coding-system
      'undecided))

(defun descent--listing-decoding ()
  "What decoding a listing would do, as `descent--mod-insert-listing' takes it.
`utf-8' when it decodes UTF-8, `ascii' when ASCII decodes to itself,
nil when the module must leave decoding to `descent--listing-decode'."
  (let ((coding (descent--listing-coding)))
    (cond ((not enable-multibyte-characters) nil)
          ((memq (coding-system-base coding) '(raw-text no-conversion)) 'ascii)
          ((eq (coding-system-base coding) 'utf-8) 'utf-8)
          ((coding-system-get coding :ascii-compatible-p) 'ascii))))

(defun descent--listing-decode (beg end)
  "Decode the listing between BEG and END as `insert-directory' does.
Name by name, so that the names keep their `dired-filename' property."
  (let ((coding (descent--listing-coding))
        coding-no-eol val pos ascii-compatible)
    (when (and enable-multibyte-characters
               (not (memq (coding-system-base coding)
                          '(raw-text no-conversion)))
               ;; ASCII without CR decodes to itself in an ASCII-compatible
               ;; coding system: most listings, and 20000 calls spared at
               ;; 10000 entries.
               (not (and (coding-system-get coding :ascii-compatible-p)
                         (save-excursion
                           (goto-char beg)
                           (not (re-search-forward "[^\0-\177]\\|\r"
                                                   end t))))))
      (when (eq (coding-system-base coding) 'undecided)
        (setq coding (detect-coding-region beg end t)))
      (unless (eq (coding-system-base coding) 'undecided)
        (setq ascii-compatible (coding-system-get coding :ascii-compatible-p))
        (save-restriction
          (setq coding-no-eol
                (coding-system-change-eol-conversion coding 'unix))
          (narrow-to-region beg end)
          (goto-char (point-min))
          (while (not (eobp))
            (setq pos (point)
                  val (get-text-property (point) 'dired-filename))
            (goto-char (next-single-property-change
                        (point) 'dired-filename nil (point-max)))
            ;; Only the pieces with other bytes than ASCII but CR change.
            (unless (and ascii-compatible
                         (let ((piece-end (point)))
                           (goto-char pos)
                           (skip-chars-forward "\0-\14\16-\177" piece-end)
                           (prog1 (= (point) piece-end)
                             (goto-char piece-end))))
              ;; No end-of-line conversion in a name, so that CR stays.
              (decode-coding-region pos (point)
                                    (if val coding-no-eol coding))
              (when val
                (put-text-property pos (point) 'dired-filename t)))))))))

(defun descent--listing-shown-from (file full-directory-p)
  "Return the offset of FILE's name, as ls prints it, in its full name.
ls prints the name as given, and only a FULL-DIRECTORY-P listing
does not show it; the daemon takes absolute names.  Dired gives a
name relative to `default-directory' when it adds one file's line.
nil means ls must run: a relative name with a slash may mean another
file to the kernel than to `expand-file-name', and a directory whose
name -b would escape would make the name start elsewhere."
  (cond ((or full-directory-p (file-name-absolute-p file)) 0)
        ((and (not (string-match-p "/" file))
              (let ((case-fold-search nil))
                (string-match-p "\\`[a-zA-Z0-9/._-]*\\'"
                                (expand-file-name default-directory))))
         (length (file-name-as-directory
                  (expand-file-name default-directory))))))

(defun descent--listing-show-name (beg end shown-from)
  "Show names between BEG and END from byte SHOWN-FROM on, as ls would.
Return nil, changing nothing, when the name does not start as expected."
  (or (eql shown-from 0)
      (let ((name (car (descent--listing-names beg end))))
        (when (and name
                   (<= (+ (car name) shown-from) (cdr name))
                   (equal (buffer-substring-no-properties
                           (car name) (+ (car name) shown-from))
                          (file-name-as-directory
                           (expand-file-name default-directory))))
          (delete-region (car name) (+ (car name) shown-from))
          t))))

(defconst descent--listing-name-properties
  '(dired-filename t mouse-face highlight
    help-echo "mouse-2: visit this file in other window")
  "What `dired-insert-set-properties' puts on a name in Emacs 28.
In this order, so that the intervals come out as Dired's do.")

(defvar-local descent--listing-found nil
  "A marker on the name of `descent--listing-wanted' in this buffer.")

(defvar-local descent--listing-propertized nil
  "(BEG . END) markers around the last listing the module propertized.
`descent--insert-set-properties' skips Dired's own loop over it.")

(defvar-local descent--listing-headerless nil
  "(BEG . END) markers around the last whole directory the module listed.
When no line of it ends in a colon, none can be a subdirectory
header, and `descent--build-subdir-alist' does not search it.")

(defun descent--forget-listing (markers)
  "Make MARKERS, nil or (BEG . END), point nowhere."
  (when markers
    (set-marker (car markers) nil)
    (set-marker (cdr markers) nil)))

(defun descent--listing-request (file full-directory-p dired arguments)
  "What to ask of the module when listing FILE with ARGUMENTS.
FULL-DIRECTORY-P and DIRED are as `descent--listing-insert' has them.
Return (DECODING NAME-PROPERTIES WANTED) for `descent--listing-fetch':
Dired's properties only for a whole directory, whose lines Dired
leaves as they are before `dired-insert-set-properties', in the
Emacs whose properties `descent--listing-name-properties' are."
  (let ((whole (and dired full-directory-p
                    (not (descent--listing-indicators-p arguments))
                    (not (descent--listing-no-total-p arguments)))))
    (list (descent--listing-decoding)
          (and whole (< emacs-major-version 29)
               descent--listing-name-properties)
          (and whole descent--listing-wanted
               (equal (file-name-directory descent--listing-wanted)
                      (file-name-as-directory (expand-file-name file)))
               (encode-coding-string
                (file-name-nondirectory descent--listing-wanted)
                (descent--file-name-coding))))))

(defun descent--listing-insert (file switches full-directory-p)
  "Insert the listing of FILE like `insert-directory' does.
SWITCHES and FULL-DIRECTORY-P are as for `insert-directory'.
Return non-nil when it was inserted, nil (with the buffer unchanged)
when ls must run."
  (when (string-match-p "\\`~" file)
    (setq file (expand-file-name file)))
  (let* ((dired (if (stringp switches)
                    (string-match-p "--dired\\>" switches)
                  (member "--dired" switches)))
         (arguments (descent--listing-arguments switches full-directory-p))
         (shown-from (descent--listing-shown-from file full-directory-p))
         (target (and shown-from (expand-file-name file))))
    (when (and target
               ;; ls takes -D for --dired, but `insert-directory' then
               ;; leaves the trailer in the buffer.
               (not (descent--listing-option-p arguments "D"))
               (>= (float-time) descent--listing-next-try)
               (descent--module-usable-p))
      (let ((beg (point))
            (end (copy-marker (point) t))
            (done nil))
        (unwind-protect
            (pcase-let* ((`(,_ ,quoting-style ,decoded ,propertized ,found)
                          (apply #'descent--listing-fetch target arguments
                                 (descent--listing-request
                                  file full-directory-p dired arguments))))
              (when (and quoting-style
                         (descent--listing-show-name beg end shown-from)
                         (cond ((not dired)
                                (descent--listing-without-dired beg end))
                               (propertized t)
                               ((or (descent--listing-indicators-p arguments)
                                    (save-excursion
                                      (goto-char beg)
                                      (re-search-forward "\n[^ ]" end t)))
                                (descent--listing-as-ls-dired
                                 beg end switches quoting-style)
                                t)
                               (t t)))
                (unless decoded
                  (descent--listing-decode beg end))
                (when full-directory-p
                  (descent--listing-total-line beg file))
                (when propertized
                  ;; The total line, as Dired hides it: after its edit.
                  (save-excursion
                    (goto-char beg)
                    (put-text-property (point) (min end (1+ (line-end-position)))
                                       'invisible
                                       'dired-hide-details-information))
                  (setq descent--listing-propertized
                        (cons (copy-marker beg t) (copy-marker end)))
                  (descent--forget-listing descent--listing-headerless)
                  (setq descent--listing-headerless
                        (cons (copy-marker beg t) (copy-marker end))))
                (when found
                  (setq descent--listing-found (copy-marker found)))
                (goto-char end)
                (setq done t)))
          ;; A quit or an error leaves no half-inserted listing.
          (unless done
            (delete-region beg end)
            (goto-char beg))
          (set-marker end nil))
        done))))

(defun descent--listing-goto-found (file)
  "Move point to FILE's name, found by its position rather than its text.
Where the last listing found FILE, or else where FILE's name ends a
line as a `dired-filename' run.  Return point, or nil when neither
finds it.  The built-in `dired-goto-file' searches the text for the
name: in a large directory, every owner column that says the name is
a false hit that costs a `dired-get-filename'."
  (let ((found descent--listing-found)
        (file (directory-file-name (expand-file-name file))))
    (setq descent--listing-found nil)
    (let ((position (and found (eq (marker-buffer found) (current-buffer))
                         (marker-position found))))
      (when found (set-marker found nil))
      (let ((at (or (and position
                         (save-excursion
                           (goto-char position)
                           (and (equal (dired-get-filename nil t) file)
                                (dired-move-to-filename))))
                    (descent--listing-find-name file))))
        (and at (goto-char at))))))

(defun descent--goto-file-by-name (goto-file file)
  "Move to FILE's line by its name, not its text; else call GOTO-FILE.
Advice around `dired-goto-file', which reverting (`g') and other
Dired commands use to put point back: the built-in searches the text
for \" NAME\", so every owner column that says NAME is a false hit
that costs a `dired-get-filename'.  Part of `descent-native-listing'."
  (let* ((name (directory-file-name file))
         (at (and descent-native-listing (derived-mode-p 'dired-mode)
                  ;; Only a name the built-in would find as it is: a
                  ;; relative one is an error there, and "d/." or "~/x"
                  ;; name no line.
                  (file-name-absolute-p name)
                  (equal (expand-file-name name) name)
                  (descent--listing-find-name name))))
    (if at (goto-char at) (funcall goto-file file))))

(defun descent--listing-find-name (file)
  "Return the position of FILE's name where it is a whole `dired-filename' run.
Only names that end their line (or go on with \" -> \", a link's
target) are candidates, so the columns before the names are never
false hits.  A name that ls quotes or Dired escapes is not searched."
  (let ((name (file-name-nondirectory file))
        (case-fold-search nil)
        found)
    (unless (or (string-empty-p name) (string-match-p "[\\\n\r]" name))
      (save-excursion
        (dolist (after '("\n" " -> "))
          (goto-char (point-min))
          (while (and (not found) (search-forward (concat " " name after) nil t))
            (let ((from (1+ (match-beginning 0)))
                  (to (- (match-end 0) (length after))))
              (when (and (get-text-property from 'dired-filename)
                         (not (get-text-property (1- from) 'dired-filename))
                         (eql (next-single-property-change from 'dired-filename
                                                           nil to)
                              to)
                         (progn (goto-char from)
                                (equal (dired-get-filename nil t) file)))
                (setq found from))
              (goto-char to))))))
    found))

(defun descent--build-subdir-alist (build-subdir-alist &rest args)
  "Call BUILD-SUBDIR-ALIST with ARGS, not searching a listing without headers.
An `:around' advice of `dired-build-subdir-alist', whose regexp search
for subdirectory headers backtracks over every line with a colon (the
time column of every file): a quarter of a second at 100k entries.
When the buffer ends with the listing `descent--listing-headerless'
marks, after a line of its own, and no line of that listing ends in a
colon, the search stops where the listing starts: no line of it could
match.  The condition is checked now, so edits since do not matter."
  (let ((listing descent--listing-headerless))
    (setq descent--listing-headerless nil)
    (unwind-protect
        (if (and listing
                 (eq (marker-buffer (car listing)) (current-buffer))
                 (= (point-min) 1)
                 (= (cdr listing) (point-max))
                 (eq (char-before (car listing)) ?\n)
                 (not (save-excursion
                        (goto-char (car listing))
                        (search-forward ":\n" nil t))))
            (save-restriction
              (narrow-to-region (point-min) (car listing))
              (apply build-subdir-alist args))
          (apply build-subdir-alist args))
      (descent--forget-listing listing))))

(defun descent--insert-set-properties (insert-set-properties beg end)
  "Call INSERT-SET-PROPERTIES on BEG and END unless the module did it.
An `:around' advice of `dired-insert-set-properties': a listing that
`descent--mod-insert-listing' propertized as it does is left alone."
  (let ((done descent--listing-propertized))
    (setq descent--listing-propertized nil)
    (unless (and done
                 (eq (marker-buffer (car done)) (current-buffer))
                 (= beg (car done))
                 (= end (cdr done)))
      (funcall insert-set-properties beg end))
    (descent--forget-listing done)))

(defun descent--listing-total-line (beg file)
  "Say how much is used and available on the total line after BEG.
FILE is the directory listed; as `insert-directory' does."
  (save-excursion
    (goto-char beg)
    (when (re-search-forward "^ *\\(total\\)" nil t)
      (replace-match "total used in directory" nil nil nil 1)
      (let ((available (get-free-disk-space file)))
        (when available
          (end-of-line)
          (insert " available " available))))))

(defun descent--insert-directory (insert-directory file switches
                                                   &optional wildcard
                                                   full-directory-p)
  "Insert the listing of FILE from descentd, or call INSERT-DIRECTORY.
An `:around' advice of `insert-directory', with its arguments FILE,
SWITCHES, WILDCARD and FULL-DIRECTORY-P.  The daemon lists when
`descent-native-listing' is on, FILE is local, there is no WILDCARD,
the listing program is GNU ls and the daemon reproduces its output
for these switches and this locale; otherwise ls runs, unchanged."
  (unless (and descent-native-listing
               (not wildcard)
               enable-multibyte-characters
               (member (file-name-nondirectory insert-directory-program)
                       '("ls" "gls"))
               (not (and (featurep 'ls-lisp)
                         (not ls-lisp-use-insert-directory-program)))
               (not (find-file-name-handler (expand-file-name file)
                                            'insert-directory))
               (descent--listing-insert file switches full-directory-p))
    (funcall insert-directory file switches wildcard full-directory-p)))

;;;; Commands

;;;###autoload
(defun descent-jump (&optional other-window file-name)
  "Jump to the Dired buffer of the current buffer, like `dired-jump'.
In a buffer visiting a file, Dired that file's directory with point
on the file.  In Dired, go up a level with point on the directory
left.  In an archive or tar member, return to the archive.  In any
other buffer, Dired `default-directory'.

When OTHER-WINDOW is non-nil, jump in another window.  When FILE-NAME
is non-nil, jump to its line; a FILE-NAME ending in a slash is opened
itself.  Interactively, with a prefix argument, read a directory with
completion from the frecency index, best first: a typed path is taken
as it is, and typed words mean the best directory they match (as
`descent-jump-to' does).

Improvements over the built-in `dired-jump':
- a file hidden by `dired-omit-mode' gets point by turning omitting
  off (the built-in calls `dired-omit-mode' without argument, which
  turns it on);
- going up refreshes the parent listing, not the directory left (the
  built-in inserts the directory left as a subdirectory);
- going up also turns omitting off when it hides the directory left;
- a new file in a directory that does not exist yet opens the nearest
  existing ancestor instead of failing; nothing is refreshed for a
  file that does not exist yet;
- OTHER-WINDOW is honoured for archive members too, and a member
  whose archive's buffer was killed goes to the archive's line.
Remote (TRAMP) files and directories use the built-in unchanged."
  (interactive
   (list nil (and current-prefix-arg
                  (descent--jump-target
                   (descent--read-directory "Jump to directory")))))
  (let ((superior (descent--superior-buffer)))
    (cond
     (superior
      (if other-window
          (switch-to-buffer-other-window superior)
        (switch-to-buffer superior)))
     ;; Its archive's buffer killed: the archive's line in its directory.
     ((and (null file-name) (descent--orphan-member-archive))
      (descent--jump-into (descent--orphan-member-archive) other-window)
      (descent--record-visit-from-hook default-directory))
     ((file-remote-p (or (and file-name (expand-file-name file-name))
                         buffer-file-name default-directory))
      (dired-jump other-window file-name))
     ;; Dired itself, as the built-in says: not a mode derived from it,
     ;; such as `locate-mode', whose buffer lists no one directory.
     ((and (eq major-mode 'dired-mode) (null file-name))
      (descent--jump-up other-window)
      (descent--record-visit-from-hook default-directory))
     (t
      (descent--jump-into file-name other-window)
      (descent--record-visit-from-hook default-directory)))))

;;;###autoload
(defun descent-jump-other-window (&optional file-name)
  "Like \\[descent-jump] (`descent-jump') but in another window.
When FILE-NAME is non-nil, jump to its line; interactively, with a
prefix argument, read a directory as `descent-jump' does."
  (interactive
   (list (and current-prefix-arg
              (descent--jump-target
               (descent--read-directory "Jump to directory")))))
  (descent-jump t file-name))

;;;###autoload
(defun descent-jump-to (keywords &optional other-window)
  "Jump to the best directory of the frecency index for KEYWORDS.
KEYWORDS is a string of words or a list of strings; they match the
path in order, case-insensitively unless one has an uppercase letter,
and the last one matches the last component, as zoxide's do.  When
OTHER-WINDOW is non-nil, jump in another window.  Return the
directory, or signal `user-error' when nothing matches."
  (interactive (list (read-string "Jump to (keywords): ") current-prefix-arg))
  (let* ((words (if (stringp keywords) (split-string keywords) keywords))
         (directory (condition-case err
                        (descent--best-match words)
                      (descent-error
                       (user-error "%s" (descent--error-text err))))))
    (unless directory
      (user-error "No directory in the index matches %s"
                  (string-join words " ")))
    (descent-jump other-window directory)
    directory))

;;;###autoload
(defun descent-build-module ()
  "Build the module and the daemon with CMake, asynchronously.
Run the build in a compilation buffer from the root of the checkout
this file was loaded from."
  (interactive)
  (unless descent--checkout
    (user-error "This descent was not loaded from a source checkout; \
build it there with `cmake --workflow --preset default'"))
  (let ((default-directory descent--checkout)
        ;; The build runs on a pty: CMake (which heeds CLICOLOR, not TERM)
        ;; and the compiler would fill the buffer with raw color escapes.
        (process-environment (append '("CLICOLOR=0" "TERM=dumb") process-environment)))
    (setq descent--build-buffer
          (compilation-start
           "cmake --preset default && cmake --build --preset default \
--target descent-module descentd descent"
           nil (lambda (_mode) "*descent-build*")))))

(defun descent--format-uptime (seconds)
  "SECONDS as a human duration."
  (if (< seconds 60)
      (format "%d s" seconds)
    (format-seconds "%Y, %D, %H, %M%z" seconds)))

;;;###autoload
(defun descent-status (&optional show)
  "Show the module and daemon versions, and the daemon's whereabouts.
Start the daemon when it is not running.  Return the daemon's status
as a plist; SHOW non-nil (interactively, always) also displays it in
the buffer *descent-status*."
  (interactive (list t))
  (let ((status (condition-case err
                    (descent--call "status" nil 10)
                  (descent-error
                   (user-error "%s" (descent--error-text err))))))
    (when show
      (with-help-window "*descent-status*"
        (princ (format "descent %s\n\n" descent-version))
        (princ (format "Module:       %s  %s\n" (descent--mod-version)
                       (or descent--module-loaded-file "")))
        (princ (format "Daemon:       %s  (protocol %s)\n"
                       (plist-get status :version)
                       (plist-get status :protocol)))
        (princ (format "Pid:          %s\n" (plist-get status :pid)))
        (princ (format "Socket:       %s\n" (plist-get status :socket)))
        (princ (format "State:        %s\n" (plist-get status :state-dir)))
        (princ (format "Uptime:       %s\n"
                       (descent--format-uptime
                        (round (or (plist-get status :uptime) 0)))))
        (princ (format "Connections:  %s\n"
                       (plist-get status :connections)))))
    status))

;;;; The mode

;; The wdired commit lives in descent-wdired.el, loaded on first use.
(autoload 'descent-finish-edit "descent-wdired"
  "Commit the edits of this wdired buffer as one batch, through descentd." t)
(autoload 'descent-undo-rename "descent-wdired"
  "Undo the most recent rename batch not undone yet." t)
(autoload 'descent--wdired-finish-edit-advice "descent-wdired")
(autoload 'descent--wdired-before-replace "descent-wdired")
(autoload 'descent--wdired-record-ids "descent-wdired")

(defvar descent-mode-map
  (let ((map (make-sparse-keymap)))
    ;; Remapping reaches C-x C-j, C-x 4 C-j (global bindings of the
    ;; built-ins since Emacs 28) and every user binding of the built-ins.
    (define-key map [remap dired-jump] #'descent-jump)
    (define-key map [remap dired-jump-other-window] #'descent-jump-other-window)
    ;; C-c C-c and C-x C-s in wdired, and `C-h k' on them, show descent.
    (define-key map [remap wdired-finish-edit] #'descent-finish-edit)
    map)
  "Keymap of `descent-mode'.")

(defvar descent--advice
  '((insert-directory :around descent--insert-directory)
    (dired-insert-set-properties :around descent--insert-set-properties)
    (dired-build-subdir-alist :around descent--build-subdir-alist)
    (dired-goto-file :around descent--goto-file-by-name)
    ;; Every other way of committing wdired (`wdired-exit', code calling
    ;; it by name) goes through descent too; :around rather than
    ;; :override, so that the fallback without a daemon can reach it.
    (wdired-finish-edit :around descent--wdired-finish-edit-advice)
    (perform-replace :before descent--wdired-before-replace))
  "Advice that `descent-mode' installs: a list of (SYMBOL HOW FUNCTION).")

(defconst descent--hooks
  '((find-file-hook . descent--record-file-visit)
    (dired-mode-hook . descent--record-dired-visit)
    (wdired-mode-hook . descent--wdired-record-ids))
  "Hooks that `descent-mode' adds to: a list of (HOOK . FUNCTION).")

(defun descent--set-advice (on)
  "Install every piece of `descent--advice' and `descent--hooks' when ON.
Remove them when ON is nil."
  (pcase-dolist (`(,symbol ,how ,function) descent--advice)
    (if on
        (advice-add symbol how function)
      (advice-remove symbol function)))
  (pcase-dolist (`(,hook . ,function) descent--hooks)
    (if on
        (add-hook hook function)
      (remove-hook hook function))))

;;;###autoload
(define-minor-mode descent-mode
  "Use descent for jumping and batch renaming in Dired.
The mode remaps `dired-jump' to `descent-jump' and
`dired-jump-other-window' to `descent-jump-other-window', records
visits of directories for \\[universal-argument] \\[descent-jump] (see
`descent-record-visits'), and commits wdired buffers with
`descent-finish-edit', as one all-or-nothing batch that
`descent-undo-rename' can take back.  Turning it off gives back every
built-in binding and behaviour."
  :global t
  ;; On from loading (see the end of this file), so that Customize shows
  ;; the mode as standard, not "changed outside Customize".
  :init-value t
  :group 'descent
  :keymap descent-mode-map
  (descent--set-advice descent-mode))

(defvar descent--turned-on-by-load nil
  "Non-nil once loading this file has turned `descent-mode' on.
Reloading the file leaves the user's choice alone.")

(unless descent--turned-on-by-load
  (setq descent--turned-on-by-load t)
  (if (eq this-command 'descent-mode)
      ;; M-x descent-mode loading this file through its autoload toggles
      ;; the mode right after: from off, so that it ends on.
      (setq descent-mode nil)
    (descent-mode 1)))

(provide 'descent)
;;; descent.el ends here
