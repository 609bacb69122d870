// The real descentd on a temporary socket: start-up, bad input, faults.
#include <gtest/gtest.h>

#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fstream>
#include <random>
#include <regex>
#include <thread>
#include <unistd.h>

#include "daemon_harness.hpp"
#include "descent/version.hpp"
#include "protocol/frame.hpp"
#include "protocol/rpc.hpp"

namespace {

using namespace descent;
using namespace descent::testing;
using protocol::Packer;

auto no_params = [](Packer& p) { p.pack_array(0); };

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { daemon.start(); }
  TempDir dir;
  Daemon daemon{dir.path()};
};

std::string map_text(const msgpack::object& map, std::string_view key) {
  const auto* v = protocol::map_find(map, key);
  return v ? std::string(protocol::as_bytes(*v).value_or("")) : "";
}

TEST_F(DaemonTest, AnswersHelloAndStatus) {
  auto client = daemon.client();
  EXPECT_EQ(map_text(client.hello(), "version"), version);
  auto reply = client.call("status", no_params, {});
  EXPECT_EQ(map_text(*reply.result, "socket"), daemon.socket().string());
  EXPECT_EQ(map_text(*reply.result, "state-dir"), daemon.state_dir().string());
  const auto* pid = protocol::map_find(*reply.result, "pid");
  ASSERT_NE(pid, nullptr);
  EXPECT_EQ(pid->via.u64, static_cast<std::uint64_t>(daemon.pid()));
}

TEST_F(DaemonTest, CreatesAPrivateSocketDirectoryAndPidFile) {
  struct stat st {};
  ASSERT_EQ(::stat(daemon.socket().parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::ifstream pid_file(daemon.socket().parent_path() / "descentd.pid");
  pid_t pid = 0;
  pid_file >> pid;
  EXPECT_EQ(pid, daemon.pid());
}

TEST_F(DaemonTest, RefusesAnOversizedFrameBeforeReadingItAndKeepsServingOthers) {
  auto bystander = daemon.client();
  RawConnection raw(daemon.socket());
  raw.send(hello_frame(protocol_version));
  ASSERT_TRUE(raw.receive_frame());
  // Claims 4 GiB - 1 and sends nothing more: refused on the header alone.
  raw.send(std::string("\xff\xff\xff\xff", 4));
  auto reply = raw.receive_frame();
  ASSERT_TRUE(reply);
  EXPECT_NE(reply->find("exceeds the limit"), std::string::npos);
  EXPECT_TRUE(raw.closed_by_peer());
  EXPECT_TRUE(call(bystander, "status", no_params).ok);
  // One byte over the limit is refused too.
  RawConnection raw2(daemon.socket());
  const auto header = protocol::encode_header(protocol::max_request_size + 1);
  raw2.send(std::string(reinterpret_cast<const char*>(header.data()), 4));
  EXPECT_TRUE(raw2.receive_frame());
  EXPECT_TRUE(raw2.closed_by_peer());
  EXPECT_TRUE(daemon.client().is_open());
}

// A client that sends requests and never reads the replies: the daemon
// stops reading it once replies pile up, instead of queueing them without
// end (its RSS grew past 512 MB), and keeps serving everyone else.
TEST_F(DaemonTest, StopsReadingAClientThatDoesNotReadItsReplies) {
  const fs::path big = dir.path() / "big";
  fs::create_directories(big);
  for (int i = 0; i < 3000; ++i) std::ofstream(big / ("file-with-a-fairly-long-name-" + std::to_string(i)));
  RawConnection raw(daemon.socket());
  raw.send(hello_frame(protocol_version));
  ASSERT_TRUE(raw.receive_frame());
  const std::string request = protocol::request_frame(7, "list", [&](Packer& p) {
    p.pack_array(3);
    protocol::pack_text(p, big.string());
    p.pack_array(1);
    protocol::pack_text(p, "-al");
    p.pack_nil();
  });
  const int flags = ::fcntl(raw.fd(), F_GETFL);
  ASSERT_EQ(::fcntl(raw.fd(), F_SETFL, flags | O_NONBLOCK), 0);
  // 20000 listings of some 250 KB each: 5 GB of replies, if it read them
  // all. It stops reading, and the requests, more than the socket buffers
  // hold, stay with the client: sending stalls.
  std::size_t sent = 0;
  const std::size_t total = request.size() * 20000;
  auto last_progress = std::chrono::steady_clock::now();
  while (sent < total && std::chrono::steady_clock::now() - last_progress < std::chrono::seconds(2)) {
    const ssize_t n = ::send(raw.fd(), request.data() + sent % request.size(),
                             request.size() - sent % request.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      last_progress = std::chrono::steady_clock::now();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  EXPECT_LT(sent, total) << "the daemon read every request";
  std::ifstream status("/proc/" + std::to_string(daemon.pid()) + "/status");
  std::string line;
  long rss_kb = 0;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) rss_kb = std::stol(line.substr(6));
#if defined(__SANITIZE_ADDRESS__)
  const long limit_kb = 1024 * 1024;  // ASan's quarantine and shadow memory: still far below 5 GB
#else
  const long limit_kb = 300 * 1024;
#endif
  EXPECT_LT(rss_kb, limit_kb) << "the daemon queued the replies of " << sent / request.size() << " requests";
  auto bystander = daemon.client();
  EXPECT_TRUE(call(bystander, "status", no_params).ok);
}

TEST_F(DaemonTest, SurvivesRandomBytes) {
  std::mt19937 random(42);
  for (int round = 0; round < 20; ++round) {
    RawConnection raw(daemon.socket());
    std::string junk(1 + random() % 300, '\0');
    for (auto& c : junk) c = static_cast<char>(random());
    raw.send(junk);
  }
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "status", no_params).ok);
}

TEST_F(DaemonTest, SurvivesATruncatedFrame) {
  {
    RawConnection raw(daemon.socket());
    const std::string frame = hello_frame(protocol_version);
    raw.send(frame.substr(0, frame.size() - 3));
  }  // closed mid-frame
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "status", no_params).ok);
}

TEST_F(DaemonTest, AnswersBytesThatAreNotMessagePackAndKeepsTheConnection) {
  RawConnection raw(daemon.socket());
  raw.send(hello_frame(protocol_version));
  ASSERT_TRUE(raw.receive_frame());
  const std::string junk = "\xc1\xc1\xc1 not msgpack";
  const auto header = protocol::encode_header(junk.size());
  raw.send(std::string(reinterpret_cast<const char*>(header.data()), 4) + junk);
  auto reply = raw.receive_frame();
  ASSERT_TRUE(reply);
  EXPECT_NE(reply->find("malformed MessagePack"), std::string::npos) << *reply;
  // The framing is intact, so the same connection goes on working.
  raw.send(protocol::request_frame(2, "status", no_params));
  reply = raw.receive_frame();
  ASSERT_TRUE(reply);
  EXPECT_NE(reply->find("state-dir"), std::string::npos);
}

TEST_F(DaemonTest, RefusesAContainerThatClaimsMoreThanTheFrameHolds) {
  RawConnection raw(daemon.socket());
  raw.send(hello_frame(protocol_version));
  ASSERT_TRUE(raw.receive_frame());
  const std::string bomb("\x94\x00\x02\xa6status\xdd\xff\xff\xff\xff", 15);
  const auto header = protocol::encode_header(bomb.size());
  raw.send(std::string(reinterpret_cast<const char*>(header.data()), 4) + bomb);
  auto reply = raw.receive_frame();
  ASSERT_TRUE(reply);
  EXPECT_NE(reply->find("claims"), std::string::npos) << *reply;
}

TEST_F(DaemonTest, NamesAnUnknownMethod) {
  auto client = daemon.client();
  auto r = call(client, "frobnicate", no_params);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.kind, "unknown-method");
  EXPECT_NE(r.message.find("frobnicate"), std::string::npos);
  EXPECT_TRUE(call(client, "status", no_params).ok);
}

TEST_F(DaemonTest, ExplainsParametersOfTheWrongType) {
  auto client = daemon.client();
  auto r = call(client, "status", [](Packer& p) {
    p.pack_array(1);
    p.pack(1);
  });
  EXPECT_EQ(r.kind, "bad-params");
  EXPECT_NE(r.message.find("status: expected 0 parameters, got 1"), std::string::npos) << r.message;
  r = call(client, "test.sleep", [](Packer& p) {
    p.pack_array(1);
    protocol::pack_text(p, "ten");
  });
  EXPECT_EQ(r.kind, "bad-params");
  EXPECT_NE(r.message.find("must be an integer, got a string"), std::string::npos) << r.message;
  EXPECT_TRUE(call(client, "status", no_params).ok);
}

TEST_F(DaemonTest, RequiresHelloFirstAndTheSameProtocol) {
  RawConnection raw(daemon.socket());
  raw.send(protocol::request_frame(5, "status", no_params));
  auto reply = raw.receive_frame();
  ASSERT_TRUE(reply);
  EXPECT_NE(reply->find("must be hello"), std::string::npos);
  raw.send(hello_frame(protocol_version + 1));
  reply = raw.receive_frame();
  ASSERT_TRUE(reply);
  EXPECT_NE(reply->find("protocol-mismatch"), std::string::npos);
  EXPECT_NE(reply->find("restart Emacs"), std::string::npos);
}

TEST_F(DaemonTest, TheClientRefusesToSendARequestOverTheLimit) {
  // The daemon would hang up after the header, and the client would only
  // see a broken pipe: it must say what is wrong, and send nothing.
  auto client = daemon.client();
  const std::string big(protocol::max_request_size, 'x');
  try {
    client.call("test.echo", [&](Packer& p) {
      p.pack_array(1);
      protocol::pack_bytes(p, big);
    }, {});
    FAIL() << "no exception";
  } catch (const protocol::RequestTooLarge& e) {
    EXPECT_NE(std::string(e.what()).find("over descentd's limit of 16 MiB; nothing was sent"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(client.is_open());
  EXPECT_TRUE(call(client, "status", no_params).ok);
}

TEST_F(DaemonTest, EchoesEveryByteOfAFileName) {
  std::string name;
  for (int i = 1; i < 256; ++i) name.push_back(static_cast<char>(i));
  auto client = daemon.client();
  auto reply = client.call("test.echo", [&](Packer& p) {
    p.pack_array(1);
    protocol::pack_bytes(p, name);
  }, {});
  ASSERT_EQ(reply.result->type, msgpack::type::ARRAY);
  EXPECT_EQ(*protocol::as_bytes(reply.result->via.array.ptr[0]), name);
}

TEST_F(DaemonTest, StillAnswersAfterABurstOf500DroppedConnections) {
  for (int i = 0; i < 500; ++i) RawConnection raw(daemon.socket());
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "status", no_params).ok);
}

TEST_F(DaemonTest, ASecondDaemonExitsQuietlyAndTheFirstKeepsServing) {
  auto second = run_program(daemon.argv(), daemon.env());
  EXPECT_TRUE(second.exit.exited);
  EXPECT_EQ(second.exit.code, 0);
  EXPECT_EQ(second.out + second.err, "");
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "status", no_params).ok);
  // Without --foreground too: the starter returns 0 at once.
  auto argv = daemon.argv();
  argv.erase(argv.begin() + 1);
  auto third = run_program(argv, daemon.env());
  EXPECT_EQ(third.exit.code, 0);
  EXPECT_EQ(third.err, "");
}

TEST_F(DaemonTest, StopsInOrderOnSigtermAndSigint) {
  const auto sock = daemon.socket();
  auto exit = daemon.stop(SIGTERM);
  EXPECT_TRUE(exit.exited);
  EXPECT_EQ(exit.code, 0);
  EXPECT_FALSE(fs::exists(sock));
  EXPECT_FALSE(fs::exists(sock.parent_path() / "descentd.pid"));
  EXPECT_NE(daemon.log().find("stopping (SIGTERM)"), std::string::npos);
  daemon.start();
  exit = daemon.stop(SIGINT);
  EXPECT_EQ(exit.code, 0);
  EXPECT_FALSE(fs::exists(sock));
}

TEST_F(DaemonTest, SigtermCancelsARunningCall) {
  auto client = daemon.client();
  std::thread sleeper([&] {
    auto r = call(client, "test.sleep", [](Packer& p) {
      p.pack_array(1);
      p.pack(60000);
    });
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.kind, "cancelled");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  auto exit = daemon.stop(SIGTERM);
  sleeper.join();
  EXPECT_EQ(exit.code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(DaemonTest, CleansUpAfterAKilledDaemon) {
  const auto sock = daemon.socket();
  auto exit = daemon.stop(SIGKILL);
  EXPECT_FALSE(exit.exited);
  ASSERT_TRUE(fs::exists(sock));  // left behind, as a crash would
  ASSERT_TRUE(fs::exists(sock.parent_path() / "descentd.pid"));
  daemon.start();
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "status", no_params).ok);
  EXPECT_NE(daemon.log().find("removed a stale socket"), std::string::npos);
}

// Its socket removed (a cleaner of /run/user, a script), nothing can reach
// the daemon, and while it holds its lock every new one would take it for
// one that serves: it stops, and the next start serves again.
TEST_F(DaemonTest, StopsWhenItsSocketIsRemoved) {
  ASSERT_TRUE(fs::remove(daemon.socket()));
  const auto exit = daemon.wait(std::chrono::seconds(6));
  EXPECT_TRUE(exit.exited);
  EXPECT_EQ(exit.code, 0);
  EXPECT_NE(daemon.log().find("was removed or replaced"), std::string::npos) << daemon.log();
  daemon.start();
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "status", no_params).ok);
}

TEST_F(DaemonTest, TheCliReportsStatusAndStops) {
  auto status = run_program({descent_cli_path, "status"}, daemon.env());
  EXPECT_EQ(status.exit.code, 0) << status.err;
  EXPECT_NE(status.out.find("pid: " + std::to_string(daemon.pid())), std::string::npos) << status.out;
  // Seconds with their unit, as M-x descent-status says them.
  EXPECT_TRUE(std::regex_search(status.out, std::regex("\nuptime: [0-9]+ s\n"))) << status.out;
  auto usage = run_program({descent_cli_path, "frobnicate"}, daemon.env());
  EXPECT_EQ(usage.exit.code, 2);
  EXPECT_NE(usage.err.find("frobnicate"), std::string::npos) << usage.err;
  auto none_given = run_program({descent_cli_path}, daemon.env());
  EXPECT_EQ(none_given.exit.code, 2);
  EXPECT_NE(none_given.err.find("A subcommand is required"), std::string::npos) << none_given.err;
  auto stop = run_program({descent_cli_path, "stop"}, daemon.env());
  EXPECT_EQ(stop.exit.code, 0) << stop.err;
  EXPECT_EQ(daemon.wait().code, 0);
  auto none = run_program({descent_cli_path, "status"}, daemon.env());
  EXPECT_EQ(none.exit.code, 1);
  EXPECT_NE(none.err.find("descentd is not running (cannot connect to descentd at "), std::string::npos) << none.err;
  // Stopping what does not run is done already, as systemctl stop says.
  auto again = run_program({descent_cli_path, "stop"}, daemon.env());
  EXPECT_EQ(again.exit.code, 0) << again.err;
  EXPECT_EQ(again.out, "descentd is not running\n");
}

TEST_F(DaemonTest, ClosesConnectionsFromAnotherUserWithoutAnswering) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  const passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  // Open the path for the test only: the private directory is the first
  // line of defence, SO_PEERCRED the last, and this exercises the last.
  fs::permissions(daemon.socket().parent_path(), fs::perms::others_exec, fs::perm_options::add);
  fs::permissions(daemon.runtime_dir(), fs::perms::others_exec, fs::perm_options::add);
  fs::permissions(dir.path(), fs::perms::others_exec, fs::perm_options::add);
  fs::permissions(daemon.socket(), fs::perms::all, fs::perm_options::add);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(nobody->pw_gid) != 0 || ::setuid(nobody->pw_uid) != 0) ::_exit(3);
    char verdict = '?';
    try {
      RawConnection raw(daemon.socket());
      raw.send(hello_frame(protocol_version));
      auto reply = raw.receive_frame(std::chrono::seconds(3));
      verdict = reply ? 'A' : 'C';  // answered / closed
    } catch (...) {
      verdict = 'E';
    }
    [[maybe_unused]] auto n = ::write(pipe_fds[1], &verdict, 1);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  char verdict = '?';
  ASSERT_EQ(::read(pipe_fds[0], &verdict, 1), 1);
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(verdict, 'C');
  EXPECT_NE(daemon.log().find("refused a connection from uid " + std::to_string(nobody->pw_uid)), std::string::npos)
      << daemon.log();
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "status", no_params).ok);
}

class StartupTest : public ::testing::Test {
 protected:
  TempDir dir;
  Daemon daemon{dir.path()};
  fs::path socket_dir() { return daemon.socket().parent_path(); }
  Output start() { return run_program(daemon.argv(), daemon.env(), std::chrono::seconds(5)); }
};

TEST_F(StartupTest, RefusesASocketDirectoryOthersCanEnter) {
  fs::create_directories(socket_dir());
  fs::permissions(socket_dir(), static_cast<fs::perms>(0755));
  auto out = start();
  EXPECT_EQ(out.exit.code, 1);
  EXPECT_NE(out.err.find("has mode 0755; it must be private (0700)"), std::string::npos) << out.err;
  EXPECT_FALSE(fs::exists(daemon.socket()));
}

TEST_F(StartupTest, RefusesASocketDirectoryOwnedBySomeoneElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  fs::create_directories(socket_dir());
  fs::permissions(socket_dir(), static_cast<fs::perms>(0700));
  const passwd* nobody = ::getpwnam("nobody");
  ASSERT_EQ(::chown(socket_dir().c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  auto out = start();
  EXPECT_EQ(out.exit.code, 1);
  EXPECT_NE(out.err.find("is owned by uid " + std::to_string(nobody->pw_uid)), std::string::npos) << out.err;
}

TEST_F(StartupTest, RefusesASymlinkedSocketDirectory) {
  fs::create_directories(dir.path() / "elsewhere");
  fs::permissions(dir.path() / "elsewhere", static_cast<fs::perms>(0700));
  fs::create_directory_symlink(dir.path() / "elsewhere", socket_dir());
  auto out = start();
  EXPECT_EQ(out.exit.code, 1);
  EXPECT_NE(out.err.find("is a symbolic link"), std::string::npos) << out.err;
}

TEST_F(StartupTest, DaemonizesAndReturnsOnceListening) {
  auto argv = daemon.argv();
  argv.erase(argv.begin() + 1);  // no --foreground
  auto out = run_program(argv, daemon.env());
  EXPECT_EQ(out.exit.code, 0) << out.err;
  // Listening already: no waiting needed.
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "stop", no_params).ok);
}

// Two sockets, one state directory (XDG_RUNTIME_DIR unset in one session,
// --socket, a home on NFS): a second daemon would recover the first one's
// running batch. It refuses to start, and says which daemon holds the state.
TEST_F(StartupTest, RefusesAStateDirectoryAnotherDaemonUses) {
  daemon.start();
  TempDir other_root;
  Daemon other(other_root.path());
  fs::create_directories(other.socket().parent_path());
  fs::permissions(other.socket().parent_path(), fs::perms::owner_all);
  auto argv = other.argv();
  argv.back() = daemon.state_dir().string();  // --state-dir: the first daemon's
  auto out = run_program(argv, other.env(), std::chrono::seconds(5));
  EXPECT_NE(out.exit.code, 0);
  EXPECT_NE(out.err.find("another descentd (pid " + std::to_string(daemon.pid()) + ") uses the state in"),
            std::string::npos)
      << out.err;
  EXPECT_FALSE(fs::exists(other.socket()));
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "status", no_params).ok);
}

// A daemon that is stopping leaves its socket first, then closes its
// database: the next one, started at once by the next call, waits for it
// rather than refusing (as it did when a test killed and restarted one).
TEST_F(StartupTest, WaitsForADaemonThatIsStoppingToLeaveTheState) {
  fs::create_directories(daemon.state_dir());
  fs::permissions(daemon.state_dir(), fs::perms::owner_all);
  const int held = ::open((daemon.state_dir() / "descentd.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  std::thread stopping([held] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::close(held);
  });
  auto argv = daemon.argv();
  argv.erase(argv.begin() + 1);  // no --foreground: returns once listening
  auto out = run_program(argv, daemon.env(), std::chrono::seconds(5));
  stopping.join();
  EXPECT_EQ(out.exit.code, 0) << out.err;
  auto client = daemon.client();
  EXPECT_TRUE(call(client, "stop", no_params).ok);
}

TEST_F(StartupTest, AStateDatabaseItCannotUseIsNamed) {
  fs::create_directories(daemon.state_dir());
  fs::permissions(daemon.state_dir(), fs::perms::owner_all);
  std::ofstream(daemon.state_dir() / "state.db") << std::string(4096, 'x');
  auto out = start();
  EXPECT_NE(out.exit.code, 0);
  EXPECT_NE(out.err.find("the state database in " + daemon.state_dir().string() + ": "), std::string::npos)
      << out.err;
}

TEST_F(StartupTest, HelpAndVersion) {
  auto version_out = run_program({descentd_path, "--version"});
  EXPECT_EQ(version_out.exit.code, 0);
  EXPECT_NE(version_out.out.find(descent::version), std::string::npos);
  auto help = run_program({descentd_path, "--help"});
  EXPECT_EQ(help.exit.code, 0);
  EXPECT_NE(help.out.find("--state-dir"), std::string::npos);
  auto bad = run_program({descentd_path, "--frobnicate"});
  EXPECT_NE(bad.exit.code, 0);
}

}  // namespace

namespace {

TEST(SocketActivation, ServesTheInheritedSocketAndLeavesItToSystemd) {
  TempDir dir;
  Daemon daemon(dir.path());
  fs::create_directories(daemon.socket().parent_path());
  fs::permissions(daemon.socket().parent_path(), fs::perms::owner_all);
  // What systemd does: bind and listen, then hand the socket over as fd 3.
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, daemon.socket().c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  auto argv = daemon.argv();
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(listener, 3);
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    for (const auto& e : daemon.env()) ::putenv(::strdup(e.c_str()));
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(listener);
  bool answered = false;
  for (int i = 0; i < 500 && !answered; ++i) {
    try {
      auto client = daemon.client();
      answered = call(client, "status", [](Packer& p) { p.pack_array(0); }).ok;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  EXPECT_TRUE(answered);
  ::kill(child, SIGTERM);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(fs::exists(daemon.socket()));  // systemd's to remove, not ours
}

}  // namespace
