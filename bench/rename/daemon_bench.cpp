// A rename batch through the real descentd: N renames in one directory sent
// as one rename.submit; prints the call's wall time and the daemon's memory
// (VmRSS sampled every 5 ms while the batch runs, and VmHWM after), which
// issue #4 bounds at 64 MiB for 100k renames.
//
//   rename_daemon_bench PATH-TO-DESCENTD [COUNT...]   (default 10000 100000)
//
// The daemon's stderr goes to /dev/null unless DESCENT_BENCH_STDERR is set.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "protocol/client.hpp"
#include "protocol/rpc.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "rename_daemon_bench: %s\n", what.c_str());
  std::exit(1);
}

// A /proc/PID/status figure in KiB ("VmRSS", "VmHWM"); 0 if unreadable.
long status_kib(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::atol(line.c_str() + key.size() + 1);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: rename_daemon_bench PATH-TO-DESCENTD [COUNT...]");
  const std::string descentd = argv[1];
  std::vector<std::size_t> counts;
  for (int i = 2; i < argc; ++i) counts.push_back(static_cast<std::size_t>(std::atol(argv[i])));
  if (counts.empty()) counts = {10000, 100000};

  std::string root_template = (fs::temp_directory_path() / "descent-rename-daemon-bench-XXXXXX").string();
  if (!::mkdtemp(root_template.data())) die("mkdtemp");
  const fs::path root = root_template;
  fs::create_directories(root / "run/descent");
  fs::permissions(root / "run", fs::perms::owner_all);
  fs::permissions(root / "run/descent", fs::perms::owner_all);
  const fs::path socket = root / "run/descent/descentd.sock";

  const pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    ::setenv("XDG_RUNTIME_DIR", (root / "run").c_str(), 1);
    ::setenv("XDG_STATE_HOME", (root / "state").c_str(), 1);
    ::setenv("XDG_DATA_HOME", (root / "data").c_str(), 1);
    const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (!std::getenv("DESCENT_BENCH_STDERR")) ::dup2(null, 2);
    ::execl(descentd.c_str(), descentd.c_str(), "--foreground", "--socket", socket.c_str(), "--state-dir",
            (root / "state").c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }

  descent::protocol::Wait wait;
  wait.timeout = std::chrono::seconds(600);
  std::unique_ptr<descent::protocol::Client> client;
  for (int attempt = 0; !client && attempt < 500; ++attempt) {
    try {
      descent::protocol::Wait quick;
      quick.timeout = std::chrono::seconds(2);
      client = std::make_unique<descent::protocol::Client>(socket.string(), "rename-bench", quick);
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (!client) die("descentd did not answer on " + socket.string());

  std::printf("%-8s %12s %14s %14s %14s\n", "renames", "call ms", "idle RSS KiB", "peak RSS KiB", "VmHWM KiB");
  for (const std::size_t count : counts) {
    const fs::path dir = root / ("d" + std::to_string(count));
    fs::create_directories(dir);
    std::vector<std::pair<std::string, struct stat>> files;
    files.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      const std::string path = (dir / ("f" + std::to_string(i))).string();
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) die("creating " + path);
      ::close(fd);
      struct stat st {};
      ::lstat(path.c_str(), &st);
      files.emplace_back(path, st);
    }
    ::sync();
    const long idle = status_kib(pid, "VmRSS");
    std::atomic<bool> running{true};
    std::atomic<long> peak{idle};
    std::thread sampler([&] {
      while (running) {
        peak = std::max(peak.load(), status_kib(pid, "VmRSS"));
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    const auto start = Clock::now();
    try {
      client->call(
          "rename.submit",
          [&](descent::protocol::Packer& out) {
            out.pack_array(1);
            out.pack_array(static_cast<std::uint32_t>(files.size()));
            for (std::size_t i = 0; i < files.size(); ++i) {
              out.pack_map(5);
              descent::protocol::pack_text(out, "op");
              descent::protocol::pack_text(out, "rename");
              descent::protocol::pack_text(out, "from");
              descent::protocol::pack_bytes(out, files[i].first);
              descent::protocol::pack_text(out, "to");
              descent::protocol::pack_bytes(out, (dir / ("g" + std::to_string(i))).string());
              descent::protocol::pack_text(out, "dev");
              out.pack(static_cast<std::uint64_t>(files[i].second.st_dev));
              descent::protocol::pack_text(out, "ino");
              out.pack(static_cast<std::uint64_t>(files[i].second.st_ino));
            }
          },
          wait);
    } catch (const std::exception& e) {
      running = false;
      sampler.join();
      die(std::string("rename.submit: ") + e.what());
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    running = false;
    sampler.join();
    std::printf("%-8zu %12.1f %14ld %14ld %14ld\n", count, ms, idle, peak.load(), status_kib(pid, "VmHWM"));
  }
  client.reset();
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  std::error_code ignored;
  fs::remove_all(root, ignored);
  return 0;
}
