#include "engine/rename/filesystem.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

namespace descent::rename::detail {

namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int fd) : fd(fd) {}
  Fd(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string z(std::string_view s) { return std::string(s); }

}  // namespace

OsError::OsError(const std::string& doing, std::string path, int error)
    : std::runtime_error(doing + ": " + std::strerror(error)), path(std::move(path)), error(error) {}

Directories::~Directories() {
  for (auto& [path, fd] : fds_) ::close(fd);
}

int Directories::open(std::string_view dir) {
  auto it = fds_.find(std::string(dir));
  if (it != fds_.end()) return it->second;
  const std::string path(dir);
  const int fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw OsError("opening directory " + printable(path), path, errno);
  fds_.emplace(path, fd);
  return fd;
}

void Directories::forget_under(std::string_view dir) {
  for (auto it = fds_.begin(); it != fds_.end();) {
    const std::string_view cached = it->first;
    if (cached.starts_with(dir) && (cached.size() == dir.size() || cached[dir.size()] == '/')) {
      ::close(it->second);
      it = fds_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<std::string> Directories::sync(const std::vector<std::string>& dirs) {
  std::vector<std::string> problems;
  for (const auto& dir : dirs) {
    // A directory may be gone again (created and removed by a rollback).
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.fd < 0) {
      if (errno != ENOENT) problems.push_back("opening " + printable(dir) + ": " + std::strerror(errno));
      continue;
    }
    if (::fsync(fd.fd) != 0) problems.push_back("syncing " + printable(dir) + ": " + std::strerror(errno));
  }
  return problems;
}

std::optional<struct stat> StepRunner::lstat(std::string_view path) {
  auto [parent, name] = split(path);
  struct stat st {};
  int dfd;
  try {
    dfd = dirs_.open(parent);
  } catch (const OsError& e) {
    if (e.error == ENOENT || e.error == ENOTDIR) return std::nullopt;
    throw;
  }
  if (::fstatat(dfd, z(name).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw OsError("examining " + printable(path), std::string(path), errno);
  }
  return st;
}

namespace {

std::optional<std::string> read_link(int dfd, std::string_view name) {
  std::string buffer(4096, '\0');
  const ssize_t n = ::readlinkat(dfd, z(name).c_str(), buffer.data(), buffer.size());
  if (n < 0) return std::nullopt;
  buffer.resize(static_cast<std::size_t>(n));
  return buffer;
}

}  // namespace

void StepRunner::know(const std::vector<Step>& steps) {
  for (const Step& step : steps) {
    if (step.id != FileId{}) found_.insert(step.id);
    if (step.other != FileId{}) found_.insert(step.other);
  }
}

bool StepRunner::found_by_batch(const struct stat& st) const {
  return found_.count(FileId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)}) > 0;
}

bool StepRunner::holds(std::string_view path, const FileId& id, const Step& step) {
  const auto st = lstat(path);
  if (!st) return false;
  if (st->st_dev == id.dev && st->st_ino == id.ino) return true;
  // A re-made link has a new inode, so its target tells; but not another
  // link of the batch's that happens to point the same way.
  if (S_ISLNK(st->st_mode) && !step.link_new().empty() && !found_by_batch(*st)) {
    auto [parent, name] = split(path);
    const auto target = read_link(dirs_.open(parent), name);
    return target && (*target == step.link_old() || *target == step.link_new());
  }
  return false;
}

void StepRunner::rename(std::string_view from, std::string_view to, unsigned flags) {
  auto [from_dir, from_name] = split(from);
  auto [to_dir, to_name] = split(to);
  const int from_fd = dirs_.open(from_dir);
  const int to_fd = dirs_.open(to_dir);
  if (::renameat2(from_fd, z(from_name).c_str(), to_fd, z(to_name).c_str(), flags) != 0) {
    const int error = errno;
    const char* verb = (flags & RENAME_EXCHANGE) ? "exchanging " : "renaming ";
    // EEXIST under RENAME_NOREPLACE: something appeared there concurrently.
    throw OsError(verb + printable(from) + (flags & RENAME_EXCHANGE ? " with " : " to ") + printable(to),
                  std::string(from), error);
  }
  dirs_.forget_under(from);
  dirs_.forget_under(to);
}

void StepRunner::remove_if_present(std::string_view path, bool directory) {
  auto [parent, name] = split(path);
  int dfd;
  try {
    dfd = dirs_.open(parent);
  } catch (const OsError& e) {
    if (e.error == ENOENT) return;
    throw;
  }
  if (::unlinkat(dfd, z(name).c_str(), directory ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT)
    throw OsError("removing " + printable(path), std::string(path), errno);
}

namespace {

// Extended attributes from `in` to `out`: best kept; a target file system
// without them is no reason to fail.
void copy_xattrs(int in, int out, const std::string& shown_out) {
  const ssize_t list_size = ::flistxattr(in, nullptr, 0);
  if (list_size <= 0) return;
  std::string names(static_cast<std::size_t>(list_size), '\0');
  const ssize_t got = ::flistxattr(in, names.data(), names.size());
  for (std::size_t i = 0; got > 0 && i < static_cast<std::size_t>(got);) {
    const char* name = names.c_str() + i;
    const ssize_t value_size = ::fgetxattr(in, name, nullptr, 0);
    if (value_size >= 0) {
      std::string value(static_cast<std::size_t>(value_size), '\0');
      const ssize_t v = ::fgetxattr(in, name, value.data(), value.size());
      if (v >= 0 && ::fsetxattr(out, name, value.data(), static_cast<std::size_t>(v), 0) != 0 && errno != ENOTSUP &&
          errno != EPERM)
        throw OsError("copying attribute " + std::string(name) + " to " + printable(shown_out), shown_out, errno);
    }
    i += std::strlen(name) + 1;
  }
}

// Owner (when allowed), mode and times of `st` onto the open file `out`;
// the times last, since writing into a directory changes its mtime.
void keep_metadata(int out, const struct stat& st, const std::string& shown_out) {
  if (::fchown(out, st.st_uid, st.st_gid) != 0 && errno != EPERM)
    throw OsError("changing owner of " + printable(shown_out), shown_out, errno);
  if (::fchmod(out, st.st_mode & 07777) != 0)
    throw OsError("changing mode of " + printable(shown_out), shown_out, errno);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::futimens(out, times) != 0) throw OsError("setting times of " + printable(shown_out), shown_out, errno);
}

void copy_contents(int in, int out, const std::string& shown_in, const std::string& shown_out,
                   const std::atomic<bool>* cancelled) {
  std::vector<char> buffer(1 << 16);
  for (std::size_t chunks = 0;; ++chunks) {
    // A copy of gigabytes stays cancellable: polled every 4 MiB.
    if (cancelled && (chunks & 63) == 63 && cancelled->load(std::memory_order_relaxed))
      throw OsError("copying " + printable(shown_in), shown_in, ECANCELED);
    const ssize_t n = ::read(in, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw OsError("reading " + printable(shown_in), shown_in, errno);
    }
    if (n == 0) return;
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::write(out, buffer.data() + off, static_cast<std::size_t>(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        throw OsError("writing " + printable(shown_out), shown_out, errno);
      }
      off += w;
    }
  }
}

std::vector<std::string> entries_of(int dfd, const std::string& shown) {
  DIR* dir = ::fdopendir(dfd);
  if (!dir) {
    const int error = errno;
    ::close(dfd);
    throw OsError("reading directory " + printable(shown), shown, error);
  }
  std::vector<std::string> names;
  errno = 0;
  while (const struct dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
    errno = 0;
  }
  const int error = errno;
  ::closedir(dir);
  if (error != 0) throw OsError("reading directory " + printable(shown), shown, error);
  return names;
}

// Everything at `name` in `to_dfd`, copied from `name` in `from_dfd`, the
// way `mv` copies across file systems: files, directories and symlinks with
// mode, times, owner (when allowed) and extended attributes; fifos and
// sockets; hard links between files of the tree stay hard links.
class TreeCopy {
 public:
  TreeCopy(std::string from, std::string to, const std::atomic<bool>* cancelled)
      : from_(std::move(from)), to_(std::move(to)), cancelled_(cancelled) {}

  void run(int from_dfd, const std::string& from_name, int to_dfd, const std::string& to_name) {
    struct stat st {};
    if (::fstatat(from_dfd, from_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      throw OsError("examining " + printable(from_), from_, errno);
    dev_ = st.st_dev;
    to_top_dfd_ = to_dfd;
    to_top_name_ = to_name;
    entry(from_dfd, from_name, st, to_dfd, to_name, "");
  }

 private:
  std::string shown_from(const std::string& rel) const { return rel.empty() ? from_ : from_ + "/" + rel; }
  std::string shown_to(const std::string& rel) const { return rel.empty() ? to_ : to_ + "/" + rel; }

  void entry(int from_dfd, const std::string& name, const struct stat& st, int to_dfd, const std::string& to_name,
             const std::string& rel) {
    if (cancelled_ && cancelled_->load(std::memory_order_relaxed))
      throw OsError("copying " + printable(shown_from(rel)), shown_from(rel), ECANCELED);
    const std::string shown_in = shown_from(rel), shown_out = shown_to(rel);
    if (S_ISDIR(st.st_mode)) return directory(from_dfd, name, st, to_dfd, to_name, rel);
    if (!S_ISLNK(st.st_mode) && st.st_nlink > 1) {
      const auto [first, fresh] = linked_.try_emplace({st.st_dev, st.st_ino}, rel);
      if (!fresh) {
        const std::string first_path = to_top_name_ + "/" + first->second;
        if (::linkat(to_top_dfd_, first_path.c_str(), to_dfd, to_name.c_str(), 0) != 0)
          throw OsError("linking " + printable(shown_out), shown_out, errno);
        return;
      }
    }
    if (S_ISREG(st.st_mode)) {
      Fd in(::openat(from_dfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (in.fd < 0) throw OsError("opening " + printable(shown_in), shown_in, errno);
      Fd out(::openat(to_dfd, to_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (out.fd < 0) throw OsError("creating " + printable(shown_out), shown_out, errno);
      copy_contents(in.fd, out.fd, shown_in, shown_out, cancelled_);
      copy_xattrs(in.fd, out.fd, shown_out);
      keep_metadata(out.fd, st, shown_out);
      return;
    }
    if (S_ISLNK(st.st_mode)) {
      const auto target = read_link(from_dfd, name);
      if (!target) throw OsError("reading link " + printable(shown_in), shown_in, errno);
      if (::symlinkat(target->c_str(), to_dfd, to_name.c_str()) != 0)
        throw OsError("creating " + printable(shown_out), shown_out, errno);
    } else {
      // fifo, socket, device: mknod (a device needs privileges; without
      // them the batch fails and is rolled back).
      if (::mknodat(to_dfd, to_name.c_str(), st.st_mode & (S_IFMT | 0600), st.st_rdev) != 0)
        throw OsError("creating " + printable(shown_out), shown_out, errno);
      if (::fchmodat(to_dfd, to_name.c_str(), st.st_mode & 07777, 0) != 0)
        throw OsError("changing mode of " + printable(shown_out), shown_out, errno);
    }
    if (::fchownat(to_dfd, to_name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0 && errno != EPERM)
      throw OsError("changing owner of " + printable(shown_out), shown_out, errno);
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::utimensat(to_dfd, to_name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      throw OsError("setting times of " + printable(shown_out), shown_out, errno);
  }

  void directory(int from_dfd, const std::string& name, const struct stat& st, int to_dfd, const std::string& to_name,
                 const std::string& rel) {
    const std::string shown_in = shown_from(rel), shown_out = shown_to(rel);
    // The original is removed once the batch is done: find out now, before
    // anything changed, whether that can work.
    if (st.st_dev != dev_)
      throw OsError("moving " + printable(from_) + " across file systems: " + printable(shown_in) +
                        " is a mount point",
                    shown_in, EXDEV);
    if (st.st_uid != ::geteuid() && ::faccessat(from_dfd, name.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
      throw OsError("moving " + printable(from_) + " across file systems: " + printable(shown_in) +
                        " cannot be emptied afterwards",
                    shown_in, errno);
    const int in_fd = ::openat(from_dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (in_fd < 0) throw OsError("opening " + printable(shown_in), shown_in, errno);
    Fd in(in_fd);
    if (::mkdirat(to_dfd, to_name.c_str(), 0700) != 0)
      throw OsError("creating directory " + printable(shown_out), shown_out, errno);
    Fd out(::openat(to_dfd, to_name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (out.fd < 0) throw OsError("opening " + printable(shown_out), shown_out, errno);
    const int listing = ::dup(in.fd);
    if (listing < 0) throw OsError("reading directory " + printable(shown_in), shown_in, errno);
    for (const std::string& child : entries_of(listing, shown_in)) {
      struct stat child_st {};
      const std::string child_rel = rel.empty() ? child : rel + "/" + child;
      if (::fstatat(in.fd, child.c_str(), &child_st, AT_SYMLINK_NOFOLLOW) != 0)
        throw OsError("examining " + printable(shown_from(child_rel)), shown_from(child_rel), errno);
      entry(in.fd, child, child_st, out.fd, child, child_rel);
    }
    copy_xattrs(in.fd, out.fd, shown_out);
    keep_metadata(out.fd, st, shown_out);
  }

  std::string from_, to_;
  const std::atomic<bool>* cancelled_;
  dev_t dev_ = 0;
  int to_top_dfd_ = -1;
  std::string to_top_name_;
  std::map<std::pair<dev_t, ino_t>, std::string> linked_;  // first copy of a multiply-linked file, relative
};

// Removes `name` in `dfd` with everything in it. A directory of ours that
// denies us writing (a copy keeps a read-only directory's mode) is opened up
// first, as the copy's owner may.
void remove_tree(int dfd, const std::string& name, const std::string& shown) {
  struct stat st {};
  if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    throw OsError("examining " + printable(shown), shown, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(dfd, name.c_str(), 0) != 0 && errno != ENOENT)
      throw OsError("removing " + printable(shown), shown, errno);
    return;
  }
  if (st.st_uid == ::geteuid() && (st.st_mode & S_IRWXU) != S_IRWXU)
    ::fchmodat(dfd, name.c_str(), (st.st_mode & 07777) | S_IRWXU, 0);  // if it fails, the removal says why
  const int fd = ::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw OsError("opening " + printable(shown), shown, errno);
  Fd dir(fd);
  const int listing = ::dup(dir.fd);
  if (listing < 0) throw OsError("reading directory " + printable(shown), shown, errno);
  for (const std::string& child : entries_of(listing, shown)) remove_tree(dir.fd, child, shown + "/" + child);
  if (::unlinkat(dfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    throw OsError("removing " + printable(shown), shown, errno);
}

// The names a move across file systems uses besides `scratch` (the copy
// being made, beside `to`): the original set aside until the batch is done,
// beside `from`; the same on its way out; a copy back made by an undo.
std::string aside_of(const Step& step) {
  return std::string(split(step.from).first) + "/" + std::string(split(step.scratch()).second);
}
std::string going_of(const Step& step) { return aside_of(step) + "-gone"; }
std::string back_of(const Step& step) { return aside_of(step) + "-back"; }

}  // namespace

void StepRunner::remove_tree_if_present(std::string_view path) {
  auto [parent, name] = split(path);
  int dfd;
  try {
    dfd = dirs_.open(parent);
  } catch (const OsError& e) {
    if (e.error == ENOENT || e.error == ENOTDIR) return;
    throw;
  }
  remove_tree(dfd, z(name), std::string(path));
  dirs_.forget_under(path);
}

// Copies `from` to `copy` (which must not exist), then makes the copy
// durable: the whole target file system is synced once, which covers every
// file and directory of a tree. A failed copy is removed again.
void StepRunner::copy(std::string_view from, std::string_view copy, const std::atomic<bool>* cancelled) {
  auto [from_dir, from_name] = split(from);
  auto [copy_dir, copy_name] = split(copy);
  const int from_dfd = dirs_.open(from_dir);
  const int copy_dfd = dirs_.open(copy_dir);
  try {
    TreeCopy(std::string(from), std::string(copy), cancelled).run(from_dfd, z(from_name), copy_dfd, z(copy_name));
    Fd dir(::openat(copy_dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.fd < 0 || ::syncfs(dir.fd) != 0) throw OsError("syncing " + printable(copy), std::string(copy), errno);
  } catch (...) {
    remove_tree_if_present(copy);
    throw;
  }
}

// `path` renamed to `aside` and made durable, then removed: a crash halfway
// through the removal leaves a scratch name that recovery clears, never a
// half-emptied directory under the original name.
void StepRunner::discard(std::string_view path, std::string_view aside) {
  const auto st = lstat(path);
  if (!st) return;
  if (!S_ISDIR(st->st_mode)) {
    remove_if_present(path, false);
    return;
  }
  rename(path, aside, RENAME_NOREPLACE);
  Directories::sync({std::string(split(aside).first)});
  remove_tree_if_present(aside);
}

// Replaces the symlink at `path` by one pointing to `target`: a new link at
// `scratch` is exchanged with it, so the name never disappears. The old link
// stays at `scratch` when `keep_old`, so that a rollback can put the very
// same inode back (the client identifies files by inode).
void StepRunner::relink(std::string_view path, std::string_view scratch, std::string_view target, bool keep_old) {
  auto [scratch_dir, scratch_name] = split(scratch);
  const int dfd = dirs_.open(scratch_dir);
  if (::symlinkat(z(target).c_str(), dfd, z(scratch_name).c_str()) != 0)
    throw OsError("creating a link at " + printable(scratch), std::string(scratch), errno);
  try {
    rename(scratch, path, RENAME_EXCHANGE);
  } catch (...) {
    remove_if_present(scratch, false);
    throw;
  }
  if (!keep_old) remove_if_present(scratch, false);
}

std::optional<std::string> StepRunner::link_at(std::string_view path) {
  auto [parent, name] = split(path);
  int dfd;
  try {
    dfd = dirs_.open(parent);
  } catch (const OsError&) {
    return std::nullopt;
  }
  return read_link(dfd, name);
}

void StepRunner::finish(const Step& step) {
  // The old link kept for a rollback (see relink).
  if (step.kind == Step::Kind::retarget && link_at(step.scratch())) remove_if_present(step.scratch(), false);
  // The original of a move across file systems, kept for a rollback.
  if (step.kind == Step::Kind::copy_move && lstat(aside_of(step))) discard(aside_of(step), going_of(step));
}

// A file system's own trash (.Trash-UID, or UID in an administrator's
// .Trash, at its top) may sit where other users write, such as /dev/shm:
// another user could have made it first, as a link to a directory of theirs
// or as their own directory, to be handed the files this user replaces. So
// it must be this user's real directory. (Once it is, a sticky top keeps
// others from swapping it.) The home trash is left as the user set it up,
// links and all.
void StepRunner::check_shared_trash(std::string_view trash, std::string_view file) {
  const std::string uid = std::to_string(::geteuid());
  const auto [above, name] = split(trash);
  if (name != ".Trash-" + uid && !(name == uid && split(above).second == ".Trash")) return;
  const auto st = lstat(trash);
  if (!st || !S_ISDIR(st->st_mode) || st->st_uid != ::geteuid())
    throw OsError("moving " + printable(file) + " to the trash: " + printable(trash) +
                      " is not a trash directory of this user's",
                  std::string(trash), EPERM);
}

// mkdir -p with 0700 (the trash spec's mode); directories that exist are fine.
void StepRunner::make_directories(std::string_view dir) {
  if (dir == "/" || dir.empty()) return;
  if (const auto st = lstat(dir); st && S_ISDIR(st->st_mode)) return;
  make_directories(split(dir).first);
  auto [parent, name] = split(dir);
  if (::mkdirat(dirs_.open(parent), z(name).c_str(), 0700) != 0 && errno != EEXIST)
    throw OsError("creating directory " + printable(dir), std::string(dir), errno);
}

// Planning saw every object; a step moves what is at a path, found through
// the directory's cached descriptor. Between the two, a file may have been
// replaced (an editor's save writes a new one), or a directory on the way
// swapped for a symbolic link to elsewhere: the step would move a file the
// user never asked to. So what is there is checked through the same
// descriptor the rename uses, and anything else fails the step (the batch
// is rolled back). A symbolic link is not checked: an earlier step of the
// batch may have re-made it (re-targeted: a new inode).
void StepRunner::expect(std::string_view path, const FileId& id) {
  if (id == FileId{}) return;
  const auto st = lstat(path);
  if (!st) return;  // the rename says so
  if ((static_cast<std::uint64_t>(st->st_dev) == id.dev && static_cast<std::uint64_t>(st->st_ino) == id.ino) ||
      S_ISLNK(st->st_mode))
    return;
  throw OsError(OsError::Told{},
                "moving " + printable(path) + ": it is not the file the plan saw (replaced since, or reached "
                "another way)",
                std::string(path), ESTALE);
}

void StepRunner::apply(const Step& step) {
  switch (step.kind) {
    case Step::Kind::move:
      expect(step.from, step.id);
      rename(step.from, step.to, RENAME_NOREPLACE);
      return;
    case Step::Kind::exchange:
      expect(step.from, step.id);
      expect(step.to, step.other);
      rename(step.from, step.to, RENAME_EXCHANGE);
      return;
    case Step::Kind::make_directory: {
      auto [parent, name] = split(step.to);
      if (::mkdirat(dirs_.open(parent), z(name).c_str(), 0777) != 0)
        throw OsError("creating directory " + printable(step.to), step.to, errno);
      return;
    }
    case Step::Kind::copy_move: {
      // Copy, rename the complete copy into place, then set the original
      // aside under a scratch name (a rename: same inodes) until the batch
      // is done, so that a rollback puts back the very same files.
      expect(step.from, step.id);
      try {
        copy(step.from, step.scratch(), cancelled_);
      } catch (const OsError& e) {
        if (e.error == ECANCELED) throw;
        // The temporary name means nothing to the user: name the move (the
        // copy's own leftovers are already gone, see copy()).
        throw OsError(OsError::Told{},
                      "moving " + printable(step.from) + " to " + printable(step.to) + " across file systems: " +
                          e.what(),
                      step.from, e.error);
      }
      try {
        rename(step.scratch(), step.to, RENAME_NOREPLACE);
      } catch (...) {
        remove_tree_if_present(step.scratch());
        throw;
      }
      Directories::sync({std::string(split(step.to).first)});
      try {
        rename(step.from, aside_of(step), RENAME_NOREPLACE);
      } catch (...) {
        remove_tree_if_present(step.to);
        throw;
      }
      return;
    }
    case Step::Kind::trash: {
      // The info file first (O_EXCL reserves the name, as the spec asks), then the move.
      auto [info_dir, info_name] = split(step.scratch());
      const std::string_view trash = split(info_dir).first;
      make_directories(trash);
      check_shared_trash(trash, step.from);  // before anything is made in it
      make_directories(info_dir);
      make_directories(split(step.to).first);
      {
        Fd info(::openat(dirs_.open(info_dir), z(info_name).c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (info.fd < 0) throw OsError("creating " + printable(step.scratch()), step.scratch(), errno);
        const std::string& text = step.info();  // planned ahead, so the journal holds it
        if (::write(info.fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
            ::fsync(info.fd) != 0) {
          const int error = errno ? errno : EIO;
          remove_if_present(step.scratch(), false);
          throw OsError("writing " + printable(step.scratch()), step.scratch(), error);
        }
      }
      try {
        expect(step.from, step.id);
        rename(step.from, step.to, RENAME_NOREPLACE);
      } catch (...) {
        remove_if_present(step.scratch(), false);
        throw;
      }
      return;
    }
    case Step::Kind::chmod: {
      if (!holds(step.from, step.id, step))
        throw OsError("changing mode of " + printable(step.from) + " (it is not the file the plan saw)", step.from,
                      ESTALE);
      auto [parent, name] = split(step.from);
      if (::fchmodat(dirs_.open(parent), z(name).c_str(), step.new_mode, 0) != 0)
        throw OsError("changing mode of " + printable(step.from), step.from, errno);
      return;
    }
    case Step::Kind::retarget:
      relink(step.from, step.scratch(), step.link_new(), true);
      return;
  }
}

void StepRunner::revert(const Step& step) {
  switch (step.kind) {
    case Step::Kind::move:
      expect(step.to, step.id);
      rename(step.to, step.from, RENAME_NOREPLACE);
      return;
    case Step::Kind::exchange:
      expect(step.from, step.other);
      expect(step.to, step.id);
      rename(step.from, step.to, RENAME_EXCHANGE);
      return;
    case Step::Kind::make_directory: {
      auto [parent, name] = split(step.to);
      if (::unlinkat(dirs_.open(parent), z(name).c_str(), AT_REMOVEDIR) != 0)
        throw OsError("removing directory " + printable(step.to), step.to, errno);
      dirs_.forget_under(step.to);
      return;
    }
    case Step::Kind::copy_move: {
      if (lstat(aside_of(step))) {
        // The original is still set aside: drop the copy (the original is
        // intact, so the copy needs no care), bring the original back.
        remove_tree_if_present(step.to);
        rename(aside_of(step), step.from, RENAME_NOREPLACE);
        return;
      }
      // An undo, after the original went: copy back, then remove the copy.
      copy(step.to, back_of(step), nullptr);
      try {
        rename(back_of(step), step.from, RENAME_NOREPLACE);
      } catch (...) {
        remove_tree_if_present(back_of(step));
        throw;
      }
      Directories::sync({std::string(split(step.from).first)});
      discard(step.to, step.scratch());
      return;
    }
    case Step::Kind::trash:
      expect(step.to, step.id);
      rename(step.to, step.from, RENAME_NOREPLACE);
      remove_if_present(step.scratch(), false);
      return;
    case Step::Kind::chmod: {
      auto [parent, name] = split(step.from);
      if (::fchmodat(dirs_.open(parent), z(name).c_str(), step.old_mode, 0) != 0)
        throw OsError("restoring the mode of " + printable(step.from), step.from, errno);
      return;
    }
    case Step::Kind::retarget:
      if (link_at(step.scratch()) == step.link_old()) {
        rename(step.scratch(), step.from, RENAME_EXCHANGE);  // the original inode returns
        remove_if_present(step.scratch(), false);
      } else {
        relink(step.from, step.scratch(), step.link_old(), false);
      }
      return;
  }
}

Status StepRunner::settle(const Step& step) {
  switch (step.kind) {
    case Step::Kind::move:
      // `from` first: onto a hard link of itself (a confirmed overwrite not
      // yet trashed), `to` holds the inode before the move as well as after.
      if (holds(step.from, step.id, step)) return Status::not_applied;
      return holds(step.to, step.id, step) ? Status::applied : Status::unknown;
    case Step::Kind::exchange:
      if (holds(step.from, step.other, step) && holds(step.to, step.id, step)) return Status::applied;
      if (holds(step.from, step.id, step) && holds(step.to, step.other, step)) return Status::not_applied;
      return Status::unknown;
    case Step::Kind::make_directory: {
      const auto st = lstat(step.to);
      if (!st) return Status::not_applied;
      // The user's directory, which an earlier step moves away (see `know`).
      if (found_by_batch(*st)) return Status::not_applied;
      return S_ISDIR(st->st_mode) ? Status::applied : Status::unknown;
    }
    case Step::Kind::copy_move: {
      // Half-done copies, in either direction, and an original on its way
      // out (only ever once its copy was complete): none is the only copy.
      remove_tree_if_present(step.scratch());
      remove_tree_if_present(back_of(step));
      remove_tree_if_present(going_of(step));
      const bool source = holds(step.from, step.id, step);
      // Not a copy if it is the user's file that an earlier step moves away
      // (to the trash, along a chain): see `know`.
      const auto at_to = lstat(step.to);
      const bool copied = at_to && !found_by_batch(*at_to);
      if (source && copied) {
        // The copy was complete but the original not yet set aside: drop the copy.
        remove_tree_if_present(step.to);
        return Status::not_applied;
      }
      if (source) return Status::not_applied;
      if (lstat(aside_of(step))) return Status::applied;  // revert brings the original back
      return copied ? Status::applied : Status::unknown;
    }
    case Step::Kind::trash:
      if (holds(step.to, step.id, step)) return Status::applied;
      remove_if_present(step.scratch(), false);
      return holds(step.from, step.id, step) ? Status::not_applied : Status::unknown;
    case Step::Kind::chmod: {
      const auto st = lstat(step.from);
      if (!st || !holds(step.from, step.id, step)) return Status::unknown;
      return (st->st_mode & 07777) == step.new_mode ? Status::applied : Status::not_applied;
    }
    case Step::Kind::retarget: {
      // Another link of the batch's, not moved away yet, is not this one
      // whatever its target (see `know`).
      if (const auto st = lstat(step.from);
          st && found_by_batch(*st) && !(st->st_dev == step.id.dev && st->st_ino == step.id.ino))
        return Status::unknown;
      const auto target = link_at(step.from);
      if (!target) return Status::unknown;
      if (*target == step.link_new()) return Status::applied;  // revert uses the old link at scratch
      // Stopped before the exchange: the new link at scratch goes.
      if (link_at(step.scratch()) == step.link_new()) remove_if_present(step.scratch(), false);
      return *target == step.link_old() ? Status::not_applied : Status::unknown;
    }
  }
  return Status::unknown;
}

bool StepRunner::shows_done(const Step& step) {
  switch (step.kind) {
    case Step::Kind::move:
    case Step::Kind::trash:
      return holds(step.to, step.id, step);
    case Step::Kind::exchange:
      return holds(step.from, step.other, step) && holds(step.to, step.id, step);
    case Step::Kind::make_directory: {
      const auto st = lstat(step.to);
      return st && S_ISDIR(st->st_mode);
    }
    case Step::Kind::copy_move:
      return lstat(step.to).has_value() && !lstat(step.from).has_value();
    case Step::Kind::chmod: {
      const auto st = lstat(step.from);
      return st && holds(step.from, step.id, step) && (st->st_mode & 07777) == step.new_mode;
    }
    case Step::Kind::retarget: {
      auto [parent, name] = split(step.from);
      int dfd;
      try {
        dfd = dirs_.open(parent);
      } catch (const OsError&) {
        return false;
      }
      const auto target = read_link(dfd, name);
      return target && *target == step.link_new();
    }
  }
  return false;
}


}  // namespace descent::rename::detail
