// Starts the real descentd on a temporary socket and state directory, and
// talks to it raw or through the protocol client. Shared by the integration
// tests of every area.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/client.hpp"

namespace descent::testing {

namespace fs = std::filesystem;

// A fresh directory, removed after a passing test and kept (with its path
// printed) after a failing one, so the evidence survives.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct Exit {
  bool exited = false;  // false: killed by a signal
  int code = 0;         // exit status, or the signal number
};

// Runs a program (no shell) and returns its exit and everything it printed.
struct Output {
  Exit exit;
  std::string out;
  std::string err;
};
Output run_program(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env = {},
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

class Daemon {
 public:
  // Lays out runtime/descent (0700) and state/ under `root`.
  explicit Daemon(const fs::path& root, std::vector<std::string> extra_env = {});
  ~Daemon();

  // Starts `descentd --foreground` and waits until it answers hello.
  void start();
  // Sends `signal` and waits for the process to end.
  Exit stop(int signal = SIGTERM);
  Exit wait(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  const fs::path& socket() const { return socket_; }
  const fs::path& state_dir() const { return state_dir_; }
  const fs::path& runtime_dir() const { return runtime_dir_; }
  std::string log() const;
  std::vector<std::string> argv() const;
  std::vector<std::string> env() const { return env_; }

  protocol::Client client(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

 private:
  fs::path root_;
  fs::path runtime_dir_;
  fs::path socket_;
  fs::path state_dir_;
  fs::path log_file_;
  std::vector<std::string> env_;
  pid_t pid_ = -1;
};

// A raw connection for feeding the daemon bytes no client would send.
class RawConnection {
 public:
  explicit RawConnection(const fs::path& socket);
  ~RawConnection();
  void send(std::string_view bytes);
  // A whole frame's payload, or nullopt when the daemon closed the connection.
  std::optional<std::string> receive_frame(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // True when the daemon has closed its end (reads return end-of-file).
  bool closed_by_peer(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// The result of one call, for assertions on error replies.
struct CallResult {
  bool ok = false;
  std::string kind;     // error kind when !ok
  std::string message;  // error message when !ok
};
CallResult call(protocol::Client& client, std::string_view method, const protocol::Writer& params);

std::string hello_frame(int protocol_version);

inline const std::string descentd_path = DESCENTD_PATH;
inline const std::string descent_cli_path = DESCENT_CLI_PATH;

}  // namespace descent::testing
