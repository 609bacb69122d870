#include "daemon_harness.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "descent/version.hpp"
#include "protocol/rpc.hpp"

extern char** environ;

namespace descent::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// The test's environment plus `extra` (NAME=value entries override).
std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    const auto name = entry.substr(0, entry.find('=') + 1);
    bool overridden = false;
    for (const auto& x : extra) overridden |= x.rfind(name, 0) == 0;
    if (!overridden) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

Exit decode_status(int status) {
  if (WIFEXITED(status)) return {true, WEXITSTATUS(status)};
  return {false, WTERMSIG(status)};
}

std::optional<Exit> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_status(status);
    if (r < 0) return std::nullopt;
    if (Clock::now() > end) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "descent-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  if (test && test->result()->Failed()) {
    std::cerr << "kept the test directory for inspection: " << path_ << '\n';
    return;
  }
  std::error_code ec;
  // The tests may leave read-only directories behind: make them removable.
  for (auto it = fs::recursive_directory_iterator(path_, ec); it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_directory(ec) && !it->is_symlink(ec)) fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

Output run_program(const std::vector<std::string>& argv_in, const std::vector<std::string>& extra_env,
                   std::chrono::milliseconds timeout) {
  TempDir scratch;
  const fs::path out_file = scratch.path() / "out", err_file = scratch.path() / "err";
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = environment_with(extra_env);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execve(argv[0].c_str(), c_strings(argv).data(), c_strings(env).data());
    ::_exit(127);
  }
  Output result;
  auto exit = wait_for(pid, timeout);
  if (!exit) {
    ::kill(pid, SIGKILL);
    exit = wait_for(pid, std::chrono::seconds(5));
    result.err = "(timed out)\n";
  }
  result.exit = exit.value_or(Exit{false, SIGKILL});
  result.out = read_file(out_file);
  result.err += read_file(err_file);
  return result;
}

Daemon::Daemon(const fs::path& root, std::vector<std::string> extra_env)
    : root_(root),
      runtime_dir_(root / "runtime"),
      socket_(runtime_dir_ / "descent" / "descentd.sock"),
      state_dir_(root / "state" / "descent"),
      log_file_(root / "descentd.log") {
  fs::create_directories(runtime_dir_);
  fs::permissions(runtime_dir_, fs::perms::owner_all);
  env_ = {"XDG_RUNTIME_DIR=" + runtime_dir_.string(), "XDG_STATE_HOME=" + (root / "state").string(),
          "DESCENT_TEST_HOOKS=1"};
  env_.insert(env_.end(), extra_env.begin(), extra_env.end());
}

Daemon::~Daemon() {
  if (pid_ > 0) stop(SIGKILL);
}

std::vector<std::string> Daemon::argv() const {
  return {descentd_path, "--foreground", "--socket", socket_.string(), "--state-dir", state_dir_.string()};
}

void Daemon::start() {
  std::vector<std::string> argv = this->argv();
  std::vector<std::string> env = environment_with(env_);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int log = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(log, 2);
    ::dup2(log, 1);
    ::execve(argv[0].c_str(), c_strings(argv).data(), c_strings(env).data());
    ::_exit(127);
  }
  pid_ = pid;
  const auto end = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    try {
      client();
      return;
    } catch (const std::exception&) {
    }
    if (auto exit = wait_for(pid_, std::chrono::milliseconds(0))) {
      pid_ = -1;
      throw std::runtime_error("descentd exited during start-up (code " + std::to_string(exit->code) + "): " + log());
    }
    if (Clock::now() > end) throw std::runtime_error("descentd did not start within 10 s: " + log());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Exit Daemon::stop(int signal) {
  if (pid_ <= 0) return {};
  ::kill(pid_, signal);
  return wait();
}

Exit Daemon::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return {};
  auto exit = wait_for(pid_, timeout);
  if (!exit) {
    ::kill(pid_, SIGKILL);
    exit = wait_for(pid_, std::chrono::seconds(5));
    ADD_FAILURE() << "descentd did not exit in time; killed it";
  }
  pid_ = -1;
  return exit.value_or(Exit{});
}

std::string Daemon::log() const { return read_file(log_file_); }

protocol::Client Daemon::client(std::chrono::milliseconds timeout) const {
  protocol::Wait wait;
  wait.timeout = timeout;
  return protocol::Client(socket_.string(), "test", wait);
}

RawConnection::RawConnection(const fs::path& socket) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
}

RawConnection::~RawConnection() { ::close(fd_); }

void RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;  // the daemon may close on us mid-way: the tests look at that separately
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::optional<std::string> RawConnection::receive_frame(std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  std::string data;
  auto fill = [&](std::size_t want) {
    while (data.size() < want) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, std::min(sizeof chunk, want - data.size()), 0);
      if (n <= 0) return false;
      data.append(chunk, static_cast<std::size_t>(n));
    }
    return true;
  };
  if (!fill(4)) return std::nullopt;
  const auto size = protocol::decode_header(
      std::span<const unsigned char, 4>(reinterpret_cast<const unsigned char*>(data.data()), 4));
  if (!fill(4 + size)) return std::nullopt;
  return data.substr(4);
}

bool RawConnection::closed_by_peer(std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    pollfd p{fd_, POLLIN, 50};
    if (::poll(&p, 1, 50) > 0) {
      char c;
      const ssize_t n = ::recv(fd_, &c, 1, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    }
  }
  return false;
}

CallResult call(protocol::Client& client, std::string_view method, const protocol::Writer& params) {
  protocol::Wait wait;
  wait.timeout = std::chrono::seconds(10);
  try {
    client.call(method, params, wait);
    return {true, "", ""};
  } catch (const protocol::RemoteFailure& e) {
    return {false, e.kind, e.what()};
  }
}

std::string hello_frame(int protocol_version) {
  return protocol::request_frame(1, "hello", [&](protocol::Packer& p) {
    p.pack_array(2);
    p.pack(protocol_version);
    protocol::pack_text(p, "raw-test");
  });
}

}  // namespace descent::testing
