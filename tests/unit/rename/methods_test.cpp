// The rename RPC methods, called through the MethodTable as the server calls
// them: the batch encoding, error kinds, progress notifications.
#include <cstdlib>

#include "protocol/rpc.hpp"
#include "server/methods_rename.hpp"
#include "tree.hpp"

namespace descent::rename::testing {
namespace {

namespace protocol = descent::protocol;
namespace server = descent::server;
namespace state = descent::state;

using server::Call;
using server::MethodError;
using server::Packer;

struct Reply {
  msgpack::object_handle handle;
  const msgpack::object& get() const { return handle.get(); }
};

class RenameMethodsTest : public ::testing::Test {
 protected:
  RenameMethodsTest() {
    ::setenv("XDG_DATA_HOME", state_.root.c_str(), 1);
    info_.state_dir = state_.root;
    area_.emplace(info_);
    server::add_rename_methods(methods_, info_, *area_);
  }

  // Calls `method` with params packed by `write`; returns the result or throws MethodError.
  Reply call(std::string_view method, const std::function<void(Packer&)>& write) {
    msgpack::sbuffer params_buffer;
    Packer params_packer(params_buffer);
    write(params_packer);
    const auto params = msgpack::unpack(params_buffer.data(), params_buffer.size());
    msgpack::sbuffer result_buffer;
    Packer result(result_buffer);
    std::atomic<bool> cancelled{false};
    Call c{server::Params(method, params.get()), result, cancelled,
           [this](std::string_view name, const std::function<void(Packer&)>&) { notified_.emplace_back(name); }, 7};
    const server::Method* m = methods_.find(method);
    if (!m) throw std::runtime_error("no method " + std::string(method));
    EXPECT_EQ(m->execution, server::Execution::worker);
    m->run(c);
    return {msgpack::unpack(result_buffer.data(), result_buffer.size())};
  }

  std::string error_kind(std::string_view method, const std::function<void(Packer&)>& write) {
    try {
      call(method, write);
    } catch (const MethodError& e) {
      last_message_ = e.what();
      return e.kind;
    }
    return "none";
  }

  static void pack_rename(Packer& out, const std::string& from, const std::string& to) {
    const FileId id = id_of(from);
    out.pack_map(5);
    protocol::pack_text(out, "op");
    protocol::pack_text(out, "rename");
    protocol::pack_text(out, "from");
    protocol::pack_bytes(out, from);
    protocol::pack_text(out, "to");
    protocol::pack_bytes(out, to);
    protocol::pack_text(out, "dev");
    out.pack_uint64(id.dev);
    protocol::pack_text(out, "ino");
    out.pack_uint64(id.ino);
  }

  TempTree tree_, state_;
  server::DaemonInfo info_;
  std::optional<server::RenameArea> area_;
  server::MethodTable methods_;
  std::vector<std::string> notified_;
  std::string last_message_;
};

std::int64_t field_int(const msgpack::object& map, std::string_view key) {
  const msgpack::object* v = protocol::map_find(map, key);
  return v ? v->as<std::int64_t>() : -1;
}

TEST_F(RenameMethodsTest, SubmitUndoRecentWithAwkwardNames) {
  // Names are bytes: non-UTF-8, newline, leading dash, backslash.
  const std::string odd = tree_.path(std::string("-a\n\xff\\b", 6));
  write_file(odd, "x");
  const auto before = snapshot(tree_.root);
  const Reply reply = call("rename.submit", [&](Packer& out) {
    out.pack_array(1);
    out.pack_array(1);
    pack_rename(out, odd, tree_.path("plain"));
  });
  EXPECT_EQ(field_int(reply.get(), "operations"), 1);
  EXPECT_EQ(field_int(reply.get(), "steps"), 1);
  EXPECT_GT(field_int(reply.get(), "batch"), 0);
  EXPECT_EQ(snapshot(tree_.root).at("plain").ino, before.begin()->second.ino);

  const Reply recent = call("rename.recent", [](Packer& out) { out.pack_array(0); });
  ASSERT_EQ(recent.get().via.array.size, 1u);
  EXPECT_EQ(*protocol::as_bytes(*protocol::map_find(recent.get().via.array.ptr[0], "state")), "done");

  call("rename.undo", [](Packer& out) { out.pack_array(0); });
  EXPECT_EQ(snapshot(tree_.root), before);
  EXPECT_EQ(error_kind("rename.undo", [](Packer& out) { out.pack_array(0); }), "conflict");
}

TEST_F(RenameMethodsTest, BadParametersGetClearErrors) {
  write_file(tree_.path("a"), "a");
  EXPECT_EQ(error_kind("rename.submit", [](Packer& out) { out.pack_array(0); }), "bad-params");
  EXPECT_EQ(error_kind("rename.submit",
                       [](Packer& out) {
                         out.pack_array(1);
                         out.pack(42);
                       }),
            "bad-params");
  EXPECT_EQ(error_kind("rename.submit",
                       [](Packer& out) {
                         out.pack_array(1);
                         out.pack_array(1);
                         out.pack_map(1);
                         protocol::pack_text(out, "op");
                         protocol::pack_text(out, "delete");
                       }),
            "bad-params");
  EXPECT_NE(last_message_.find("unknown \"op\" delete"), std::string::npos) << last_message_;
  EXPECT_EQ(error_kind("rename.submit",
                       [&](Packer& out) {
                         out.pack_array(1);
                         out.pack_array(1);
                         out.pack_map(3);
                         protocol::pack_text(out, "op");
                         protocol::pack_text(out, "rename");
                         protocol::pack_text(out, "from");
                         protocol::pack_bytes(out, tree_.path("a"));
                         protocol::pack_text(out, "to");
                         protocol::pack_bytes(out, tree_.path("b"));
                       }),
            "bad-params");
  EXPECT_NE(last_message_.find("\"dev\" is missing"), std::string::npos) << last_message_;
  // A valid encoding of an invalid batch: refused, naming the entry.
  EXPECT_EQ(error_kind("rename.submit",
                       [&](Packer& out) {
                         out.pack_array(1);
                         out.pack_array(1);
                         pack_rename(out, tree_.path("a"), tree_.path(".."));
                       }),
            "refused");
  EXPECT_NE(last_message_.find(tree_.path("..")), std::string::npos) << last_message_;
  EXPECT_EQ(error_kind("rename.recent",
                       [](Packer& out) {
                         out.pack_array(1);
                         out.pack(0);
                       }),
            "bad-params");
}

TEST_F(RenameMethodsTest, LongBatchesSendProgress) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (int i = 0; i < 20000; ++i) {
    write_file(tree_.path("f" + std::to_string(i)), "");
    pairs.emplace_back(tree_.path("f" + std::to_string(i)), tree_.path("g" + std::to_string(i)));
  }
  call("rename.submit", [&](Packer& out) {
    out.pack_array(1);
    out.pack_array(static_cast<std::uint32_t>(pairs.size()));
    for (const auto& [from, to] : pairs) pack_rename(out, from, to);
  });
  ASSERT_FALSE(notified_.empty());
  EXPECT_EQ(notified_.front(), "rename.progress");
}

TEST_F(RenameMethodsTest, RecoveryIsToldOnce) {
  const Reply first = call("rename.recovery", [](Packer& out) { out.pack_array(0); });
  EXPECT_EQ(first.get().via.array.size, 0u);
}

}  // namespace
}  // namespace descent::rename::testing
