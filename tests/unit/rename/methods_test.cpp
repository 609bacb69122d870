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
    const server::Method* m = methods_.find(method);
    if (!m) throw std::runtime_error("no method " + std::string(method));
    // As the server calls a request: packed params for the methods that take them.
    const bool packed = m->packed_params && packed_;
    msgpack::object no_params;
    no_params.type = msgpack::type::ARRAY;
    no_params.via.array = {0, nullptr};
    Call c{server::Params(method, packed ? no_params : params.get()), result, cancelled,
           [this, &cancelled](std::string_view name, const std::function<void(Packer&)>&) {
             notified_.emplace_back(name);
             // The last progress report comes once every step is done.
             if (cancel_on_progress_ && name == "rename.progress") cancelled = true;
           },
           7, packed ? std::string_view(params_buffer.data(), params_buffer.size()) : std::string_view()};
    EXPECT_EQ(m->execution, server::Execution::worker);
    m->run(c);
    take_back_ = std::move(c.take_back);
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
  bool packed_ = true;  // false: as a notification or an older server would call
  bool cancel_on_progress_ = false;  // the client cancels when a progress report comes
  std::function<std::string()> take_back_;  // what the last call left to take it back
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

  // What the batch renamed, as bytes: from the undo, and after it.
  const std::int64_t batch = field_int(reply.get(), "batch");
  const auto moves_are_the_rename = [&](const msgpack::object& moves) {
    ASSERT_EQ(moves.type, msgpack::type::ARRAY);
    ASSERT_EQ(moves.via.array.size, 2u);
    EXPECT_EQ(*protocol::as_bytes(moves.via.array.ptr[0]), odd);
    EXPECT_EQ(*protocol::as_bytes(moves.via.array.ptr[1]), tree_.path("plain"));
  };
  const Reply undone = call("rename.undo", [](Packer& out) { out.pack_array(0); });
  EXPECT_EQ(snapshot(tree_.root), before);
  ASSERT_NE(protocol::map_find(undone.get(), "moves"), nullptr);
  moves_are_the_rename(*protocol::map_find(undone.get(), "moves"));
  moves_are_the_rename(call("rename.moves", [&](Packer& out) {
                         out.pack_array(1);
                         out.pack(batch);
                       }).get());
  EXPECT_EQ(call("rename.moves", [&](Packer& out) {
              out.pack_array(1);
              out.pack(batch + 1);
            }).get().via.array.size,
            0u);
  EXPECT_EQ(error_kind("rename.moves", [](Packer& out) { out.pack_array(0); }), "bad-params");
  EXPECT_EQ(error_kind("rename.undo", [](Packer& out) { out.pack_array(0); }), "conflict");
}

// A cancel that comes once the last step is done (here with the last
// progress report): the batch is undone and the reply says "cancelled".
TEST_F(RenameMethodsTest, ACancelAsTheBatchEndsUndoesIt) {
  write_file(tree_.path("a"), "a");
  const auto before = snapshot(tree_.root);
  cancel_on_progress_ = true;
  EXPECT_EQ(error_kind("rename.submit",
                       [&](Packer& out) {
                         out.pack_array(1);
                         out.pack_array(1);
                         pack_rename(out, tree_.path("a"), tree_.path("b"));
                       }),
            "cancelled");
  EXPECT_NE(last_message_.find("undid rename batch"), std::string::npos) << last_message_;
  EXPECT_EQ(snapshot(tree_.root), before);
  EXPECT_FALSE(take_back_);
}

// What a finished batch leaves for a late cancel undoes that batch, and
// only while no other batch came after it.
TEST_F(RenameMethodsTest, AFinishedBatchIsTakenBackOnlyWhileItIsTheLatest) {
  write_file(tree_.path("a"), "a");
  const auto before = snapshot(tree_.root);
  auto submit = [&](const char* from, const char* to) {
    call("rename.submit", [&](Packer& out) {
      out.pack_array(1);
      out.pack_array(1);
      pack_rename(out, tree_.path(from), tree_.path(to));
    });
    return std::move(take_back_);
  };
  const auto first = submit("a", "b");
  const auto second = submit("b", "c");
  ASSERT_TRUE(first && second);
  EXPECT_NE(first().find("could not take back"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(tree_.path("c")));
  EXPECT_NE(second().find("undid rename batch"), std::string::npos);
  EXPECT_NE(first().find("undid rename batch"), std::string::npos);
  EXPECT_EQ(snapshot(tree_.root), before);
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

// rename.submit decodes its packed params itself: every malformed shape gets
// the very error the decoded params get.
TEST_F(RenameMethodsTest, PackedParamsGetTheSameErrors) {
  write_file(tree_.path("a"), "a");
  const std::string a = tree_.path("a"), b = tree_.path("b");
  const std::vector<std::function<void(Packer&)>> writers = {
      [](Packer& out) { out.pack_array(0); },
      [](Packer& out) {
        out.pack_array(2);
        out.pack_array(0);
        out.pack_array(0);
      },
      [](Packer& out) {
        out.pack_array(1);
        out.pack(42);
      },
      [](Packer& out) {
        out.pack_array(1);
        out.pack_array(2);
        out.pack(1);
        out.pack(2);
      },
      [](Packer& out) {
        out.pack_array(1);
        out.pack_array(1);
        out.pack_map(1);
        protocol::pack_text(out, "op");
        out.pack(7);
      },
      [&](Packer& out) {
        out.pack_array(1);
        out.pack_array(2);
        pack_rename(out, a, b);
        out.pack_map(4);
        protocol::pack_text(out, "op");
        protocol::pack_text(out, "chmod");
        protocol::pack_text(out, "path");
        protocol::pack_bytes(out, a);
        protocol::pack_text(out, "dev");
        out.pack(-1);
        protocol::pack_text(out, "ino");
        out.pack(1);
      },
      [&](Packer& out) {
        out.pack_array(1);
        out.pack_array(1);
        out.pack_map(6);
        protocol::pack_text(out, "op");
        protocol::pack_text(out, "rename");
        protocol::pack_text(out, "from");
        protocol::pack_bytes(out, a);
        protocol::pack_text(out, "to");
        out.pack_array(1);
        out.pack_map(0);
        protocol::pack_text(out, "dev");
        out.pack(1);
        protocol::pack_text(out, "ino");
        out.pack(1);
        protocol::pack_text(out, "overwrite");
        out.pack(3);
      },
  };
  for (std::size_t i = 0; i < writers.size(); ++i) {
    packed_ = false;
    const std::string decoded_kind = error_kind("rename.submit", writers[i]);
    const std::string decoded_message = last_message_;
    packed_ = true;
    EXPECT_EQ(error_kind("rename.submit", writers[i]), decoded_kind) << i;
    EXPECT_EQ(last_message_, decoded_message) << i;
    EXPECT_EQ(decoded_kind, "bad-params") << i << ": " << decoded_message;
  }
  // A batch of more than 15 entries (an array16 header) goes through as well.
  std::vector<std::pair<std::string, std::string>> pairs;
  for (int i = 0; i < 40; ++i) {
    write_file(tree_.path("p" + std::to_string(i)), std::to_string(i));
    pairs.emplace_back(tree_.path("p" + std::to_string(i)), tree_.path("q" + std::string(300, 'x').substr(0, i)));
  }
  const auto reply = call("rename.submit", [&](Packer& out) {
    out.pack_array(1);
    out.pack_array(static_cast<std::uint32_t>(pairs.size()));
    for (const auto& [from, to] : pairs) pack_rename(out, from, to);
  });
  EXPECT_EQ(field_int(reply.get(), "operations"), 40);
  EXPECT_EQ(snapshot(tree_.root).at("q" + std::string(39, 'x')).data, "39");
}

TEST(PackedRequests, PeekReadsTheEnvelopeOnly) {
  msgpack::sbuffer buffer;
  Packer out(buffer);
  out.pack_array(4);
  out.pack(0);
  out.pack(70000);
  protocol::pack_text(out, "rename.submit");
  out.pack_array(1);
  out.pack_array(0);
  const std::string_view bytes(buffer.data(), buffer.size());
  const auto request = protocol::peek_request(bytes);
  ASSERT_TRUE(request);
  EXPECT_EQ(request->id, 70000u);
  EXPECT_EQ(request->method, "rename.submit");
  std::size_t offset = request->params_offset;
  EXPECT_EQ(protocol::read_array_header(bytes, offset), 1u);
  EXPECT_EQ(protocol::read_array_header(bytes, offset), 0u);
  EXPECT_EQ(offset, bytes.size());
  // Not requests, or not well formed: left to the ordinary decoder.
  auto peek = [](const std::function<void(Packer&)>& write) {
    msgpack::sbuffer b;
    Packer p(b);
    write(p);
    return protocol::peek_request(std::string_view(b.data(), b.size()));
  };
  EXPECT_FALSE(peek([](Packer& p) {
    p.pack_array(3);
    p.pack(2);
    protocol::pack_text(p, "cancel");
    p.pack_array(0);
  }));
  EXPECT_FALSE(peek([](Packer& p) {
    p.pack_array(4);
    p.pack(0);
    p.pack(-1);
    protocol::pack_text(p, "x");
    p.pack_array(0);
  }));
  EXPECT_FALSE(peek([](Packer& p) {
    p.pack_array(4);
    p.pack(0);
    p.pack(1);
    protocol::pack_text(p, "x");
    p.pack_map(0);
  }));
  EXPECT_FALSE(peek([](Packer& p) {
    p.pack_array(4);
    p.pack(0);
    p.pack(1);
    p.pack_array(1);
    p.pack(1);
  }));
  EXPECT_FALSE(protocol::peek_request(bytes.substr(0, 3)));
  std::size_t at = 0;
  EXPECT_FALSE(protocol::read_array_header(std::string_view("\xdc\x01", 2), at));
  EXPECT_EQ(at, 0u);
  EXPECT_EQ(protocol::read_array_header(std::string_view("\xdd\x00\x01\x00\x00", 5), at), 65536u);
  EXPECT_EQ(at, 5u);
}

TEST_F(RenameMethodsTest, IdentifyListsWhatEachDirectoryHolds) {
  const std::string odd = tree_.path(std::string("n\n\xff", 3));
  write_file(odd, "x");
  const Reply reply = call("rename.identify", [&](Packer& out) {
    out.pack_array(1);
    out.pack_array(2);
    protocol::pack_bytes(out, tree_.root);
    protocol::pack_bytes(out, tree_.path("missing"));
  });
  ASSERT_EQ(reply.get().via.array.size, 2u);
  const msgpack::object& listing = reply.get().via.array.ptr[0];
  const msgpack::object* names = protocol::map_find(listing, "names");
  const msgpack::object* ids = protocol::map_find(listing, "ids");
  ASSERT_TRUE(names && ids);
  ASSERT_EQ(names->via.array.size, 1u);
  EXPECT_EQ(*protocol::as_bytes(names->via.array.ptr[0]), std::string("n\n\xff", 3));
  ASSERT_EQ(ids->via.array.size, 2u);
  EXPECT_EQ(ids->via.array.ptr[0].as<std::uint64_t>(), id_of(odd).dev);
  EXPECT_EQ(ids->via.array.ptr[1].as<std::uint64_t>(), id_of(odd).ino);
  EXPECT_EQ(reply.get().via.array.ptr[1].type, msgpack::type::NIL);  // cannot be read
  EXPECT_EQ(error_kind("rename.identify",
                       [](Packer& out) {
                         out.pack_array(1);
                         out.pack_array(1);
                         protocol::pack_bytes(out, "relative/dir");
                       }),
            "bad-params");
  EXPECT_NE(last_message_.find("must be an absolute file name"), std::string::npos) << last_message_;
}

TEST_F(RenameMethodsTest, ARefusalNamesTheOccupiedDestinationInItsDetails) {
  write_file(tree_.path("a"), "a");
  write_file(tree_.path("taken"), "t");
  const auto before = snapshot(tree_.root);
  try {
    call("rename.submit", [&](Packer& out) {
      out.pack_array(1);
      out.pack_array(1);
      pack_rename(out, tree_.path("a"), tree_.path("taken"));
    });
    FAIL() << "not refused";
  } catch (const MethodError& e) {
    EXPECT_EQ(e.kind, "refused");
    const auto details = msgpack::unpack(e.details.data(), e.details.size());
    const msgpack::object* problems = protocol::map_find(details.get(), "problems");
    ASSERT_TRUE(problems);
    ASSERT_EQ(problems->via.array.size, 1u);
    const msgpack::object& problem = problems->via.array.ptr[0];
    EXPECT_EQ(*protocol::as_bytes(*protocol::map_find(problem, "path")), tree_.path("a"));
    EXPECT_EQ(*protocol::as_bytes(*protocol::map_find(problem, "occupied")), tree_.path("taken"));
  }
  EXPECT_EQ(snapshot(tree_.root), before);
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
