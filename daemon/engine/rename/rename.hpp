// The rename engine behind wdired's C-c C-c: a batch of renames, chmods,
// symlink re-targets and directory creations that happens completely or not
// at all, journaled so that a crash is undone at the next start, and
// undoable afterwards. Plain C++: no Asio, no Emacs.
//
// Life of a batch: RenamePlan::make validates every operation against the
// file system and orders the work into Steps without touching anything; the
// Renamer writes the plan to the Journal, runs the steps, and on any failure,
// cancel or crash reverts the steps already done, in reverse. Every step can
// tell from the file system (by inode) whether it has happened, so the journal
// needs no write per step.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/state.hpp"

namespace descent::rename {

// What the editor saw when editing began: the device and inode of a file.
struct FileId {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  friend bool operator==(const FileId&, const FileId&) = default;
};

// One edit. Paths are absolute byte strings. `source` is where the file is
// before the batch; `destination` is where it must be after the whole batch,
// spelled in the final tree: if the batch also renames a directory above it,
// the destination uses that directory's new name.
struct Operation {
  enum class Kind : std::uint8_t { rename, chmod, retarget, make_directory };
  Kind kind = Kind::rename;
  std::string source;       // rename, chmod, retarget; make_directory: the directory to create
  FileId id;                // of `source` when editing began (not used by make_directory)
  std::string destination;  // rename only
  bool overwrite = false;   // rename: the user confirmed replacing what is at `destination`
  std::uint32_t mode = 0;   // chmod: the new permission bits (07777 at most)
  std::string target;       // retarget: the symlink's new contents
};

struct Batch {
  std::vector<Operation> operations;
};

// An Operation whose byte strings live elsewhere (a Batch, or the decoded
// request that the daemon keeps until the reply): what the planner reads.
// A 100k batch through descentd costs 80 bytes an operation here instead of
// a second copy of every path.
struct OperationView {
  Operation::Kind kind = Operation::Kind::rename;
  bool overwrite = false;
  std::uint32_t mode = 0;
  FileId id;
  std::string_view source, destination, target;
};

// Views of `batch`'s operations, valid while `batch` lives unchanged.
std::vector<OperationView> view_of(const Batch& batch);

// One reversible change to the file system, as run and as journaled.
struct Step {
  enum class Kind : std::uint8_t {
    move,            // renameat2(from, to, RENAME_NOREPLACE)
    exchange,        // renameat2(from, to, RENAME_EXCHANGE): a 2-cycle
    make_directory,  // mkdirat(to)
    copy_move,       // across file systems: copy to `scratch`, rename to `to`, set `from` aside until done
    trash,           // a confirmed-overwrite victim: info file `scratch`, then move to `to`
    chmod,           // from: old_mode -> new_mode
    retarget,        // from: symlink `link_old` -> `link_new`, through `scratch`
  };
  Kind kind = Kind::move;
  std::string from;
  std::string to;
  FileId id;     // what sits at `from` before the step (at `to` after it)
  FileId other;  // exchange: what sits at `to` before the step
  std::uint32_t old_mode = 0, new_mode = 0;

  // Rarely set, so out of line: a 100k batch has 100k plain moves. Read
  // through a const Step, an unset one is empty; the non-const accessors
  // make it (so assign only what is not empty).
  // A symlink re-targeted by the same batch changes inode: it is also
  // recognised by its contents (either the old or the new target).
  const std::string& link_old() const { return rare_ ? rare_->link_old : none(); }
  const std::string& link_new() const { return rare_ ? rare_->link_new : none(); }
  // A temporary name of this step (copy, retarget), or the trash info file.
  const std::string& scratch() const { return rare_ ? rare_->scratch : none(); }
  // trash: the .trashinfo contents
  const std::string& info() const { return rare_ ? rare_->info : none(); }
  std::string& link_old() { return rare().link_old; }
  std::string& link_new() { return rare().link_new; }
  std::string& scratch() { return rare().scratch; }
  std::string& info() { return rare().info; }

  Step() = default;
  Step(const Step& other_step) { *this = other_step; }
  Step& operator=(const Step& other_step) {
    if (this == &other_step) return *this;
    kind = other_step.kind;
    from = other_step.from;
    to = other_step.to;
    id = other_step.id;
    other = other_step.other;
    old_mode = other_step.old_mode;
    new_mode = other_step.new_mode;
    rare_ = other_step.rare_ ? std::make_unique<Rare>(*other_step.rare_) : nullptr;
    return *this;
  }
  Step(Step&&) noexcept = default;
  Step& operator=(Step&&) noexcept = default;

 private:
  struct Rare {
    std::string link_old, link_new, scratch, info;
  };
  static const std::string& none() {
    static const std::string empty;
    return empty;
  }
  Rare& rare() {
    if (!rare_) rare_ = std::make_unique<Rare>();
    return *rare_;
  }
  std::unique_ptr<Rare> rare_;
};

std::string encode_steps(const std::vector<Step>& steps);
// Throws std::runtime_error on a malformed blob (a corrupt journal row).
std::vector<Step> decode_steps(std::string_view blob);

// Why a batch was refused: every offending entry, and why.
struct Problem {
  std::string path;
  std::string reason;
  // Set when the only trouble is that this destination exists outside the
  // batch: submitting again with the operation's `overwrite` set would do.
  std::string occupied;
};

struct BatchRefused : std::runtime_error {
  explicit BatchRefused(std::vector<Problem> problems);
  std::vector<Problem> problems;
};

// A step failed (after validation); what was done has been reverted, unless
// `reverted` is false, in which case the message also says what is left.
struct StepFailed : std::runtime_error {
  StepFailed(const std::string& message, std::string path, int error, bool reverted)
      : std::runtime_error(message), path(std::move(path)), error(error), reverted(reverted) {}
  std::string path;
  int error;  // errno
  bool reverted;
};

struct BatchCancelled : std::runtime_error {
  explicit BatchCancelled(const std::string& message) : std::runtime_error(message) {}
};

// Undo refused: the files moved since the batch (nothing was changed).
struct UndoRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RenamePlan {
  // Validates everything and orders the steps; touches nothing. Throws
  // BatchRefused listing every problem. `trash_dir` is the freedesktop.org
  // trash (…/Trash) that confirmed overwrites go to.
  static RenamePlan make(const Batch& batch, const std::filesystem::path& trash_dir,
                         const std::atomic<bool>* cancelled = nullptr);
  static RenamePlan make(std::span<const OperationView> operations, const std::filesystem::path& trash_dir,
                         const std::atomic<bool>* cancelled = nullptr);
  // The same, freeing `operations` once read (a 100k batch: 7 MB less at
  // the peak); the paths they view must still live.
  static RenamePlan make(std::vector<OperationView>&& operations, const std::filesystem::path& trash_dir,
                         const std::atomic<bool>* cancelled = nullptr);

  std::vector<Step> steps;
  std::size_t operations = 0;
};

// $XDG_DATA_HOME/Trash, else ~/.local/share/Trash.
std::filesystem::path default_trash_dir();

// Test hook: fail (as if with EIO), kill the process, send it SIGTERM, act
// as if the client cancelled, stall until it does (10 s at most), or pause
// for half a second, just before step `step` (0-based) runs. Compiled in
// with DESCENT_TEST_HOOKS.
struct Failpoint {
  enum class Action : std::uint8_t { fail, kill, sigterm, cancel, stall, pause };
  std::size_t step = 0;
  Action action = Action::fail;
  // "rename-step:7:fail|kill|sigterm|cancel|stall|pause"; nullopt if `spec` is not one.
  static std::optional<Failpoint> parse(std::string_view spec);
};

// The durable record of batches: tables rename_batches and rename_recoveries
// in the shared state database.
class Journal {
 public:
  explicit Journal(state::Database& db);

  enum class State { running, done, rolled_back, undoing, undone, broken };
  struct Entry {
    std::int64_t id = 0;
    std::int64_t created = 0;  // unix seconds
    std::int64_t operations = 0;
    std::int64_t steps = 0;
    State state = State::running;
    std::string message;  // why it failed, what recovery did
  };

  // Durable (synchronous=FULL commit) before it returns.
  std::int64_t begin(const RenamePlan& plan, std::int64_t now);
  void mark(std::int64_t id, State state, const std::string& message = {});
  std::vector<Step> steps(std::int64_t id);
  std::optional<Entry> find(std::int64_t id);
  // Most recent first.
  std::vector<Entry> recent(std::size_t limit);
  std::vector<Entry> unfinished();
  // The most recent batch that is done (undoable), if any.
  std::optional<Entry> last_done();
  // Forgets all but the newest `keep` done batches (their undo history).
  void prune(std::size_t keep);

  void add_recovery(std::int64_t batch, std::int64_t now, const std::string& message);
  // Reports not yet given to a client; marks them given.
  std::vector<std::string> take_recoveries();

 private:
  state::Database& db_;
};

struct Outcome {
  std::int64_t batch = 0;
  std::size_t operations = 0;
  std::size_t steps = 0;
  // Files a confirmed overwrite moved to the trash (submit only).
  std::size_t trashed = 0;
  // Directories whose listing changed (for the client to refresh).
  std::vector<std::string> directories;
  // undo only: what the batch had renamed, as moves_of() gives them, so that
  // the client can point its buffers back without remembering the batch.
  std::vector<std::pair<std::string, std::string>> moves;
};

// What a batch's steps rename, as the user named it: (path before the batch,
// path after), one pair per object moved, in the order of the paths after.
// Temporary names, the trash, and an object carried along by a moved
// directory (unless it moved within it too) leave no pair.
std::vector<std::pair<std::string, std::string>> moves_of(const std::vector<Step>& steps);

class Renamer {
 public:
  struct Options {
    std::filesystem::path trash_dir = default_trash_dir();
    std::optional<Failpoint> failpoint;
    std::size_t undo_history = 100;
  };
  using Progress = std::function<void(std::size_t done, std::size_t total)>;

  Renamer(state::Database& db, Options options);

  // Runs a batch completely or not at all. Throws BatchRefused (nothing
  // touched), StepFailed, BatchCancelled (all reverted), or
  // state::SqliteError (before the first step: nothing touched).
  Outcome submit(const Batch& batch, const std::atomic<bool>& cancelled, const Progress& progress = {});
  Outcome submit(std::span<const OperationView> operations, const std::atomic<bool>& cancelled,
                 const Progress& progress = {});
  // The same, freeing `operations` as soon as the planner has read them.
  Outcome submit(std::vector<OperationView>&& operations, const std::atomic<bool>& cancelled,
                 const Progress& progress = {});

  // Reverts the most recent committed batch not undone yet. Throws
  // UndoRefused if there is none or if its files moved since (nothing
  // touched), StepFailed / BatchCancelled as submit does. With `only`, that
  // batch, and UndoRefused if another one is the most recent.
  Outcome undo(const std::atomic<bool>& cancelled, const Progress& progress = {},
               std::optional<std::int64_t> only = std::nullopt);

  // Once at start-up, before serving: reverts any batch a crash interrupted
  // (and finishes any undo a crash interrupted, backwards), records what it
  // did, and returns the reports for the next client.
  std::vector<std::string> recover();

  // moves_of() the steps of `batch`, done or undone; empty once the journal
  // has forgotten it.
  std::vector<std::pair<std::string, std::string>> moves(std::int64_t batch);

  Journal& journal() { return journal_; }

 private:
  enum class Direction { forward, backward };
  Outcome execute(const RenamePlan& plan, const std::atomic<bool>& cancelled, const Progress& progress);
  // Recovers any batch the journal still calls running before a new one
  // starts (see the definition).
  void settle_leftovers();
  void run(std::int64_t batch, const std::vector<Step>& steps, Direction direction,
           const std::atomic<bool>& cancelled, const Progress& progress);

  Journal journal_;
  Options options_;
};

// For messages: a path as a person reads it (bytes kept, control characters escaped).
std::string printable(std::string_view path);

}  // namespace descent::rename
