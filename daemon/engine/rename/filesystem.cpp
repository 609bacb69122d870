#include "engine/rename/filesystem.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
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

std::pair<std::string_view, std::string_view> split(std::string_view path) {
  const auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return {".", path};
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

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

bool StepRunner::holds(std::string_view path, const FileId& id, const Step& step) {
  const auto st = lstat(path);
  if (!st) return false;
  if (st->st_dev == id.dev && st->st_ino == id.ino) return true;
  if (S_ISLNK(st->st_mode) && !step.link_new().empty()) {
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

// Copies a regular file or a symlink to `scratch` (same directory as `to`),
// keeping mode, times and extended attributes, makes it durable, renames it
// to `to` without replacing anything, then removes `from`.
void StepRunner::copy(std::string_view from, std::string_view scratch, std::string_view to) {
  auto [from_dir, from_name] = split(from);
  auto [scratch_dir, scratch_name] = split(scratch);
  const int from_dfd = dirs_.open(from_dir);
  const int scratch_dfd = dirs_.open(scratch_dir);
  struct stat st {};
  if (::fstatat(from_dfd, z(from_name).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    throw OsError("examining " + printable(from), std::string(from), errno);
  try {
    if (S_ISLNK(st.st_mode)) {
      const auto target = read_link(from_dfd, from_name);
      if (!target) throw OsError("reading link " + printable(from), std::string(from), errno);
      if (::symlinkat(target->c_str(), scratch_dfd, z(scratch_name).c_str()) != 0)
        throw OsError("creating " + printable(scratch), std::string(scratch), errno);
    } else if (S_ISREG(st.st_mode)) {
      Fd in(::openat(from_dfd, z(from_name).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (in.fd < 0) throw OsError("opening " + printable(from), std::string(from), errno);
      Fd out(::openat(scratch_dfd, z(scratch_name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      0600));
      if (out.fd < 0) throw OsError("creating " + printable(scratch), std::string(scratch), errno);
      std::vector<char> buffer(1 << 16);
      for (;;) {
        const ssize_t n = ::read(in.fd, buffer.data(), buffer.size());
        if (n < 0) {
          if (errno == EINTR) continue;
          throw OsError("reading " + printable(from), std::string(from), errno);
        }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
          const ssize_t w = ::write(out.fd, buffer.data() + off, static_cast<std::size_t>(n - off));
          if (w < 0) {
            if (errno == EINTR) continue;
            throw OsError("writing " + printable(scratch), std::string(scratch), errno);
          }
          off += w;
        }
      }
      // Extended attributes: best kept; a target file system without them is no reason to fail.
      const ssize_t list_size = ::flistxattr(in.fd, nullptr, 0);
      if (list_size > 0) {
        std::string names(static_cast<std::size_t>(list_size), '\0');
        const ssize_t got = ::flistxattr(in.fd, names.data(), names.size());
        for (std::size_t i = 0; got > 0 && i < static_cast<std::size_t>(got);) {
          const char* name = names.c_str() + i;
          const ssize_t value_size = ::fgetxattr(in.fd, name, nullptr, 0);
          if (value_size >= 0) {
            std::string value(static_cast<std::size_t>(value_size), '\0');
            const ssize_t v = ::fgetxattr(in.fd, name, value.data(), value.size());
            if (v >= 0 && ::fsetxattr(out.fd, name, value.data(), static_cast<std::size_t>(v), 0) != 0 &&
                errno != ENOTSUP && errno != EPERM)
              throw OsError("copying attribute " + std::string(name) + " to " + printable(scratch),
                            std::string(scratch), errno);
          }
          i += std::strlen(name) + 1;
        }
      }
      if (::fchown(out.fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
        throw OsError("changing owner of " + printable(scratch), std::string(scratch), errno);
      if (::fchmod(out.fd, st.st_mode & 07777) != 0)
        throw OsError("changing mode of " + printable(scratch), std::string(scratch), errno);
      const struct timespec times[2] = {st.st_atim, st.st_mtim};
      if (::futimens(out.fd, times) != 0)
        throw OsError("setting times of " + printable(scratch), std::string(scratch), errno);
      if (::fsync(out.fd) != 0) throw OsError("syncing " + printable(scratch), std::string(scratch), errno);
    } else {
      throw OsError("moving " + printable(from) + " across file systems (only files and symlinks can be)",
                    std::string(from), EXDEV);
    }
    if (S_ISLNK(st.st_mode)) {
      const struct timespec times[2] = {st.st_atim, st.st_mtim};
      ::utimensat(scratch_dfd, z(scratch_name).c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
    rename(scratch, to, RENAME_NOREPLACE);
  } catch (...) {
    remove_if_present(scratch, false);
    throw;
  }
  // The copy must be durable before the original goes.
  Directories::sync({std::string(split(to).first)});
  if (::unlinkat(from_dfd, z(from_name).c_str(), 0) != 0) {
    const int error = errno;
    remove_if_present(to, false);
    throw OsError("removing " + printable(from) + " after copying it", std::string(from), error);
  }
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

void StepRunner::apply(const Step& step) {
  switch (step.kind) {
    case Step::Kind::move:
      rename(step.from, step.to, RENAME_NOREPLACE);
      return;
    case Step::Kind::exchange:
      rename(step.from, step.to, RENAME_EXCHANGE);
      return;
    case Step::Kind::make_directory: {
      auto [parent, name] = split(step.to);
      if (::mkdirat(dirs_.open(parent), z(name).c_str(), 0777) != 0)
        throw OsError("creating directory " + printable(step.to), step.to, errno);
      return;
    }
    case Step::Kind::copy_move:
      copy(step.from, step.scratch(), step.to);
      return;
    case Step::Kind::trash: {
      // The info file first (O_EXCL reserves the name, as the spec asks), then the move.
      auto [info_dir, info_name] = split(step.scratch());
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
      rename(step.to, step.from, RENAME_NOREPLACE);
      return;
    case Step::Kind::exchange:
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
      // The copy back gets its scratch name in the original's directory.
      copy(step.to, std::string(split(step.from).first) + "/" + std::string(split(step.scratch()).second), step.from);
      return;
    }
    case Step::Kind::trash:
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
      if (holds(step.to, step.id, step)) return Status::applied;
      return holds(step.from, step.id, step) ? Status::not_applied : Status::unknown;
    case Step::Kind::exchange:
      if (holds(step.from, step.other, step) && holds(step.to, step.id, step)) return Status::applied;
      if (holds(step.from, step.id, step) && holds(step.to, step.other, step)) return Status::not_applied;
      return Status::unknown;
    case Step::Kind::make_directory: {
      const auto st = lstat(step.to);
      if (!st) return Status::not_applied;
      return S_ISDIR(st->st_mode) ? Status::applied : Status::unknown;
    }
    case Step::Kind::copy_move: {
      // Half-done copies, in either direction.
      remove_if_present(step.scratch(), false);
      remove_if_present(std::string(split(step.from).first) + "/" + std::string(split(step.scratch()).second), false);
      const bool source = holds(step.from, step.id, step);
      const bool copied = lstat(step.to).has_value();
      if (source && copied) {
        // The copy was complete but the original not yet removed: drop the copy.
        remove_if_present(step.to, false);
        return Status::not_applied;
      }
      if (source) return Status::not_applied;
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
