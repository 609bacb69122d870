// Builds a real tree of N directories (100k by default) with z-style ranks
// and visit times, then measures:
//   1. inside the engine: import, load at start-up, query (as `descent query`,
//      as Emacs completion) and add, each as p50/p90/max;
//   2. end to end: `descent query WORDS` (a process, the daemon answering)
//      against `zoxide query WORDS` on the same data imported into zoxide,
//      run alternately, with the ratio per pair.
// Timings go to stdout as a table; nothing here asserts a speed.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "engine/frecency/index.hpp"

extern "C" char** environ;

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using descent::frecency::ImportFormat;
using descent::frecency::Index;

namespace {

struct Options {
  std::size_t entries = 100'000;
  std::size_t queries = 2000;
  std::size_t process_runs = 41;
  std::string zoxide = "zoxide";
  bool end_to_end = true;
  bool keep = false;
  bool mkdir = true;  // false: paths only, and the engine is told they all exist
};

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Summary {
  double p50, p90, max;
};

Summary summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const auto at = [&](double q) { return samples[static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1))]; };
  return {at(0.5), at(0.9), samples.back()};
}

void print_row(const char* what, const Summary& s, const char* unit = "ms") {
  std::printf("| %-46s | %9.3f | %9.3f | %9.3f | %s |\n", what, s.p50, s.p90, s.max, unit);
}

// Pronounceable words, so that keywords hit some paths and miss others.
std::vector<std::string> make_words(std::mt19937_64& rng, std::size_t count) {
  static const char* syllables[] = {"ka", "ro", "mi", "te", "su", "lo", "ne", "vi", "da", "po", "ri", "sha",
                                    "gu", "be", "zo", "fi", "ma", "to", "ke", "li", "no", "ra", "xe", "wu"};
  std::uniform_int_distribution<int> pick(0, std::size(syllables) - 1), length(2, 4);
  std::vector<std::string> words;
  while (words.size() < count) {
    std::string word;
    for (int i = length(rng); i > 0; --i) word += syllables[pick(rng)];
    words.push_back(word);
  }
  return words;
}

struct Dataset {
  std::vector<std::string> dirs;
  fs::path z_file;
  std::vector<std::vector<std::string>> queries;
};

Dataset make_dataset(const fs::path& root, const Options& options) {
  std::mt19937_64 rng(42);
  const auto words = make_words(rng, 600);
  std::uniform_int_distribution<std::size_t> word(0, words.size() - 1);
  std::uniform_int_distribution<int> depth(2, 6), rank(1, 40);
  std::uniform_int_distribution<std::int64_t> age(0, 60 * 86400);
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));

  Dataset data;
  data.z_file = root / "z";
  std::ofstream z(data.z_file);
  std::vector<std::string> seen;
  const fs::path top = root / "home";
  while (data.dirs.size() < options.entries) {
    // Grow from an existing directory half of the time, so the tree has
    // shared prefixes as real ones do.
    std::string path = (!data.dirs.empty() && rng() % 2) ? data.dirs[rng() % data.dirs.size()] : top.string();
    for (int d = depth(rng) / 2 + 1; d > 0; --d) path += "/" + words[word(rng)];
    if (options.mkdir) {
      std::error_code ec;
      if (!fs::create_directories(path, ec)) continue;  // exists already, or failed
    } else if (!std::binary_search(seen.begin(), seen.end(), path)) {
      seen.insert(std::upper_bound(seen.begin(), seen.end(), path), path);
    } else {
      continue;
    }
    data.dirs.push_back(path);
    z << path << '|' << rank(rng) << '|' << (now - age(rng)) << '\n';
  }
  // Keywords as a person types them: a prefix of a component, sometimes
  // preceded by part of an earlier component.
  for (std::size_t i = 0; i < options.queries; ++i) {
    const std::string& dir = data.dirs[rng() % data.dirs.size()];
    std::vector<std::string> components;
    for (const auto& part : fs::path(dir).lexically_relative(top)) components.push_back(part.string());
    std::vector<std::string> keywords;
    if (components.size() > 1 && rng() % 2) keywords.push_back(components[rng() % (components.size() - 1)].substr(0, 3));
    keywords.push_back(components.back().substr(0, 2 + rng() % 3));
    data.queries.push_back(keywords);
  }
  return data;
}

void engine_bench(const fs::path& root, const Dataset& data, const Options& options) {
  const descent::frecency::Probe probe =
      options.mkdir ? descent::frecency::Probe(descent::frecency::stat_directory) : [](const std::string&) { return 0; };
  const fs::path db = root / "engine-state.db";
  std::printf("\n## Inside the engine (%zu directories, %zu queries)\n\n", data.dirs.size(), data.queries.size());
  std::printf("| %-46s | %9s | %9s | %9s | unit |\n|%s|-----------|-----------|-----------|------|\n", "operation", "p50",
              "p90", "max", std::string(48, '-').c_str());
  {
    Index index(db, probe);
    auto start = Clock::now();
    index.import_file(ImportFormat::z, data.z_file.string());
    const double import_ms = ms_since(start);
    print_row("import z file (one transaction)", {import_ms, import_ms, import_ms});
  }
  std::vector<double> loads;
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    Index index(db, probe);
    loads.push_back(ms_since(start));
  }
  print_row("open + load at start-up", summarize(loads));

  Index index(db, probe);
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  std::vector<double> best, top50, all_best;
  std::size_t found = 0;
  for (const auto& keywords : data.queries) {
    auto start = Clock::now();
    const auto result = index.query(keywords, 1, now);
    best.push_back(ms_since(start));
    found += !result.empty();
    start = Clock::now();
    index.query(keywords, 50, now);
    top50.push_back(ms_since(start));
  }
  for (int i = 0; i < 50; ++i) {
    const auto start = Clock::now();
    index.query({}, 1, now);
    all_best.push_back(ms_since(start));
  }
  print_row("query WORDS, limit 1 (`descent query`)", summarize(best));
  print_row("query WORDS, limit 50 (completion)", summarize(top50));
  print_row("query no words, limit 1 (all match)", summarize(all_best));
  std::vector<double> lists;
  for (int i = 0; i < 10; ++i) {
    const auto start = Clock::now();
    index.list(now);
    lists.push_back(ms_since(start));
  }
  print_row("list (all, sorted)", summarize(lists));
  std::vector<double> adds;
  for (int i = 0; i < 50; ++i) {
    const auto start = Clock::now();
    index.add(data.dirs[static_cast<std::size_t>(i) * 997 % data.dirs.size()], now);
    adds.push_back(ms_since(start));
  }
  print_row("add (commit with fsync; first one ages)", summarize(adds));
  std::printf("\n%zu of %zu queries found a directory; index now holds %zu entries (aged by the adds).\n", found,
              data.queries.size(), index.size());
}

struct Process {
  int status = -1;
  std::string out;
};

Process run(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) {
  std::vector<std::string> env_strings(extra_env);
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  std::vector<char*> env, argv;
  for (auto& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::vector<std::string> copy(args);
  for (auto& s : copy) argv.push_back(s.data());
  argv.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  pid_t pid;
  const int error = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (error != 0) {
    ::close(pipe_fds[0]);
    throw std::runtime_error("cannot run " + args[0] + ": " + std::strerror(error));
  }
  Process p;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) p.out.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  while (::waitpid(pid, &p.status, 0) < 0 && errno == EINTR) {
  }
  return p;
}

bool can_connect(const fs::path& socket_path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

void end_to_end_bench(const fs::path& root, const Dataset& data, const Options& options) {
  const fs::path runtime = root / "runtime";
  fs::create_directories(runtime / "descent");
  fs::permissions(runtime, fs::perms::owner_all);
  fs::permissions(runtime / "descent", fs::perms::owner_all);
  const fs::path socket_path = runtime / "descent" / "descentd.sock";
  const fs::path state = root / "daemon-state";
  const std::vector<std::string> env = {"XDG_RUNTIME_DIR=" + runtime.string(), "XDG_STATE_HOME=" + state.string(),
                                        "_ZO_DATA_DIR=" + (root / "zoxide").string()};
  fs::create_directories(root / "zoxide");

  pid_t daemon;
  std::vector<std::string> daemon_args = {DESCENTD_PATH, "--foreground", "--socket", socket_path.string(),
                                          "--state-dir", state.string()};
  std::vector<char*> argv;
  for (auto& s : daemon_args) argv.push_back(s.data());
  argv.push_back(nullptr);
  if (const int error = ::posix_spawn(&daemon, DESCENTD_PATH, nullptr, nullptr, argv.data(), environ))
    throw std::runtime_error(std::string("cannot start descentd: ") + std::strerror(error));
  for (int i = 0; i < 500 && !can_connect(socket_path); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));

  const std::string cli = DESCENT_CLI_PATH;
  const auto imported = run({cli, "--socket", socket_path.string(), "import", "z", data.z_file.string()}, env);
  const auto zoxide_imported = run({options.zoxide, "import", data.z_file.string()}, env);
  if (imported.status != 0 || zoxide_imported.status != 0) {
    std::fprintf(stderr, "import failed (descent %d, zoxide %d)\n", imported.status, zoxide_imported.status);
    ::kill(daemon, SIGTERM);
    ::waitpid(daemon, nullptr, 0);
    return;
  }

  std::vector<double> ours, theirs, ratios;
  std::size_t same = 0, both_found = 0;
  for (std::size_t i = 0; i < options.process_runs + 1; ++i) {
    const auto& keywords = data.queries[i % data.queries.size()];
    std::vector<std::string> a = {cli, "--socket", socket_path.string(), "query"};
    std::vector<std::string> b = {options.zoxide, "query"};
    a.insert(a.end(), keywords.begin(), keywords.end());
    b.insert(b.end(), keywords.begin(), keywords.end());
    auto start = Clock::now();
    const auto our = run(a, env);
    const double our_ms = ms_since(start);
    start = Clock::now();
    const auto their = run(b, env);
    const double their_ms = ms_since(start);
    if (i == 0) continue;  // warm-up
    ours.push_back(our_ms);
    theirs.push_back(their_ms);
    ratios.push_back(our_ms / their_ms);
    if (!our.out.empty() && !their.out.empty()) {
      ++both_found;
      same += our.out == their.out;
    }
  }
  ::kill(daemon, SIGTERM);
  ::waitpid(daemon, nullptr, 0);

  std::printf("\n## End to end, one process per query (%zu pairs, alternating)\n\n", ours.size());
  std::printf("| %-46s | %9s | %9s | %9s | unit |\n|%s|-----------|-----------|-----------|------|\n", "command", "p50",
              "p90", "max", std::string(48, '-').c_str());
  print_row("descent query WORDS (client + daemon)", summarize(ours));
  print_row("zoxide query WORDS", summarize(theirs));
  print_row("ratio descent / zoxide, per pair", summarize(ratios), "x ");
  std::printf("\nBoth found a directory in %zu queries; the same one in %zu (zoxide 0.4 does not\n"
              "require the last keyword to match the last component, nor break ties by depth).\n",
              both_found, same);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--entries") options.entries = std::stoul(value());
    else if (arg == "--queries") options.queries = std::stoul(value());
    else if (arg == "--runs") options.process_runs = std::stoul(value());
    else if (arg == "--zoxide") options.zoxide = value();
    else if (arg == "--engine-only") options.end_to_end = false;
    else if (arg == "--keep") options.keep = true;
    else if (arg == "--no-mkdir") options.mkdir = false;
    else {
      std::printf("usage: %s [--entries N (100000)] [--queries N (2000)] [--runs N (41)] [--zoxide PATH]\n"
                  "          [--engine-only] [--no-mkdir (engine only, no stat)] [--keep]\n"
                  "Builds a tree of N directories under $TMPDIR, and times the frecency index.\n",
                  argv[0]);
      return arg == "--help" ? 0 : 2;
    }
  }
  std::string pattern = (fs::temp_directory_path() / "descent-bench-frecency-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path root = pattern;
  int code = 0;
  try {
    const auto start = Clock::now();
    const Dataset data = make_dataset(root, options);
    std::printf("# descent frecency bench\n\n%zu directories generated under %s in %.1f s\n", data.dirs.size(),
                root.c_str(), ms_since(start) / 1000);
    engine_bench(root, data, options);
    if (options.end_to_end && options.mkdir) end_to_end_bench(root, data, options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench failed: %s\n", e.what());
    code = 1;
  }
  if (!options.keep) {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }
  return code;
}
