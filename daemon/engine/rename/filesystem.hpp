// The file-system side of steps: run, revert and observe one Step, with
// *at() calls on cached directory descriptors. Internal to the engine.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/rename/rename.hpp"

namespace descent::rename::detail {

// A failed system call: the path it concerns and errno.
struct OsError : std::runtime_error {
  OsError(const std::string& doing, std::string path, int error);
  // A failure told in full, not by errno (the journal's).
  struct Told {};
  OsError(Told, const std::string& message, std::string path, int error)
      : std::runtime_error(message), path(std::move(path)), error(error) {}
  std::string path;
  int error;
};

// Parent and name. Inline, with memrchr: the planner splits every path of a
// batch several times (string_view::rfind goes a byte at a time).
[[gnu::always_inline]] inline std::pair<std::string_view, std::string_view> split(std::string_view path) {
  const void* found = path.empty() ? nullptr : ::memrchr(path.data(), '/', path.size());
  if (!found) return {".", path};
  const std::size_t slash = static_cast<std::size_t>(static_cast<const char*>(found) - path.data());
  if (slash == 0) return {"/", std::string_view(path.data() + 1, path.size() - 1)};
  return {std::string_view(path.data(), slash), std::string_view(path.data() + slash + 1, path.size() - slash - 1)};
}

// Directory descriptors by path, so that a batch of 100k renames in one
// directory resolves that directory once. Entries under a moved directory
// are dropped because their path no longer names them.
class Directories {
 public:
  Directories() = default;
  Directories(const Directories&) = delete;
  Directories& operator=(const Directories&) = delete;
  ~Directories();
  int open(std::string_view dir);  // O_PATH; throws OsError
  void forget_under(std::string_view dir);
  // fsync every directory in `dirs` (errors are reported, not thrown).
  static std::vector<std::string> sync(const std::vector<std::string>& dirs);

 private:
  std::unordered_map<std::string, int> fds_;
};

enum class Status { applied, not_applied, unknown };

struct FileIdHash {
  std::size_t operator()(const FileId& id) const noexcept { return std::hash<std::uint64_t>()(id.ino * 31 + id.dev); }
};

class StepRunner {
 public:
  explicit StepRunner(Directories& dirs) : dirs_(dirs) {}
  // A copy across file systems polls this while it runs (and fails with
  // ECANCELED): a copy of gigabytes must not hold up a C-g.
  void cancel_on(const std::atomic<bool>* cancelled) { cancelled_ = cancelled; }
  void apply(const Step& step);
  void revert(const Step& step);
  // What the file system says about `step`, assuming every later step is not
  // applied; first removes the leftovers of a half-done step (scratch names).
  // Earlier steps may be applied or not: see `know`.
  Status settle(const Step& step);
  // Recovery's knowledge of the batch: the objects its steps found before
  // they ran. A directory made or a file copied by a step is a new inode,
  // never one of these; so one of these where such a step puts its result is
  // a file of the user's that an earlier step has not moved away yet (or
  // that a rollback brought back): the step did not happen, and what is
  // there must not be removed. The same goes for a symlink recognised by
  // its target.
  void know(const std::vector<Step>& steps);
  // After a run (done or rolled back): removes what a step kept for a rollback.
  void finish(const Step& step);
  // Whether the file system still shows `step` as done, without changing
  // anything (undo's check that nothing moved since).
  bool shows_done(const Step& step);
  // Whether `path` holds the object `id` (or, for a re-targeted symlink, one
  // with either target).
  bool holds(std::string_view path, const FileId& id, const Step& step);
  std::optional<struct stat> lstat(std::string_view path);
  // Throws (ESTALE) unless `path` holds `id`, the object the plan saw there,
  // just before a step moves it (see the definition).
  void expect(std::string_view path, const FileId& id);

 private:
  void rename(std::string_view from, std::string_view to, unsigned flags);
  void copy(std::string_view from, std::string_view copy, const std::atomic<bool>* cancelled);
  void discard(std::string_view path, std::string_view aside);
  void remove_tree_if_present(std::string_view path);
  void relink(std::string_view path, std::string_view scratch, std::string_view target, bool keep_old);
  std::optional<std::string> link_at(std::string_view path);
  void remove_if_present(std::string_view path, bool directory);
  void make_directories(std::string_view dir);
  void check_shared_trash(std::string_view trash, std::string_view file);
  // Whether `st` is one of the objects the batch found (see `know`).
  bool found_by_batch(const struct stat& st) const;
  Directories& dirs_;
  const std::atomic<bool>* cancelled_ = nullptr;
  std::unordered_set<FileId, FileIdHash> found_;
};


}  // namespace descent::rename::detail
