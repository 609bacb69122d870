// The floor of a wdired commit: N renames f<i> -> g<i> in one directory by a
// bare renameat2(RENAME_NOREPLACE) loop, nothing else. Also makes the trees
// the wdired benchmark edits, since creating 100k files from Lisp would take
// longer than what is measured.
//
//   descent-bench-wdired-floor populate DIR N   make DIR with files f000000...
//   descent-bench-wdired-floor rename DIR N     rename them to g..., print seconds
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

std::string name(char prefix, long i) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%c%06ld", prefix, i);
  return buffer;
}

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: descent-bench-wdired-floor populate|rename DIR N\n");
    return 2;
  }
  const std::string mode = argv[1], dir = argv[2];
  const long count = std::atol(argv[3]);
  if (mode == "populate") {
    if (::mkdir(dir.c_str(), 0755) != 0) die("mkdir");
    const int dfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) die("open");
    for (long i = 0; i < count; ++i) {
      const int fd = ::openat(dfd, name('f', i).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) die("openat");
      ::close(fd);
    }
    ::close(dfd);
    ::sync();  // so that the timed side does not pay for these dirty pages
    return 0;
  }
  if (mode != "rename") return 2;
  const auto start = std::chrono::steady_clock::now();
  const int dfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) die("open");
  for (long i = 0; i < count; ++i)
    if (::renameat2(dfd, name('f', i).c_str(), dfd, name('g', i).c_str(), RENAME_NOREPLACE) != 0) die("renameat2");
  ::close(dfd);
  std::printf("%.6f\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}
