// The frecency index: how often and how recently each directory was visited,
// ranked as zoxide ranks it. Durable in the state database (tables
// frecency_*), with an in-memory copy so that a query over 100k directories
// never reads the table (one PRAGMA tells it whether to reload); every change is written through in one transaction
// before the copy is changed, so the copy never shows an uncommitted state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/state.hpp"

namespace descent::frecency {

// A request the index refuses (a relative path, a malformed import file):
// the index is unchanged.
struct Refusal : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A system call failed; the message names the file and the strerror text.
struct OsError : std::runtime_error {
  OsError(const std::string& what, int error) : std::runtime_error(what), error(error) {}
  int error;
};

// zoxide's constants: the sum of all ranks is kept at or under max_total_rank.
inline constexpr double max_total_rank = 10000.0;
inline constexpr std::int64_t hour = 60 * 60, day = 24 * hour, week = 7 * day;

// rank weighted by the age of the last visit: ×4 within an hour, ×2 within a
// day, ×0.5 within a week, ×0.25 beyond.
double score(double rank, std::int64_t last_visit, std::int64_t now);

// An absolute path made canonical without touching the file system, as zoxide
// does: repeated and trailing slashes, "." and ".." resolved lexically.
// Refuses (Refusal) relative paths, NUL bytes, and paths over PATH_MAX.
std::string normalize_path(std::string_view path);

struct Entry {
  std::string path;  // bytes, as the kernel has them
  double rank = 0;
  std::int64_t last_visit = 0;  // seconds since the epoch
};

struct Ranked {
  std::string path;
  double score = 0;
  double rank = 0;
  std::int64_t last_visit = 0;
};

enum class ImportFormat {
  zoxide,    // zoxide's database file (db.zo), or `zoxide query --list --score` output
  z,         // z's ~/.z: path|rank|time per line
  autojump,  // autojump.txt: weight<TAB>path per line
};

// Whether a path is a directory now: 0 if it is, else the errno (ENOTDIR when
// it is something else). Tests pass their own.
using Probe = std::function<int(const std::string& path)>;
int stat_directory(const std::string& path);

class Index {
 public:
  // Opens its own connection to the state database (`state.db`, shared with
  // the rename journal), creating the frecency tables if needed, and loads.
  explicit Index(const std::filesystem::path& database_file, Probe probe = stat_directory);
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // A visit: rank +1 (a new directory starts at 1), last visit = max(old, now);
  // then, if the ranks sum over 10000, all are aged and those under 1 dropped.
  // The directory must exist (OsError with the errno otherwise).
  void add(std::string_view path, std::int64_t now);

  // The best `limit` matches (0: no limit), best first: by score, ties to the
  // shallower path, then by bytes. Directories that are gone (ENOENT,
  // ENOTDIR) are dropped from the index when met; ones that cannot be checked
  // (EACCES, EIO...) are skipped but kept.
  std::vector<Ranked> query(const std::vector<std::string>& keywords, std::size_t limit, std::int64_t now);

  // Every entry in query order, without checking the file system.
  std::vector<Ranked> list(std::int64_t now);

  // False if the path was not in the index.
  bool remove(std::string_view path);

  // Merges another tool's data (ranks add up, the later visit wins) in one
  // transaction. Like zoxide's import it does not age: the next add does. A malformed or truncated input is refused with its
  // line (or entry) number, and nothing is imported. Returns the entries read.
  std::size_t import(ImportFormat format, std::string_view contents);
  std::size_t import_file(ImportFormat format, const std::string& file);

  std::size_t size();

 private:
  // The copy, laid out for scanning: every path and its folded form packed
  // in two arenas, so a query reads contiguous memory instead of chasing
  // 100k heap strings; slots are small and fixed-size.
  struct Slot {
    std::uint32_t path_at = 0, path_size = 0;
    std::uint32_t folded_at = 0, folded_size = 0;
    std::uint32_t path_tail = 0, folded_tail = 0;  // where the last component starts, relative
    std::uint32_t depth = 0;  // number of components, for ties
    double rank = 0;
    std::int64_t last_visit = 0;
  };
  struct Candidate {
    double score;
    std::uint32_t depth;
    std::uint32_t slot;
  };

  std::string_view path_of(const Slot& slot) const { return {paths_.data() + slot.path_at, slot.path_size}; }
  std::string_view folded_of(const Slot& slot) const { return {folded_.data() + slot.folded_at, slot.folded_size}; }

  void create_schema();
  void load();
  void reload_if_changed();
  std::int64_t data_version();
  std::int64_t stored_generation();
  // In a write transaction: marks the frecency tables changed by this index.
  void bump_generation();
  void insert_slot(std::string_view path, double rank, std::int64_t last_visit);
  void erase_slot(std::size_t index);
  void compact_if_wasteful();
  // In one transaction already begun: ages every rank if their sum is over
  // the limit; returns the factor applied (1 when none).
  double age_in_database(double total);
  void age_in_memory(double factor);
  double total_rank() const;
  std::vector<Ranked> rank_all(std::int64_t now) const;

  std::mutex mutex_;  // one writer (and reader) at a time: updates are never lost
  state::Database db_;
  Probe probe_;
  std::int64_t data_version_ = 0;  // SQLite's: changes with any other connection's commit
  std::int64_t generation_ = 0;    // ours: changes with any commit to the frecency tables
  std::vector<Slot> slots_;
  std::string paths_, folded_;  // the arenas
  std::size_t wasted_ = 0;      // arena bytes no slot refers to any more
  std::unordered_map<std::string, std::uint32_t> by_path_;
  std::vector<Candidate> candidates_;  // reused by every query
};

}  // namespace descent::frecency
