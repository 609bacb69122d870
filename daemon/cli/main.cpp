// descent: the shell's client of descentd (status, stop, and the frecency
// commands). It links only the protocol library, never the engine.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <spawn.h>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>

#include "descent/version.hpp"
#include "protocol/client.hpp"
#include "protocol/paths.hpp"
#include "protocol/rpc.hpp"

namespace {

using namespace descent;
using protocol::Client;

struct Options {
  std::string socket;
};

std::string socket_of(const Options& options) {
  return options.socket.empty() ? protocol::default_socket_path().string() : options.socket;
}


std::string text_of(const msgpack::object& o) {
  if (auto b = protocol::as_bytes(o)) return std::string(*b);
  if (o.type == msgpack::type::POSITIVE_INTEGER) return std::to_string(o.via.u64);
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return std::to_string(o.via.i64);
  if (o.type == msgpack::type::FLOAT64 || o.type == msgpack::type::FLOAT32) return std::to_string(o.via.f64);
  if (o.type == msgpack::type::BOOLEAN) return o.via.boolean ? "true" : "false";
  return "-";
}

// Seconds as M-x descent-status shows them (descent--format-uptime):
// "42 s" under a minute, else "1 day, 3 hours, 0 minutes".
std::string uptime_text(std::int64_t seconds) {
  if (seconds < 60) return std::to_string(std::max<std::int64_t>(seconds, 0)) + " s";
  struct Unit {
    const char* name;
    std::int64_t seconds;
  };
  std::string text;
  for (const Unit unit : {Unit{"year", 365 * 86400}, Unit{"day", 86400}, Unit{"hour", 3600}, Unit{"minute", 60}}) {
    const std::int64_t count = seconds / unit.seconds;
    seconds %= unit.seconds;
    if (count == 0 && text.empty()) continue;
    if (!text.empty()) text += ", ";
    text += std::to_string(count) + ' ' + unit.name + (count == 1 ? "" : "s");
  }
  return text;
}

int status(const Options& options) {
  std::optional<Client> connected;
  try {
    connected.emplace(socket_of(options), "descent-cli", protocol::Wait{});
  } catch (const protocol::ConnectionError& e) {
    // Said as `stop` says it; still a failure, as systemctl status of a
    // stopped unit is.
    if (e.error != ENOENT && e.error != ECONNREFUSED) throw;
    std::cerr << "descent: descentd is not running (" << e.what() << ")\n";
    return 1;
  }
  Client& client = *connected;
  auto reply = client.call("status", [](protocol::Packer& p) { p.pack_array(0); }, protocol::Wait{});
  const auto& map = *reply.result;
  for (const char* key : {"version", "protocol", "pid", "socket", "state-dir", "uptime", "connections"}) {
    const auto* value = protocol::map_find(map, key);
    if (!value) continue;
    const auto seconds = std::string_view(key) == "uptime" ? protocol::as_number(*value) : std::nullopt;
    std::cout << key << ": " << (seconds ? uptime_text(static_cast<std::int64_t>(*seconds)) : text_of(*value)) << '\n';
  }
  return 0;
}

int stop(const Options& options) {
  std::optional<Client> client;
  try {
    client.emplace(socket_of(options), "descent-cli", protocol::Wait{});
  } catch (const protocol::ConnectionError& e) {
    // Nothing listens: what `stop` asks for is so already (as systemctl stop).
    if (e.error != ENOENT && e.error != ECONNREFUSED) throw;
    std::cout << "descentd is not running\n";
    return 0;
  }
  client->call("stop", [](protocol::Packer& p) { p.pack_array(0); }, protocol::Wait{});
  return 0;
}


// ---- frecency: query, add, list, remove, import (issue #6) ----

extern "C" char** environ;

// Starts descentd (the one installed beside this program, else the one on
// PATH) and waits until it listens: descentd returns only then.
void start_daemon(const Options& options) {
  std::string program = "descentd";
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const auto& candidate : {self.parent_path() / "descentd", self.parent_path().parent_path() / "server" / "descentd"})
      if (::access(candidate.c_str(), X_OK) == 0) {
        program = candidate.string();
        break;
      }
  }
  std::vector<std::string> args = {program};
  if (!options.socket.empty()) args.insert(args.end(), {"--socket", options.socket});
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid;
  const int error = ::posix_spawnp(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ);
  if (error != 0) throw std::runtime_error("cannot start " + program + ": " + std::strerror(error));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error(program + " did not start (see above)");
}

// Connects, starting the daemon first if none is listening: a shell may well
// run before any Emacs did.
std::unique_ptr<Client> connect_starting(const Options& options) {
  try {
    return std::make_unique<Client>(socket_of(options), "descent-cli", protocol::Wait{});
  } catch (const protocol::ConnectionError& e) {
    if (e.error != ENOENT && e.error != ECONNREFUSED) throw;
  }
  start_daemon(options);
  return std::make_unique<Client>(socket_of(options), "descent-cli", protocol::Wait{});
}

// An absolute path for the daemon, which does not share our working
// directory. Relative paths are taken from $PWD when it names the working
// directory, as the shell that called us sees it (symlinks kept, as cd -L).
std::string absolute_for_daemon(const std::string& path) {
  if (!path.empty() && path.front() == '/') return path;
  std::string base;
  struct stat pwd_st {}, dot_st {};
  const char* pwd = std::getenv("PWD");
  if (pwd && *pwd == '/' && ::stat(pwd, &pwd_st) == 0 && ::stat(".", &dot_st) == 0 && pwd_st.st_dev == dot_st.st_dev &&
      pwd_st.st_ino == dot_st.st_ino) {
    base = pwd;
  } else {
    std::error_code ec;
    base = std::filesystem::current_path(ec).string();
    if (ec) throw std::runtime_error("cannot find the working directory: " + ec.message());
  }
  return path.empty() ? base : base + "/" + path;
}

void write_path(std::string_view path) {
  std::fwrite(path.data(), 1, path.size(), stdout);
  std::fputc('\n', stdout);
}

double number_of(const msgpack::object& o) { return protocol::as_number(o).value_or(0); }

struct Match {
  std::string path;
  double score;
};

std::vector<Match> matches_of(const msgpack::object& result) {
  if (result.type != msgpack::type::ARRAY) throw std::runtime_error("descentd answered frecency with a non-array");
  std::vector<Match> out;
  for (std::uint32_t i = 0; i < result.via.array.size; ++i) {
    const auto& item = result.via.array.ptr[i];
    const auto* path = protocol::map_find(item, "path");
    const auto* score = protocol::map_find(item, "score");
    const auto bytes = path ? protocol::as_bytes(*path) : std::nullopt;
    if (!bytes || !score) throw std::runtime_error("descentd answered frecency with a malformed entry");
    out.push_back({std::string(*bytes), number_of(*score)});
  }
  return out;
}

void print_scored(const std::vector<Match>& matches) {
  for (const auto& match : matches) {
    std::printf("%6.1f ", match.score);
    write_path(match.path);
  }
}

struct QueryOptions {
  std::vector<std::string> words;
  std::string exclude;
  bool list = false;
  bool score = false;
};

// Exit 1 and no output when nothing matches, so `cd "$(descent query x)"`
// can be guarded with && in a shell function.
int frecency_query(const Options& options, const QueryOptions& query) {
  auto client = connect_starting(options);
  std::string exclude;
  if (!query.exclude.empty()) exclude = absolute_for_daemon(query.exclude);
  // One more than shown, in case the best is where the shell already is.
  const std::int64_t limit = query.list ? 0 : 2;
  auto reply = client->call(
      "frecency.query",
      [&](protocol::Packer& p) {
        p.pack_array(2);
        p.pack_array(static_cast<std::uint32_t>(query.words.size()));
        for (const auto& word : query.words) protocol::pack_bytes(p, word);
        p.pack(limit);
      },
      protocol::Wait{});
  std::vector<Match> matches;
  for (auto& match : matches_of(*reply.result))
    if (exclude.empty() || match.path != exclude) matches.push_back(std::move(match));
  if (matches.empty()) return 1;
  if (!query.list) matches.resize(1);
  if (query.score)
    print_scored(matches);
  else
    for (const auto& match : matches) write_path(match.path);
  return 0;
}

int frecency_add(const Options& options, const std::vector<std::string>& dirs) {
  auto client = connect_starting(options);
  for (const auto& dir : dirs)
    client->call(
        "frecency.add",
        [&](protocol::Packer& p) {
          p.pack_array(1);
          protocol::pack_bytes(p, absolute_for_daemon(dir));
        },
        protocol::Wait{});
  return 0;
}

int frecency_list(const Options& options) {
  auto client = connect_starting(options);
  auto reply = client->call("frecency.list", [](protocol::Packer& p) { p.pack_array(0); }, protocol::Wait{});
  print_scored(matches_of(*reply.result));
  return 0;
}

int frecency_remove(const Options& options, const std::string& dir) {
  auto client = connect_starting(options);
  const std::string path = absolute_for_daemon(dir);
  auto reply = client->call(
      "frecency.remove",
      [&](protocol::Packer& p) {
        p.pack_array(1);
        protocol::pack_bytes(p, path);
      },
      protocol::Wait{});
  if (reply.result->type == msgpack::type::BOOLEAN && reply.result->via.boolean) return 0;
  std::cerr << "descent: " << path << " is not in the index\n";
  return 1;
}

int frecency_import(const Options& options, const std::string& format, const std::string& file) {
  auto client = connect_starting(options);
  const std::string path = absolute_for_daemon(file);
  auto reply = client->call(
      "frecency.import",
      [&](protocol::Packer& p) {
        p.pack_array(2);
        protocol::pack_text(p, format);
        protocol::pack_bytes(p, path);
      },
      protocol::Wait{});
  const std::string count = text_of(*reply.result);
  std::cout << "imported " << count << (count == "1" ? " entry" : " entries") << " from " << path << '\n';
  return 0;
}

void add_frecency_commands(CLI::App& app, const Options& options, int& code) {
  auto query = std::make_shared<QueryOptions>();
  auto* query_command = app.add_subcommand("query", "Print the best directory matching WORDS (exit 1 if none)");
  query_command->add_option("words", query->words, "Keywords, in path order; the last matches the last component");
  query_command->add_option("--exclude", query->exclude, "Never answer this directory (give your shell's $PWD)");
  query_command->add_flag("-l,--list", query->list, "Print every match, best first");
  query_command->add_flag("-s,--score", query->score, "Print the score before each directory");
  query_command->callback([&options, &code, query] { code = frecency_query(options, *query); });

  auto dirs = std::make_shared<std::vector<std::string>>();
  auto* add_command = app.add_subcommand("add", "Record a visit of DIR: its rank grows by 1 ('list' shows scores: ranks weighted by how recent the last visit is)");
  add_command->add_option("dir", *dirs, "Directories (relative ones are taken from $PWD)")->required();
  add_command->callback([&options, &code, dirs] { code = frecency_add(options, *dirs); });

  auto* list_command = app.add_subcommand("list", "Print every directory in the index with its score, best first");
  list_command->callback([&options, &code] { code = frecency_list(options); });

  auto removed = std::make_shared<std::string>();
  auto* remove_command = app.add_subcommand("remove", "Forget DIR");
  remove_command->add_option("dir", *removed, "Directory to forget")->required();
  remove_command->callback([&options, &code, removed] { code = frecency_remove(options, *removed); });

  auto format = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  auto* import_command = app.add_subcommand(
      "import", "Merge another tool's data: zoxide (db.zo, or `zoxide query -ls` output), z (~/.z), autojump");
  import_command->add_option("format", *format, "zoxide, z or autojump")
      ->required()
      ->check(CLI::IsMember({"zoxide", "z", "autojump"}));
  import_command->add_option("file", *file, "The file to read (the index is unchanged if it is malformed)")->required();
  import_command->callback([&options, &code, format, file] { code = frecency_import(options, *format, *file); });
}

// ---- end of frecency ----
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"descent: talk to descentd from a shell"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("descent ") + version);
  Options options;
  app.add_option("--socket", options.socket, "descentd's socket (default: $XDG_RUNTIME_DIR/descent/descentd.sock)");

  int code = 0;
  auto* status_command = app.add_subcommand("status", "Show the running daemon's version, pid, socket and state");
  status_command->callback([&] { code = status(options); });
  auto* stop_command = app.add_subcommand("stop", "Stop the running daemon (it finishes or rolls back running work)");
  stop_command->callback([&] { code = stop(options); });
  add_frecency_commands(app, options, code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Usage errors exit 2, as shells expect of a command given bad arguments.
    // CLI11 checks for the subcommand before it complains of extras: name
    // an unknown word rather than say that a subcommand is required.
    if (dynamic_cast<const CLI::RequiredError*>(&e) && app.remaining_size() > 0) {
      // ExtrasError joins its words back to front.
      const auto remaining = app.remaining();
      return app.exit(CLI::ExtrasError({remaining.rbegin(), remaining.rend()})) == 0 ? 0 : 2;
    }
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const protocol::ConnectionError& e) {
    std::cerr << "descent: " << e.what() << '\n';
    return 1;
  } catch (const protocol::RemoteFailure& e) {
    // The daemon names its method first ("frecency.import: ..."), for its
    // log; the shell user typed "descent import".
    std::string message = e.what();
    if (const auto colon = message.find(": "); colon != std::string::npos &&
        message.find_first_not_of("abcdefghijklmnopqrstuvwxyz.-") == colon && message.find('.') < colon)
      message.erase(0, colon + 2);
    std::cerr << "descent: " << message << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "descent: " << e.what() << '\n';
    return 1;
  }
  return code;
}
