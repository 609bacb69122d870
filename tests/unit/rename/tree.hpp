// Test trees for the rename engine: a temporary directory, helpers to fill
// it, and a snapshot (names -> inode, type, mode, contents or link target)
// that is the oracle every test compares with.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <ostream>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "engine/rename/rename.hpp"

namespace descent::rename::testing {

// A temporary directory, removed when the test passed and kept (its path
// printed) when it failed, as magit's test helper does.
class TempTree {
 public:
  explicit TempTree(const char* base = nullptr) {
    std::string pattern = std::string(base ? base : (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp")) +
                          "/descent-rename-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
    root = pattern;
  }
  TempTree(const TempTree&) = delete;
  ~TempTree() {
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "kept the test tree %s\n", root.c_str());
      return;
    }
    std::error_code ignored;
    // Undo any permission a test removed, so the tree can be deleted.
    std::filesystem::remove_all(root, ignored);
  }
  std::string path(std::string_view relative) const { return root + "/" + std::string(relative); }

  std::string root;
};

inline void write_file(const std::string& path, std::string_view contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("creating " + path + ": " + std::strerror(errno));
  if (::write(fd, contents.data(), contents.size()) != static_cast<ssize_t>(contents.size())) {
    ::close(fd);
    throw std::runtime_error("writing " + path);
  }
  ::close(fd);
}

inline void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0) throw std::runtime_error("mkdir " + path + ": " + std::strerror(errno));
}

inline void make_link(const std::string& target, const std::string& path) {
  if (::symlink(target.c_str(), path.c_str()) != 0)
    throw std::runtime_error("symlink " + path + ": " + std::strerror(errno));
}

inline FileId id_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw std::runtime_error("lstat " + path + ": " + std::strerror(errno));
  return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
}

struct Entry {
  std::uint64_t ino = 0;
  mode_t mode = 0;           // type and permission bits
  std::string data;          // file contents or link target
  friend bool operator==(const Entry&, const Entry&) = default;
};

using Snapshot = std::map<std::string, Entry>;

inline void snapshot_into(const std::string& dir, const std::string& prefix, Snapshot& out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw std::runtime_error("opendir " + dir + ": " + std::strerror(errno));
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    Entry entry{static_cast<std::uint64_t>(st.st_ino), st.st_mode, {}};
    if (S_ISLNK(st.st_mode)) {
      char buffer[4096];
      const ssize_t n = ::readlink(path.c_str(), buffer, sizeof buffer);
      entry.data.assign(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
    } else if (S_ISREG(st.st_mode)) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd >= 0) {
        char buffer[4096];
        ssize_t n;
        while ((n = ::read(fd, buffer, sizeof buffer)) > 0) entry.data.append(buffer, static_cast<std::size_t>(n));
        ::close(fd);
      }
    }
    out.emplace(prefix + name, entry);
    if (S_ISDIR(st.st_mode) && (st.st_mode & S_IRUSR) && (st.st_mode & S_IXUSR))
      snapshot_into(path, prefix + name + "/", out);
  }
  ::closedir(d);
}

inline Snapshot snapshot(const std::string& root) {
  Snapshot out;
  snapshot_into(root, "", out);
  return out;
}


inline std::ostream& operator<<(std::ostream& os, const Entry& e) {
  return os << "{ino " << e.ino << ", mode " << std::oct << e.mode << std::dec << ", \"" << e.data << "\"}";
}

// The entries whose names carry the engine's temporary marker.
inline std::vector<std::string> temporaries(const Snapshot& snap) {
  std::vector<std::string> out;
  for (const auto& [name, entry] : snap)
    if (name.find(".descent-tmp-") != std::string::npos) out.push_back(name);
  return out;
}

inline Operation rename_op(const std::string& from, const std::string& to, bool overwrite = false) {
  Operation op;
  op.kind = Operation::Kind::rename;
  op.source = from;
  op.id = id_of(from);
  op.destination = to;
  op.overwrite = overwrite;
  return op;
}

inline Operation chmod_op(const std::string& path, std::uint32_t mode) {
  Operation op;
  op.kind = Operation::Kind::chmod;
  op.source = path;
  op.id = id_of(path);
  op.mode = mode;
  return op;
}

inline Operation retarget_op(const std::string& path, const std::string& target) {
  Operation op;
  op.kind = Operation::Kind::retarget;
  op.source = path;
  op.id = id_of(path);
  op.target = target;
  return op;
}

// A batch of at least 30 steps using every kind of step.
inline std::vector<Operation> rich_batch(const TempTree& t) {
  auto p = [&](std::string_view r) { return t.path(r); };
  std::vector<Operation> ops;
  for (const char* n : {"c1", "c2", "c3"}) write_file(p(n), n);  // 3-cycle: 4 steps
  ops.push_back(rename_op(p("c1"), p("c2")));
  ops.push_back(rename_op(p("c2"), p("c3")));
  ops.push_back(rename_op(p("c3"), p("c1")));
  for (const char* n : {"s1", "s2"}) write_file(p(n), n);  // swap: 1 step
  ops.push_back(rename_op(p("s1"), p("s2")));
  ops.push_back(rename_op(p("s2"), p("s1")));
  for (int i = 0; i < 8; ++i) write_file(p("k" + std::to_string(i)), "k");  // chain: 8 steps
  for (int i = 0; i < 8; ++i) ops.push_back(rename_op(p("k" + std::to_string(i)), p("k" + std::to_string(i + 1))));
  make_dir(p("d"));
  write_file(p("d/in"), "in");
  ops.push_back(rename_op(p("d"), p("e")));           // a directory ...
  ops.push_back(rename_op(p("d/in"), p("e/inner")));  // ... and an entry inside it
  for (int i = 0; i < 4; ++i) {  // moves into new directories: 2 mkdirs + 4 moves
    write_file(p("m" + std::to_string(i)), "m");
    ops.push_back(rename_op(p("m" + std::to_string(i)), p("n1/n2/m" + std::to_string(i))));
  }
  write_file(p("o"), "o");  // confirmed overwrite: trash dirs + trash + move
  write_file(p("victim"), "v");
  ops.push_back(rename_op(p("o"), p("victim"), true));
  make_link("t-old", p("ln"));  // re-target: 1 step
  ops.push_back(retarget_op(p("ln"), "t-new"));
  for (const char* n : {"x1", "x2", "x3", "x4", "x5"}) {  // chmods: 5 steps
    write_file(p(n), n);
    ops.push_back(chmod_op(p(n), 0600));
  }
  write_file(p("Case"), "case");
  ops.push_back(rename_op(p("Case"), p("CASE")));
  return ops;
}

}  // namespace descent::rename::testing
