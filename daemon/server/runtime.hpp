// The daemon's footprint outside its database: the private socket directory,
// the pid file that doubles as the one-instance lock, and the log.
#pragma once

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace descent::server {

// A reason not to start, for the user: printed, then exit 1.
struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Creates the directory 0700 if it is missing; refuses (StartupError) a
// symlink, a non-directory, another owner, or any group/other permission.
void prepare_private_directory(const std::filesystem::path& dir, bool create_parents);

// flock(2) on the pid file: held for the daemon's life, released by the
// kernel even after kill -9, so a stale pid file never blocks a restart.
class InstanceLock {
 public:
  // `remove` says whether release() removes the file. A lock file that
  // another daemon may open at any time must stay: removed, the next daemon
  // would lock a new file while one holds the old one.
  explicit InstanceLock(bool remove = true) : remove_(remove) {}
  // Returns false (and holds nothing) when another daemon holds the lock
  // for longer than `patience`. A daemon that is stopping holds it for a
  // moment after it has left its socket (closing the database), and the
  // next one, started at once, must wait for that rather than refuse.
  bool acquire(const std::filesystem::path& pid_file,
               std::chrono::milliseconds patience = std::chrono::milliseconds(0));
  // The pid recorded by the holder, or "" (for a message).
  static std::string holder(const std::filesystem::path& pid_file);
  // Records our pid (called after daemonizing, so it is the serving process).
  void write_pid();
  // Removes the pid file; the lock goes with the descriptor.
  void release();
  ~InstanceLock();

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  bool remove_ = true;
};

// One line per event that matters, to stderr (journald adds its own
// timestamps; a log file gets ours).
void log(std::string_view message);

}  // namespace descent::server
