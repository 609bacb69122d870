// The rename batches through the real descentd: a failpoint in the daemon
// (DESCENT_FAILPOINT) fails, sends SIGTERM, or kill -9s it at step k; the
// tree must be exactly as before, and after a kill the restarted daemon
// recovers and tells the next client.
#include <poll.h>
#include <signal.h>

#include <chrono>
#include <functional>
#include <thread>

#include "daemon_harness.hpp"
#include "protocol/rpc.hpp"
#include "tree.hpp"

namespace descent::rename::testing {
namespace {

namespace protocol = descent::protocol;
using descent::testing::Daemon;
using descent::testing::TempDir;
using protocol::Packer;

void pack_operations(Packer& out, const std::vector<Operation>& ops) {
  out.pack_array(1);
  out.pack_array(static_cast<std::uint32_t>(ops.size()));
  for (const Operation& op : ops) {
    auto key = [&](std::string_view k) { protocol::pack_text(out, k); };
    switch (op.kind) {
      case Operation::Kind::rename:
        out.pack_map(6);
        key("op"), protocol::pack_text(out, "rename");
        key("from"), protocol::pack_bytes(out, op.source);
        key("to"), protocol::pack_bytes(out, op.destination);
        key("overwrite"), out.pack(op.overwrite);
        break;
      case Operation::Kind::chmod:
        out.pack_map(5);
        key("op"), protocol::pack_text(out, "chmod");
        key("path"), protocol::pack_bytes(out, op.source);
        key("mode"), out.pack(op.mode);
        break;
      case Operation::Kind::retarget:
        out.pack_map(5);
        key("op"), protocol::pack_text(out, "retarget");
        key("path"), protocol::pack_bytes(out, op.source);
        key("target"), protocol::pack_bytes(out, op.target);
        break;
      case Operation::Kind::make_directory:
        out.pack_map(2);
        key("op"), protocol::pack_text(out, "mkdir");
        key("path"), protocol::pack_bytes(out, op.source);
        continue;
    }
    key("dev"), out.pack(op.id.dev);
    key("ino"), out.pack(op.id.ino);
  }
}

class DaemonRenameTest : public ::testing::Test {
 protected:
  std::vector<std::string> env(const std::string& failpoint = {}) const {
    std::vector<std::string> e = {"XDG_DATA_HOME=" + (dir_.path() / "data").string()};
    if (!failpoint.empty()) e.push_back("DESCENT_FAILPOINT=" + failpoint);
    return e;
  }
  std::size_t steps_of(const std::vector<Operation>& ops) const {
    return RenamePlan::make({ops}, dir_.path() / "data" / "Trash").steps.size();
  }
  // Submits through a fresh client; the reply, or what broke the connection.
  descent::testing::CallResult submit(Daemon& daemon, const std::vector<Operation>& ops) {
    auto client = daemon.client();
    try {
      return descent::testing::call(client, "rename.submit", [&](Packer& out) { pack_operations(out, ops); });
    } catch (const protocol::ConnectionError& e) {
      return {false, "connection", e.what()};
    }
  }

  // Submits `ops`, waits until the batch is done (its reply is here, unread),
  // runs `meanwhile`, then cancels the call and hangs up without reading the
  // reply: C-g just as a batch ends.
  void cancel_once_ended(Daemon& daemon, const std::vector<Operation>& ops, const std::function<void()>& meanwhile) {
    auto client = daemon.client();
    const std::uint32_t id =
        client.send_request("rename.submit", [&](Packer& out) { pack_operations(out, ops); }, protocol::Wait{});
    pollfd reply{client.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&reply, 1, 10000), 1);  // the batch is done: its progress, then its reply, are here
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    meanwhile();
    ASSERT_TRUE(client.notify("cancel", [&](Packer& out) {
      out.pack_array(1);
      out.pack(id);
    }));
  }

  TempDir dir_;
  TempTree tree_;
};

TEST_F(DaemonRenameTest, KillAtEveryStepThenRestartRecovers) {
  const auto ops = rich_batch(tree_);
  const std::size_t steps = steps_of(ops);
  ASSERT_GE(steps, 30u);
  const Snapshot before = snapshot(tree_.root);
  for (std::size_t k = 0; k < steps; ++k) {
    SCOPED_TRACE("kill -9 at step " + std::to_string(k));
    {
      Daemon daemon(dir_.path(), env("rename-step:" + std::to_string(k) + ":kill"));
      daemon.start();
      const auto reply = submit(daemon, ops);
      EXPECT_FALSE(reply.ok);
      const auto exit = daemon.wait();
      ASSERT_FALSE(exit.exited) << daemon.log();
      ASSERT_EQ(exit.code, SIGKILL);
    }
    Daemon daemon(dir_.path(), env());
    daemon.start();
    auto client = daemon.client();
    protocol::Wait wait;
    wait.timeout = std::chrono::seconds(10);
    const auto reply = client.call("rename.recovery", [](Packer& out) { out.pack_array(0); }, wait);
    ASSERT_EQ(reply.result->type, msgpack::type::ARRAY);
    ASSERT_EQ(reply.result->via.array.size, 1u) << daemon.log();
    const std::string told(*protocol::as_bytes(reply.result->via.array.ptr[0]));
    EXPECT_NE(told.find("recovered an interrupted batch of " + std::to_string(ops.size()) + " operations from "),
              std::string::npos)
        << told;
    EXPECT_NE(told.find("nothing changed"), std::string::npos) << told;
    ASSERT_EQ(snapshot(tree_.root), before);
    // Told once.
    const auto again = client.call("rename.recovery", [](Packer& out) { out.pack_array(0); }, wait);
    EXPECT_EQ(again.result->via.array.size, 0u);
    daemon.stop();
  }
}

TEST_F(DaemonRenameTest, SigtermAtEveryStepRollsBack) {
  const auto ops = rich_batch(tree_);
  const std::size_t steps = steps_of(ops);
  const Snapshot before = snapshot(tree_.root);
  for (std::size_t k = 0; k < steps; ++k) {
    SCOPED_TRACE("SIGTERM at step " + std::to_string(k));
    Daemon daemon(dir_.path(), env("rename-step:" + std::to_string(k) + ":sigterm"));
    daemon.start();
    const auto reply = submit(daemon, ops);
    EXPECT_FALSE(reply.ok);
    if (reply.kind != "connection") {
      EXPECT_EQ(reply.kind, "cancelled") << reply.message;
    }
    const auto exit = daemon.wait();
    EXPECT_TRUE(exit.exited) << daemon.log();
    ASSERT_EQ(snapshot(tree_.root), before) << daemon.log();
  }
  // Nothing was left for recovery: every batch was rolled back before the daemon stopped.
  Daemon daemon(dir_.path(), env());
  daemon.start();
  auto client = daemon.client();
  protocol::Wait wait;
  wait.timeout = std::chrono::seconds(10);
  EXPECT_EQ(client.call("rename.recovery", [](Packer& out) { out.pack_array(0); }, wait).result->via.array.size, 0u);
  daemon.stop();
}

TEST_F(DaemonRenameTest, FailureAtAStepNamesTheFileAndTheErrno) {
  const auto ops = rich_batch(tree_);
  const Snapshot before = snapshot(tree_.root);
  Daemon daemon(dir_.path(), env("rename-step:5:fail"));
  daemon.start();
  const auto reply = submit(daemon, ops);
  ASSERT_FALSE(reply.ok);
  EXPECT_EQ(reply.kind, "os-error");
  EXPECT_NE(reply.message.find(tree_.root), std::string::npos) << reply.message;
  EXPECT_NE(reply.message.find("Input/output error"), std::string::npos) << reply.message;
  EXPECT_EQ(snapshot(tree_.root), before);
  daemon.stop();
}

// After an undo: directories the batch created are gone again; re-targeted
// links come back with their old target (as new links).
bool undone(const Snapshot& before, const Snapshot& after) {
  if (after.size() != before.size()) return false;
  for (const auto& [name, entry] : before) {
    const auto it = after.find(name);
    if (it == after.end() || (S_ISLNK(entry.mode) ? it->second.data != entry.data : it->second != entry)) return false;
  }
  return true;
}

void expect_undone(const Snapshot& before, const Snapshot& after) {
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [name, entry] : before) {
    ASSERT_EQ(after.count(name), 1u) << name;
    if (S_ISLNK(entry.mode)) {
      EXPECT_EQ(after.at(name).data, entry.data) << name;
    } else {
      EXPECT_EQ(after.at(name), entry) << name;
    }
  }
}

TEST_F(DaemonRenameTest, SubmitThenUndoThroughTheDaemon) {
  const auto ops = rich_batch(tree_);
  const Snapshot before = snapshot(tree_.root);
  Daemon daemon(dir_.path(), env());
  daemon.start();
  ASSERT_TRUE(submit(daemon, ops).ok);
  EXPECT_NE(snapshot(tree_.root), before);
  auto client = daemon.client();
  EXPECT_TRUE(descent::testing::call(client, "rename.undo", [](Packer& out) { out.pack_array(0); }).ok);
  expect_undone(before, snapshot(tree_.root));
  daemon.stop();
}

// C-g just as a batch ends: the client cancels a call whose reply is already
// on its way, and hangs up without reading it. It says "cancelled, rolled
// back", so the daemon undoes the batch.
TEST_F(DaemonRenameTest, ACancelThatComesAfterTheBatchEndedUndoesIt) {
  const auto ops = rich_batch(tree_);
  const Snapshot before = snapshot(tree_.root);
  Daemon daemon(dir_.path(), env());
  daemon.start();
  ASSERT_NO_FATAL_FAILURE(cancel_once_ended(daemon, ops, [&] { EXPECT_NE(snapshot(tree_.root), before); }));
  for (int i = 0; i < 500 && !undone(before, snapshot(tree_.root)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  expect_undone(before, snapshot(tree_.root));
  auto client = daemon.client();
  const auto undo = descent::testing::call(client, "rename.undo", [](Packer& out) { out.pack_array(0); });
  EXPECT_FALSE(undo.ok);
  EXPECT_EQ(undo.kind, "conflict") << undo.message;  // nothing left to undo: the batch was, once
  daemon.stop();
}

// The same, but a renamed file was replaced in the meantime, so the batch
// cannot be undone: its renames stand, and the next client that asks is
// told, since the one that cancelled believes them taken back.
TEST_F(DaemonRenameTest, ALateCancelThatCannotBeTakenBackIsToldToTheNextClient) {
  write_file(tree_.path("a"), "a");
  write_file(tree_.path("b"), "b");
  const std::vector<Operation> ops = {rename_op(tree_.path("a"), tree_.path("a2")),
                                      rename_op(tree_.path("b"), tree_.path("b2"))};
  Daemon daemon(dir_.path(), env());
  daemon.start();
  ASSERT_NO_FATAL_FAILURE(cancel_once_ended(daemon, ops, [&] {
    write_file(tree_.path("a2.new"), "mine");  // another inode than a's
    ASSERT_EQ(::rename(tree_.path("a2.new").c_str(), tree_.path("a2").c_str()), 0);
  }));
  std::string told;
  for (int i = 0; i < 500 && told.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto client = daemon.client();
    const auto reply = client.call("rename.recovery", [](Packer& out) { out.pack_array(0); }, protocol::Wait{});
    if (reply.result->via.array.size > 0) told = *protocol::as_bytes(reply.result->via.array.ptr[0]);
  }
  EXPECT_NE(told.find("could not take back rename batch"), std::string::npos) << told;
  EXPECT_NE(told.find("so its renames stand: cannot undo the batch of"), std::string::npos) << told;
  const Snapshot now = snapshot(tree_.root);
  EXPECT_EQ(now.at("a2").data, "mine");
  EXPECT_EQ(now.at("b2").data, "b");
  EXPECT_EQ(now.count("a") + now.count("b"), 0u);
  daemon.stop();
}

// rename.submit sent as a notification (no id: no outcome, no cancel) is
// refused, not run unseen.
TEST_F(DaemonRenameTest, ABatchSentAsANotificationIsRefused) {
  write_file(tree_.path("a"), "a");
  const std::vector<Operation> ops = {rename_op(tree_.path("a"), tree_.path("a2"))};
  Daemon daemon(dir_.path(), env());
  daemon.start();
  auto client = daemon.client();
  ASSERT_TRUE(client.notify("rename.submit", [&](Packer& out) { pack_operations(out, ops); }));
  EXPECT_TRUE(descent::testing::call(client, "status", [](Packer& out) { out.pack_array(0); }).ok);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(std::filesystem::exists(tree_.path("a")));
  EXPECT_NE(daemon.log().find("refused rename.submit sent as a notification"), std::string::npos) << daemon.log();
  daemon.stop();
}

// A cancel for a call whose reply the client has read (it sent another
// request since) takes nothing back.
TEST_F(DaemonRenameTest, ACancelAfterTheClientMovedOnChangesNothing) {
  const auto ops = rich_batch(tree_);
  Daemon daemon(dir_.path(), env());
  daemon.start();
  auto client = daemon.client();
  const std::uint32_t id =
      client.send_request("rename.submit", [&](Packer& out) { pack_operations(out, ops); }, protocol::Wait{});
  ASSERT_TRUE(client.await("rename.submit", id, protocol::Wait{}).result);
  const Snapshot done = snapshot(tree_.root);
  EXPECT_TRUE(descent::testing::call(client, "status", [](Packer& out) { out.pack_array(0); }).ok);
  ASSERT_TRUE(client.notify("cancel", [&](Packer& out) {
    out.pack_array(1);
    out.pack(id);
  }));
  EXPECT_TRUE(descent::testing::call(client, "status", [](Packer& out) { out.pack_array(0); }).ok);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(snapshot(tree_.root), done);
  daemon.stop();
}

}  // namespace
}  // namespace descent::rename::testing
