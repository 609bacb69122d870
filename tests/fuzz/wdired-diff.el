;;; wdired-diff.el --- Differential fuzzing: descent-finish-edit vs built-in wdired -*- lexical-binding: t -*-

;; Usage (from the repository root, after building):
;;   tests/fuzz/run.sh wdired BUILD [SEED [N]]   e.g. tests/fuzz/run.sh wdired build/default 1 1000
;; or FUZZ_ONLY=<seed> tests/fuzz/run.sh wdired BUILD to replay one case verbosely;
;; FUZZ_OUT=<dir> for the reports (run.sh makes one and says where).
;;
;; Each case is made from its own seed (FUZZ_SEED + i), so any case can be
;; replayed alone with FUZZ_ONLY.  The tree of a case is built twice at the
;; same path (so that Dired headers are equal), once committed by the
;; built-in wdired with descent-mode off, once by descent with descent-mode on.

(require 'descent-test-helper)           ; XDG dirs, module, daemon, cleanup
(setenv "XDG_DATA_HOME" (expand-file-name "data" descent-test-root))
(require 'descent)
(require 'descent-wdired)
(require 'wdired)
(require 'dired-aux)
(require 'cl-lib)
(require 'subr-x)

(defvar fuzz-work (file-name-as-directory
                   (expand-file-name "work" descent-test-root)))
(defvar fuzz-out (file-name-as-directory
                  (or (getenv "FUZZ_OUT") (expand-file-name "fuzz-out" temporary-file-directory))))
(defvar fuzz-verbose nil)
(defvar fuzz-fixed-time 1700000000)
;; Writing x.z must not gzip it.
(auto-compression-mode -1)

;;;; Seeded randomness

(defun fuzz-rand (n) (random n))
(defun fuzz-pick (list) (nth (random (length list)) list))
(defun fuzz-chance (p) (< (random 1000) (* p 1000)))
(defun fuzz-shuffle (list)
  (let ((v (vconcat list)))
    (cl-loop for i from (1- (length v)) downto 1
             do (let* ((j (random (1+ i))) (tmp (aref v i)))
                  (aset v i (aref v j)) (aset v j tmp)))
    (append v nil)))

(defconst fuzz-name-pool
  (list "a" "b" "c" "file.txt" "b c" "two  spaces" "-dash" "--x" "ünï" "日本語"
        "caf\351" "Zeta" "z.el" "#hash" "a~" "emoji😀" "x.y.z" "UP" "n1" "n2"))

(defconst fuzz-fresh-parts
  (list "new" "r" "Ñ" "ren amed" "-q" "ö" "fresh" "k" "文" "9" "_" "."))

(defun fuzz-raw (s)
  "S with raw bytes as Emacs represents them in file names."
  (if (multibyte-string-p s) s (decode-coding-string s 'utf-8)))

(defun fuzz-gen-names (k)
  (let ((pool (fuzz-shuffle fuzz-name-pool)))
    (mapcar #'fuzz-raw (cl-subseq pool 0 (min k (length pool))))))

(defun fuzz-gen-tree ()
  "A tree spec: list of (REL TYPE DATA); TYPE file, dir or link."
  (let* ((names (fuzz-gen-names (+ 3 (fuzz-rand 6))))
         (spec nil) (dirs nil) (files nil))
    (dolist (n names)
      (let ((r (fuzz-rand 10)))
        (cond ((< r 6) (push (list n 'file (format "content of %s %d\n" n (fuzz-rand 100))) spec)
               (push n files))
              (t (push (list n 'dir nil) spec) (push n dirs)))))
    ;; make sure there is a directory now and then for subdir insertion
    (when (and (null dirs) (fuzz-chance 0.6))
      (push (list "sub dir" 'dir nil) spec) (push "sub dir" dirs))
    (dolist (d dirs)
      (dolist (n (fuzz-gen-names (fuzz-rand 4)))
        (push (list (concat d "/" n) 'file (format "in %s: %s\n" d n)) spec)))
    ;; symlinks
    (dotimes (_ (fuzz-rand 3))
      (let ((name (fuzz-pick '("lnk" "link to" "ln-dangling" "ɭink")))
            (target (fuzz-pick (append (list "nowhere" "../elsewhere")
                                       files dirs))))
        (unless (assoc name spec)
          (push (list name 'link target) spec))))
    (nreverse spec)))

;;;; Building and snapshotting

(defun fuzz-make-tree (dir spec)
  (when (file-exists-p dir) (delete-directory dir t))
  (make-directory dir t)
  (dolist (e spec)
    (let ((file (expand-file-name (car e) dir)))
      (pcase (nth 1 e)
        ('dir (make-directory file t))
        ('file (let ((coding-system-for-write 'utf-8-unix))
                 (write-region (nth 2 e) nil file nil 'silent)))
        ('link (make-symbolic-link (nth 2 e) file)))))
  ;; Fixed times so that listings made at different moments agree.
  (dolist (f (directory-files-recursively dir "" t nil nil))
    (unless (file-symlink-p f) (set-file-times f fuzz-fixed-time)))
  (set-file-times dir fuzz-fixed-time)
  (set-file-times (file-name-directory (directory-file-name dir)) fuzz-fixed-time))

(defun fuzz-rel (file dir)
  "FILE relative to DIR, as bytes."
  (string-remove-prefix (descent--path-bytes (file-name-as-directory dir))
                        (descent--path-bytes file)))

(defun fuzz-snapshot (dir)
  (let (entries)
    (dolist (file (directory-files-recursively dir "" t nil nil))
      (let ((attributes (file-attributes file 'integer)))
        (push (list (fuzz-rel file dir)
                    (cond ((stringp (file-attribute-type attributes))
                           (list 'link (file-attribute-type attributes)))
                          ((file-attribute-type attributes)
                           (list 'dir (file-attribute-modes attributes)))
                          (t (list (file-attribute-modes attributes)
                                   (with-temp-buffer
                                     (set-buffer-multibyte nil)
                                     (insert-file-contents-literally file)
                                     (buffer-string))))))
              entries)))
    (sort entries (lambda (a b) (string< (car a) (car b))))))

;;;; Driving Dired and wdired

(defun fuzz-inodes (dir)
  "Every name under DIR with its inode and mode: what an undo must give back.
A symbolic link is made anew when re-targeted: its target, then."
  (sort (mapcar (lambda (file)
                  (let ((attributes (file-attributes file 'integer)))
                    (cons (fuzz-rel file dir)
                          (if (stringp (file-attribute-type attributes))
                              (list 'link (file-attribute-type attributes))
                            (list (file-attribute-inode-number attributes)
                                  (file-attribute-modes attributes))))))
                (directory-files-recursively dir "" t nil nil))
        (lambda (a b) (string< (car a) (car b)))))

(defun fuzz-lines ()
  "Alist (ABSOLUTE-FILE . POS-OF-LINE) of the file lines of the buffer."
  (let (lines)
    (save-excursion
      (goto-char (point-min))
      (while (not (eobp))
        (let ((f (dired-get-filename nil t)))
          (when (and f (not (member (file-name-nondirectory f) '("." ".."))))
            (push (cons (descent--path-bytes f) (line-beginning-position)) lines)))
        (forward-line 1)))
    (nreverse lines)))

(defun fuzz-goto (dir rel)
  (let ((pos (cdr (assoc (descent--path-bytes (expand-file-name rel dir)) (fuzz-lines)))))
    (unless pos (error "No line for %S" rel))
    (goto-char pos)
    (dired-move-to-filename)))

(defun fuzz-name-region ()
  (let ((beg (dired-move-to-filename))
        (end (dired-move-to-end-of-filename t)))
    (cons beg end)))

(defun fuzz-escape-b (name)
  "NAME as ls -b would show it (enough for the names the fuzzer types)."
  (replace-regexp-in-string " " "\\\\ " (replace-regexp-in-string "\\\\" "\\\\\\\\" name)))

(defun fuzz-state (dir)
  "Marks, point file, buffer text of the current Dired buffer."
  (list :mode major-mode
        :modified (buffer-modified-p)
        :point (let ((f (dired-get-filename nil t)))
                 (and f (fuzz-rel f dir)))
        :marks (save-excursion
                 (let (m)
                   (goto-char (point-min))
                   (while (not (eobp))
                     (let ((f (dired-get-filename nil t)))
                       (when (and f (not (eq (char-after) ?\s)))
                         (push (cons (fuzz-rel f dir)
                                     (char-to-string (char-after)))
                               m)))
                     (forward-line 1))
                   (nreverse m)))
        :text (buffer-substring-no-properties (point-min) (point-max))))

(defvar fuzz-log-count 0)
(defun fuzz-count-log (&rest _) (cl-incf fuzz-log-count))
(advice-add 'dired-log :before #'fuzz-count-log)

(defun fuzz-run (case dir use-descent)
  "Run CASE in DIR, committing with descent when USE-DESCENT."
  (message "RUN seed %d %s" (plist-get case :seed) (if use-descent "descent" "builtin"))
  (fuzz-make-tree dir (plist-get case :spec))
  (descent-test-kill-buffers-under dir)
  (let ((before (fuzz-inodes dir))
        (run (fuzz-run-1 case dir use-descent)))
    ;; descent only: M-x descent-undo-rename must give back the very
    ;; files, names and inodes, of a commit that changed the tree.
    (if (and use-descent (eq (plist-get run :result) 'ok)
             (not (equal (fuzz-inodes dir) before)))
        (plist-put run :undo
                   (condition-case err
                       (progn (descent-undo-rename)
                              (if (equal (fuzz-inodes dir) before) 'same
                                (list 'changed before (fuzz-inodes dir))))
                     (error (list 'error err))))
      run)))

(defun fuzz-run-1 (case dir use-descent)
  "Run CASE in DIR, made afresh; see `fuzz-run'."
  (descent-mode (if use-descent 1 -1))
  (setq fuzz-log-count 0)
  (let* ((dired-listing-switches (plist-get case :switches))
         (wdired-create-parent-directories t)
         (wdired-confirm-overwrite (plist-get case :confirm))
         (wdired-allow-to-change-permissions (plist-get case :perm-option))
         (buf (dired-noselect dir))
         result pre)
    (with-current-buffer buf
      (set-buffer-modified-p nil)
      (when-let ((sub (plist-get case :subdir)))
        (dired-maybe-insert-subdir (expand-file-name sub dir)))
      (dolist (m (plist-get case :marks))
        (fuzz-goto dir m) (dired-mark 1))
      (fuzz-goto dir (plist-get case :point))
      (setq pre (fuzz-state dir))
      (wdired-change-to-wdired-mode)
      ;; Read every displayed name, then type the new ones.
      (let* ((shown (mapcar (lambda (rel)
                              (save-excursion
                                (fuzz-goto dir rel)
                                (let ((r (fuzz-name-region)))
                                  (cons rel (buffer-substring-no-properties (car r) (cdr r))))))
                            (plist-get case :all)))
             ;; Each line by where it was before any edit: once a swap's first
             ;; line is edited, two lines show the same name.
             (lines (mapcar (lambda (rel)
                              (save-excursion
                                (fuzz-goto dir rel)
                                (cons rel (copy-marker (line-beginning-position)))))
                            (plist-get case :all)))
             (b (string-match-p "b" (plist-get case :switches))))
        (cl-flet ((line-of (rel) (goto-char (cdr (assoc rel lines))) (dired-move-to-filename)))
        (save-excursion
          (pcase-dolist (`(,rel . ,target) (plist-get case :targets))
            (line-of rel)
            (when (search-forward " -> " (line-end-position) t)
              (delete-region (point) (line-end-position))
              (insert (if b (fuzz-escape-b target) target))))
          (pcase-dolist (`(,rel . ,new) (plist-get case :edits))
            (let ((text (pcase new
                          (`(name-of ,other) (cdr (assoc other shown)))
                          (`(prefix ,p ,other) (concat p (cdr (assoc other shown))))
                          (_ (if b (fuzz-escape-b new) new)))))
              (line-of rel)
              (let ((r (fuzz-name-region)))
                (goto-char (car r))
                (delete-region (car r) (cdr r))
                (insert text))))
          ;; Permissions last: Dired finds names by the mode string.
          (when (plist-get case :perm-option)
            (pcase-dolist (`(,rel . ,perms) (plist-get case :perms))
              (line-of rel)
              (beginning-of-line)
              ;; "  -rw-r--r--": the bits start after the mark, a space and the type.
              (goto-char (+ (point) 3))
              (if (eq (plist-get case :perm-option) 'advanced)
                  ;; Where wdired keeps the text read-only, as a user could not type.
                  (ignore-error text-read-only
                    (delete-region (point) (+ (point) 9))
                    (insert perms))
                ;; With t, each character is set by typing it over.
                (dotimes (i 9)
                  (let ((c (aref perms i)))
                    (goto-char (+ (line-beginning-position) 3 i))
                    (when (memq c '(?r ?w ?x ?- ?s ?S ?t ?T))
                      (condition-case nil
                          (wdired-set-bit c)
                        (error nil)))))))))
))
      (setq result
            (condition-case err
                (cl-letf (((symbol-function 'yes-or-no-p) (lambda (&rest _) t))
                          ((symbol-function 'y-or-n-p) (lambda (&rest _) t))
                          ((symbol-function 'read-from-minibuffer)
                           (lambda (&rest a) (error "Unexpected prompt %S" a))))
                  (if use-descent
                      (descent-finish-edit)
                    (wdired-finish-edit))
                  (if (> fuzz-log-count 0) (list 'logged fuzz-log-count
                                                 (with-current-buffer (get-buffer-create dired-log-buffer)
                                                   (buffer-substring-no-properties
                                                    (max (point-min) (- (point-max) 600)) (point-max))))
                    'ok))
              (error (list 'error err))))
      (let ((state (fuzz-state dir)))
        (when (get-buffer dired-log-buffer) (kill-buffer dired-log-buffer))
        (prog1 (list :result result :pre pre :post state :tree (fuzz-snapshot dir))
          (set-buffer-modified-p nil)
          (descent-test-kill-buffers-under dir))))))

;;;; Cases

(defun fuzz-gen-case (seed)
  (random (format "wdired-fuzz-%d" seed))
  (let* ((spec (fuzz-gen-tree))
         (switches (fuzz-pick '("-al" "-al" "-alF" "-alh --group-directories-first" "-alb")))
         (b (string-match-p "b" switches))
         (top (cl-remove-if (lambda (e) (string-match-p "/" (car e))) spec))
         (dirs (mapcar #'car (cl-remove-if-not (lambda (e) (eq (nth 1 e) 'dir)) top)))
         (subdir (and dirs (fuzz-chance 0.5) (fuzz-pick dirs)))
         (all (append (mapcar #'car top)
                      (and subdir
                           (cl-loop for e in spec
                                    when (equal (file-name-directory (car e))
                                                (concat subdir "/"))
                                    collect (car e)))))
         ;; In -b listings, typed names avoid raw bytes (ls would escape them).
         (free (fuzz-shuffle all))
         (edits nil)
         (used-names (mapcar (lambda (r) (file-name-nondirectory r)) all)))
    (cl-labels ((take (pred) (let ((x (cl-find-if pred free)))
                                (when x (setq free (delete x free))) x))
                (section (r) (file-name-directory r))
                (fresh ()
                  (let (n)
                    (while (or (null n) (member n used-names))
                      (setq n (concat (fuzz-pick fuzz-fresh-parts)
                                      (if (and (not b) (fuzz-chance 0.1)) (fuzz-raw "\377") "")
                                      (number-to-string (fuzz-rand 50)))))
                    (push n used-names) n)))
      (dotimes (_ (1+ (fuzz-rand 4)))
        (let ((op (fuzz-pick '(fresh fresh newdir swap cycle3 empty overwrite intodir))))
          (pcase op
            ('fresh (when-let ((x (take #'identity))) (push (cons x (fresh)) edits)))
            ('newdir (when-let ((x (take #'identity)))
                       (push (cons x (list 'prefix (fuzz-pick '("x/" "x/y/" "new dir/")) x)) edits)))
            ('intodir (let ((x (take (lambda (r) (null (section r))))))
                        (when x
                          (let ((d (cl-find-if (lambda (d) (not (equal d x))) dirs)))
                            (if d (push (cons x (list 'prefix (concat d "/") x)) edits)
                              (push x free))))))
            ('swap (let* ((x (take #'identity))
                          (y (and x (take (lambda (r) (equal (section r) (section x)))))))
                     (if y (progn (push (cons x (list 'name-of y)) edits)
                                  (push (cons y (list 'name-of x)) edits))
                       (when x (push x free)))))
            ('cycle3 (let* ((x (take #'identity))
                            (y (and x (take (lambda (r) (equal (section r) (section x))))))
                            (z (and y (take (lambda (r) (equal (section r) (section x)))))))
                       (if z (progn (push (cons x (list 'name-of y)) edits)
                                    (push (cons y (list 'name-of z)) edits)
                                    (push (cons z (list 'name-of x)) edits))
                         (dolist (r (delq nil (list x y))) (push r free)))))
            ('empty (when-let ((x (take #'identity))) (push (cons x "") edits)))
            ('overwrite
             ;; x takes the name of y, which is not edited.
             (let* ((x (take #'identity))
                    (y (and x (take (lambda (r) (equal (section r) (section x)))))))
               (if y (push (cons x (list 'name-of y)) edits)
                 (when x (push x free)))))))))
    (list :seed seed :spec spec :switches switches :subdir subdir :all all
          :edits (nreverse edits)
          ;; New targets for some links (wdired-allow-to-redirect-links is
          ;; on by default); not under -F, whose targets carry indicators.
          :targets (and (not (string-match-p "F" switches))
                        (cl-loop for r in all
                                 when (and (eq (nth 1 (assoc r spec)) 'link) (fuzz-chance 0.4))
                                 collect (cons r (fuzz-pick '("nowhere2" "b" "../up" "sub dir/x" "t t")))))
          ;; Permission edits (wdired-allow-to-change-permissions), typed
          ;; over the nine characters after the file type.
          :perm-option (fuzz-pick '(nil nil t advanced))
          :perms (cl-loop for r in all
                          when (and (not (eq (nth 1 (assoc r spec)) 'link)) (fuzz-chance 0.25))
                          collect (cons r (fuzz-pick '("rwxr-xr-x" "rw-------" "r--r--r--" "rwxrwxrwt"
                                                       "rw-r-Sr--" "rwsr-xr-x" "---------"))))
          :confirm (fuzz-chance 0.5)
          :marks (cl-loop for r in all when (fuzz-chance 0.2) collect r)
          :point (fuzz-pick all))))

;;;; Comparison

(defun fuzz-normalize (text)
  (replace-regexp-in-string "available [0-9.,]+[KMGTP]?" "available N" text))

(defun fuzz-mask-times (text)
  (replace-regexp-in-string
   "[A-Z][a-z][a-z] [ 0-9][0-9] +\\([0-9][0-9]:[0-9][0-9]\\|[0-9]\\{4\\}\\)" "TIME" text))

(defun fuzz-diff-text (a b)
  (let ((fa (make-temp-file "fa")) (fb (make-temp-file "fb")))
    (let ((coding-system-for-write 'utf-8-emacs-unix))
      (write-region a nil fa nil 'silent)
      (write-region b nil fb nil 'silent))
    (prog1 (with-temp-buffer
             (call-process "diff" nil t nil "-u" fa fb)
             (buffer-string))
      (delete-file fa) (delete-file fb))))

(defun fuzz-mask-marks (text)
  (replace-regexp-in-string "^[^ \n] " "  " text))

(defun fuzz-marks-documented-p (case mb md)
  "Non-nil when built-in marks MB differ from descent's MD only as README says:
the built-in also marks a new file that took the name of a marked file."
  (let ((old (mapcar (lambda (r) (encode-coding-string r 'utf-8)) (plist-get case :marks))))
    ;; The built-in keeps marks on old names, and passes them along a
    ;; chain (a->b marked, then c->a: its alist says a is marked, c's new
    ;; name too): descent's marks are a subset.
    (ignore old)
    (cl-subsetp md mb :test #'equal)))

(defun fuzz-compare (case bi de)
  "List of differences between built-in run BI and descent run DE."
  (let (diffs)
    (unless (equal (plist-get bi :tree) (plist-get de :tree))
      (push (list 'tree (plist-get bi :tree) (plist-get de :tree)) diffs))
    (let ((pb (plist-get bi :post)) (pd (plist-get de :post)))
      (let ((tb (fuzz-normalize (plist-get pb :text)))
            (td (fuzz-normalize (plist-get pd :text))))
        (unless (equal tb td)
          (push (list (cond ((equal (fuzz-mask-times tb) (fuzz-mask-times td)) 'text-times)
                            ((and (equal (fuzz-mask-marks tb) (fuzz-mask-marks td))
                                  (fuzz-marks-documented-p case (plist-get pb :marks)
                                                           (plist-get pd :marks)))
                             'text-marks-doc)
                            (t 'text))
                      (fuzz-diff-text tb td))
                diffs)))
      (dolist (k '(:mode :modified :point :marks))
        (unless (or (equal (plist-get pb k) (plist-get pd k))
                    (and (eq k :marks)
                         (fuzz-marks-documented-p case (plist-get pb k) (plist-get pd k))))
          (push (list k (plist-get pb k) (plist-get pd k)) diffs))))
    (let ((tb (fuzz-normalize (plist-get (plist-get bi :pre) :text)))
          (td (fuzz-normalize (plist-get (plist-get de :pre) :text))))
      (unless (equal tb td)
        (push (list 'pre-text (fuzz-diff-text tb td)) diffs)))
    (nreverse diffs)))

(defun fuzz-doc-class (case bi de diffs)
  "A documented reason for DIFFS, or nil."
  (let* ((edits (plist-get case :edits))
         (renamed (cl-loop for (r . n) in edits unless (equal n "") collect r))
         (sub (plist-get case :subdir)))
    (cond
     ;; README: a new name through a directory the same commit renames.
     ((cl-some (lambda (e) (pcase (cdr e)
                             (`(prefix ,p ,_) (member (directory-file-name p) (mapcar #'car edits)))))
               edits)
      'through-renamed-dir)
     ((< (length (plist-get bi :tree)) (length (plist-get de :tree)))
      'builtin-lost-a-file)
     ;; README: a renamed inserted subdirectory stays inserted.
     ((and sub (member sub renamed)
           (equal (plist-get bi :tree) (plist-get de :tree))
           (let ((strip (lambda (run)
                          (let ((tx (fuzz-mask-marks (fuzz-normalize (plist-get (plist-get run :post) :text)))))
                            (string-trim-right (substring tx 0 (string-search "\n\n" tx)))))))
             (equal (funcall strip bi) (funcall strip de))))
      'renamed-subdir-kept))))

(defun fuzz-refusal-class (case result)
  "Why descent refusing CASE, where the built-in went through, is as documented.
RESULT is descent's error; nil if it is not one of these."
  (let ((text (format "%S" result)))
    (cond
     ;; x -> c/x with c -> x/c: read as one picture, a directory would move
     ;; into its own subtree; the built-in's result depends on line order.
     ((string-match-p "a directory cannot move into its own subtree" text) 'one-picture-subtree)
     ;; A path typed through a directory the commit renames goes into its
     ;; new name, where a file has that name already.
     ((string-match-p "cannot replace the non-directory .* with a directory" text) 'through-renamed-dir-taken)
     ;; A link re-targeted, or a file's mode changed, and another file
     ;; renamed onto its name: the built-in changes it, then overwrites it.
     ((and (or (plist-get case :targets) (and (plist-get case :perm-option) (plist-get case :perms)))
           (string-match-p "it exists and is part of this batch without leaving" text))
      'changed-then-overwritten))))

(defun fuzz-main ()
  (let* ((seed0 (string-to-number (or (getenv "FUZZ_SEED") "1")))
         (n (string-to-number (or (getenv "FUZZ_N") "50")))
         (only (getenv "FUZZ_ONLY"))
         (seeds (if only (list (string-to-number only))
                  (number-sequence seed0 (+ seed0 n -1))))
         (dir (expand-file-name "c/tree" fuzz-work))
         (documented nil) (ran 0) (undo-failed 0) (bi-failed 0) (de-failed 0) (differ 0) (times-only 0)
         (print-escape-newlines t) (print-length nil) (print-level nil))
    (make-directory fuzz-out t)
    (setq fuzz-verbose only)
    (dolist (seed seeds)
      (let* ((case (fuzz-gen-case seed))
             (_ (when only (message "CASE %S" case)))
             (bi (fuzz-run case dir nil))
             (de (fuzz-run case dir t))
             (rb (plist-get bi :result))
             (rd (plist-get de :result))
             (undo (plist-get de :undo)))
        (cl-incf ran)
        (when (and undo (not (eq undo 'same)))
          (cl-incf undo-failed)
          (message "seed %d: UNDO did not give the tree back: %S" seed undo))
        (when only
          (message "BUILTIN %S\n%s" rb (plist-get (plist-get bi :post) :text))
          (message "DESCENT %S\n%s" rd (plist-get (plist-get de :post) :text)))
        (cond
         ((not (eq rb 'ok))
          (cl-incf bi-failed)
          (message "seed %d: built-in failed: %S; descent: %S" seed rb
                   (if (eq rd 'ok) 'ok rd)))
         ((and (not (eq rd 'ok)) (fuzz-refusal-class case rd))
          (let ((why (fuzz-refusal-class case rd)))
            (push why documented)
            (message "seed %d: documented refusal: %s" seed why)))
         ((not (eq rd 'ok))
          (cl-incf de-failed) (cl-incf differ)
          (message "seed %d: DESCENT FAILED where built-in succeeded: %S" seed rd)
          (with-temp-file (expand-file-name (format "seed-%d.txt" seed) fuzz-out)
            (insert (format "%S\n\nDESCENT: %S\n" case rd))))
         (t
          (let ((diffs (fuzz-compare case bi de)))
            (when (and diffs (cl-every (lambda (d) (memq (car d) '(text-times text-marks-doc))) diffs))
              (cl-incf times-only) (setq diffs nil))
            (when-let ((why (and diffs (fuzz-doc-class case bi de diffs))))
              (push why documented)
              (message "seed %d: documented difference: %s" seed why)
              (setq diffs nil))
            (when diffs
              (cl-incf differ)
              (message "seed %d: DIFF %S" seed (mapcar #'car diffs))
              (let ((coding-system-for-write 'utf-8-emacs-unix))
                (with-temp-file (expand-file-name (format "seed-%d.txt" seed) fuzz-out)
                  (insert (format "%S\n\n" case))
                  (dolist (d diffs)
                    (insert (format "== %S\n" (car d)))
                    (if (and (stringp (nth 1 d)) (memq (car d) '(text text-times pre-text)))
                        (insert (nth 1 d) "\n")
                      (insert (format "built-in: %S\ndescent:  %S\n" (nth 1 d) (nth 2 d))))))))))))
      (when (zerop (% ran 25)) (message "... %d cases" ran)))
    (message "SUMMARY ran=%d builtin-failed=%d descent-failed=%d differing=%d undo-failed=%d times-only=%d documented=%S"
             ran bi-failed de-failed differ undo-failed times-only
             (mapcar (lambda (k) (cons k (cl-count k documented))) (delete-dups (copy-sequence documented))))))

(fuzz-main)
