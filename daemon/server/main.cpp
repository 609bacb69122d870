// descentd: one per user; performs descent's file operations and keeps its
// durable state. See DESIGN.md, "The daemon".
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <malloc.h>
#include <iostream>
#include <optional>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "descent/version.hpp"
#include "engine/state.hpp"
#include "protocol/paths.hpp"
#include "server/methods_frecency.hpp"
#include "server/methods_lister.hpp"
#include "server/methods_rename.hpp"
#include "server/runtime.hpp"
#include "server/server.hpp"

namespace {

using namespace descent;
using namespace descent::server;
namespace fs = std::filesystem;

// How the serving process tells the process that started it how start-up
// went: that process exits only then, so "descentd" returning 0 means "a
// daemon is listening".
enum class Readiness : char { listening = 'L', already_running = 'R', failed = 'F' };

class StartupChannel {
 public:
  // Forks; the parent waits for the child's word and exits with it.
  void daemonize(const fs::path& log_file) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw StartupError(std::string("pipe: ") + std::strerror(errno));
    const pid_t child = ::fork();
    if (child < 0) throw StartupError(std::string("fork: ") + std::strerror(errno));
    if (child > 0) {
      ::close(fds[1]);
      std::exit(wait_for_child(fds[0], log_file));
    }
    ::close(fds[0]);
    fd_ = fds[1];
    ::setsid();
    const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    // One line per event keeps the log small, but it must not grow forever:
    // past 1 MiB the previous one is kept as descentd.log.old.
    struct stat st {};
    if (::stat(log_file.c_str(), &st) == 0 && st.st_size > (1 << 20))
      ::rename(log_file.c_str(), (log_file.string() + ".old").c_str());
    const int log = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(log >= 0 ? log : null, STDOUT_FILENO);
      ::dup2(log >= 0 ? log : null, STDERR_FILENO);
    }
  }

  void tell(Readiness word, std::string_view message = {}) {
    if (fd_ < 0) {
      if (word == Readiness::failed) std::cerr << "descentd: " << message << '\n';
      return;
    }
    std::string text(1, static_cast<char>(word));
    text += message;
    [[maybe_unused]] auto ignored = ::write(fd_, text.data(), text.size());
    ::close(fd_);
    fd_ = -1;
  }

 private:
  static int wait_for_child(int fd, const fs::path& log_file) {
    std::string text;
    char chunk[512];
    ssize_t n;
    while ((n = ::read(fd, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) text.append(chunk, static_cast<std::size_t>(n));
    if (text.empty()) {
      std::cerr << "descentd: the daemon exited during start-up; see " << log_file.string() << '\n';
      return 1;
    }
    switch (static_cast<Readiness>(text[0])) {
      case Readiness::listening:
      case Readiness::already_running: return 0;
      case Readiness::failed: break;
    }
    std::cerr << "descentd: " << text.substr(1) << '\n';
    return 1;
  }

  int fd_ = -1;
};

fs::path absolute(const std::string& path) { return fs::absolute(fs::path(path)).lexically_normal(); }

void prepare_state_directory(const fs::path& dir) {
  std::error_code ec;
  if (fs::create_directories(dir, ec)) fs::permissions(dir, fs::perms::owner_all, ec);
  if (ec) throw StartupError("cannot create the state directory " + dir.string() + ": " + ec.message());
  if (!fs::is_directory(dir)) throw StartupError("the state directory " + dir.string() + " is not a directory");
}

// Enough descriptors for many clients at once; the hard limit is the cap.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// systemd socket activation (sd_listen_fds(3)): the listening socket arrives
// as descriptor 3 when LISTEN_PID names us.
std::optional<int> activated_listener() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  if (!pid || !fds || std::strtol(pid, nullptr, 10) != ::getpid() || std::strtol(fds, nullptr, 10) < 1)
    return std::nullopt;
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  ::fcntl(3, F_SETFD, FD_CLOEXEC);
  return 3;
}

// Polls until something accepts connections on `socket`, or `limit` passes.
void wait_until_listening(const fs::path& socket, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
  while (std::chrono::steady_clock::now() < end) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool listening = fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    if (fd >= 0) ::close(fd);
    if (listening) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int serve(const fs::path& socket_path, const fs::path& state_dir, bool foreground) {
  namespace asio = boost::asio;
  using local = asio::local::stream_protocol;

  StartupChannel channel;
  try {
    const std::optional<int> activated = activated_listener();
    // Checked before forking, so a refusal reaches the terminal directly.
    prepare_private_directory(socket_path.parent_path(), false);
    prepare_state_directory(state_dir);
    if (!foreground && !activated) channel.daemonize(state_dir / "descentd.log");

    InstanceLock lock;
    if (!lock.acquire(protocol::pid_file_for(socket_path))) {
      // Another daemon serves this socket: nothing to do, and nothing to say.
      // It may still be starting; "started" must mean "you can connect now".
      wait_until_listening(socket_path, std::chrono::seconds(3));
      channel.tell(Readiness::already_running);
      return 0;
    }
    // We hold the lock, so any socket file is a leftover of a killed daemon
    // (unless systemd made it and handed it to us).
    struct stat st {};
    if (!activated && ::lstat(socket_path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        throw StartupError(socket_path.string() + " exists and is not a socket; refusing to replace it");
      ::unlink(socket_path.c_str());
      log("removed a stale socket left by an earlier daemon");
    }
    lock.write_pid();
    // One daemon per state directory as well: two sockets can share it (an
    // unset XDG_RUNTIME_DIR in one session, --socket, a home on NFS), and a
    // second daemon's start-up recovery would roll back the first one's
    // running batch under its feet.
    InstanceLock state_lock(false);
    const fs::path state_lock_file = state_dir / "descentd.lock";
    if (!state_lock.acquire(state_lock_file, std::chrono::seconds(1))) {
      const std::string pid = InstanceLock::holder(state_lock_file);
      throw StartupError("another descentd" + (pid.empty() ? std::string() : " (pid " + pid + ")") +
                         " uses the state in " + state_dir.string() + " through another socket; stop it first");
    }
    state_lock.write_pid();
    ::signal(SIGPIPE, SIG_IGN);
    raise_descriptor_limit();

    // Each area keeps its own connection to the one state database (WAL).
    const fs::path database = state_dir / "state.db";
    frecency::Index frecency_index(database);
    DaemonInfo info{socket_path, state_dir, static_cast<std::int64_t>(std::time(nullptr))};
    // Rolls back any batch a crash interrupted, before anyone is served.
    RenameArea rename_area(info);
    for (const auto& line : rename_area.recovered) log(line);

    asio::io_context io(1);
    local::acceptor acceptor(io);
    boost::system::error_code ec;
    if (activated) {
      acceptor.assign(local(), *activated, ec);
    } else {
      acceptor.open(local(), ec);
      if (!ec) acceptor.bind(local::endpoint(socket_path.native()), ec);
      if (!ec) acceptor.listen(SOMAXCONN, ec);
      if (!ec) ::chmod(socket_path.c_str(), 0600);
    }
    if (ec) throw StartupError("cannot listen on " + socket_path.string() + ": " + ec.message());

    MethodTable methods;
    Server server(io, std::move(acceptor), methods, info);
    add_core_methods(methods, server);
    add_frecency_methods(methods, info, frecency_index);
    add_lister_methods(methods, info);
    add_rename_methods(methods, info, rename_area);
    server.start();
    if (!activated) server.watch_socket(socket_path);  // systemd's socket is systemd's to watch

    log("descentd " + std::string(version) + (activated ? " activated by systemd on " : " listening on ") +
        socket_path.string() + ", state in " + state_dir.string());
    channel.tell(Readiness::listening);
    io.run();
    server.workers().join();
    if (!activated) ::unlink(socket_path.c_str());  // systemd's socket is systemd's to remove
    lock.release();
    log("stopped");
    return 0;
  } catch (const StartupError& e) {
    log(e.what());
    channel.tell(Readiness::failed, e.what());
    return 1;
  } catch (const state::SqliteError& e) {
    // Opening it, or recovering a batch (a full or read-only disk): say where.
    const std::string message = "the state database in " + state_dir.string() + ": " + e.what();
    log(message);
    channel.tell(Readiness::failed, message);
    return 1;
  } catch (const std::exception& e) {
    log(std::string("fatal: ") + e.what());
    channel.tell(Readiness::failed, e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"descentd: the descent daemon. It performs descent's file operations for Emacs and keeps its "
               "durable state. Emacs starts it on demand; you rarely run it yourself."};
  std::string socket;
  std::string state_dir;
  bool foreground = false;
  app.add_option("--socket", socket, "Unix socket to listen on (default: $XDG_RUNTIME_DIR/descent/descentd.sock)");
  app.add_option("--state-dir", state_dir, "Directory of the database and log (default: $XDG_STATE_HOME/descent)");
  app.add_flag("--foreground", foreground, "Stay in the foreground and log to stderr (for systemd and debugging)");
  app.set_version_flag("--version", std::string("descentd ") + version);
  CLI11_PARSE(app, argc, argv);

  // A listing of 100k entries allocates some 40 MiB in a few large blocks
  // (entries, text, the packed reply) and frees them at once. By default
  // glibc maps such blocks afresh and unmaps them after, so every listing
  // faulted its ~10k pages in again: a fifth of its CPU time. Kept in the
  // heap instead (up to 128 MiB free), the next listing reuses them; the
  // server gives the free memory back once it has been idle a second, if
  // there is much of it (see Server::call_finished). Not sooner: the
  // listing that follows a rename batch (dired's revert) reuses the batch's
  // memory, and each page faulted in afresh costs some 10 µs on a virtual
  // machine with shadow page tables. One arena for every thread, so that a
  // call on one worker reuses what a call on the other freed.
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  ::mallopt(M_TRIM_THRESHOLD, 128 << 20);
  ::mallopt(M_ARENA_MAX, 1);

  const fs::path socket_path = socket.empty() ? protocol::default_socket_path() : absolute(socket);
  const fs::path state_path = state_dir.empty() ? state::default_state_dir() : absolute(state_dir);
  return serve(socket_path, state_path, foreground);
}
