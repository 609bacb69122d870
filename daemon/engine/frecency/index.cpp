#include "engine/frecency/index.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/frecency/import.hpp"
#include "engine/frecency/matching.hpp"

namespace descent::frecency {

namespace {

constexpr std::int64_t schema_version = 1;
// Another tool's data is small (zoxide's own database is capped by aging);
// anything this large is not what the user meant to import.
constexpr std::size_t max_import_bytes = 256u << 20;

std::size_t depth_of(std::string_view path) { return static_cast<std::size_t>(std::count(path.begin(), path.end(), '/')); }

bool is_gone(int error) { return error == ENOENT || error == ENOTDIR; }

class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void os_error(const std::string& doing, const std::string& file, int error) {
  throw OsError(doing + " " + file + ": " + std::strerror(error), error);
}

std::string read_whole_file(const std::string& file) {
  const Descriptor fd(::openat(AT_FDCWD, file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) os_error("cannot open", file, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) os_error("cannot stat", file, errno);
  if (!S_ISREG(st.st_mode)) throw Refusal(file + ": not a regular file");
  if (static_cast<std::uint64_t>(st.st_size) > max_import_bytes)
    throw Refusal(file + ": " + std::to_string(st.st_size) + " bytes is more than the " +
                  std::to_string(max_import_bytes >> 20) + " MiB an import may be");
  std::string contents;
  contents.resize(static_cast<std::size_t>(st.st_size));
  std::size_t filled = 0;
  // Read to the end even if the file grew since fstat, within the limit.
  for (;;) {
    if (filled == contents.size()) {
      if (contents.size() >= max_import_bytes) throw Refusal(file + ": grew past the import limit while read");
      contents.resize(std::min(max_import_bytes, contents.size() + 65536));
    }
    const ssize_t got = ::read(fd.get(), contents.data() + filled, contents.size() - filled);
    if (got < 0) {
      if (errno == EINTR) continue;
      os_error("cannot read", file, errno);
    }
    if (got == 0) break;
    filled += static_cast<std::size_t>(got);
  }
  contents.resize(filled);
  return contents;
}

}  // namespace

double score(double rank, std::int64_t last_visit, std::int64_t now) {
  const std::int64_t age = now > last_visit ? now - last_visit : 0;
  if (age < hour) return rank * 4.0;
  if (age < day) return rank * 2.0;
  if (age < week) return rank * 0.5;
  return rank * 0.25;
}

std::string normalize_path(std::string_view path) {
  if (path.empty() || path.front() != '/')
    throw Refusal("not an absolute path: \"" + std::string(path.substr(0, PATH_MAX)) + "\"");
  if (path.find('\0') != std::string_view::npos) throw Refusal("a path may not contain a NUL byte");
  std::vector<std::string_view> components;
  while (!path.empty()) {
    const std::size_t slash = path.find('/');
    const std::string_view component = path.substr(0, slash);
    if (component == "..") {
      if (!components.empty()) components.pop_back();
    } else if (!component.empty() && component != ".") {
      components.push_back(component);
    }
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  std::string out;
  for (const auto component : components) {
    out += '/';
    out += component;
  }
  if (out.empty()) out = "/";
  if (out.size() >= PATH_MAX)
    throw Refusal("path longer than PATH_MAX (" + std::to_string(out.size()) + " bytes)");
  return out;
}

int stat_directory(const std::string& path) {
  struct stat st {};
  // Follows symlinks, as a cd would.
  if (::fstatat(AT_FDCWD, path.c_str(), &st, 0) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

Index::Index(const std::filesystem::path& database_file, Probe probe)
    : db_(state::Database::open(database_file)), probe_(std::move(probe)) {
  create_schema();
  load();
}

void Index::create_schema() {
  state::Transaction transaction(db_);
  db_.exec(
      "CREATE TABLE IF NOT EXISTS frecency_meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS frecency_dirs ("
      "  path BLOB PRIMARY KEY NOT NULL,"
      "  rank REAL NOT NULL CHECK (rank >= 0),"
      "  last_visit INTEGER NOT NULL"
      ") WITHOUT ROWID;"
      "INSERT OR IGNORE INTO frecency_meta (key, value) VALUES ('generation', 0);");
  auto insert = db_.prepare("INSERT OR IGNORE INTO frecency_meta (key, value) VALUES ('schema', ?1)");
  insert.bind(1, schema_version).run();
  auto select = db_.prepare("SELECT value FROM frecency_meta WHERE key = 'schema'");
  const std::int64_t found = select.step() ? select.column_int64(0) : 0;
  if (found != schema_version)
    throw state::SqliteError(0, "the frecency tables have schema version " + std::to_string(found) +
                                    ", this descentd knows " + std::to_string(schema_version) +
                                    ": use the descentd that wrote them");
  transaction.commit();
}

std::int64_t Index::data_version() {
  auto statement = db_.prepare("PRAGMA data_version");
  return statement.step() ? statement.column_int64(0) : 0;
}

std::int64_t Index::stored_generation() {
  auto statement = db_.prepare("SELECT value FROM frecency_meta WHERE key = 'generation'");
  return statement.step() ? statement.column_int64(0) : 0;
}

void Index::bump_generation() {
  auto statement = db_.prepare("UPDATE frecency_meta SET value = value + 1 WHERE key = 'generation' RETURNING value");
  if (statement.step()) generation_ = statement.column_int64(0);
}

void Index::load() {
  slots_.clear();
  by_path_.clear();
  paths_.clear();
  folded_.clear();
  wasted_ = 0;
  // A write transaction is the simplest consistent snapshot with the versions.
  state::Transaction transaction(db_);
  data_version_ = data_version();
  generation_ = stored_generation();
  auto select = db_.prepare("SELECT path, rank, last_visit FROM frecency_dirs");
  while (select.step()) insert_slot(select.column_bytes(0), select.column_double(1), select.column_int64(2));
  transaction.commit();
}

// Another connection may have written the file (the rename journal's, most
// often, which does not concern us; or a second index in tests): reload only
// when the frecency tables themselves changed.
void Index::reload_if_changed() {
  const std::int64_t version = data_version();
  if (version == data_version_) return;
  data_version_ = version;
  if (stored_generation() != generation_) load();
}

void Index::insert_slot(std::string_view path, double rank, std::int64_t last_visit) {
  const std::string folded = fold_case(path);
  constexpr std::size_t arena_limit = UINT32_MAX;
  if (paths_.size() + path.size() > arena_limit || folded_.size() + folded.size() > arena_limit ||
      slots_.size() >= arena_limit)
    throw Refusal("the frecency index is full (4 GiB of paths)");
  Slot slot;
  slot.path_at = static_cast<std::uint32_t>(paths_.size());
  slot.path_size = static_cast<std::uint32_t>(path.size());
  slot.folded_at = static_cast<std::uint32_t>(folded_.size());
  slot.folded_size = static_cast<std::uint32_t>(folded.size());
  slot.path_tail = static_cast<std::uint32_t>(path.rfind('/') + 1);  // 0 if none
  slot.folded_tail = static_cast<std::uint32_t>(std::string_view(folded).rfind('/') + 1);
  slot.depth = static_cast<std::uint32_t>(depth_of(path));
  slot.rank = rank;
  slot.last_visit = last_visit;
  paths_.append(path);
  folded_.append(folded);
  by_path_.emplace(std::string(path), static_cast<std::uint32_t>(slots_.size()));
  slots_.push_back(slot);
}

void Index::erase_slot(std::size_t index) {
  const Slot gone = slots_[index];
  by_path_.erase(std::string(path_of(gone)));
  wasted_ += gone.path_size + gone.folded_size;
  if (index + 1 != slots_.size()) {
    slots_[index] = slots_.back();
    by_path_[std::string(path_of(slots_[index]))] = static_cast<std::uint32_t>(index);
  }
  slots_.pop_back();
  compact_if_wasteful();
}

// Arenas only grow on insert; once half is dead, copy the live part.
void Index::compact_if_wasteful() {
  if (wasted_ < (1u << 20) || wasted_ * 2 < paths_.size() + folded_.size()) return;
  std::string paths, folded;
  paths.reserve(paths_.size() + folded_.size() - wasted_);
  folded.reserve(folded_.size());
  for (Slot& slot : slots_) {
    const std::string_view path = path_of(slot), fold = folded_of(slot);
    slot.path_at = static_cast<std::uint32_t>(paths.size());
    slot.folded_at = static_cast<std::uint32_t>(folded.size());
    paths.append(path);
    folded.append(fold);
  }
  paths_ = std::move(paths);
  folded_ = std::move(folded);
  wasted_ = 0;
}

double Index::total_rank() const {
  double total = 0;
  for (const auto& slot : slots_) total += slot.rank;
  return total;
}

double Index::age_in_database(double total) {
  if (!(total > max_total_rank)) return 1.0;
  const double factor = 0.9 * max_total_rank / total;
  db_.prepare("UPDATE frecency_dirs SET rank = rank * ?1").bind(1, factor).run();
  db_.exec("DELETE FROM frecency_dirs WHERE rank < 1.0");
  return factor;
}

void Index::age_in_memory(double factor) {
  if (factor == 1.0) return;
  std::vector<Slot> kept;
  kept.reserve(slots_.size());
  by_path_.clear();
  for (Slot slot : slots_) {
    slot.rank *= factor;  // the same double product SQLite computed
    if (slot.rank < 1.0) {
      wasted_ += slot.path_size + slot.folded_size;
      continue;
    }
    by_path_.emplace(std::string(path_of(slot)), static_cast<std::uint32_t>(kept.size()));
    kept.push_back(slot);
  }
  slots_ = std::move(kept);
  compact_if_wasteful();
}

void Index::add(std::string_view raw_path, std::int64_t now) {
  const std::string path = normalize_path(raw_path);
  if (const int error = probe_(path); error != 0) os_error("cannot record", path, error);

  std::lock_guard lock(mutex_);
  reload_if_changed();
  const auto found = by_path_.find(path);
  const double total = total_rank() + 1.0;

  state::Transaction transaction(db_);
  db_.prepare(
         "INSERT INTO frecency_dirs (path, rank, last_visit) VALUES (?1, 1.0, ?2) "
         "ON CONFLICT (path) DO UPDATE SET rank = rank + 1.0, last_visit = max(last_visit, excluded.last_visit)")
      .bind_blob(1, path)
      .bind(2, now)
      .run();
  const double factor = age_in_database(total);
  bump_generation();
  transaction.commit();

  // Committed: now the copy may change, in the same order of operations.
  if (found == by_path_.end()) {
    insert_slot(path, 1.0, now);
  } else {
    Slot& slot = slots_[found->second];
    slot.rank += 1.0;
    slot.last_visit = std::max(slot.last_visit, now);
  }
  age_in_memory(factor);
}

std::vector<Ranked> Index::query(const std::vector<std::string>& keywords, std::size_t limit, std::int64_t now) {
  const Pattern pattern(keywords);
  std::lock_guard lock(mutex_);
  reload_if_changed();

  const std::string* in_last = pattern.last_component_keyword();
  const bool exact = pattern.case_sensitive();
  std::vector<bool> passed_over;  // slots met and found gone or unreachable
  const auto for_each_match = [&](auto&& take) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      const Slot& slot = slots_[i];
      // Most entries fail here, on a few bytes, before the full matcher runs.
      if (in_last) {
        const std::string_view tail =
            exact ? path_of(slot).substr(slot.path_tail) : folded_of(slot).substr(slot.folded_tail);
        if (tail.find(*in_last) == std::string_view::npos) continue;
      }
      if (!passed_over.empty() && passed_over[i]) continue;
      if (pattern.matches(path_of(slot), folded_of(slot)))
        take(Candidate{score(slot.rank, slot.last_visit, now), slot.depth, static_cast<std::uint32_t>(i)});
    }
  };
  const auto better = [this](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.depth != b.depth) return a.depth < b.depth;
    return path_of(slots_[a.slot]) < path_of(slots_[b.slot]);
  };

  std::vector<Ranked> results;
  std::vector<std::string> gone;
  // Walks candidates best first, checking each on the file system, until
  // `limit` are found; false if it ran out of candidates first.
  const auto take_existing = [&](std::vector<Candidate>& ordered) {
    for (const Candidate& candidate : ordered) {
      if (limit != 0 && results.size() == limit) return true;
      const Slot& slot = slots_[candidate.slot];
      std::string path(path_of(slot));
      const int error = probe_(path);
      if (error == 0) {
        results.push_back(Ranked{std::move(path), candidate.score, slot.rank, slot.last_visit});
        continue;
      }
      // Gone: dropped below. Unreachable (permissions, a dead mount): kept
      // in the index, not shown.
      if (is_gone(error)) gone.push_back(std::move(path));
      if (passed_over.empty()) passed_over.resize(slots_.size());
      passed_over[candidate.slot] = true;
    }
    return limit != 0 && results.size() == limit;
  };

  if (limit == 0) {
    candidates_.clear();
    for_each_match([&](const Candidate& c) { candidates_.push_back(c); });
    std::sort(candidates_.begin(), candidates_.end(), better);
    take_existing(candidates_);
  } else {
    // Keep only the best few while scanning (a bounded heap whose top is
    // the worst kept): one pass, no sort of 100k matches. If too many of
    // those few are gone, scan again for more, without them.
    for (std::size_t keep = limit + 4;; keep *= 4) {
      candidates_.clear();
      std::size_t matched = 0;
      for_each_match([&](const Candidate& c) {
        ++matched;
        if (candidates_.size() < keep) {
          candidates_.push_back(c);
          std::push_heap(candidates_.begin(), candidates_.end(), better);
        } else if (better(c, candidates_.front())) {
          std::pop_heap(candidates_.begin(), candidates_.end(), better);
          candidates_.back() = c;
          std::push_heap(candidates_.begin(), candidates_.end(), better);
        }
      });
      std::sort_heap(candidates_.begin(), candidates_.end(), better);
      results.clear();  // a later round walks the best again, minus what was passed over
      if (take_existing(candidates_) || candidates_.size() == matched) break;
    }
  }

  if (!gone.empty()) {
    state::Transaction transaction(db_);
    auto remove = db_.prepare("DELETE FROM frecency_dirs WHERE path = ?1");
    for (const auto& path : gone) remove.bind_blob(1, path).run();
    bump_generation();
    transaction.commit();
    for (const auto& path : gone) erase_slot(by_path_.at(path));
  }
  return results;
}

std::vector<Ranked> Index::rank_all(std::int64_t now) const {
  std::vector<std::pair<double, std::size_t>> order;  // score, slot
  order.reserve(slots_.size());
  for (std::size_t i = 0; i < slots_.size(); ++i) order.emplace_back(score(slots_[i].rank, slots_[i].last_visit, now), i);
  std::sort(order.begin(), order.end(), [this](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    const Slot &sa = slots_[a.second], &sb = slots_[b.second];
    if (sa.depth != sb.depth) return sa.depth < sb.depth;
    return path_of(sa) < path_of(sb);
  });
  std::vector<Ranked> all;
  all.reserve(order.size());
  for (const auto& [value, i] : order)
    all.push_back(Ranked{std::string(path_of(slots_[i])), value, slots_[i].rank, slots_[i].last_visit});
  return all;
}

std::vector<Ranked> Index::list(std::int64_t now) {
  std::lock_guard lock(mutex_);
  reload_if_changed();
  return rank_all(now);
}

bool Index::remove(std::string_view raw_path) {
  const std::string path = normalize_path(raw_path);
  std::lock_guard lock(mutex_);
  reload_if_changed();
  state::Transaction transaction(db_);
  db_.prepare("DELETE FROM frecency_dirs WHERE path = ?1").bind_blob(1, path).run();
  const bool removed = db_.changes() > 0;
  bump_generation();
  transaction.commit();
  if (const auto found = by_path_.find(path); found != by_path_.end()) erase_slot(found->second);
  return removed;
}

std::size_t Index::import(ImportFormat format, std::string_view contents) {
  // Parse everything first: a bad line refuses the whole file untouched.
  const std::vector<Entry> entries = parse_import(format, contents);

  std::lock_guard lock(mutex_);
  reload_if_changed();
  {
    state::Transaction transaction(db_);
    auto merge = db_.prepare(
        "INSERT INTO frecency_dirs (path, rank, last_visit) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (path) DO UPDATE SET rank = rank + excluded.rank, "
        "last_visit = max(last_visit, excluded.last_visit)");
    for (const auto& entry : entries) merge.bind_blob(1, entry.path).bind(2, entry.rank).bind(3, entry.last_visit).run();
    // No aging here, as zoxide's import: the next visit ages.
    bump_generation();
    transaction.commit();
  }
  // An import is rare: reading the result back is simpler than replaying it.
  load();
  return entries.size();
}

std::size_t Index::import_file(ImportFormat format, const std::string& file) {
  const std::string contents = read_whole_file(file);
  try {
    return import(format, contents);
  } catch (const Refusal& refusal) {
    throw Refusal(file + ": " + refusal.what());
  }
}

std::size_t Index::size() {
  std::lock_guard lock(mutex_);
  reload_if_changed();
  return slots_.size();
}

}  // namespace descent::frecency
