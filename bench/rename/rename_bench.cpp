// The rename engine against its floor: N renames in one directory (f<i> ->
// g<i>) by Renamer::submit (validation, ordering, journal, fsyncs, done-mark)
// versus a bare renameat2(RENAME_NOREPLACE) loop. Prints a table of medians
// and ratios; the target of issue #4 is engine <= 1.5 x floor + 20 ms.
//
//   rename_bench                     the table for 10k and 100k (5 runs each)
//   rename_bench --count N --runs R  other sizes
//   rename_bench --only floor|engine --count N
//                                    one run of one side, for timing whole
//                                    processes (/usr/bin/time -v: peak RSS)
//   rename_bench --only plan --count N --runs R
//                                    RenamePlan::make alone (validation and
//                                    ordering, nothing renamed): the median
//                                    of R plans of one directory
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/rename/rename.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace rename = descent::rename;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "rename_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

struct Scratch {
  std::string root;
  Scratch() {
    const char* tmp = std::getenv("TMPDIR");
    root = std::string(tmp ? tmp : "/tmp") + "/descent-rename-bench-XXXXXX";
    if (!::mkdtemp(root.data())) die("mkdtemp");
  }
  ~Scratch() {
    std::error_code ignored;
    std::filesystem::remove_all(root, ignored);
  }
};

// A fresh directory with `count` empty files f0 ... f<count-1>.
std::string populate(const std::string& parent, const std::string& name, std::size_t count) {
  const std::string dir = parent + "/" + name;
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  if (::mkdir(dir.c_str(), 0755) != 0) die("mkdir " + dir);
  const int dfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  for (std::size_t i = 0; i < count; ++i) {
    const int fd = ::openat(dfd, ("f" + std::to_string(i)).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) die("creating a file");
    ::close(fd);
  }
  ::close(dfd);
  ::sync();  // so that neither side pays for the other's dirty pages
  return dir;
}

double floor_run(const std::string& dir, std::size_t count) {
  const auto start = Clock::now();
  const int dfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string from = "f" + std::to_string(i), to = "g" + std::to_string(i);
    if (::renameat2(dfd, from.c_str(), dfd, to.c_str(), RENAME_NOREPLACE) != 0) die("renameat2");
  }
  ::close(dfd);
  return std::chrono::duration<double>(Clock::now() - start).count();
}

rename::Batch batch_for(const std::string& dir, std::size_t count) {
  rename::Batch batch;
  batch.operations.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    rename::Operation op;
    op.source = dir + "/f" + std::to_string(i);
    op.destination = dir + "/g" + std::to_string(i);
    struct stat st {};
    if (::lstat(op.source.c_str(), &st) != 0) die("lstat");
    op.id = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    batch.operations.push_back(std::move(op));
  }
  return batch;
}

double engine_run(const std::string& state, const std::string& dir, std::size_t count) {
  const rename::Batch batch = batch_for(dir, count);  // the client's work, not timed
  auto db = descent::state::Database::open(state + "/state.db");
  rename::Renamer::Options options;
  options.trash_dir = state + "/Trash";
  rename::Renamer renamer(db, options);
  std::atomic<bool> never{false};
  const auto start = Clock::now();
  renamer.submit(batch, never);
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Planning only: RenamePlan::make touches nothing, so one directory serves every run.
double plan_run(const std::string& state, const std::string& dir, std::size_t count, long& faults) {
  const rename::Batch batch = batch_for(dir, count);  // the client's work, not timed
  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  const auto start = Clock::now();
  const rename::RenamePlan plan = rename::RenamePlan::make(batch, state + "/Trash");
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ::getrusage(RUSAGE_SELF, &after);
  faults = after.ru_minflt - before.ru_minflt;
  if (plan.steps.size() != count) {
    std::fprintf(stderr, "rename_bench: planned %zu steps for %zu renames\n", plan.steps.size(), count);
    std::exit(1);
  }
  return seconds;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

long peak_rss_kib() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> counts = {10000, 100000};
  int runs = 5;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--count" && i + 1 < argc) counts = {static_cast<std::size_t>(std::atol(argv[++i]))};
    else if (arg == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--only" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: rename_bench [--count N] [--runs R] [--only floor|engine|plan]\n");
      return 2;
    }
  }
  Scratch scratch;
  if (only == "plan") {
    const std::string dir = populate(scratch.root, "d", counts.front());
    std::vector<double> times;
    long first_faults = 0, faults = 0;
    for (int r = 0; r < runs; ++r) {
      times.push_back(plan_run(scratch.root, dir, counts.front(), faults));
      if (r == 0) first_faults = faults;
    }
    // The first run touches fresh pages (as a daemon's first batch does); later ones reuse the heap.
    std::printf("plan %zu renames: median %.2f ms of %d, first %.2f ms, min %.2f ms; page faults: first %ld, last %ld; "
                "peak RSS %ld KiB\n",
                counts.front(), median(times) * 1e3, runs, times.front() * 1e3,
                *std::min_element(times.begin(), times.end()) * 1e3, first_faults, faults, peak_rss_kib());
    return 0;
  }
  if (!only.empty()) {
    const std::string dir = populate(scratch.root, "d", counts.front());
    const double seconds = only == "floor" ? floor_run(dir, counts.front())
                                           : engine_run(scratch.root, dir, counts.front());
    std::printf("%s %zu renames: %.1f ms, peak RSS %ld KiB\n", only.c_str(), counts.front(), seconds * 1e3,
                peak_rss_kib());
    return 0;
  }
  std::printf("%-8s %12s %12s %8s %16s %s\n", "renames", "floor ms", "engine ms", "ratio", "target ms", "");
  for (const std::size_t count : counts) {
    std::vector<double> floor_times, engine_times;
    for (int r = 0; r < runs; ++r) {  // alternate, so drift hits both sides alike
      floor_times.push_back(floor_run(populate(scratch.root, "d", count), count));
      engine_times.push_back(engine_run(scratch.root, populate(scratch.root, "d", count), count));
    }
    const double f = median(floor_times) * 1e3, e = median(engine_times) * 1e3;
    const double target = 1.5 * f + 20;
    std::printf("%-8zu %12.1f %12.1f %8.2f %16.1f %s\n", count, f, e, e / f, target, e <= target ? "ok" : "OVER");
  }
  std::printf("peak RSS of this process: %ld KiB\n", peak_rss_kib());
  return 0;
}
