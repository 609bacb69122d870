// RenamePlan::make: validation and ordering. Nothing here changes the file
// system: the plan is computed on a simulated tree, and only lstat() is
// called on the real one.
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "engine/rename/filesystem.hpp"
#include "engine/rename/rename.hpp"

namespace descent::rename {

using detail::split;

namespace {

std::string describe(const std::vector<Problem>& problems) {
  std::string text = problems.size() == 1 ? "refused the batch: " : "refused the batch (" +
                                                                      std::to_string(problems.size()) +
                                                                      " problems): ";
  const std::size_t shown = std::min<std::size_t>(problems.size(), 20);
  for (std::size_t i = 0; i < shown; ++i) {
    if (i) text += "; ";
    text += printable(problems[i].path) + ": " + problems[i].reason;
  }
  if (shown < problems.size()) text += "; and " + std::to_string(problems.size() - shown) + " more";
  return text;
}

// Why `path` is not an acceptable absolute path, or empty if it is.
std::string path_problem(std::string_view path) {
  if (path.empty()) return "the name is empty";
  if (path.find('\0') != std::string_view::npos) return "the name contains a NUL byte";
  if (path.front() != '/') return "not an absolute path";
  if (path.size() >= PATH_MAX) return "the path is longer than PATH_MAX (" + std::to_string(PATH_MAX - 1) + " bytes)";
  if (path == "/") return "the root directory cannot be renamed";
  std::size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const auto component = path.substr(start, end - start);
    if (component.empty()) return end == path.size() ? "the name is empty" : "the path has an empty component";
    if (component == "." || component == "..") return "\"" + std::string(component) + "\" is not a file name";
    if (component.size() > NAME_MAX)
      return "a name is longer than NAME_MAX (" + std::to_string(NAME_MAX) + " bytes)";
    start = end + 1;
  }
  return {};
}

std::string temporary_token() {
  std::random_device random;
  const std::uint64_t value = (std::uint64_t(random()) << 32) ^ random();
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

// Percent-encodes a path for a .trashinfo Path= line (RFC 2396, '/' kept).
std::string trash_url(std::string_view path) {
  std::string out;
  for (const unsigned char c : path) {
    if (std::isalnum(c) || std::strchr("/-_.~!*'()", c)) {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

std::string trash_date() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &local);
  return text;
}

// The hash of every table here. Inline, 8 bytes a round: std::hash (an
// out-of-line murmur over bytes) was an eighth of planning's instructions,
// with a dozen hashes of ~50-byte paths per operation.
inline std::uint64_t path_hash(std::string_view path) {
  constexpr std::uint64_t k = 0x9e3779b97f4a7c15ULL;
  const char* p = path.data();
  std::size_t n = path.size();
  std::uint64_t h = (n + 1) * k;
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * k;
    h ^= h >> 29;
  }
  std::uint64_t tail = 0;
  if (n >= 4) {  // two overlapping words: the length is already in `h`
    std::uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    tail = (std::uint64_t(a) << 32) | b;
  } else if (n > 0) {
    tail = (std::uint64_t(static_cast<unsigned char>(p[0])) << 16) |
           (std::uint64_t(static_cast<unsigned char>(p[n / 2])) << 8) | static_cast<unsigned char>(p[n - 1]);
  }
  h ^= tail;
  // murmur3's finalizer: every bit of the input reaches the low bits that pick a slot.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// Lookups by string_view, without building a std::string per ancestor.
struct PathHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view path) const { return static_cast<std::size_t>(path_hash(path)); }
};
template <typename T>
using PathMap = std::unordered_map<std::string, T, PathHash, std::equal_to<>>;
using PathSet = std::unordered_set<std::string, PathHash, std::equal_to<>>;

// 100k of these for a big batch: paths are views into the Batch (which
// outlives the plan), or into the planner's made-up paths.
struct Object {
  std::string_view original;    // before the batch
  std::string_view current;     // in the simulated tree
  std::string_view final_path;  // after the batch
  // Only what planning needs of the lstat: 100k objects must stay small.
  struct {
    mode_t st_mode = 0;
    dev_t st_dev = 0;
    ino_t st_ino = 0;
  } st;
  FileId id;
  // PathIndex hashes of `current` and (if moving) `final_path`, kept so
  // that each path is hashed once rather than at every lookup.
  std::uint32_t hash_current = 0, hash_final = 0;
  bool moving = false;
  bool done = false;
  bool overwrite = false;
  bool through_temporary = false;
  bool refused = false;  // a problem is recorded: plan around it, to find the others
  // When re-targeted: rare, so out of line (two strings would add 64 bytes
  // to every one of 100k objects).
  struct Link {
    std::string old_target, new_target;
  };
  std::unique_ptr<Link> link;
  std::string_view link_old() const { return link ? std::string_view(link->old_target) : std::string_view(); }
  std::string_view link_new() const { return link ? std::string_view(link->new_target) : std::string_view(); }
  std::optional<std::uint32_t> new_mode;
};

// What PathIndex keeps of a path's hash.
inline std::uint32_t index_hash(std::string_view path) {
  const std::uint64_t h = path_hash(path);
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

// Object indices by one of their paths (`Key`): open addressing with the
// hash kept beside the index, 8 bytes a slot instead of a 40-byte node (and
// an allocation) per entry. The key is read from the object, so an object's
// path must not change while the index holds the object under it.
template <std::string_view Object::*Key>
class PathIndex {
 public:
  explicit PathIndex(const std::vector<Object>& objects) : objects_(objects) {}

  void reserve(std::size_t n) {
    std::size_t capacity = 16;
    while (capacity < 2 * n) capacity *= 2;
    if (capacity > slots_.size()) rehash(capacity);
  }
  static std::uint32_t hash(std::string_view key) { return index_hash(key); }
  // The object held under `key`, if any.
  std::optional<std::size_t> find(std::string_view key) const {
    // Most lookups are of ancestors, shorter than any path held: no hashing.
    if (slots_.empty() || lengths_[length_class(key)] == 0) return std::nullopt;
    return find(key, hash(key));
  }
  // The same, given hash(key).
  std::optional<std::size_t> find(std::string_view key, std::uint32_t h) const {
    if (slots_.empty() || lengths_[length_class(key)] == 0) return std::nullopt;
    for (std::size_t i = h & mask();; i = (i + 1) & mask()) {
      const Slot& slot = slots_[i];
      if (slot.index == empty) return std::nullopt;
      if (slot.index != erased && slot.hash == h && objects_[slot.index].*Key == key) return slot.index;
    }
  }
  // No key held is shorter than this (a bound: erasing does not raise it).
  std::size_t shortest() const { return shortest_; }
  bool count(std::string_view key) const { return find(key).has_value(); }
  bool count(std::string_view key, std::uint32_t h) const { return find(key, h).has_value(); }
  // Holds object `o` under its path (whose hash is `h`) unless another
  // object is held there; returns the object held there now.
  std::size_t emplace(std::size_t o, std::uint32_t h) { return put(o, false, h); }
  // Holds object `o` under its path (whose hash is `h`), in place of any other.
  void assign(std::size_t o, std::uint32_t h) { put(o, true, h); }
  void clear() {
    std::vector<Slot>().swap(slots_);
    std::vector<std::uint32_t>().swap(lengths_);
    size_ = used_ = 0;
    shortest_ = SIZE_MAX;
  }
  // Given hash(key).
  void erase(std::string_view key, std::uint32_t h) {
    if (slots_.empty() || lengths_[length_class(key)] == 0) return;
    for (std::size_t i = h & mask();; i = (i + 1) & mask()) {
      Slot& slot = slots_[i];
      if (slot.index == empty) return;
      if (slot.index != erased && slot.hash == h && objects_[slot.index].*Key == key) {
        remove_at(i);
        --size_;
        --used_;
        --lengths_[length_class(key)];
        return;
      }
    }
  }

 private:
  static constexpr std::uint32_t empty = UINT32_MAX, erased = UINT32_MAX - 1;
  struct Slot {
    std::uint32_t index = empty;
    std::uint32_t hash = 0;
  };
  std::size_t mask() const { return slots_.size() - 1; }
  // Empties slot `hole`, moving back the entries after it that may take its
  // place (no tombstones: a batch erases and re-adds every object that moves,
  // and tombstones made the index of current paths grow to four times the
  // objects, 512 KB of fresh pages at 10k).
  void remove_at(std::size_t hole) {
    for (std::size_t j = (hole + 1) & mask(); slots_[j].index != empty; j = (j + 1) & mask()) {
      const std::size_t home = slots_[j].hash & mask();
      // The entry at j stays if its home lies cyclically in (hole, j].
      const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].index = empty;
  }
  static std::size_t length_class(std::string_view key) { return std::min<std::size_t>(key.size(), PATH_MAX); }
  std::size_t put(std::size_t o, bool replace, std::uint32_t h) {
    if (2 * (used_ + 1) > slots_.size())  // grow, or just sweep out erased slots
      rehash(std::max<std::size_t>(16, 4 * (size_ + 1) > slots_.size() ? 2 * slots_.size() : slots_.size()));
    const std::string_view key = objects_[o].*Key;
    Slot* free = nullptr;
    for (std::size_t i = h & mask();; i = (i + 1) & mask()) {
      Slot& slot = slots_[i];
      if (slot.index == empty) {
        if (!free) {
          free = &slot;
          ++used_;
        }
        break;
      }
      if (slot.index == erased) {
        if (!free) free = &slot;
        continue;
      }
      if (slot.hash == h && objects_[slot.index].*Key == key) {
        if (replace) slot.index = static_cast<std::uint32_t>(o);
        return slot.index;
      }
    }
    free->index = static_cast<std::uint32_t>(o);
    free->hash = h;
    ++size_;
    ++lengths_[length_class(key)];
    shortest_ = std::min(shortest_, key.size());
    return o;
  }
  void rehash(std::size_t capacity) {
    lengths_.resize(PATH_MAX + 1);
    std::vector<Slot> old(capacity);
    old.swap(slots_);
    used_ = size_;
    for (const Slot& slot : old) {
      if (slot.index == empty || slot.index == erased) continue;
      std::size_t i = slot.hash & mask();
      while (slots_[i].index != empty) i = (i + 1) & mask();
      slots_[i] = slot;
    }
  }

  const std::vector<Object>& objects_;
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> lengths_;  // how many keys of each length (PATH_MAX: that or longer)
  std::size_t size_ = 0;  // objects held
  std::size_t used_ = 0;  // slots not empty: objects held and erased slots (none since remove_at)
  std::size_t shortest_ = SIZE_MAX;
};

class Planner {
 public:
  Planner(const std::filesystem::path& trash_dir, const std::atomic<bool>* cancelled)
      : trash_dir_(trash_dir.string()), cancelled_(cancelled), token_(temporary_token()), runner_(dirs_) {}

  // `owner`, if given, holds `operations` and is emptied once they are read.
  RenamePlan make(std::span<const OperationView> operations, std::vector<OperationView>* owner = nullptr);

 private:
  enum class Edge { none, arrive, occupy_ancestor, occupy };  // (b), (c), (a) in the notes below
  struct Blocker {
    enum class Kind { ready, edge, problem, make_parent, victim } kind = Kind::ready;
    Edge edge = Edge::none;
    std::size_t object = 0;
    std::string reason;
    bool occupied = false;  // the destination exists outside the batch: the user may confirm
  };
  struct Place {
    enum class Kind { absent, object, disk, created } kind = Kind::absent;
    std::size_t object = 0;
    struct stat st {};
  };
  // Where object `o` stands now, as resolve() says it.
  Place object_place(std::size_t o) const {
    Place place;
    place.kind = Place::Kind::object;
    place.object = o;
    place.st.st_mode = objects_[o].st.st_mode;
    place.st.st_dev = objects_[o].st.st_dev;
    place.st.st_ino = objects_[o].st.st_ino;
    return place;
  }

  void problem(std::string_view path, std::string reason, std::string_view occupied = {}) {
    problems_.push_back({std::string(path), std::move(reason), std::string(occupied)});
  }
  // Whether path_problem() finds nothing (else `why` is what it found).
  // Paths mostly share the directory of the last acceptable one: then only
  // the name is checked, and no string is made.
  bool path_ok(std::string_view path, std::string& why) {
    const auto [parent, name] = split(path);
    if (parent == good_parent_ && path.size() < PATH_MAX && !name.empty() && name.size() <= NAME_MAX &&
        name != "." && name != ".." && name.find('\0') == std::string_view::npos)
      return true;
    why = path_problem(path);
    if (!why.empty()) return false;
    good_parent_.assign(parent);  // accepted whole: its every component is a good name
    return true;
  }
  std::string good_parent_;  // the directory of a path that path_problem() accepted
  void check_cancel() {
    if (cancelled_ && cancelled_->load(std::memory_order_relaxed)) throw BatchCancelled("cancelled before any change");
  }
  std::size_t object_at(std::string_view original, const OperationView& op);
  std::optional<struct stat> disk(std::string_view path);
  std::optional<struct stat> disk_exact(std::string_view path);
  void list_busy_directories(std::span<const OperationView> operations);
  // How resolve_uncached() concluded for a directory: the walk up reached the
  // root (ask the disk), found the directory created by the batch, or found it
  // inside an object that moved (ask the disk at `original`).
  struct Chain {
    enum class Kind { root, created, inside } kind = Kind::root;
    std::string original;
  };
  // `hash`, if known: index_hash(path).
  Place resolve(std::string_view path, std::optional<std::uint32_t> hash = std::nullopt);
  Place resolve_entry(std::string_view path, std::uint32_t hash);
  Place resolve_uncached(std::string_view path, Chain& chain);
  // resolve() for a path used as a directory: a symbolic link there is the
  // directory it points to, as the kernel takes it in the middle of a path.
  Place resolve_directory(std::string_view path);
  // Where a path that resolve() found on disk is on disk now.
  std::string on_disk(std::string_view path);
  void relocate(std::size_t o, std::string_view path, bool stable);
  Blocker blocker(std::size_t o);
  bool another_link(const Object& object, std::string_view dest);
  std::string replace_problem(const Object& object, std::string_view dest, const struct stat& victim);
  bool ensure_directory(const std::string& path, std::string_view why_path);
  void move(std::size_t o, std::string_view to, bool temporary);
  bool alone_in_copied_directory(const Object& directory);
  void exchange(std::size_t a, std::size_t b);
  void rewrite(const std::string& from, const std::string& to);
  void trash(std::size_t o, const struct stat& victim);
  // Where a confirmed overwrite puts a victim on disk at `dest`: the trash
  // directory, or why none can take it (what follows "cannot overwrite
  // DEST: "). Found once per file system.
  struct Trash {
    std::string dir;
    std::string why_not;
  };
  const Trash& trash_for(std::string_view dest, const struct stat& victim);
  Trash volume_trash(std::string_view dest, const struct stat& victim);
  std::string scratch_in(std::string_view dir) {
    return std::string(dir == "/" ? "" : dir) + "/.descent-tmp-" + token_ + "-" + std::to_string(scratch_count_++);
  }
  void order();

  std::string trash_dir_;
  std::unordered_map<dev_t, Trash> trashes_;  // by the victim's device
  const std::atomic<bool>* cancelled_;
  std::string token_;
  std::size_t scratch_count_ = 0;
  detail::Directories dirs_;
  detail::StepRunner runner_;
  std::vector<Problem> problems_;
  std::vector<Object> objects_;
  // The plan, once finish_steps() has made it from the drafts.
  std::vector<Step> steps_;
  // Until planning is done, steps are drafts: the plain moves and exchanges
  // that make up nearly all of a big batch as kind, ids and views of their
  // paths (into the request, or into made-up paths kept until then); any
  // other step whole, in `whole_`. Steps with their own copies of the paths
  // are made only after the simulation is freed: for 100k renames the peak
  // was the request, the simulation and 100k complete steps at once.
  struct Draft {
    std::string_view from, to;  // null: the step has its own paths
    FileId id;                  // (an exchange, with its `other`, is whole)
    Step::Kind kind = Step::Kind::move;
    std::uint32_t whole = UINT32_MAX;  // its index in whole_, if any
  };
  std::vector<Draft> drafts_;
  std::vector<Step> whole_;
  // Paths the planner makes up (temporary names, paths under a moved
  // directory): never freed while planning, so that drafts can view them.
  std::deque<std::string> made_up_;
  std::string_view make_up(std::string path) { return made_up_.emplace_back(std::move(path)); }
  void add_step(Step step, std::string_view from = {}, std::string_view to = {}) {
    Draft draft{from, to, step.id, step.kind};
    const Step& read = step;  // const: reading the rare fields makes nothing
    const bool plain = to.data() != nullptr && read.link_old().empty() && read.link_new().empty() &&
                       read.scratch().empty() && read.info().empty() && step.old_mode == 0 && step.new_mode == 0 &&
                       step.from.empty() && step.to.empty() && step.other == FileId{};
    if (!plain) {
      draft.whole = static_cast<std::uint32_t>(whole_.size());
      whole_.push_back(std::move(step));
    }
    drafts_.push_back(draft);
  }
  void finish_steps();
  // Keyed by views of the objects' paths (objects_ never reallocates).
  PathIndex<&Object::original> by_original_{objects_};
  PathIndex<&Object::current> occupant_{objects_};
  PathIndex<&Object::final_path> arriving_{objects_};
  PathMap<dev_t> created_;
  PathSet trashed_, trash_names_;
  bool moved_to_trash(std::string_view path) const { return !trashed_.empty() && trashed_.count(path); }
  PathMap<std::optional<struct stat>> disk_cache_;
  // What resolve_directory() found behind symbolic links, valid while
  // `generation_` is `followed_generation_`: a dired opened through a link
  // asks about that link for every entry.
  PathMap<std::optional<struct stat>> followed_;
  std::uint64_t followed_generation_ = 0;
  // The last directory resolve() found on disk or created: every entry of a
  // big directory asks about the same parent. Any change to directories in
  // the simulation (a directory moved, created, trashed) bumps `generation_`.
  std::uint64_t generation_ = 0, memo_generation_ = ~std::uint64_t(0);
  // The memo also answers for the entries of that directory: how its walk
  // up concluded is how theirs would (see resolve_entry).
  std::string memo_path_;
  Place memo_place_;
  Chain::Kind memo_chain_ = Chain::Kind::root;
  std::string memo_original_;
  // Names and inodes of directories that many operations touch, read once
  // with getdents instead of one lstat per name (see list_busy_directories).
  // Compact (24 bytes an entry plus the name, and 8 for the index): entries
  // in one arena, found by hash. A sorted index cost a sort and ~17 string
  // comparisons a lookup: a quarter of planning's instructions.
  struct Listing {
    struct Entry {  // 16 bytes: a listing of 100k names is 1.6 MB of them
      ino_t ino;
      std::uint32_t offset;
      std::uint16_t length;  // NAME_MAX at most
      unsigned char type;
    };
    dev_t dev = 0;
    std::string names;
    std::vector<Entry> entries;
    // Open addressing: entry index + 1, 0 for an empty slot; a power of two
    // at least twice the entries.
    std::vector<std::uint32_t> slots;
    std::string_view name(const Entry& e) const { return std::string_view(names).substr(e.offset, e.length); }
    static std::size_t hash(std::string_view key) { return static_cast<std::size_t>(path_hash(key)); }
    void index() {
      std::size_t capacity = 16;
      while (capacity < 2 * entries.size()) capacity *= 2;
      slots.assign(capacity, 0);
      for (std::size_t i = 0; i < entries.size(); ++i) {
        std::size_t at = hash(name(entries[i])) & (capacity - 1);
        while (slots[at] != 0) at = (at + 1) & (capacity - 1);
        slots[at] = static_cast<std::uint32_t>(i + 1);
      }
    }
    const Entry* find(std::string_view wanted) const {
      if (slots.empty()) return nullptr;
      const std::size_t mask = slots.size() - 1;
      for (std::size_t at = hash(wanted) & mask; slots[at] != 0; at = (at + 1) & mask) {
        const Entry& e = entries[slots[at] - 1];
        if (name(e) == wanted) return &e;
      }
      return nullptr;
    }
  };
  PathMap<Listing> listings_;
  std::string_view last_listing_dir_;  // a key of listings_
  const Listing* last_listing_ = nullptr;
  std::vector<bool> disk_cache_lengths_ = std::vector<bool>(PATH_MAX + 1);  // of disk_cache_'s keys (PATH_MAX: that or longer)
  std::vector<std::string> make_directories_;
};

std::optional<struct stat> Planner::disk_exact(std::string_view path) {
  std::optional<struct stat> st;
  try {
    st = runner_.lstat(path);
  } catch (const detail::OsError& e) {
    problem(path, std::string("cannot be examined: ") + std::strerror(e.error));
  }
  return st;
}

std::optional<struct stat> Planner::disk(std::string_view path) {
  // The cache holds directories, mostly shorter than the paths asked about:
  // no hashing for a length it does not hold.
  if (disk_cache_lengths_[std::min<std::size_t>(path.size(), PATH_MAX)]) {
    auto it = disk_cache_.find(path);
    if (it != disk_cache_.end()) return it->second;
  }
  if (!listings_.empty()) {
    auto [parent, name] = split(path);
    const Listing* listing = nullptr;
    if (last_listing_ && parent == last_listing_dir_) {  // most entries asked about are in the last one
      listing = last_listing_;
    } else if (auto it = listings_.find(parent); it != listings_.end()) {
      listing = &it->second;
      last_listing_dir_ = it->first;
      last_listing_ = listing;
    }
    if (listing) {
      const Listing::Entry* entry = listing->find(name);
      if (!entry) return std::nullopt;
      const unsigned char type = entry->type;
      if (type != DT_DIR && type != DT_UNKNOWN) {
        // Enough to plan with; permission bits are read exactly where needed.
        struct stat st {};
        st.st_dev = listing->dev;
        st.st_ino = entry->ino;
        st.st_mode = DTTOIF(type);
        return st;
      }
    }
  }
  std::optional<struct stat> st = disk_exact(path);
  // Directories are asked about again and again (every entry's parent); files once.
  if (st && S_ISDIR(st->st_mode)) {
    disk_cache_.emplace(std::string(path), st);
    disk_cache_lengths_[std::min<std::size_t>(path.size(), PATH_MAX)] = true;
  }
  return st;
}

// A batch of 100k renames in one directory would cost 200k lstat calls (is
// the source the same inode, is the destination free); one pass of getdents
// answers both. Only for directories with many operations, and only as a
// first answer: an inode that does not match (a mount point, overlayfs) is
// asked again with lstat.
void Planner::list_busy_directories(std::span<const OperationView> operations) {
  constexpr std::size_t busy = 64;
  // Keyed by views into the operations: no string per operation. Counted
  // by runs: a batch's operations mostly come directory by directory.
  std::unordered_map<std::string_view, std::size_t, PathHash> uses;
  std::string_view run;
  std::size_t run_length = 0;
  auto use = [&](std::string_view dir) {
    if (dir == run) {
      ++run_length;
      return;
    }
    if (run_length) uses[run] += run_length;
    run = dir;
    run_length = 1;
  };
  for (const OperationView& op : operations) {
    if (op.kind != Operation::Kind::rename) continue;
    use(split(op.source).first);
    use(split(op.destination).first);
  }
  if (run_length) uses[run] += run_length;
  for (const auto& [dir, count] : uses) {
    if (count < busy) continue;
    const int fd = ::open(std::string(dir).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;  // lstat will say why, name by name
    struct stat st {};
    DIR* stream = ::fstat(fd, &st) == 0 ? ::fdopendir(fd) : nullptr;
    if (!stream) {
      ::close(fd);
      continue;
    }
    Listing listing;
    listing.dev = st.st_dev;
    // Enough for the entries the batch names, without copies while it
    // grows (pages reserved and not written cost nothing).
    listing.entries.reserve(count);
    while (const dirent* entry = ::readdir(stream)) {
      const std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      listing.entries.push_back({entry->d_ino, static_cast<std::uint32_t>(listing.names.size()),
                                 static_cast<std::uint16_t>(name.size()), entry->d_type});
      listing.names += name;
    }
    ::closedir(stream);
    if (listing.entries.size() >= UINT32_MAX / 2) continue;  // lstat answers, name by name
    listing.index();
    listings_.emplace(dir, std::move(listing));
  }
}

// What is at `path` in the simulated tree.
Planner::Place Planner::resolve(std::string_view path, std::optional<std::uint32_t> hash) {
  if (memo_generation_ == generation_) {
    if (path == memo_path_) return memo_place_;
    // An entry of the remembered directory (every rename in a big directory
    // asks about its destination there): its ancestors were walked already.
    const std::size_t n = memo_path_.size();
    if (path.size() > n + 1 && path[n] == '/' && path.starts_with(memo_path_) &&
        path.find('/', n + 1) == std::string_view::npos)
      return resolve_entry(path, hash ? *hash : index_hash(path));
  }
  Chain chain;
  Place place = resolve_uncached(path, chain);
  if (place.kind != Place::Kind::object && place.kind != Place::Kind::absent && S_ISDIR(place.st.st_mode)) {
    memo_generation_ = generation_;
    memo_path_ = path;
    memo_place_ = place;
    memo_chain_ = chain.kind;
    if (chain.kind == Chain::Kind::inside) memo_original_ = std::move(chain.original);
  }
  return place;
}

// resolve_uncached() for `path` directly inside the remembered directory:
// the same checks of `path` itself, then the answer its walk above gave.
Planner::Place Planner::resolve_entry(std::string_view path, std::uint32_t hash) {
  Place place;
  if (const auto there = occupant_.find(path, hash)) return object_place(*there);
  if (auto it = created_.empty() ? created_.end() : created_.find(path); it != created_.end()) {
    place.kind = Place::Kind::created;
    place.st.st_mode = S_IFDIR | 0755;
    place.st.st_dev = it->second;
    return place;
  }
  if (by_original_.count(path, hash) || moved_to_trash(path)) return place;  // moved away or trashed
  switch (memo_chain_) {
    case Chain::Kind::created:  // nothing is in a created directory but what the simulation put there
      return place;
    case Chain::Kind::inside: {  // the directory is inside a moved object: its original contents
      const std::string original = memo_original_ + std::string(path.substr(memo_path_.size()));
      if (by_original_.count(original) || moved_to_trash(original)) return place;
      if (auto st = disk(original)) {
        place.kind = Place::Kind::disk;
        place.st = *st;
      }
      return place;
    }
    case Chain::Kind::root:
      break;
  }
  if (auto st = disk(path)) {
    place.kind = Place::Kind::disk;
    place.st = *st;
  }
  return place;
}

Planner::Place Planner::resolve_uncached(std::string_view path, Chain& chain) {
  Place place;
  std::string_view q = path;
  for (;;) {
    if (const auto there = occupant_.find(q)) {
      if (q.size() == path.size()) return object_place(*there);
      // Inside an object that is a directory: look at its original contents.
      const std::string original = std::string(objects_[*there].original).append(path.substr(q.size()));
      if (by_original_.count(original) || moved_to_trash(original)) return place;  // moved away
      if (auto st = disk(original)) {
        place.kind = Place::Kind::disk;
        place.st = *st;
        chain.kind = Chain::Kind::inside;
        chain.original = original;
      }
      return place;
    }
    // (A heterogeneous find hashes even in an empty map: these are mostly empty.)
    if (auto it = created_.empty() ? created_.end() : created_.find(q); it != created_.end()) {
      if (q.size() == path.size()) {
        place.kind = Place::Kind::created;
        place.st.st_mode = S_IFDIR | 0755;
        place.st.st_dev = it->second;
        chain.kind = Chain::Kind::created;
      }
      return place;
    }
    if (by_original_.count(q) || moved_to_trash(q)) return place;  // moved away or trashed
    if (q == "/") break;
    q = split(q).first;
  }
  if (auto st = disk(path)) {
    place.kind = Place::Kind::disk;
    place.st = *st;
    chain.kind = Chain::Kind::root;
  }
  return place;
}

std::string Planner::on_disk(std::string_view path) {
  Chain chain;
  resolve_uncached(path, chain);
  return chain.kind == Chain::Kind::inside ? std::move(chain.original) : std::string(path);
}

Planner::Place Planner::resolve_directory(std::string_view path) {
  Place place = resolve(path);
  if (place.kind != Place::Kind::disk || !S_ISLNK(place.st.st_mode)) return place;
  if (followed_generation_ != generation_) {
    followed_.clear();
    followed_generation_ = generation_;
  }
  auto it = followed_.find(path);
  if (it == followed_.end()) {
    struct stat st {};
    // Dangling, a loop, or no permission: the link stays a link, not a directory.
    const bool ok = ::stat(on_disk(path).c_str(), &st) == 0;
    it = followed_.emplace(std::string(path), ok ? std::optional<struct stat>(st) : std::nullopt).first;
  }
  if (it->second) place.st = *it->second;
  return place;
}

std::size_t Planner::object_at(std::string_view original, const OperationView& op) {
  const std::uint32_t hash = index_hash(original);  // of all three keys for now
  if (const auto known = by_original_.find(original, hash)) {
    if (!(objects_[*known].id == op.id)) problem(original, "appears twice with different inodes");
    return *known;
  }
  Object object;
  object.original = object.current = object.final_path = original;
  object.id = op.id;
  object.hash_current = object.hash_final = hash;
  const std::size_t index = objects_.size();
  auto st = disk(original);
  if (st && (st->st_dev != op.id.dev || st->st_ino != op.id.ino))
    st = disk_exact(original);  // a listing's inode may differ from lstat's (a mount point, overlayfs)
  if (st) {
    object.st.st_mode = st->st_mode;
    object.st.st_dev = st->st_dev;
    object.st.st_ino = st->st_ino;
    if (st->st_dev != op.id.dev || st->st_ino != op.id.ino) {
      problem(original, "changed on disk since the edit began");
      object.refused = true;
    }
  } else {
    problem(original, "vanished since the edit began");
    object.refused = true;
  }
  objects_.push_back(std::move(object));
  by_original_.emplace(index, hash);
  occupant_.emplace(index, hash);
  return index;
}

RenamePlan Planner::make(std::span<const OperationView> operations, std::vector<OperationView>* owner) {
  const std::size_t count = operations.size();
  list_busy_directories(operations);
  objects_.reserve(operations.size());
  by_original_.reserve(operations.size());
  occupant_.reserve(operations.size());
  // 1. Every operation on its own.
  for (std::size_t i = 0; i < operations.size(); ++i) {
    if ((i & 1023) == 0) check_cancel();
    const OperationView& op = operations[i];
    if (std::string why; !path_ok(op.source, why)) {
      problem(op.source, why);
      continue;
    }
    if (op.kind == Operation::Kind::make_directory) {
      make_directories_.emplace_back(op.source);
      continue;
    }
    const std::size_t o = object_at(op.source, op);
    Object& object = objects_[o];
    const bool exists = object.st.st_ino != 0;
    switch (op.kind) {
      case Operation::Kind::rename:
        if (op.destination == "/") {  // not a name path_problem() can explain
          problem(op.source, "/ is a directory that contains " + printable(op.source));
          break;
        }
        if (std::string why; !path_ok(op.destination, why)) {
          problem(op.destination, why);
          break;
        }
        if (object.moving) {
          problem(op.source, "is renamed twice in this batch");
          break;
        }
        if (op.destination == op.source) break;
        if (exists && S_ISDIR(object.st.st_mode) && op.destination.starts_with(op.source) &&
            op.destination.size() > op.source.size() && op.destination[op.source.size()] == '/') {
          problem(op.source, "a directory cannot move into its own subtree (" + printable(op.destination) + ")");
          break;
        }
        object.moving = true;
        object.final_path = op.destination;
        object.overwrite = op.overwrite;
        break;
      case Operation::Kind::chmod:
        if (exists) {
          if (auto exact = disk_exact(op.source)) object.st.st_mode = exact->st_mode;  // a listing has no mode
        }
        if (op.mode > 07777) {
          problem(op.source, "invalid mode " + std::to_string(op.mode));
        } else if (exists && S_ISLNK(object.st.st_mode)) {
          problem(op.source, "a symbolic link has no permissions of its own");
        } else if (exists && (object.st.st_mode & 07777) != op.mode) {
          object.new_mode = op.mode;
        }
        break;
      case Operation::Kind::retarget: {
        if (op.target.empty() || op.target.find('\0') != std::string_view::npos || op.target.size() >= PATH_MAX) {
          problem(op.source, "invalid link target");
          break;
        }
        if (exists && !S_ISLNK(object.st.st_mode)) {
          problem(op.source, "is not a symbolic link");
          break;
        }
        if (!exists) break;
        char buffer[PATH_MAX];
        const ssize_t n = ::readlink(std::string(op.source).c_str(), buffer, sizeof buffer);
        if (n < 0) {
          problem(op.source, std::string("cannot read the link: ") + std::strerror(errno));
          break;
        }
        object.link = std::make_unique<Object::Link>();
        object.link->old_target.assign(buffer, static_cast<std::size_t>(n));
        if (object.link->old_target != op.target) object.link->new_target = op.target;
        break;
      }
      case Operation::Kind::make_directory:
        break;
    }
  }
  // Only the paths they view are needed from here on.
  if (owner) {
    operations = {};
    std::vector<OperationView>().swap(*owner);
  }
  // Made now, these may take the place the views had.
  arriving_.reserve(objects_.size());
  drafts_.reserve(objects_.size() + 16);
  // 2. The batch as a whole: one destination per source.
  for (std::size_t o = 0; o < objects_.size(); ++o) {
    if (!objects_[o].moving) continue;
    objects_[o].hash_final = index_hash(objects_[o].final_path);
    const std::size_t first = arriving_.emplace(o, objects_[o].hash_final);
    if (first != o) {
      objects_[o].refused = true;
      problem(objects_[o].final_path, "two files would get this name: " + printable(objects_[first].original) +
                                          " and " + printable(objects_[o].original));
    }
  }
  // Ordering finds the problems only the simulation shows (occupied
  // destinations, parents that are files); the objects already refused stay put.
  for (auto& object : objects_)
    if (object.refused) object.moving = false;
  order();
  if (!problems_.empty()) throw BatchRefused(std::move(problems_));
  finish_steps();
  RenamePlan plan;
  plan.steps = std::move(steps_);
  plan.operations = count;
  return plan;
}

// Frees the simulation, then makes the steps from the drafts.
void Planner::finish_steps() {
  by_original_.clear();
  occupant_.clear();
  arriving_.clear();
  std::vector<Object>().swap(objects_);
  last_listing_ = nullptr;
  listings_.clear();
  disk_cache_.clear();
  steps_.reserve(drafts_.size());
  for (const Draft& draft : drafts_) {  // made in place: 100k of them
    Step& step = draft.whole != UINT32_MAX ? steps_.emplace_back(std::move(whole_[draft.whole])) : steps_.emplace_back();
    if (draft.whole == UINT32_MAX) {
      step.kind = draft.kind;
      step.id = draft.id;
    }
    if (draft.to.data() != nullptr) {
      step.from = std::string(draft.from);  // constructed, then moved: assign() is slower into an empty string
      step.to = std::string(draft.to);
    }
  }
  std::vector<Draft>().swap(drafts_);
  std::vector<Step>().swap(whole_);
  std::deque<std::string>().swap(made_up_);
}

// What stops object `o` from moving to its final path now. Edges (the object
// that must move first): (b) `arrive`, a pending object will become an
// ancestor of the destination; (c) `occupy_ancestor`, a pending object sits
// at an ancestor of the destination and will leave; (a) `occupy`, a pending
// object sits at the destination itself (chains, cycles).
Planner::Blocker Planner::blocker(std::size_t o) {
  const Object& object = objects_[o];
  const std::string_view dest = object.final_path;
  Blocker b;
  // No ancestor can be held when the parent is shorter than every key (a
  // batch in one directory: no walk at all).
  const bool ancestors_held = split(dest).first.size() >= std::min(arriving_.shortest(), occupant_.shortest());
  for (std::string_view a = split(dest).first; ancestors_held; a = split(a).first) {
    if (const auto coming = arriving_.find(a); coming && *coming != o && !objects_[*coming].done) {
      b.kind = Blocker::Kind::edge;
      b.edge = Edge::arrive;
      b.object = *coming;
      return b;
    }
    if (const auto at = occupant_.find(a)) {
      const Object& there = objects_[*at];
      if (there.moving && !there.done) {
        b.kind = Blocker::Kind::edge;
        b.edge = Edge::occupy_ancestor;
        b.object = *at;
        return b;
      }
    }
    if (a == "/") break;
  }
  const std::string_view parent = split(dest).first;
  const Place up = resolve_directory(parent);
  if (up.kind == Place::Kind::absent) {
    b.kind = Blocker::Kind::make_parent;
    return b;
  }
  if (!S_ISDIR(up.st.st_mode)) {
    b.kind = Blocker::Kind::problem;
    b.reason = "cannot go to " + printable(dest) + ": " + printable(parent) + " is not a directory";
    return b;
  }
  // A directory that stays and holds the object ("." or ".." once Emacs
  // expanded them): no overwrite can make it free, it would take the object along.
  const bool holds_object = object.current.size() > dest.size() && object.current[dest.size()] == '/' &&
                            object.current.starts_with(dest);
  if (const auto at = occupant_.find(dest, object.hash_final)) {
    const Object& there = objects_[*at];
    if (there.moving && !there.done) {
      b.kind = Blocker::Kind::edge;
      b.edge = Edge::occupy;
      b.object = *at;
      return b;
    }
    b.kind = Blocker::Kind::problem;
    b.reason = holds_object ? printable(dest) + " is a directory that contains " + printable(object.original)
                            : "cannot become " + printable(dest) + ": it exists and is part of this batch without leaving";
    return b;
  }
  const Place here = resolve(dest, object.hash_final);
  if (here.kind == Place::Kind::disk) {
    if (here.st.st_dev == object.id.dev && here.st.st_ino == object.id.ino && !another_link(object, dest))
      return b;  // case-insensitive alias
    b.kind = Blocker::Kind::problem;
    if (holds_object) {
      b.reason = printable(dest) + " is a directory that contains " + printable(object.original);
      return b;
    }
    // What confirming could not make work is refused now, without asking.
    b.reason = replace_problem(object, dest, here.st);
    if (!b.reason.empty()) return b;
    if (object.overwrite) {
      b.kind = Blocker::Kind::victim;
      return b;
    }
    b.reason = printable(dest) + " already exists (not part of this batch; confirm to overwrite it)";
    b.occupied = true;
    return b;
  }
  if (here.kind != Place::Kind::absent) {
    b.kind = Blocker::Kind::problem;
    b.reason = printable(dest) + " is already taken in this batch";
  }
  return b;
}

// Plans mkdirs for every missing directory up to `path`. False (with a
// problem recorded) if something in the way is not a directory.
bool Planner::ensure_directory(const std::string& path, std::string_view why_path) {
  std::vector<std::string> missing;
  std::string at = path;
  for (;;) {
    const Place place = resolve_directory(at);
    if (place.kind != Place::Kind::absent) {
      if (!S_ISDIR(place.st.st_mode)) {
        problem(why_path, printable(at) + " is not a directory");
        return false;
      }
      for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        Step step;
        step.kind = Step::Kind::make_directory;
        step.to = *it;
        add_step(std::move(step));
        created_.emplace(*it, place.st.st_dev);
        ++generation_;
      }
      return true;
    }
    missing.push_back(at);
    at = std::string(split(at).first);
  }
}

// Renames `from` to `to` in the simulated tree: the object there and
// everything planned inside it.
void Planner::rewrite(const std::string& from, const std::string& to) {
  ++generation_;
  const std::string prefix = from + "/";
  std::vector<std::size_t> moved_objects;
  for (std::size_t i = 0; i < objects_.size(); ++i) {
    Object& object = objects_[i];
    if (object.current == from || object.current.starts_with(prefix)) {
      occupant_.erase(object.current, object.hash_current);
      object.current = make_up(to + std::string(object.current.substr(from.size())));
      object.hash_current = index_hash(object.current);
      moved_objects.push_back(i);
    }
  }
  for (const std::size_t i : moved_objects) occupant_.assign(i, objects_[i].hash_current);
  std::vector<std::pair<std::string, dev_t>> moved;
  for (auto it = created_.begin(); it != created_.end();) {
    if (it->first.starts_with(prefix)) {
      moved.emplace_back(to + it->first.substr(from.size()), it->second);
      it = created_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& entry : moved) created_.insert(std::move(entry));
}

// Moves object `o` to `path` in the simulated tree (a file: no rewrite).
// `stable` when `path` is the object's own final path (a view into the Batch).
void Planner::relocate(std::size_t o, std::string_view path, bool stable) {
  Object& object = objects_[o];
  occupant_.erase(object.current, object.hash_current);
  if (stable) {
    object.current = path;
    object.hash_current = object.hash_final;
  } else {
    object.current = make_up(std::string(path));
    object.hash_current = index_hash(object.current);
  }
  occupant_.assign(o, object.hash_current);
}

// A directory copied to another file system: nothing else of the batch may
// be inside it, before or after (the copy gives everything in it new
// inodes, which the later steps, recovery and undo could not recognise).
// Records a problem for each such entry.
bool Planner::alone_in_copied_directory(const Object& directory) {
  auto inside = [](std::string_view path, std::string_view dir) {
    return path.size() > dir.size() && path[dir.size()] == '/' && path.starts_with(dir);
  };
  bool alone = true;
  for (const Object& other : objects_) {
    if (&other == &directory) continue;
    if (inside(other.original, directory.original) || inside(other.final_path, directory.final_path) ||
        inside(other.current, directory.current)) {
      problem(other.original, "is inside " + printable(directory.original) +
                                  ", which moves to another file system in the same batch: rename it separately");
      alone = false;
    }
  }
  return alone;
}

void Planner::move(std::size_t o, std::string_view to, bool temporary) {
  Object& object = objects_[o];
  const std::string_view from = object.current;
  Step step;
  step.id = object.id;
  if (object.link) {
    step.link_old() = object.link_old();
    step.link_new() = object.link_new();
  }
  const Place parent = resolve_directory(split(to).first);
  if (parent.st.st_dev != object.st.st_dev) {
    std::string refusal;
    if (S_ISCHR(object.st.st_mode) || S_ISBLK(object.st.st_mode)) {
      refusal = "a device file cannot move across file systems, to " + printable(to);
    } else if (object.new_mode) {
      // The copy has other inodes, and the steps find their files by inode.
      refusal = "cannot change its mode and move it to another file system in one batch";
    } else if (object.through_temporary) {
      refusal = "cannot move across file systems as part of a cycle";
    }
    if (!refusal.empty()) problem(object.original, refusal);
    if (!refusal.empty() || (S_ISDIR(object.st.st_mode) && !alone_in_copied_directory(object))) {
      object.done = true;
      return;
    }
    step.kind = Step::Kind::copy_move;
    step.scratch() = scratch_in(split(to).first);
  }
  if (S_ISDIR(object.st.st_mode)) {
    rewrite(std::string(from), std::string(to));
  } else {
    relocate(o, to, !temporary && to.data() == object.final_path.data());
  }
  if (temporary) {
    object.through_temporary = true;
  } else {
    object.done = true;
  }
  if (step.kind == Step::Kind::move && !object.link) {  // a plain move, as add_step() would draft it
    drafts_.push_back({from, object.current, step.id, Step::Kind::move});
    return;
  }
  add_step(std::move(step), from, object.current);  // where `to` is kept now
}

void Planner::exchange(std::size_t a, std::size_t b) {
  Step step;
  step.kind = Step::Kind::exchange;
  const std::string_view from = objects_[a].current, to = objects_[b].current;
  step.id = objects_[a].id;
  step.other = objects_[b].id;
  // One step may involve two re-targeted symlinks; matching by inode covers
  // the common case, the contents only the first of them.
  if (objects_[a].link || objects_[b].link) {
    step.link_old() = !objects_[a].link_new().empty() ? objects_[a].link_old() : objects_[b].link_old();
    step.link_new() = !objects_[a].link_new().empty() ? objects_[a].link_new() : objects_[b].link_new();
  }
  const std::string pa(from), pb(to);
  const std::string parking(1, '\0');  // no real path contains NUL
  rewrite(pa, parking);
  rewrite(pb, pa);
  rewrite(parking, pb);
  objects_[a].done = objects_[b].done = true;
  add_step(std::move(step), from, to);
}

// Whether `dest`, the same inode as `object`, is another name of it (a hard
// link: occupied like any other file) rather than the same entry spelled in
// another case on a case-insensitive file system. Asked rarely: only the
// inode matched.
bool Planner::another_link(const Object& object, std::string_view dest) {
  if (S_ISDIR(object.st.st_mode)) return false;  // no hard links to directories
  const std::string path = on_disk(dest);
  const auto st = disk_exact(path);
  if (!st || st->st_nlink <= 1) return false;
  // Spelled exactly so in its directory: an entry of its own.
  const auto [parent, name] = split(path);
  DIR* stream = ::opendir(std::string(parent).c_str());
  if (!stream) return true;  // cannot tell: asking is the safe side
  bool found = false;
  while (const dirent* entry = ::readdir(stream)) {
    if (name == entry->d_name) {
      found = true;
      break;
    }
  }
  ::closedir(stream);
  return found;
}

// Why `victim`, on disk at `dest`, cannot be replaced by `object` even if
// the user confirmed; empty if it can. As rename(2) and mv: a directory only
// by a directory, and only when empty; and the victim goes to the trash, so
// it must be on the trash's file system.
std::string Planner::replace_problem(const Object& object, std::string_view dest, const struct stat& victim) {
  const bool from_directory = S_ISDIR(object.st.st_mode), onto_directory = S_ISDIR(victim.st_mode);
  if (onto_directory && !from_directory) return "cannot replace the directory " + printable(dest) + " with a non-directory";
  if (from_directory && !onto_directory) return "cannot replace the non-directory " + printable(dest) + " with a directory";
  if (onto_directory) {
    const std::string path = on_disk(dest);
    DIR* stream = ::opendir(path.c_str());
    if (!stream) return "cannot replace " + printable(dest) + ": " + std::strerror(errno);
    bool empty = true;
    while (const dirent* entry = ::readdir(stream)) {
      const std::string_view name = entry->d_name;
      if (name != "." && name != "..") {
        empty = false;
        break;
      }
    }
    ::closedir(stream);
    if (!empty) return "cannot replace the directory " + printable(dest) + ": it is not empty";
  }
  const std::string& why_not = trash_for(dest, victim).why_not;
  return why_not.empty() ? std::string() : "cannot overwrite " + printable(dest) + ": " + why_not;
}

const Planner::Trash& Planner::trash_for(std::string_view dest, const struct stat& victim) {
  if (const auto known = trashes_.find(victim.st_dev); known != trashes_.end()) return known->second;
  Trash trash;
  // The trash directories are created when the step runs and never removed:
  // other programs share them. Until then, the device is its nearest ancestor's.
  const std::string files = trash_dir_ + "/files";
  Place trash_place = resolve_directory(files);
  for (std::string at = files; trash_place.kind == Place::Kind::absent && at != "/";) {
    at = std::string(split(at).first);
    trash_place = resolve_directory(at);
  }
  if (trash_place.kind != Place::Kind::absent && !S_ISDIR(trash_place.st.st_mode))
    trash.why_not = "the trash " + printable(trash_dir_) + " is not a directory";
  else if (trash_place.st.st_dev == victim.st_dev)
    trash.dir = trash_dir_;
  else
    trash = volume_trash(dest, victim);
  return trashes_.emplace(victim.st_dev, std::move(trash)).first->second;
}

// A victim on another file system than the home trash goes to that file
// system's own trash, as the freedesktop.org spec says (a rename cannot
// cross file systems, and a copy would not be the same file for undo):
// $topdir/.Trash/$uid when an administrator made $topdir/.Trash (a sticky
// directory, not a link), else $topdir/.Trash-$uid, where $topdir is the
// top of the victim's file system. Either is taken only if it is a real
// directory of this user's, or can be made.
Planner::Trash Planner::volume_trash(std::string_view dest, const struct stat& victim) {
  const std::string cannot = "it is on another file system than the trash " + printable(trash_dir_);
  std::unique_ptr<char, decltype(&::free)> real(::realpath(on_disk(split(dest).first).c_str(), nullptr), &::free);
  if (!real) return {{}, cannot + ", and its directory cannot be resolved: " + std::strerror(errno)};
  std::string top(real.get());
  struct stat st {};
  // A mount point replaced: rename(2) would say EBUSY anyway.
  if (::stat(top.c_str(), &st) != 0 || st.st_dev != victim.st_dev) return {{}, cannot};
  while (top != "/") {
    const std::string parent(split(top).first);
    if (::stat(parent.c_str(), &st) != 0 || st.st_dev != victim.st_dev) break;
    top = parent;
  }
  const std::string base = top == "/" ? std::string() : top;
  const std::string uid = std::to_string(::geteuid());
  // Empty if `dir` is this user's trash directory, or can be made in `parent`.
  const auto unusable = [](const std::string& dir, const std::string& parent) -> std::string {
    struct stat here {};
    if (::lstat(dir.c_str(), &here) == 0) {
      if (!S_ISDIR(here.st_mode) || here.st_uid != ::geteuid())
        return printable(dir) + " is not a trash directory of this user's";
      return {};
    }
    if (errno != ENOENT) return printable(dir) + ": " + std::strerror(errno);
    if (::faccessat(AT_FDCWD, parent.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
      return "cannot make the trash " + printable(dir) + ": " + std::strerror(errno);
    return {};
  };
  struct stat shared {};
  const std::string admin = base + "/.Trash";
  if (::lstat(admin.c_str(), &shared) == 0 && S_ISDIR(shared.st_mode) && (shared.st_mode & S_ISVTX) &&
      unusable(admin + "/" + uid, admin).empty())
    return {admin + "/" + uid, {}};
  const std::string own = base + "/.Trash-" + uid;
  if (const std::string why = unusable(own, top); !why.empty()) return {{}, cannot + ", and " + why};
  return {own, {}};
}

void Planner::trash(std::size_t o, const struct stat& victim) {
  const std::string dest(objects_[o].final_path);
  const std::string& dir = trash_for(dest, victim).dir;  // replace_problem() found it usable
  const std::string files = dir + "/files", info = dir + "/info";
  std::string base(split(dest).second);
  std::string name = base;
  for (int n = 2;; ++n) {
    if (!trash_names_.count(name) && resolve(files + "/" + name).kind == Place::Kind::absent &&
        resolve(info + "/" + name + ".trashinfo").kind == Place::Kind::absent)
      break;
    name = base + "." + std::to_string(n);
  }
  trash_names_.insert(name);
  Step step;
  step.kind = Step::Kind::trash;
  step.from = dest;
  step.to = files + "/" + name;
  step.scratch() = info + "/" + name + ".trashinfo";
  step.info() = "[Trash Info]\nPath=" + trash_url(dest) + "\nDeletionDate=" + trash_date() + "\n";
  step.id = {static_cast<std::uint64_t>(victim.st_dev), static_cast<std::uint64_t>(victim.st_ino)};
  add_step(std::move(step));
  trashed_.insert(dest);
  ++generation_;
}

void Planner::order() {
  const std::size_t n = objects_.size();
  std::vector<char> on_stack(n, 0);
  struct Entry {
    std::size_t object;
    Edge edge_in;
  };
  std::vector<Entry> stack;
  std::size_t budget = 8 * n + 1024;  // a guard: every round makes progress, this never trips
  for (bool pending = true; pending;) {
    pending = false;
    for (std::size_t start = 0; start < n; ++start) {
      if (!objects_[start].moving || objects_[start].done) continue;
      pending = true;
      stack.push_back({start, Edge::none});
      on_stack[start] = 1;
      while (!stack.empty()) {
        if ((drafts_.size() & 1023) == 0) check_cancel();
        if (budget-- == 0) {
          problem(objects_[start].original, "internal error: the rename order did not converge");
          return;
        }
        const std::size_t o = stack.back().object;
        if (objects_[o].done) {
          on_stack[o] = 0;
          stack.pop_back();
          continue;
        }
        const Blocker b = blocker(o);
        switch (b.kind) {
          case Blocker::Kind::ready:
            move(o, objects_[o].final_path, false);
            objects_[o].done = true;
            break;
          case Blocker::Kind::problem:
            problem(objects_[o].original, b.reason, b.occupied ? std::string_view(objects_[o].final_path) : std::string_view{});
            if (b.occupied) {
              // A question, not a refusal: go on as if the user said yes, so
              // that what depends on this move (another file taking the name
              // it leaves) is judged as it will be then, not refused for now.
              objects_[o].overwrite = true;
              break;
            }
            objects_[o].done = true;
            break;
          case Blocker::Kind::make_parent:
            if (!ensure_directory(std::string(split(objects_[o].final_path).first), objects_[o].original))
              objects_[o].done = true;
            break;
          case Blocker::Kind::victim: {
            const Place here = resolve(objects_[o].final_path);
            trash(o, here.st);
            break;
          }
          case Blocker::Kind::edge: {
            const std::size_t j = b.object;
            if (!on_stack[j]) {
              stack.push_back({j, b.edge});
              on_stack[j] = 1;
              break;
            }
            // A cycle: stack[p] == j ... stack.back() == o, closed by o -> j.
            std::size_t p = stack.size() - 1;
            while (stack[p].object != j) --p;
            const bool two = stack.size() - p == 2 || (j == o);
            if (two && j != o && b.edge == Edge::occupy && stack.back().edge_in == Edge::occupy &&
                objects_[o].st.st_dev == objects_[j].st.st_dev) {
              exchange(o, j);
              break;
            }
            // Park the object that some edge of the cycle waits to see leave
            // (not one it waits to see arrive), in its own directory.
            std::optional<std::size_t> park;  // a position in `stack`
            if (b.edge != Edge::arrive) park = p;
            for (std::size_t k = p + 1; !park && k < stack.size(); ++k)
              if (stack[k].edge_in != Edge::arrive) park = k;
            if (!park) {
              problem(objects_[o].original, "its destination depends on itself through " +
                                                printable(objects_[j].original));
              objects_[o].done = true;
              break;
            }
            const std::size_t parked = stack[*park].object;
            move(parked, scratch_in(split(objects_[parked].current).first), true);
            // What waited on the parked object may go now; the parked object
            // and those above it come round again in the next sweep.
            for (std::size_t k = *park; k < stack.size(); ++k) on_stack[stack[k].object] = 0;
            stack.resize(*park);
            break;
          }
        }
      }
    }
  }
  for (const auto& dir : make_directories_) ensure_directory(dir, dir);
  for (const auto& object : objects_) {
    if (object.link_new().empty()) continue;
    Step step;
    step.kind = Step::Kind::retarget;
    step.from = std::string(object.current);
    step.id = object.id;
    step.link_old() = object.link_old();
    step.link_new() = object.link_new();
    step.scratch() = scratch_in(split(object.current).first);
    add_step(std::move(step));
  }
  for (const auto& object : objects_) {
    if (!object.new_mode) continue;
    Step step;
    step.kind = Step::Kind::chmod;
    step.from = std::string(object.current);
    step.id = object.id;
    step.old_mode = object.st.st_mode & 07777;
    step.new_mode = *object.new_mode;
    add_step(std::move(step));
  }
}

// The journal's plan: integers as LEB128 varints, and each path as the
// length it shares with the path before it plus the rest, because a batch's
// paths mostly share their directory (a 100k batch: ~2 MB instead of ~10).
struct Reader {
  std::string_view in;
  std::size_t at = 0;
  std::string last;
  [[noreturn]] static void corrupt() { throw std::runtime_error("the journal's plan is corrupt or truncated"); }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= in.size()) corrupt();
      const auto byte = static_cast<unsigned char>(in[at++]);
      v |= std::uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    corrupt();
  }
  std::string s() {
    const std::uint64_t n = varint();
    if (n > in.size() - at) corrupt();
    std::string out(in.substr(at, static_cast<std::size_t>(n)));
    at += static_cast<std::size_t>(n);
    return out;
  }
  std::string path() {
    const std::uint64_t shared = varint();
    if (shared > last.size()) corrupt();
    std::string out = last.substr(0, static_cast<std::size_t>(shared)) + s();
    last = out;
    return out;
  }
};

constexpr std::uint64_t plan_format = 0x44520002;  // "DR" v2

}  // namespace

BatchRefused::BatchRefused(std::vector<Problem> list) : std::runtime_error(describe(list)), problems(std::move(list)) {}

RenamePlan RenamePlan::make(std::span<const OperationView> operations, const std::filesystem::path& trash_dir,
                            const std::atomic<bool>* cancelled) {
  Planner planner(trash_dir, cancelled);
  return planner.make(operations);
}

RenamePlan RenamePlan::make(std::vector<OperationView>&& operations, const std::filesystem::path& trash_dir,
                            const std::atomic<bool>* cancelled) {
  Planner planner(trash_dir, cancelled);
  return planner.make(operations, &operations);
}

RenamePlan RenamePlan::make(const Batch& batch, const std::filesystem::path& trash_dir,
                            const std::atomic<bool>* cancelled) {
  return make(view_of(batch), trash_dir, cancelled);
}

std::vector<OperationView> view_of(const Batch& batch) {
  std::vector<OperationView> views;
  views.reserve(batch.operations.size());
  for (const Operation& op : batch.operations)
    views.push_back({op.kind, op.overwrite, op.mode, op.id, op.source, op.destination, op.target});
  return views;
}

std::string encode_steps(const std::vector<Step>& steps) {
  // Written through a pointer: appending a byte at a time was most of
  // Journal::begin's CPU. The buffer grows by doubling from an estimate
  // (a 100k plan is ~2 MB): sizing it for the worst case at once made a
  // 26 MB string, zero-filled, and the daemon's peak RSS 83 MB.
  constexpr std::size_t varint_max = 10;
  std::string out(steps.size() * 24 + 2 * varint_max, '\0');
  char* w = out.data();
  auto room_for = [&](const Step& s) {
    const std::size_t need = 1 + 16 * varint_max + s.from.size() + s.to.size() + s.link_old().size() +
                             s.link_new().size() + s.scratch().size() + s.info().size();
    const std::size_t at = static_cast<std::size_t>(w - out.data());
    if (out.size() - at < need) out.resize(std::max(out.size() * 2, at + need));
    w = out.data() + at;
  };
  auto varint = [&w](std::uint64_t v) {
    while (v >= 0x80) {
      *w++ = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    *w++ = static_cast<char>(v);
  };
  auto bytes = [&](std::string_view b) {
    varint(b.size());
    if (!b.empty()) std::memcpy(w, b.data(), b.size());
    w += b.size();
  };
  std::string_view last;
  auto path = [&](std::string_view p) {  // the length shared with the previous path, then the rest
    const std::size_t most = std::min(p.size(), last.size());
    const std::size_t shared = static_cast<std::size_t>(std::mismatch(p.begin(), p.begin() + most, last.begin()).first - p.begin());
    varint(shared);
    bytes(p.substr(shared));
    last = p;
  };
  varint(plan_format);
  varint(steps.size());
  for (const Step& s : steps) {
    room_for(s);
    *w++ = static_cast<char>(s.kind);
    path(s.from);
    path(s.to);
    varint(s.id.dev);
    varint(s.id.ino);
    varint(s.other.dev);
    varint(s.other.ino);
    bytes(s.link_old());
    bytes(s.link_new());
    bytes(s.scratch());
    bytes(s.info());
    varint(s.old_mode);
    varint(s.new_mode);
  }
  out.resize(static_cast<std::size_t>(w - out.data()));
  return out;
}

std::vector<Step> decode_steps(std::string_view blob) {
  Reader r{blob, 0, {}};
  if (r.varint() != plan_format) throw std::runtime_error("the journal's plan has an unknown format");
  const std::uint64_t count = r.varint();
  // Each step takes at least 15 bytes: check the claim before reserving.
  if (count > blob.size() / 15) throw std::runtime_error("the journal's plan claims too many steps");
  std::vector<Step> steps;
  steps.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    Step s;
    if (r.at >= blob.size()) Reader::corrupt();
    const auto kind = static_cast<unsigned char>(blob[r.at++]);
    if (kind > static_cast<unsigned char>(Step::Kind::retarget)) Reader::corrupt();
    s.kind = static_cast<Step::Kind>(kind);
    s.from = r.path();
    s.to = r.path();
    s.id.dev = r.varint();
    s.id.ino = r.varint();
    s.other.dev = r.varint();
    s.other.ino = r.varint();
    // Only what is set, so that a plain move stays small.
    using Field = std::string& (Step::*)();
    for (const Field field : std::initializer_list<Field>{&Step::link_old, &Step::link_new, &Step::scratch, &Step::info}) {
      std::string value = r.s();
      if (!value.empty()) (s.*field)() = std::move(value);
    }
    s.old_mode = static_cast<std::uint32_t>(r.varint());
    s.new_mode = static_cast<std::uint32_t>(r.varint());
    steps.push_back(std::move(s));
  }
  return steps;
}

std::filesystem::path default_trash_dir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg == '/') return std::filesystem::path(xdg) / "Trash";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home && *home ? home : "/") / ".local/share/Trash";
}

std::optional<Failpoint> Failpoint::parse(std::string_view spec) {
  constexpr std::string_view prefix = "rename-step:";
  if (!spec.starts_with(prefix)) return std::nullopt;
  spec.remove_prefix(prefix.size());
  const auto colon = spec.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  Failpoint point;
  for (const char c : spec.substr(0, colon)) {
    if (c < '0' || c > '9') return std::nullopt;
    point.step = point.step * 10 + static_cast<std::size_t>(c - '0');
  }
  const auto action = spec.substr(colon + 1);
  if (action == "fail") point.action = Action::fail;
  else if (action == "kill") point.action = Action::kill;
  else if (action == "sigterm") point.action = Action::sigterm;
  else if (action == "cancel") point.action = Action::cancel;
  else if (action == "stall") point.action = Action::stall;
  else if (action == "pause") point.action = Action::pause;
  else return std::nullopt;
  return point;
}

std::string printable(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (const unsigned char c : path) {
    if (c < 0x20 || c == 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace descent::rename
