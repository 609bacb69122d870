// The frecency index through the real daemon and the real shell client.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "daemon_harness.hpp"
#include "protocol/rpc.hpp"

namespace {

using namespace descent;
using namespace descent::testing;
using protocol::Packer;

class FrecencyThroughDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon.start();
    auto client = daemon.client();
    const auto probe = call(client, "frecency.list", [](Packer& p) { p.pack_array(0); });
    ASSERT_TRUE(probe.ok) << probe.kind << ": " << probe.message;
  }

  Output descent(std::vector<std::string> args) {
    args.insert(args.begin(), descent_cli_path);
    return run_program(args, daemon.env());
  }

  std::string make_dir(const std::string& relative) {
    fs::create_directories(dir.path() / "tree" / relative);
    return (dir.path() / "tree" / relative).string();
  }

  TempDir dir;
  Daemon daemon{dir.path()};
};

TEST_F(FrecencyThroughDaemon, ShellClientRoundTrip) {
  const std::string src = make_dir("work/src");
  const std::string docs = make_dir("work/docs");
  const std::string odd = make_dir("a/b/caf\xe9 -x\\y");  // deeper: ties with docs go to docs
  for (const auto& d : {src, src, docs, odd}) {
    const auto added = descent({"add", d});
    EXPECT_EQ(added.exit.code, 0) << added.err;
  }

  auto best = descent({"query", "src"});
  EXPECT_EQ(best.exit.code, 0) << best.err;
  EXPECT_EQ(best.out, src + "\n");
  best = descent({"query"});
  EXPECT_EQ(best.out, src + "\n") << "no words: the best of all";
  best = descent({"query", "--exclude", src, "work"});
  EXPECT_EQ(best.exit.code, 1) << "src is excluded; docs does not end in 'work'";
  best = descent({"query", "--exclude", src});
  EXPECT_EQ(best.out, docs + "\n");
  best = descent({"query", "caf\xe9"});
  EXPECT_EQ(best.out, odd + "\n") << "non-UTF-8 bytes survive both ways";

  const auto none = descent({"query", "nothing-like-this"});
  EXPECT_EQ(none.exit.code, 1);
  EXPECT_EQ(none.out, "");

  const auto listed = descent({"list"});
  EXPECT_EQ(listed.exit.code, 0);
  EXPECT_EQ(listed.out, "   8.0 " + src + "\n   4.0 " + docs + "\n   4.0 " + odd + "\n");

  EXPECT_EQ(descent({"remove", docs}).exit.code, 0);
  const auto again = descent({"remove", docs});
  EXPECT_EQ(again.exit.code, 1);
  EXPECT_NE(again.err.find("not in the index"), std::string::npos) << again.err;

  const auto missing = descent({"add", (dir.path() / "no-such-dir").string()});
  EXPECT_EQ(missing.exit.code, 1);
  EXPECT_NE(missing.err.find("No such file or directory"), std::string::npos) << missing.err;
}

TEST_F(FrecencyThroughDaemon, UsageErrorsExit2) {
  EXPECT_EQ(descent({"add"}).exit.code, 2);
  EXPECT_EQ(descent({"remove"}).exit.code, 2);
  EXPECT_EQ(descent({"import", "fasd", "/x"}).exit.code, 2);
  EXPECT_EQ(descent({"import", "z"}).exit.code, 2);
}

TEST_F(FrecencyThroughDaemon, ImportRefusesAMalformedFileWhole) {
  const std::string kept = make_dir("kept");
  ASSERT_EQ(descent({"add", kept}).exit.code, 0);
  const fs::path bad = dir.path() / "z-bad";
  std::ofstream(bad) << "/a|1|100\n" << kept << "|50|100\n/truncated|4";
  const auto refused = descent({"import", "z", bad.string()});
  EXPECT_EQ(refused.exit.code, 1);
  EXPECT_NE(refused.err.find("line 3"), std::string::npos) << refused.err;
  // In the words of the shell user, who typed "import", not "frecency.import".
  EXPECT_EQ(refused.err.rfind("descent: " + bad.string() + ": line 3", 0), 0u) << refused.err;
  EXPECT_EQ(descent({"list"}).out, "   4.0 " + kept + "\n") << "nothing of the bad file was imported";

  const fs::path good = dir.path() / "autojump.txt";
  std::ofstream(good) << "30.0\t" << kept << "\n";
  const auto imported = descent({"import", "autojump", good.string()});
  EXPECT_EQ(imported.exit.code, 0) << imported.err;
  EXPECT_NE(imported.out.find("imported 1 entry from"), std::string::npos) << imported.out;
}

// zoxide loses updates when two shells write at once (its issue #1219); the
// daemon serialises every writer.
TEST_F(FrecencyThroughDaemon, ConcurrentClientsLoseNoVisit) {
  const std::string hot = make_dir("hot");
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&] {
      try {
        auto client = daemon.client();
        for (int i = 0; i < 250; ++i) {
          const auto result = call(client, "frecency.add", [&](Packer& p) {
            p.pack_array(1);
            protocol::pack_bytes(p, hot);
          });
          if (!result.ok) ++failures;
        }
      } catch (...) {
        ++failures;
      }
    });
  for (auto& writer : writers) writer.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(descent({"list"}).out, "4000.0 " + hot + "\n") << "1000 visits × 4 (this hour)";
}

TEST_F(FrecencyThroughDaemon, AddAsANotification) {
  const std::string seen = make_dir("seen");
  auto client = daemon.client();
  ASSERT_TRUE(client.notify("frecency.add", [&](Packer& p) {
    p.pack_array(1);
    protocol::pack_bytes(p, seen);
  }));
  // The notification runs on a worker: the first query may come before it.
  std::string out;
  for (int attempt = 0; attempt < 200 && out.empty(); ++attempt) {
    out = descent({"query", "seen"}).out;
    if (out.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(out, seen + "\n");
}

}  // namespace
