#include "server/runtime.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace descent::server {

namespace {

std::string octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

}  // namespace

void prepare_private_directory(const std::filesystem::path& dir, bool create_parents) {
  if (create_parents && dir.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(dir.parent_path(), ec);
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw StartupError("cannot create " + dir.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) throw StartupError("cannot examine " + dir.string() + ": " + std::strerror(errno));
  if (S_ISLNK(st.st_mode))
    throw StartupError(dir.string() + " is a symbolic link; refusing to use it (it must be a real directory)");
  if (!S_ISDIR(st.st_mode)) throw StartupError(dir.string() + " is not a directory");
  if (st.st_uid != ::geteuid())
    throw StartupError(dir.string() + " is owned by uid " + std::to_string(st.st_uid) + ", not by you (uid " +
                       std::to_string(::geteuid()) + "); refusing to use it");
  if ((st.st_mode & 077) != 0)
    throw StartupError(dir.string() + " has mode " + octal(st.st_mode) +
                       "; it must be private (0700): fix it with chmod 700 or remove it");
}

bool InstanceLock::acquire(const std::filesystem::path& pid_file, std::chrono::milliseconds patience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    const int fd = ::open(pid_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw StartupError("cannot open " + pid_file.string() + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd);
      if (error != EWOULDBLOCK) throw StartupError("cannot lock " + pid_file.string() + ": " + std::strerror(error));
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    // A holder that removes the file as it stops may have done so between
    // our open and our flock: then we hold a lock on a file no one else
    // will ever open, and the next daemon would lock a new one beside us.
    struct stat held {}, named {};
    if (::fstat(fd, &held) == 0 && ::stat(pid_file.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      path_ = pid_file;
      fd_ = fd;
      return true;
    }
    ::close(fd);
  }
}

void InstanceLock::write_pid() {
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    throw StartupError("cannot write " + path_.string() + ": " + std::strerror(errno));
}

std::string InstanceLock::holder(const std::filesystem::path& pid_file) {
  std::ifstream in(pid_file);
  std::string pid;
  in >> pid;
  return pid;
}

void InstanceLock::release() {
  if (fd_ < 0) return;
  if (remove_) ::unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

InstanceLock::~InstanceLock() { release(); }

void log(std::string_view message) {
  std::string line;
  if (!std::getenv("JOURNAL_STREAM")) {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S ", &tm);
    line = stamp;
  }
  line += "descentd[" + std::to_string(::getpid()) + "]: ";
  line += message;
  line += '\n';
  // One write per line so that concurrent lines never interleave.
  [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace descent::server
