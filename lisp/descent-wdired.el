;;; descent-wdired.el --- Commit wdired edits as one safe batch -*- lexical-binding: t -*-

;; Copyright (C) 2026 The descent authors

;; This file is part of descent.

;; descent is free software: you can redistribute it and/or modify it
;; under the terms of the GNU General Public License as published by
;; the Free Software Foundation, either version 3 of the License, or
;; (at your option) any later version.

;; descent is distributed in the hope that it will be useful, but
;; WITHOUT ANY WARRANTY; without even the implied warranty of
;; MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
;; General Public License for more details.

;; You should have received a copy of the GNU General Public License
;; along with descent.  If not, see <https://www.gnu.org/licenses/>.

;;; Commentary:

;; While `descent-mode' is on, `C-c C-c' in a wdired buffer (and every
;; other way of committing: `C-x C-s', `wdired-exit', code calling
;; `wdired-finish-edit') runs `descent-finish-edit': every rename,
;; permission change and symlink re-target of the buffer goes to
;; descentd as one batch that happens completely or not at all, and
;; `descent-undo-rename' takes it back.  Entering and editing stay
;; wdired's own.
;;
;; The cost of a commit grows with the batch, never faster: one pass
;; over the edited lines, one request, one pass over the buffers that
;; visit renamed files, one revert.

;;; Code:

(require 'cl-lib)
(require 'descent)
(require 'dired)
(require 'dired-aux)
(require 'wdired)

(defvar wdired--perm-beg)
(defvar wdired--old-marks)

(declare-function descent--mod-rename-submit "descent-module"
                  (socket ops &optional progress))

(defface descent-wdired-refused
  '((t :inherit error))
  "Face of the wdired lines whose edit descentd refused."
  :group 'descent)

;; Children of `file-error' as well: a rename that did not happen is a
;; file operation that failed, and Emacs shows such an error's text as
;; it is, where it would show any other's quoted after its title.
(define-error 'descent-rename-refused "Renaming refused, nothing changed"
  '(file-error descent-error))
(define-error 'descent-rename-failed "Renaming failed, nothing changed"
  '(file-error descent-error))

(define-error 'descent-undo-refused "Undo refused, nothing changed"
  '(file-error descent-error))

(defun descent--wdired-signal (error why)
  "Signal ERROR, `descent-rename-refused' or `-failed', saying WHY.
The error's data is one string, its title and WHY, as the echo area
shows it."
  (signal error (list (concat (get error 'error-message) ": "
                              ;; descentd's own title, said already.
                              (replace-regexp-in-string
                               "\\`refused the batch: " ""
                               (replace-regexp-in-string
                                "\\`refused the batch (\\([0-9]+ problems\\)): " "\\1: " why))))))

(defconst descent--wdired-progress-delay 0.5
  "Seconds a batch runs before a progress reporter shows.")

(defconst descent--wdired-history-max 100
  "How many committed batches `descent-undo-rename' can map buffers for.")

;;;; What editing began with

(defvar-local descent--wdired-ids nil
  "Hash table from file name bytes to (DEVICE . INODE), or nil.
Recorded when wdired editing began, so that a file replaced while
the user edits is refused instead of renamed.")

(defconst descent--wdired-identify-max 10000
  "How many directories one rename.identify request may name.")

(defun descent--wdired-fill-ids (table directories)
  "Add what descentd sees in DIRECTORIES (byte strings) to TABLE."
  (while (nthcdr descent--wdired-identify-max directories)
    (descent--wdired-fill-ids table (seq-take directories descent--wdired-identify-max))
    (setq directories (nthcdr descent--wdired-identify-max directories)))
  (let ((reply (descent--call "rename.identify"
                              (vector (vconcat directories)))))
    (cl-loop
     for dir in directories
     for listing across reply
     when listing
     do (let ((names (plist-get listing :names))
              (ids (plist-get listing :ids))
              (dir (file-name-as-directory dir)))
          (dotimes (i (length names))
            (puthash (concat dir (aref names i))
                     (cons (aref ids (* 2 i)) (aref ids (1+ (* 2 i))))
                     table))))
    table))

(defun descent--wdired-record-ids ()
  "Record the (device . inode) of each file that this wdired buffer lists.
Runs from `wdired-mode-hook'.  One request lists every directory of
the buffer; without a daemon nothing is recorded, and the commit
falls back to the built-in."
  (setq descent--wdired-ids nil)
  (when (and descent-mode
             (not (file-remote-p default-directory))
             (descent--module-usable-p))
    (condition-case nil
        (setq descent--wdired-ids
              (descent--wdired-fill-ids
               (make-hash-table :test 'descent-name :size 1000)
               (delete-dups
                (nconc (mapcar (lambda (entry) (descent--path-bytes (car entry)))
                               dired-subdir-alist)
                       (descent--wdired-listed-directories)))))
      (descent-error nil))))

(defun descent--wdired-listed-directories ()
  "The directories, as bytes, of the files listed under a name with a slash.
A Dired buffer of a file list (`find-dired', or `dired' given a list)
lists files of other directories than its own, as \"sub/file\": those
directories are recorded too, or a file replaced there while the user
edits would be renamed instead of refused.  Only the slashes of the
buffer are visited: a directory's listing has none in its names; and
each directory part is expanded once, not each line's name."
  (let ((seen (make-hash-table :test 'equal))
        (dirs nil))
    (save-excursion
      (goto-char (point-min))
      (while (search-forward "/" nil t)
        (when (get-text-property (1- (point)) 'dired-filename)
          (let* ((beg (previous-single-property-change (point) 'dired-filename
                                                       nil (line-beginning-position)))
                 (end (next-single-property-change (point) 'dired-filename
                                                   nil (line-end-position)))
                 (text (buffer-substring-no-properties
                        beg (save-excursion (goto-char end) (search-backward "/" beg) (1+ (point))))))
            (unless (gethash text seen)
              (puthash text t seen)
              (let ((file (if (string-match-p "[\\\"]" text)
                              ;; Quoted (ls -b): as Dired reads it.
                              (dired-get-filename nil t)
                            (expand-file-name (if (string-prefix-p "/" text) text
                                                (concat (dired-current-directory) text))))))
                (when file (push (file-name-directory file) dirs)))))
          (forward-line 1))))
    (mapcar #'descent--path-bytes (delete-dups dirs))))

;;;; Reading the edits

(defun descent--wdired-new-name (text directory)
  "The file name that TEXT, typed on a line of DIRECTORY, stands for.
The name is taken literally: no `$VAR' expansion, no `~'.  A name
that starts with \"/\" is absolute; \"..\" and \".\" are resolved."
  (cond ((string-prefix-p "/" text) (expand-file-name text "/"))
        ;; `expand-file-name' would take "~x" for a home directory.
        ((string-prefix-p "~" text) (expand-file-name (concat "./" text) directory))
        (t (expand-file-name text directory))))

(defun descent--wdired-line-name (beg lep classify)
  "The new name typed on the wdired line whose `old-name' is at BEG, or nil.
The line ends at LEP.  The name is unexpanded.  CLASSIFY is non-nil
when the listing has -F indicators.  On a symbolic link's line the
name ends where wdired's `end-name' says, before the arrow.  This is
what `wdired-get-filename' reads, without a regexp search per line and
without its `file-relative-name', which would expand the typed text
where names are literal: ~/x to one's home, an emptied name to the
directory itself."
  (let ((end (next-single-property-change beg 'end-name nil lep)))
    (when (and classify (= end lep) (memq (char-before end) '(?* ?/ ?@ ?| ?= ?>)))
      (setq end (1- end)))
    (let ((text (buffer-substring-no-properties (1+ beg) end)))
      ;; Only quotes and backslashes need wdired's unquoting (a
      ;; `read' per name); most names have neither.
      (if (string-match-p "[\\\"]" text)
          (wdired-normalize-filename text t)
        text))))

(defun descent--wdired-line-type (bol)
  "The file type character of the Dired line at BOL, or nil if unsure.
In a long listing without -i or -s it is the third character; a
line whose third character is not a type (-i, -s, an odd listing)
gives nil, for a caller to fall back on a regexp or a property."
  (let ((type (char-after (+ bol 2))))
    (and (memq type '(?- ?d ?l ?b ?c ?p ?s))
         ;; As `dired-re-dir' and `dired-re-sym' say: "d:" is no type.
         (not (eq (char-after (+ bol 3)) ?:))
         type)))

(defun descent--wdired-directory-line-p (bol type)
  "Return non-nil if the Dired line at BOL is a directory's.
TYPE is the line's `descent--wdired-line-type'.  As `dired-re-dir'
says, without a regexp match on most lines."
  (if type
      (eq type ?d)
    (save-excursion (goto-char bol) (looking-at-p dired-re-dir))))

(defun descent--wdired-link-line-p (type name lep)
  "Return non-nil if a Dired line has a link target wdired recorded.
TYPE is the line's `descent--wdired-line-type', NAME where its
`old-name' is, LEP its end.  A symbolic link's line is known by its
type; another one by the property."
  (if type
      (eq type ?l)
    (< (next-single-property-change name 'old-link nil lep) lep)))

(defun descent--wdired-same-name-p (a b)
  "Non-nil if the file names A and B are the same bytes.
Dired gives a name with raw bytes as a unibyte string, the buffer's
text as a multibyte one; `equal' alone would see two names."
  (cond ((equal a b) t)
        ((eq (multibyte-string-p a) (multibyte-string-p b)) nil)
        ;; A multibyte name of ASCII only is `equal' to the same bytes
        ;; unibyte: these differ, with no encoding per line to show it.
        ((let ((multibyte (if (multibyte-string-p a) a b)))
           (= (length multibyte) (string-bytes multibyte)))
         nil)
        (t (equal (encode-coding-string a (descent--file-name-coding) t)
                  (encode-coding-string b (descent--file-name-coding) t)))))

(cl-defstruct (descent--wdired-edit (:constructor descent--wdired-edit-create)
                                    ;; Positional, for the line loop: no
                                    ;; keyword parsing per line.
                                    (:constructor descent--wdired-edit-of-line
                                                  (kind old new pos directory-p))
                                    (:copier nil))
  "One edited line of a wdired buffer."
  kind        ; rename, delete, chmod, retarget
  old         ; the file's name before the batch (what wdired recorded)
  new         ; rename: the new name (before translation); retarget: the target
  mode        ; chmod: the new mode
  old-bytes   ; `old' as bytes, once computed
  id          ; the source's (DEVICE . INODE) when editing began, once looked up
  pos         ; the line's beginning
  directory-p ; rename: the line shows a directory
  error)      ; a problem found before submitting, or nil

(defun descent--wdired-collect ()
  "Every edit of the current wdired buffer, in buffer order.
Names come from the `old-name' property wdired recorded when the
line was first edited, never from the text, so decorations (-F
indicators, icons) cannot leak into them."
  (let ((edits nil)
        (pos (point-min))
        (classify (dired-check-switches dired-actual-switches "F" "classify"))
        ;; One directory unless subdirectories are inserted.
        (only-directory (and (null (cdr dired-subdir-alist))
                             (stringp dired-directory)
                             (file-name-as-directory (caar dired-subdir-alist))))
        (links nil))
    (save-excursion
      ;; Renames and emptied names: only the lines wdired preprocessed
      ;; (the ones the user touched) carry `old-name'.  One line at a
      ;; time, without a search of the whole buffer: a line's link
      ;; target is recorded with its name.
      (while (setq pos (next-single-property-change pos 'old-name))
        (goto-char pos)
        (let ((old (get-text-property pos 'old-name))
              (lep (line-end-position)))
          (when old
            (let* ((bol (line-beginning-position))
                   (type (descent--wdired-line-type bol))
                   (link (descent--wdired-link-line-p type pos lep))
                   (text (descent--wdired-line-name pos lep classify)))
              (when link (setq links t))
              (cond
               ((or (null text) (string= text ""))
                (push (descent--wdired-edit-of-line 'delete old nil bol nil) edits))
               (t
                (let ((new (if (and only-directory
                                    (not (string-search "/" text))
                                    (not (member text '("." ".."))))
                               (concat only-directory text)
                             (goto-char bol)
                             (let ((name (descent--wdired-new-name text (dired-current-directory))))
                               ;; "sub/" moves the file into sub, as
                               ;; `rename-file' does.
                               (if (directory-name-p name)
                                   (concat name (file-name-nondirectory (directory-file-name old)))
                                 name)))))
                  (unless (descent--wdired-same-name-p new old)
                    (let ((edit (descent--wdired-edit-of-line
                                 'rename old new bol (descent--wdired-directory-line-p bol type))))
                      ;; The built-in would take "~/x" for one's home; taken
                      ;; literally, it would make a directory named "~" here.
                      ;; Neither is safe to guess: ask for the full name.
                      ;; ("~b" alone is a plain name.)
                      (when (and (eq (aref text 0) ?~)
                                 (or (string= text "~") (string-match-p "\\`~[^/]*/" text)))
                        (setf (descent--wdired-edit-error edit)
                              (format "typed %s: ~ is not expanded (names are literal); \
type the full name, or ./%s for a name that starts with ~"
                                      text text)))
                      (push edit edits))))))))
          (setq pos (max (1+ pos) lep))))
      (when (and links wdired-allow-to-redirect-links (fboundp 'make-symbolic-link))
        (setq edits (nconc (descent--wdired-collect-links) edits)))
      (when (and wdired-allow-to-change-permissions wdired--perm-beg)
        (setq edits (nconc (descent--wdired-collect-perms) edits))))
    (nreverse edits)))

(defun descent--wdired-collect-links ()
  "Return the symlink re-targets of the buffer, as a list of edits."
  (let ((edits nil)
        (pos (point-min)))
    (while (setq pos (next-single-property-change pos 'old-link))
      (goto-char (1+ pos))
      (let ((old (get-text-property pos 'old-link))
            (new (wdired-get-previous-link)))
        (when (and old (not (equal (wdired-normalize-filename old t) new)))
          (push (descent--wdired-edit-create
                 :kind 'retarget :old (wdired-get-filename nil t)
                 :new (if (equal new "") (null-device) new)
                 :pos (line-beginning-position))
                edits)))
      (setq pos (max (1+ pos) (line-end-position))))
    edits))

(defun descent--wdired-collect-perms ()
  "Return the permission edits of the buffer, as a list of edits."
  (let ((edits nil)
        (wanted (if (eq wdired-allow-to-change-permissions 'advanced)
                    'old-perm 'perm-changed))
        (pos (point-min)))
    (while (setq pos (next-single-property-change pos wanted))
      (goto-char pos)
      ;; `perm-changed' and `old-perm' sit on the same character, the
      ;; first of the permissions.
      (let* ((old (get-text-property pos 'old-perm))
             (new (and (get-text-property pos wanted)
                       (buffer-substring-no-properties
                        pos (next-single-property-change pos 'end-perm nil
                                                         (line-end-position))))))
        (unless (or (null new) (equal old new))
          (push (descent--wdired-edit-create
                 :kind 'chmod :old (wdired-get-filename nil t) :pos (line-beginning-position)
                 :mode (and (= (length new) 10) (wdired-perms-to-number new))
                 :error (unless (= (length new) 10)
                          (format "cannot parse the permissions %S" new)))
                edits)))
      (setq pos (max (1+ pos) (line-end-position))))
    edits))

;;;; The batch

(defun descent--wdired-text-form (name)
  "NAME as the buffer's text spells it, for looking names up by `equal'.
Dired gives a name with bytes that are not UTF-8 as a unibyte string,
and so does a name typed with -b escapes; the text of a line holds the
same bytes as raw-byte characters.  Both are the same file, and encode
to the same bytes again."
  (if (or (multibyte-string-p name) (not (string-match-p "[\200-\377]" name)))
      name
    (decode-coding-string name (descent--file-name-coding) t)))

(defun descent--wdired-directory-renames (edits backward)
  "A hash table of the directories EDITS rename, old name to new.
With BACKWARD non-nil, new name to old.  Names are in their
`descent--wdired-text-form', as lookups must be."
  (let ((dirs (make-hash-table :test 'descent-name)))
    (dolist (edit edits)
      (when (and (eq (descent--wdired-edit-kind edit) 'rename)
                 (descent--wdired-edit-directory-p edit))
        (let ((old (descent--wdired-text-form (descent--wdired-edit-old edit)))
              (new (descent--wdired-text-form (descent--wdired-edit-new edit))))
          (if backward (puthash new old dirs) (puthash old new dirs)))))
    dirs))

(defun descent--wdired-translate (edits)
  "Spell every rename of EDITS in the final tree.
A destination inside a directory the batch also renames uses the
directory's new name, as descentd expects, and so does that new name
if the directory is inside another one the batch renames.  Costs
nothing when no directory is renamed."
  (let ((dirs (descent--wdired-directory-renames edits nil))
        (final nil))
    (unless (zerop (hash-table-count dirs))
      ;; Each renamed directory's spelling, once: thousands of files may
      ;; sit under one.
      (setq final (make-hash-table :test 'descent-name))
      (cl-labels ((spelled (name seen)
                    ;; The deepest renamed ancestor decides, but not a
                    ;; directory of SEEN, which NAME is the new name of (or
                    ;; inside that): a directory moved into itself, which
                    ;; descentd refuses naming the destination as typed.
                    (setq name (descent--wdired-text-form name))
                    (let ((up (directory-file-name (file-name-directory name))))
                      (catch 'done
                        (while (not (member up '("/" "")))
                          (when (and (gethash up dirs) (not (member up seen)))
                            (throw 'done (concat (final-name up seen) (substring name (length up)))))
                          (setq up (directory-file-name (file-name-directory up))))
                        name)))
                  (final-name (dir seen)
                    (or (gethash dir final)
                        (puthash dir (spelled (gethash dir dirs) (cons dir seen)) final))))
        (dolist (edit edits)
          (when (eq (descent--wdired-edit-kind edit) 'rename)
            (setf (descent--wdired-edit-new edit)
                  (spelled (descent--wdired-edit-new edit)
                           (and (descent--wdired-edit-directory-p edit)
                                (list (descent--wdired-text-form
                                       (descent--wdired-edit-old edit))))))))))
    edits))

(defun descent--wdired-check-parents (edits)
  "Mark renames of EDITS into missing directories, if wdired may not make them.
With `wdired-create-parent-directories' nil, a destination's parent must
exist, or come from a directory the batch renames.  Destinations are
spelled in the final tree (see `descent--wdired-translate'): a parent
under a renamed directory is looked for under its old name."
  (unless wdired-create-parent-directories
    (let ((back (descent--wdired-directory-renames edits t))
          (known (make-hash-table :test 'descent-name)))
      (dolist (edit edits)
        (when (eq (descent--wdired-edit-kind edit) 'rename)
          (let* ((parent (directory-file-name
                          (file-name-directory (descent--wdired-edit-new edit))))
                 (before (descent--wdired-before-renames parent back)))
            (unless (eq t (or (gethash before known)
                              (puthash before (if (file-directory-p before) t 'no)
                                       known)))
              (setf (descent--wdired-edit-error edit)
                    (format "%s does not exist (wdired-create-parent-directories is nil)"
                            parent))))))))
  edits)

(defun descent--wdired-before-renames (dir back)
  "DIR, spelled in the final tree, as it is spelled before the batch.
BACK maps the new names of renamed directories to their old ones; the
deepest renamed ancestor (or DIR itself) decides."
  (setq dir (descent--wdired-text-form dir))
  (let ((up dir))
    (catch 'done
      (while (not (member up '("/" "")))
        (let ((old (gethash up back)))
          (when old (throw 'done (concat old (substring dir (length up))))))
        (setq up (directory-file-name (file-name-directory up))))
      dir)))

(defun descent--wdired-wire (name)
  "Return NAME for descentd: a string whose bytes are the file's name.
A unibyte name is its bytes already, and an ASCII one goes as it
is: the module copies its text, which is its bytes.  Any other is
encoded, and crosses as bytes."
  (cond ((not (multibyte-string-p name)) name)
        ;; As many characters as bytes: a multibyte string of ASCII only.
        ((and (= (length name) (string-bytes name))
              (eq (coding-system-base (descent--file-name-coding)) 'utf-8))
         name)
        (t (encode-coding-string name (descent--file-name-coding) t))))

(defun descent--wdired-old-bytes (edit)
  "Return EDIT's old name for descentd (see `descent--wdired-wire')."
  (or (descent--wdired-edit-old-bytes edit)
      (setf (descent--wdired-edit-old-bytes edit)
            (descent--wdired-wire (descent--wdired-edit-old edit)))))

(defun descent--wdired-ops (edits overwrite)
  "The vector of operations for EDITS, identified already.
OVERWRITE is t to confirm every overwrite, or a hash table of the
destinations (bytes) the user confirmed."
  (let ((ops (make-vector (length edits) nil))
        (i 0))
    (dolist (edit edits)
      (let ((old (descent--wdired-old-bytes edit))
            (id (or (descent--wdired-edit-id edit) '(0 . 0))))
        (aset ops i
              (pcase (descent--wdired-edit-kind edit)
                ('rename
                 (let ((new (descent--wdired-wire (descent--wdired-edit-new edit))))
                   (vector 'rename old new (car id) (cdr id)
                           (if (hash-table-p overwrite) (gethash new overwrite) overwrite))))
                ('chmod
                 (vector 'chmod old (car id) (cdr id) (descent--wdired-edit-mode edit)))
                ('retarget
                 (vector 'retarget old (car id) (cdr id)
                         (descent--wdired-wire (descent--wdired-edit-new edit))))
                (kind (error "No operation for a %s edit" kind))))
        (setq i (1+ i))))
    ops))

(defun descent--wdired-identify (edits)
  "Give every edit of EDITS the (DEVICE . INODE) its source had.
From `descent--wdired-ids', what editing began with; files the
buffer did not list then (a Dired buffer of a file list, say) are
identified now, in one request.  A source nobody identified gets
none, and descentd refuses to touch it if it is not what it was."
  (let ((ids (or descent--wdired-ids (make-hash-table :test 'descent-name)))
        (dirs nil))
    (dolist (edit edits)
      (unless (eq (descent--wdired-edit-kind edit) 'delete)
        ;; ASCII keys find their unibyte twins: `equal' and
        ;; `sxhash-equal' see the same characters.
        (let* ((old (descent--wdired-old-bytes edit))
               (id (gethash old ids)))
          (if id
              (setf (descent--wdired-edit-id edit) id)
            (push (file-name-directory old) dirs)))))
    (when dirs
      (descent--wdired-fill-ids ids (delete-dups dirs))
      (dolist (edit edits)
        (unless (or (eq (descent--wdired-edit-kind edit) 'delete)
                    (descent--wdired-edit-id edit))
          (setf (descent--wdired-edit-id edit)
                (gethash (descent--wdired-old-bytes edit) ids)))))
    (setq descent--wdired-ids ids)))

(defvar descent--wdired-done nil
  "During a commit, the outcome of its batch once the batch is done.")

(defvar descent--wdired-sent nil
  "During a commit, non-nil once its batch is on its way to descentd.")

(defvar descent--wdired-left nil
  "During a commit, (MARKS DELETED STALE) once `descent--wdired-leave' ran.")

(defvar descent--wdired-late-quit nil
  "Non-nil once \\[keyboard-quit] came after the batch was done.
The commit then completes, and says so.")

(defun descent--wdired-report-recoveries ()
  "Warn of what descentd's start-up recovery did, if no one was told yet.
A daemon killed during a batch (or an undo) puts the files back when it
next starts; each report is given to one client, once.  Asked after a
commit or undo that went through, so that a daemon that does not
answer holds nothing up; news only, so a failure to ask is ignored."
  (seq-doseq (report (condition-case nil (descent--call "rename.recovery" nil 2)
                       (descent-error nil)))
    (display-warning 'descent (concat "descentd " report)
                     (if (string-match-p "could not" report) :error :warning))))

(defun descent--wdired-submit (ops)
  "Submit OPS; return the outcome.
A progress reporter shows once the batch has run for
`descent--wdired-progress-delay' seconds."
  (let* ((start (float-time))
         (reporter nil)
         (progress (lambda (done total)
                     (when (or reporter
                               (> (- (float-time) start) descent--wdired-progress-delay))
                       (unless reporter
                         (setq reporter (make-progress-reporter "Renaming..." 0 total)))
                       (progress-reporter-update reporter done)))))
    (prog1 (descent--with-daemon
            (lambda (socket)
              ;; Quits held off: C-g still cancels the batch until its
              ;; outcome is back (the module takes it from `quit-flag'), and
              ;; one that comes after cannot make the outcome of a batch
              ;; that is done look like a cancel.
              (let ((inhibit-quit t))
                (setq descent--wdired-sent t)
                (setq descent--wdired-done (descent--mod-rename-submit socket ops progress))
                (when quit-flag
                  (setq quit-flag nil
                        descent--wdired-late-quit t))
                descent--wdired-done)))
      (when reporter (progress-reporter-done reporter)))))

;;;; Garbage

;; A commit allocates in proportion to the batch, nearly all of it garbage
;; a moment later.  Collected a dozen times over a 100k-line buffer's
;; intervals, it would cost more than the commit; so it is collected once,
;; when Emacs is next idle, after the buffer shows.  Not while descentd
;; renames, which would have been free: a collection cannot be
;; interrupted, and C-g must cancel the batch at once.

(defvar descent--wdired-gc-held nil
  "(RAISED . BEFORE) while a commit holds `gc-cons-threshold' at RAISED.")

(defun descent--wdired-hold-gc ()
  "Raise `gc-cons-threshold' until Emacs is next idle."
  (unless descent--wdired-gc-held
    (let ((raised (max gc-cons-threshold (* 128 1024 1024))))
      (setq descent--wdired-gc-held (cons raised gc-cons-threshold)
            gc-cons-threshold raised)
      (run-with-idle-timer 0 nil #'descent--wdired-release-gc))))

(defun descent--wdired-release-gc ()
  "Give `gc-cons-threshold' back the value `descent--wdired-hold-gc' found.
Not if something else changed it meanwhile (a let-binding that ended,
say).  The next allocation then collects what the commit left."
  (when descent--wdired-gc-held
    (when (eql gc-cons-threshold (car descent--wdired-gc-held))
      (setq gc-cons-threshold (cdr descent--wdired-gc-held)))
    (setq descent--wdired-gc-held nil)))

;;;; Problems

(defun descent--wdired-clear-problems ()
  "Remove the highlighting of refused lines."
  (remove-overlays (point-min) (point-max) 'descent-wdired-refused t))

(defun descent--wdired-show-problems (positions)
  "Highlight the lines that start at POSITIONS."
  (dolist (pos positions)
    (save-excursion
      (goto-char pos)
      (let ((overlay (make-overlay pos (line-end-position))))
        (overlay-put overlay 'descent-wdired-refused t)
        (overlay-put overlay 'face 'descent-wdired-refused)
        ;; Gone with its line's text: C-c C-k or a revert replaces it.
        (overlay-put overlay 'evaporate t)))))

(defun descent--wdired-lines-of (edits names)
  "The line positions of EDITS whose old or new name is among NAMES (bytes)."
  (let ((wanted (make-hash-table :test 'descent-name))
        (lines nil))
    (dolist (name names) (puthash name t wanted))
    (dolist (edit edits)
      (when (or (gethash (descent--wdired-old-bytes edit) wanted)
                (and (eq (descent--wdired-edit-kind edit) 'rename)
                     (gethash (descent--wdired-wire (descent--wdired-edit-new edit)) wanted)))
        (push (descent--wdired-edit-pos edit) lines)))
    lines))

(defun descent--wdired-confirm (problems)
  "Ask about each occupied destination in PROBLEMS (descentd's details).
Return a hash table of the confirmed destinations (bytes); nil if
some problem is not an occupied destination, or wdired does not ask;
or (declined . DESTINATION) when the user said no to one."
  (when (and (or wdired-confirm-overwrite wdired-use-interactive-rename)
             (cl-every (lambda (problem) (plist-get problem :occupied)) problems))
    (let ((confirmed (make-hash-table :test 'descent-name)))
      (catch 'refused
        (dolist (problem problems confirmed)
          (let ((dest (plist-get problem :occupied)))
            (if (yes-or-no-p (format "File %s already exists; rename to it anyway? "
                                     (descent--path-text dest)))
                (puthash dest t confirmed)
              (throw 'refused (cons 'declined dest)))))))))

(defvar descent--wdired-query nil
  "The last answer to `descent--wdired-ask-each', for `dired-query'.")

(defun descent--wdired-ask-each (edits)
  "With `wdired-use-interactive-rename', ask about each rename of EDITS.
Return the edits the user accepted.  Asked as the built-in asks, with
`dired-query' (y or SPC, n or DEL, and ! or q, q or ESC for the rest:
all are asked before anything happens)."
  (if (not wdired-use-interactive-rename)
      edits
    (let ((descent--wdired-query nil)
          (help-form (bound-and-true-p rename-regexp-help-form)))
      (cl-remove-if-not
       (lambda (edit)
         (or (not (eq (descent--wdired-edit-kind edit) 'rename))
             (dired-query 'descent--wdired-query "Move `%s' to `%s'?"
                          (dired-make-relative (descent--wdired-edit-old edit))
                          (dired-make-relative (descent--wdired-edit-new edit)))))
       edits))))

;;;; After a commit

(defvar descent--wdired-history nil
  "The batches committed from this Emacs, newest first (at most 100).
Only their numbers: descentd says what a batch renamed when it undoes
it, so a large batch costs Emacs no memory (and its collections no
time) afterwards.  `descent--wdired-catch-up' looks here for batches
undone without Emacs being told.")

(defun descent--wdired-moves-back (moved)
  "Return the alist (NEW . OLD) that points buffers back once MOVED is undone.
MOVED is what a batch renamed, as descentd tells it: the flat vector
of byte strings [OLD NEW OLD NEW ...]."
  (let ((renames nil))
    (dotimes (i (/ (length moved) 2))
      (push (cons (descent--path-text (aref moved (1+ (* 2 i))))
                  (descent--path-text (aref moved (* 2 i))))
            renames))
    (nreverse renames)))

(defun descent--wdired-mapper (renames)
  "A function from a file name to its name after RENAMES, or nil.
RENAMES is an alist (OLD . NEW); a name under a renamed directory
follows the directory."
  (let ((table nil))
    (lambda (file)
      ;; Built on first use: most commits have no buffer to map.
      (unless table
        (setq table (make-hash-table :test 'descent-name :size (length renames)))
        (pcase-dolist (`(,old . ,new) renames)
          ;; Dired's names never end in a slash; a typed one may.
          (puthash old (if (directory-name-p new) (directory-file-name new) new) table)))
      (let ((name (directory-file-name file))
            (rest ""))
        (catch 'found
          (while (not (member name '("/" "")))
            (let ((new (gethash name table)))
              (when new
                (throw 'found
                       (concat new rest
                               (if (and (string= rest "") (directory-name-p file)) "/" "")))))
            (setq rest (concat "/" (file-name-nondirectory name) rest)
                  name (directory-file-name (file-name-directory name))))
          nil)))))

(defun descent--wdired-rename-subdirs (map)
  "Give this Dired buffer's directories their names after a batch.
MAP is a function from a name to its new name or nil (see
`descent--wdired-mapper').  Return non-nil if anything was renamed."
  (let* ((was-directory-name (and (stringp dired-directory)
                                  (directory-name-p dired-directory)))
         ;; Deepest first: new names are spelled in the final tree, so a
         ;; deeper directory is renamed before its parent's part of it
         ;; changes.
         (moves (delq nil
                      (mapcar (lambda (dir)
                                (let ((new (funcall map dir)))
                                  (and new (cons dir (file-name-as-directory new)))))
                              (sort (mapcar (lambda (entry) (file-name-as-directory (car entry)))
                                            dired-subdir-alist)
                                    (lambda (a b) (> (length a) (length b)))))))
         (top (assoc default-directory moves))
         (others (delq top moves))
         ;; `dired-rename-subdir-1' renames whatever is under a name: one
         ;; at a time, a swap of two inserted directories would rename the
         ;; first one back with the second.  So each goes by a name no
         ;; directory has first.  Not the buffer's own directory, which
         ;; names the buffer: it has no directory above it to swap with.
         (aside (format "/ descent renaming %s/" (random)))
         (i 0))
    (dolist (move others)
      (dired-rename-subdir-1 (car move) (format "%s%d/" aside (cl-incf i))))
    (when top
      (dired-rename-subdir-1 (car top) (cdr top)))
    (setq i 0)
    (dolist (move others)
      (dired-rename-subdir-1 (format "%s%d/" aside (cl-incf i)) (cdr move)))
    ;; It expands "" for the top directory, dropping the slash that makes
    ;; a revert list the directory, not the file.
    (when (and moves was-directory-name (stringp dired-directory))
      (setq dired-directory (file-name-as-directory dired-directory)))
    (and moves t)))

(defun descent--wdired-follow-file-list (map)
  "Make a Dired buffer of a file list list its files by their new names.
MAP is as for `descent--wdired-rename-subdirs'.  Return non-nil if
a name changed.  (The built-in commit leaves the old names, and its
revert fails on them.)"
  (when (consp dired-directory)
    (let* ((changed nil)
           (files (mapcar (lambda (file)
                            (let ((new (funcall map (expand-file-name file))))
                              (if (not new) file (setq changed t) new)))
                          (cdr dired-directory))))
      (when changed
        (setq dired-directory (cons (car dired-directory) files)))
      changed)))

(defconst descent--wdired-moving-name " *descent renaming*"
  "The name of a buffer while `descent--wdired-follow-renames' moves it.")

(defun descent--wdired-follow-renames (renames directories)
  "Point the buffers at the new names after RENAMES, an alist (OLD . NEW).
Return (MAP . STALE): MAP, the function that maps a name to its new
name (or nil), and STALE, the other Dired buffers to revert, those
showing one of DIRECTORIES or a renamed directory (not those in
wdired), each as (BUFFER . MARKS) for `descent--wdired-revert-all'.
Buffers visiting a renamed file, or a file under a renamed directory,
visit the new name without becoming modified.  One pass
over the buffer list, with quits held off: it waits for nothing, and
a buffer left visiting an old name would bring it back when saved."
  (let ((map (descent--wdired-mapper renames))
        (shown (make-hash-table :test 'descent-name))
        (current (current-buffer))
        (stale nil)
        (visiting nil)
        (inhibit-quit t))
    (dolist (dir directories)
      (puthash (file-name-as-directory dir) t shown))
    (dolist (buffer (buffer-list))
      (with-current-buffer buffer
        (cond
         ;; The caller's Dired buffer is the caller's to list again; but
         ;; an undo may come from a buffer visiting a renamed file.
         ((and (eq buffer current) (derived-mode-p 'dired-mode)))
         ((eq major-mode 'wdired-mode))
         ((derived-mode-p 'dired-mode)
          (let ((renamed (descent--wdired-rename-subdirs map))
                (followed (descent--wdired-follow-file-list map)))
            (when (or renamed followed
                      (cl-some (lambda (entry)
                                 (gethash (file-name-as-directory (car entry)) shown))
                               dired-subdir-alist))
              (push (cons buffer (descent--wdired-renamed-marks map)) stale))))
         (buffer-file-name
          (let ((new (funcall map buffer-file-name)))
            (when new (push (cons buffer new) visiting)))))))
    ;; All at once, as the batch happened: in a swap or a cycle each new
    ;; name is still another buffer's when the first buffer moves to it.
    ;; Free the buffer names first, so that each buffer takes its file's
    ;; name; move without the question about a buffer visiting the name;
    ;; then lock again what is modified (moving one buffer off a name
    ;; unlocks it, though another modified buffer now visits it).
    (pcase-dolist (`(,buffer . ,_) visiting)
      (with-current-buffer buffer
        (rename-buffer (generate-new-buffer-name descent--wdired-moving-name))))
    (unwind-protect
        (pcase-dolist (`(,buffer . ,new) visiting)
          (with-current-buffer buffer
            (set-visited-file-name new t t)))
      ;; An error from one buffer's hooks must not leave the others
      ;; hidden under the temporary name.
      (pcase-dolist (`(,buffer . ,_) visiting)
        (with-current-buffer buffer
          (when (string-prefix-p descent--wdired-moving-name (buffer-name))
            (rename-buffer (file-name-nondirectory buffer-file-name) t)))))
    (pcase-dolist (`(,buffer . ,_) visiting)
      (with-current-buffer buffer
        (when (buffer-modified-p) (lock-buffer))))
    (cons map (nreverse stale))))

(defun descent--wdired-renamed-marks (map)
  "Return what this Dired buffer marked among the files MAP renames.
An alist (NEW . MARK): its revert keeps the marks of the names it
lists again, so these are put back under the new names after it."
  (cl-loop for (file . mark) in (dired-remember-marks (point-min) (point-max))
           for new = (funcall map file)
           when new collect (cons new mark)))

(defun descent--wdired-revert-all (stale)
  "Revert the live Dired buffers of STALE, keeping what they had marked.
STALE is a list of (BUFFER . MARKS), with MARKS from
`descent--wdired-renamed-marks'."
  (pcase-dolist (`(,buffer . ,marks) stale)
    ;; An undo removes the directories its batch made: their buffers
    ;; cannot be listed again (`dired-revert' would fail), and are left be.
    (when (and (buffer-live-p buffer)
               (file-directory-p (buffer-local-value 'default-directory buffer)))
      (with-current-buffer buffer
        (revert-buffer nil t)
        (when marks
          (let ((inhibit-read-only t))
            (dired-mark-remembered marks)))))))

(defun descent--wdired-update-buffers (renames directories)
  "Point every other buffer at the new names after RENAMES, and revert Dired ones.
See `descent--wdired-follow-renames' for RENAMES and DIRECTORIES.
Return the function that maps a name to its new name (or nil)."
  (let ((followed (descent--wdired-follow-renames renames directories)))
    (descent--wdired-revert-all (cdr followed))
    (car followed)))

(defun descent--wdired-mark-new-names (mark-alist)
  "Put MARK-ALIST, of (FILE . CHAR) pairs, back in the reverted buffer.
One pass over the buffer's file lines, whatever the number of marks."
  (when mark-alist
    (let ((table (make-hash-table :test 'descent-name))
          (inhibit-read-only t))
      (pcase-dolist (`(,file . ,char) mark-alist) (puthash file char table))
      (save-excursion
        (goto-char (point-min))
        (while (not (eobp))
          (let* ((file (dired-get-filename nil t))
                 (char (and file (gethash file table))))
            (when char
              (beginning-of-line)
              (delete-char 1)
              (insert char)))
          (forward-line 1))))))

(defun descent--wdired-finish (edits outcome)
  "Leave wdired after EDITS were committed with OUTCOME, as wdired does."
  ;; descentd lists the directory for the revert below while Emacs gets
  ;; there.
  (descent--listing-prefetch (caar (last dired-subdir-alist)))
  (pcase-let ((`(,marks ,deleted ,stale) (descent--wdired-leave edits outcome)))
    ;; Then the listings, which wait for descentd: this buffer's first
    ;; (its listing was asked for ahead), then the other Dired buffers.
    ;; A C-g cuts them short (see `descent--wdired-commit').
    (descent--wdired-show-result marks deleted)
    (descent--wdired-revert-all stale)))

(defun descent--wdired-leave (edits outcome)
  "Turn this buffer back to Dired and point every buffer at the new names.
EDITS were committed with OUTCOME.  Record the batch for
`descent-undo-rename'.  Return (MARKS DELETED STALE) for
`descent--wdired-show-result' and `descent--wdired-revert-all'.
Quick, waiting for nothing, and with quits held off: \\[keyboard-quit] now (the
batch is done) waits until the buffers follow the batch."
  (let* ((inhibit-quit t)
         (renames (cl-loop for edit in edits
                           when (eq (descent--wdired-edit-kind edit) 'rename)
                           collect (cons (descent--wdired-edit-old edit)
                                         (descent--wdired-edit-new edit))))
         (deleted (cl-loop for edit in edits
                           when (eq (descent--wdired-edit-kind edit) 'delete)
                           collect (descent--wdired-edit-old edit)))
         (old-marks wdired--old-marks)
         (marks (and wdired-keep-marker-rename
                     (let ((remembered (and (not (integerp wdired-keep-marker-rename))
                                            (let ((table (make-hash-table :test 'descent-name)))
                                              (pcase-dolist (`(,f . ,c) old-marks)
                                                (puthash f c table))
                                              table))))
                       (cl-loop for (old . new) in renames
                                for mark = (if (integerp wdired-keep-marker-rename)
                                               wdired-keep-marker-rename
                                             (gethash old remembered))
                                when mark collect (cons new mark)))))
         (directories (mapcar #'descent--path-text
                              (append (plist-get outcome :directories) nil))))
    (descent--wdired-clear-problems)
    ;; Narrowed to nothing, wdired spares itself removing its properties
    ;; from every line (half a second at 100k lines): Dired's revert
    ;; replaces the text, read-only or not.  Point stays where it was,
    ;; for the revert to keep it on its file.
    (save-excursion
      (save-restriction
        (narrow-to-region (point-min) (point-min))
        (wdired-change-to-dired-mode)))
    ;; Only now is wdired's own revert function peeled off (in wdired it
    ;; wraps the mode's).  Another revert (find-dired's) may erase the
    ;; text as it is: it must not be left read-only.
    (unless (eq revert-buffer-function #'dired-revert)
      (let ((inhibit-read-only t))
        (with-silent-modifications
          (remove-text-properties
           (point-min) (point-max)
           '(front-sticky nil rear-nonsticky nil read-only nil keymap nil)))))
    (when (and (stringp dired-directory)
               (not (file-directory-p dired-directory))
               (= (length renames) 1)
               (equal (car (car renames)) (expand-file-name dired-directory)))
      (setq dired-directory (cdr (car renames))))
    (when renames
      (push (plist-get outcome :batch) descent--wdired-history)
      (when (> (length descent--wdired-history) descent--wdired-history-max)
        (setcdr (nthcdr (1- descent--wdired-history-max) descent--wdired-history) nil)))
    (let ((followed (descent--wdired-follow-renames renames directories)))
      (when (cl-some #'descent--wdired-edit-directory-p edits)
        (descent--wdired-rename-subdirs (car followed)))
      (descent--wdired-follow-file-list (car followed))
      (setq descent--wdired-left (list marks deleted (cdr followed))))))

(defun descent--wdired-show-result (marks deleted)
  "List the committed batch's directory again, as wdired does.
Put MARKS, an alist (FILE . CHAR), back, and flag DELETED (file names)."
  ;; Undo is reset below: recording the old text (with its properties)
  ;; as the revert erases it would be wasted.
  (let ((buffer-undo-list t))
    (revert-buffer))
  (descent--wdired-mark-new-names marks)
  (when deleted
    (let ((flag (make-hash-table :test 'descent-name)))
      (dolist (file deleted) (puthash file t flag))
      (save-excursion
        (goto-char (point-min))
        (while (not (eobp))
          (if (gethash (dired-get-filename nil t) flag)
              (dired-flag-file-deletion 1)
            (forward-line 1))))))
  (set-buffer-modified-p nil)
  (setq buffer-undo-list nil))

(defun descent--wdired-show-result-in (buffer marks deleted &optional stale quit)
  "Show the result of a batch in BUFFER, if it is live and still in Dired.
MARKS and DELETED are as for `descent--wdired-show-result'.  Then
revert the Dired buffers STALE (see `descent--wdired-revert-all').
With QUIT, a \\[keyboard-quit] cut the commit short: say that the renames stand."
  (when (buffer-live-p buffer)
    (with-current-buffer buffer
      (when (eq major-mode 'dired-mode)
        (descent--wdired-show-result marks deleted))))
  (descent--wdired-revert-all stale)
  (when quit
    (descent--wdired-say-renames-stand)))

;;;; Commands

(defvar descent--wdired-builtin nil
  "Non-nil while the built-in `wdired-finish-edit' runs on purpose.")

(defun descent--wdired-builtin-finish ()
  "Commit with the built-in `wdired-finish-edit'."
  (let ((descent--wdired-builtin t))
    (wdired-finish-edit)))

(defun descent--wdired-finish-edit-advice (builtin &rest args)
  "Send `wdired-finish-edit' (BUILTIN, with ARGS) through `descent-finish-edit'.
Every way of committing, `wdired-exit' and code calling it by name
included, then goes through descent while `descent-mode' is on."
  (if (or descent--wdired-builtin (not descent-mode))
      (apply builtin args)
    (descent-finish-edit)))

(defun descent--wdired-fail (edits err)
  "Report ERR, a failed commit of EDITS, and stay in wdired."
  (pcase err
    (`(descent-daemon-error ,message "refused" ,details)
     (let ((paths (mapcar (lambda (p) (plist-get p :path))
                          (append (plist-get details :problems) nil))))
       (descent--wdired-show-problems (descent--wdired-lines-of edits paths))
       (descent--wdired-signal 'descent-rename-refused message)))
    (`(descent-daemon-error ,message . ,_)
     (descent--wdired-signal 'descent-rename-failed message))
    (`(descent-daemon-lost . ,_)
     (descent--wdired-signal
      'descent-rename-failed
      "descentd stopped during the batch; it rolls the batch back when it starts again"))
    (_ (signal (car err) (cdr err)))))

;;;###autoload
(defun descent-finish-edit ()
  "Commit the edits of this wdired buffer as one batch, through descentd.
Renames, emptied names (flagged for deletion, not deleted), permission
changes and symlink re-targets are applied completely or not at all:
if anything is refused or fails, nothing on disk changed, the buffer
stays in wdired with every edit, the offending lines are highlighted,
and the error says which and why.  \\[keyboard-quit] cancels at any
moment and the batch is rolled back.  `descent-undo-rename' takes a
committed batch back.

Names are taken literally: unlike the built-in `wdired-finish-edit',
no `$VAR' is expanded and `~' is just a character, except that
\"~\" or \"~/x\" is refused rather than guessed (\"./~/x\" means a
directory named \"~\").  A name starting with \"/\" is absolute;
\"..\" and \".\" are resolved, and \"d//a\" is \"d/a\" (the built-in
reads it as \"/a\").  A name that
exists outside the batch is overwritten only after a question, if
`wdired-confirm-overwrite' is on (its old file goes to the trash, so
undo brings it back).  wdired's other options are honoured.

Without the module or the daemon, the built-in commit runs instead,
after one warning; in remote directories it runs without one."
  (interactive)
  (unless (eq major-mode 'wdired-mode)
    (error "Not a Wdired buffer"))
  (if (file-remote-p default-directory)
      ;; descentd works on this machine's files only.
      (descent--wdired-builtin-finish)
    (descent--wdired-commit)))

(defun descent--wdired-commit ()
  "Commit the current wdired buffer through descentd (`descent-finish-edit')."
  (descent--wdired-clear-problems)
  (descent--wdired-hold-gc)
  (setq descent--wdired-late-quit nil)
  (let* ((edits (descent--wdired-check-parents
                 (descent--wdired-translate (descent--wdired-collect))))
         (bad (cl-remove-if-not #'descent--wdired-edit-error edits)))
    (when bad
      (descent--wdired-show-problems (mapcar #'descent--wdired-edit-pos bad))
      (descent--wdired-signal 'descent-rename-refused
                              (mapconcat (lambda (edit)
                                           (format "%s: %s" (descent--wdired-edit-old edit)
                                                   (descent--wdired-edit-error edit)))
                                         bad "; ")))
    (setq edits (descent--wdired-ask-each edits))
    (let ((work (cl-remove-if (lambda (edit) (eq (descent--wdired-edit-kind edit) 'delete))
                              edits))
          (descent--wdired-done nil)
          (descent--wdired-sent nil)
          (descent--wdired-left nil))
      (condition-case nil
          ;; Only the batch itself is guarded: once it is committed, an
          ;; error or C-g while the buffers are brought up to date must not
          ;; read as a batch that failed, let alone start the built-in commit.
          (let ((outcome
                 (and work
                      (condition-case err
                          (progn
                            (descent--wdired-identify work)
                            (descent--wdired-submit-confirming work))
                        (descent-daemon-starting
                         ;; Not the built-in now: a daemon slow to start may
                         ;; be putting back a batch a crash interrupted, in
                         ;; these very directories.
                         (descent--wdired-signal
                          'descent-rename-failed
                          (format "%s (it may be recovering an interrupted batch); try again in a moment"
                                  (descent--error-text err))))
                        ((descent-daemon-unavailable descent-module-unavailable
                                                     descent-protocol-mismatch)
                         (if (eq (car err) 'descent-daemon-unavailable)
                             (descent--warn-daemon-down 'wdired (descent--error-text err))
                           (descent--warn-once 'wdired "%s; committing with the built-in wdired instead"
                                               (descent--error-text err)))
                         'built-in)
                        ((descent-daemon-error descent-daemon-lost)
                         (descent--wdired-fail work err))
                        (quit
                         (unless descent--wdired-done
                           (message (if descent--wdired-sent
                                        "Renaming cancelled: descentd rolls the batch back; your edits are still here"
                                      "Renaming cancelled before it began; your edits are still here")))
                         (signal 'quit nil))))))
            (if (eq outcome 'built-in)
                (descent--wdired-builtin-finish)
              (descent--wdired-finish edits outcome)
              (if descent--wdired-late-quit
                  (descent--wdired-say-renames-stand)
                (descent--wdired-say-done edits outcome))
              (when outcome (descent--wdired-report-recoveries))))
        (quit
         ;; A C-g once the batch is done: the buffers follow it all the
         ;; same, if that was not done yet (the C-g came between the outcome
         ;; and `descent--wdired-leave'), and the listings, which the revert
         ;; may have left erased, are made again once Emacs is idle.
         (when (and descent--wdired-done (eq major-mode 'wdired-mode))
           (descent--wdired-leave edits descent--wdired-done))
         (when descent--wdired-left
           ;; With the news: the "Quit" now says nothing of the renames.
           (apply #'run-with-idle-timer 0 nil #'descent--wdired-show-result-in
                  (current-buffer) (append descent--wdired-left '(quit))))
         (signal 'quit nil))))))

(defun descent--wdired-say-done (edits outcome)
  "Say what a commit of EDITS did, with OUTCOME, where the built-in would."
  (cond
   ((null edits) (message "(No changes to be performed)"))
   (outcome
    (let ((n (or (plist-get outcome :operations) 0))
          (trashed (or (plist-get outcome :trashed) 0)))
      (message "Renaming...done: %d change%s%s (%s takes %s back)"
               n (if (= n 1) "" "s")
               (if (zerop trashed) ""
                 (format "; %d file%s replaced went to the trash" trashed (if (= trashed 1) "" "s")))
               (substitute-command-keys "\\[descent-undo-rename]")
               (if (= n 1) "it" "them"))))))

(defun descent--wdired-say-renames-stand ()
  "Say that a \\[keyboard-quit] came too late to cancel the batch."
  (message "%s" (substitute-command-keys
                 "\\[keyboard-quit] came after the batch was done: the renames stand \
\(\\[descent-undo-rename] takes them back)")))

(defun descent--wdired-submit-confirming (work)
  "Submit the edits WORK; return the outcome.
Overwrites are confirmed up front when wdired does not ask; otherwise
a refusal for occupied destinations only asks about each one, and the
batch goes again with the confirmed ones."
  (let ((overwrite (not (or wdired-confirm-overwrite wdired-use-interactive-rename))))
    (condition-case err
        (descent--wdired-submit (descent--wdired-ops work overwrite))
      (descent-daemon-error
       (let* ((problems (append (plist-get (nth 3 err) :problems) nil))
              (confirmed (and (equal (nth 2 err) "refused")
                              (descent--wdired-confirm problems))))
         (pcase confirmed
           ('nil (signal (car err) (cdr err)))
           (`(declined . ,dest)
            ;; The batch is all or nothing: no to one name is no to all.
            ;; The refusal names that one.
            (signal 'descent-daemon-error
                    (list (format "refused the batch: not overwriting %s, as you answered"
                                  (descent--path-text dest))
                          "refused"
                          (list :problems
                                (vconcat (seq-filter (lambda (problem)
                                                       (equal (plist-get problem :occupied) dest))
                                                     problems))))))
           (_ (descent--wdired-submit (descent--wdired-ops work confirmed)))))))))

;;;###autoload
(defun descent-undo-rename ()
  "Undo the most recent rename batch not undone yet.
Called again, it undoes the one before (of the last 100).  Nothing
changes if the files moved since; the error says so.  Buffers visiting
the renamed files follow them back, and Dired buffers are refreshed."
  (interactive)
  (condition-case err
      (descent--wdired-undo)
    (descent-daemon-error
     ;; descentd's reason is the whole message ("cannot undo the batch
     ;; of ...: ... changed since; nothing was changed").
     (let ((why (nth 1 err)))
       (signal 'descent-undo-refused
               (list (if (stringp why) (concat (upcase (substring why 0 1)) (substring why 1))
                       (error-message-string err))))))
    (quit
     ;; A C-g as the undo ended may have cut its outcome off: the batch
     ;; is undone, and the buffers were not told.  They catch up once
     ;; Emacs is idle.
     (run-with-idle-timer 0 nil #'descent--wdired-catch-up)
     (signal 'quit nil))))

(defun descent--wdired-catch-up ()
  "Point buffers back for each batch of the history that descentd has undone.
An undo whose outcome a \\[keyboard-quit] cut off leaves its buffers
showing and visiting the batch's new names."
  (let ((undone (make-hash-table))
        (caught-up nil))
    (seq-doseq (batch (descent--call "rename.recent" (vector descent--wdired-history-max)))
      (when (equal (plist-get batch :state) "undone")
        (puthash (plist-get batch :batch) t undone)))
    (dolist (batch descent--wdired-history)
      (when (gethash batch undone)
        (setq caught-up t)
        (setq descent--wdired-history (delq batch descent--wdired-history))
        (let ((renames (descent--wdired-moves-back
                        (descent--call "rename.moves" (vector batch)))))
          ;; From no buffer in particular: every buffer is one to update.
          (with-temp-buffer
            (descent--wdired-update-buffers
             renames
             (delete-dups (mapcan (lambda (r) (list (file-name-directory (car r))
                                                    (file-name-directory (cdr r))))
                                  renames)))))))
    ;; Else the undo was cancelled (it is rolled back): "Quit" said so.
    (when caught-up
      (message "%s" (substitute-command-keys
                     "\\[keyboard-quit] came as the undo ended: it is done, and the buffers follow it")))))

(defun descent--wdired-undo ()
  "Do `descent-undo-rename'; return descentd's outcome."
  (let* ((outcome (descent--call "rename.undo"))
         (batch (plist-get outcome :batch))
         ;; From descentd, so that a batch committed from another Emacs,
         ;; or before a restart, is followed back too.
         (renames (descent--wdired-moves-back (plist-get outcome :moves))))
    (setq descent--wdired-history (delq batch descent--wdired-history))
    (let ((map (descent--wdired-update-buffers
                renames (mapcar #'descent--path-text
                                 (append (plist-get outcome :directories) nil)))))
      (when (and (derived-mode-p 'dired-mode) (not (eq major-mode 'wdired-mode))
                 (file-directory-p default-directory))
        (descent--wdired-rename-subdirs map)
        (descent--wdired-follow-file-list map)
        (revert-buffer)))
    (let ((n (plist-get outcome :operations)))
      (message "Undid the last renaming: %s change%s taken back" n (if (eql n 1) "" "s")))
    (descent--wdired-report-recoveries)
    outcome))

;;;; Search and replace

(defun descent--wdired-before-replace (&rest args)
  "Prepare every line a replace command will visit (ARGS of `perform-replace').
wdired in Emacs 28 prepares a line only when it first changes, from a
change hook whose regexp searches grow the match data, so the first
replacement fails with \"Match data clobbered by buffer modification
hooks\".  Preparing the lines first makes the hook a no-op."
  (when (eq major-mode 'wdired-mode)
    (let* ((start (nth 7 args))
           (end (nth 8 args))
           (backward (nth 9 args))
           (beg (or start (if backward (point-min) (point))))
           (fin (or end (if backward (point) (point-max)))))
      (save-match-data
        (wdired--before-change-fn (min beg fin) (max beg fin))))))

(provide 'descent-wdired)
;;; descent-wdired.el ends here
