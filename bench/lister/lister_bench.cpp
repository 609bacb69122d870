// Benchmark of the listing engine, in one run, printed as ratios:
//   engine  - descent::lister::list() on the directory (in process), what the
//             daemon does for a `list` call before packing the reply
//   ls      - `/bin/ls --dired -al -- DIR` as Emacs runs it (fork/exec, output drained)
//   floor   - a bare getdents64 + statx loop: what any listing must at least do,
//             statx in inode order on the engine's threads, as the engine does
// on generated directories of 1k, 10k and 100k entries, plus the peak RSS of
// a process that lists the 100k directory once (engine vs ls).
//
// Usage: lister_bench [--runs N] [--sizes 1000,10000,100000] [--keep DIR]
// Also:  lister_bench list DIR [SWITCHES...]   prints what the engine prints
//        lister_bench floor DIR                 runs the bare loop once
//        lister_bench floor-ms DIR RUNS [plain] prints the bare loop's median wall ms
//                                               (plain: one thread, directory order)
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "lister.hpp"

namespace {

namespace lister = descent::lister;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "lister_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

lister::Environment c_locale() {
  lister::Environment env{{"LC_ALL", "C"}};
  if (const char* tz = std::getenv("TZ")) env["TZ"] = tz;
  return env;
}

// What the daemon does for a `list` call (it sends the offsets, not a trailer).
lister::Listing engine_listing(const std::string& dir, const std::vector<std::string>& switches) {
  return lister::list(dir, switches, c_locale());
}

struct linux_dirent64 {
  std::uint64_t d_ino;
  std::int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// The floor: read every entry and statx it, nothing else. `scheduled`: the
// statx calls in inode order on as many threads as the engine uses for a
// directory this large, so that the ratio measures what the engine does
// beyond them (listxattrat, readlink, sorting, formatting), not how;
// otherwise the plain loop the issue names: one thread, directory order.
std::uint64_t bare_loop(const std::string& dir, bool scheduled = true) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) die("open " + dir);
  struct Name {
    std::uint64_t ino;
    std::string name;
  };
  std::vector<Name> names;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    const long n = ::syscall(SYS_getdents64, fd, buf.data(), buf.size());
    if (n < 0) die("getdents64 " + dir);
    if (n == 0) break;
    for (long off = 0; off < n;) {
      const auto* d = reinterpret_cast<const linux_dirent64*>(buf.data() + off);
      off += d->d_reclen;
      names.push_back({d->d_ino, d->d_name});
    }
  }
  if (scheduled) std::sort(names.begin(), names.end(), [](const Name& a, const Name& b) { return a.ino < b.ino; });
  std::atomic<std::uint64_t> sum{0};
  std::atomic<std::size_t> next{0};
  constexpr std::size_t chunk = 512;  // as lister.cpp's stat_entries
  auto work = [&] {
    std::uint64_t own = 0;
    for (;;) {
      const std::size_t begin = next.fetch_add(chunk);
      if (begin >= names.size()) break;
      for (std::size_t i = begin; i < std::min(names.size(), begin + chunk); ++i) {
        struct statx sx;
        if (::statx(fd, names[i].name.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                    STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID | STATX_MTIME | STATX_INO |
                        STATX_SIZE | STATX_BLOCKS,
                    &sx) == 0)
          own += sx.stx_size + sx.stx_blocks;
      }
    }
    sum += own;
  };
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t helpers = !scheduled || names.size() < 4 * chunk ? 0 : std::min<std::size_t>(cores, 4) - 1;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < helpers; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  ::close(fd);
  return sum;
}

// Runs ls like Emacs does and drains its output; returns the child's rusage.
struct rusage run_ls(const std::string& dir) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) die("pipe");
  const pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    ::dup2(p[1], 1);
    char* envp[] = {const_cast<char*>("LC_ALL=C"), nullptr};
    const char* argv[] = {"ls", "--dired", "-al", "--", dir.c_str(), nullptr};
    ::execve("/bin/ls", const_cast<char**>(argv), envp);
    ::_exit(127);
  }
  ::close(p[1]);
  char buf[65536];
  while (::read(p[0], buf, sizeof buf) > 0) continue;
  ::close(p[0]);
  int status;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  return ru;
}

// Peak RSS (KiB) of a fresh process that lists `dir` once with the engine.
long engine_child_rss(const std::string& dir) {
  const pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    const lister::Listing listing = engine_listing(dir, {"-al"});
    ::_exit(listing.text.empty() ? 1 : 0);
  }
  int status;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  return ru.ru_maxrss;
}

double cpu_ms(const struct rusage& ru) {
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

// Median wall and CPU (user + system, every thread and reaped child) times.
struct Times {
  double wall_ms, cpu_ms;
};
Times median_ms(int runs, const std::function<void()>& work) {
  work();  // warm-up: caches and the name service
  std::vector<double> wall, cpu;
  for (int i = 0; i < runs; ++i) {
    struct rusage self0, child0, self1, child1;
    ::getrusage(RUSAGE_SELF, &self0);
    ::getrusage(RUSAGE_CHILDREN, &child0);
    const auto start = Clock::now();
    work();
    wall.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    ::getrusage(RUSAGE_SELF, &self1);
    ::getrusage(RUSAGE_CHILDREN, &child1);
    cpu.push_back(cpu_ms(self1) - cpu_ms(self0) + cpu_ms(child1) - cpu_ms(child0));
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

void make_tree(const std::string& dir, int entries) {
  if (::mkdir(dir.c_str(), 0755) != 0) die("mkdir " + dir);
  for (int i = 0; i < entries; ++i) {
    char name[64];
    // Mostly files of varied sizes and names, some directories and links,
    // roughly what a big source or download directory holds.
    std::snprintf(name, sizeof name, i % 3 ? "file-%07d.txt" : "Data_%d.tar.gz", i);
    const std::string path = dir + "/" + name;
    if (i % 50 == 0) {
      if (::mkdir(path.c_str(), 0755) != 0) die("mkdir " + path);
    } else if (i % 97 == 0) {
      if (::symlink("file-0000001.txt", path.c_str()) != 0) die("symlink " + path);
    } else {
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 || ::ftruncate(fd, (i * 7919) % 5000000) != 0) die("create " + path);
      ::close(fd);
    }
  }
}

int bench(int runs, const std::vector<int>& sizes, std::string root) {
  bool remove = root.empty();
  if (remove) {
    std::string templ = (std::filesystem::temp_directory_path() / "descent-lister-bench-XXXXXX").string();
    if (!::mkdtemp(templ.data())) die("mkdtemp");
    root = templ;
  }
  std::printf("%8s %-5s %11s %11s %11s %10s %12s\n", "entries", "time", "engine ms", "ls ms", "floor ms",
              "ls/engine", "engine/floor");
  std::string biggest;
  for (int n : sizes) {
    const std::string dir = root + "/d" + std::to_string(n);
    if (::access(dir.c_str(), F_OK) != 0) make_tree(dir, n);
    biggest = dir;
    // Engine and ls must agree before their times mean anything.
    if (engine_listing(dir, {"-al"}).text.empty()) die("empty listing");
    const Times engine = median_ms(runs, [&] { (void)engine_listing(dir, {"-al"}); });
    const Times ls = median_ms(runs, [&] { (void)run_ls(dir); });
    const Times floor = median_ms(runs, [&] { (void)bare_loop(dir); });
    std::printf("%8d %-5s %11.2f %11.2f %11.2f %10.2f %12.2f\n", n, "wall", engine.wall_ms, ls.wall_ms,
                floor.wall_ms, ls.wall_ms / engine.wall_ms, engine.wall_ms / floor.wall_ms);
    std::printf("%8s %-5s %11.2f %11.2f %11.2f %10.2f %12.2f\n", "", "cpu", engine.cpu_ms, ls.cpu_ms, floor.cpu_ms,
                ls.cpu_ms / engine.cpu_ms, engine.cpu_ms / floor.cpu_ms);
  }
  if (!biggest.empty()) {
    const long engine_rss = engine_child_rss(biggest);
    const long ls_rss = run_ls(biggest).ru_maxrss;
    std::printf("peak RSS listing %s: engine process %ld KiB, ls %ld KiB\n", biggest.c_str(), engine_rss, ls_rss);
  }
  if (remove) std::filesystem::remove_all(root);
  return 0;
}

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: lister_bench [--runs N (5)] [--sizes A,B,C (1000,10000,100000)] [--keep DIR]\n"
               "       lister_bench list DIR [SWITCHES...]    print what the engine prints\n"
               "       lister_bench floor DIR                 run the bare loop once\n"
               "       lister_bench floor-ms DIR RUNS [plain] print the bare loop's median wall ms\n"
               "Times the engine, ls and the bare loop on generated directories of each size, in a\n"
               "temporary directory (or DIR, kept, its trees reused by the next run).\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (!args.empty() && args[0] == "list" && args.size() >= 2) {
      const lister::Listing listing =
          engine_listing(args[1], std::vector<std::string>(args.begin() + 2, args.end()));
      const std::string trailer = lister::dired_trailer(listing);
      std::fwrite(listing.text.data(), 1, listing.text.size(), stdout);
      std::fwrite(trailer.data(), 1, trailer.size(), stdout);
      return 0;
    }
    if (!args.empty() && args[0] == "floor" && args.size() == 2) {
      std::printf("%llu\n", static_cast<unsigned long long>(bare_loop(args[1])));
      return 0;
    }
    if (!args.empty() && args[0] == "floor-ms" && (args.size() == 3 || (args.size() == 4 && args[3] == "plain"))) {
      const bool scheduled = args.size() == 3;
      const Times floor =
          median_ms(std::max(1, std::atoi(args[2].c_str())), [&] { (void)bare_loop(args[1], scheduled); });
      std::printf("%.2f\n", floor.wall_ms);
      return 0;
    }
    int runs = 5;
    std::vector<int> sizes{1000, 10000, 100000};
    std::string keep;
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& arg = args[i];
      if (arg == "--help" || arg == "-h") {
        usage(stdout);
        return 0;
      }
      if (arg == "--runs" && i + 1 < args.size()) runs = std::max(1, std::atoi(args[++i].c_str()));
      else if (arg == "--keep" && i + 1 < args.size()) keep = args[++i];
      else if (arg == "--sizes" && i + 1 < args.size()) {
        const std::string& list = args[++i];
        sizes.clear();
        for (std::size_t p = 0; p < list.size();) {
          sizes.push_back(std::atoi(list.c_str() + p));
          p = list.find(',', p);
          if (p == std::string::npos) break;
          ++p;
        }
      } else {
        usage(stderr);
        return 2;
      }
    }
    return bench(runs, sizes, keep);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lister_bench: %s\n", e.what());
    return 1;
  }
}
