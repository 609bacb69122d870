// The `list` RPC method: parameters decoded from real MessagePack, the reply
// decoded as the module will (text + little-endian uint32 offset pairs), and
// compared with the engine's own listing; refusals become error kinds.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include "lister.hpp"
#include "protocol/rpc.hpp"
#include "server/methods_lister.hpp"

namespace {

using namespace descent;

struct Reply {
  msgpack::object_handle handle;
  const msgpack::object& get() const { return handle.get(); }
};

// Calls a method of the table the way the server does, with `params` packed by `write`.
Reply call(const server::MethodTable& table, const std::string& method, const protocol::Writer& write,
           const std::atomic<bool>& cancelled) {
  msgpack::sbuffer params_buf;
  server::Packer params_packer(params_buf);
  write(params_packer);
  const msgpack::object_handle params = msgpack::unpack(params_buf.data(), params_buf.size());
  msgpack::sbuffer result_buf;
  server::Packer result(result_buf);
  server::Call c{server::Params(method, params.get()), result, cancelled, [](auto, const auto&) {}, 1};
  const server::Method* m = table.find(method);
  if (!m) throw std::runtime_error("no method " + method);
  EXPECT_EQ(m->execution, server::Execution::worker);
  m->run(c);
  return {msgpack::unpack(result_buf.data(), result_buf.size())};
}

// The tree lives one level down, so that its ".." (in the listing) is ours
// and does not change while other tests create and remove things in /tmp
// between the two listings a test compares. Remove it with remove_tree.
std::string make_tree() {
  std::string templ = (std::filesystem::temp_directory_path() / "descent-lister-rpc-XXXXXX").string();
  if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp");
  templ += "/tree";
  if (::mkdir(templ.c_str(), 0755) != 0) throw std::runtime_error("mkdir");
  for (const char* name : {"a", "new\nline", "bad\xff", "-dash"}) {
    const std::string p = templ + "/" + name;
    FILE* f = std::fopen(p.c_str(), "w");
    std::fputs("x", f);
    std::fclose(f);
  }
  return templ;
}

void remove_tree(const std::string& tree) { std::filesystem::remove_all(std::filesystem::path(tree).parent_path()); }

lister::Environment c_env() {
  lister::Environment env{{"LC_ALL", "C"}};
  if (const char* tz = std::getenv("TZ")) env["TZ"] = tz;
  return env;
}

void pack_env(server::Packer& p, const lister::Environment& env) {
  p.pack_map(static_cast<std::uint32_t>(env.size()));
  for (const auto& [k, v] : env) {
    protocol::pack_text(p, k);
    protocol::pack_bytes(p, v);
  }
}

TEST(ListMethod, ReturnsTextAndPackedOffsets) {
  const std::string dir = make_tree();
  server::MethodTable table;
  server::add_lister_methods(table, server::DaemonInfo{});
  std::atomic<bool> cancelled{false};
  const Reply reply = call(
      table, "list",
      [&](server::Packer& p) {
        p.pack_array(3);
        protocol::pack_bytes(p, dir);
        p.pack_array(2);
        protocol::pack_text(p, "-al");
        protocol::pack_text(p, "--group-directories-first");
        pack_env(p, c_env());
      },
      cancelled);
  const lister::Listing expected =
      lister::list(dir, std::vector<std::string>{"-al", "--group-directories-first"}, c_env());
  const msgpack::object* text = protocol::map_find(reply.get(), "text");
  const msgpack::object* offsets = protocol::map_find(reply.get(), "offsets");
  const msgpack::object* style = protocol::map_find(reply.get(), "quoting-style");
  ASSERT_TRUE(text && offsets && style);
  ASSERT_EQ(text->type, msgpack::type::BIN);
  ASSERT_EQ(offsets->type, msgpack::type::BIN);
  EXPECT_EQ(std::string(text->via.bin.ptr, text->via.bin.size), expected.text);
  ASSERT_EQ(offsets->via.bin.size, expected.names.size() * 8);
  for (std::size_t i = 0; i < expected.names.size(); ++i) {
    auto u32 = [&](std::size_t at) {
      const auto* b = reinterpret_cast<const unsigned char*>(offsets->via.bin.ptr) + at;
      return std::uint32_t(b[0]) | std::uint32_t(b[1]) << 8 | std::uint32_t(b[2]) << 16 | std::uint32_t(b[3]) << 24;
    };
    EXPECT_EQ(u32(i * 8), expected.names[i].begin);
    EXPECT_EQ(u32(i * 8 + 4), expected.names[i].end);
  }
  EXPECT_EQ(std::string(style->via.str.ptr, style->via.str.size), "literal");
  remove_tree(dir);
}

std::string error_kind(const server::MethodTable& table, const protocol::Writer& write, bool cancel = false) {
  std::atomic<bool> cancelled{cancel};
  try {
    call(table, "list", write, cancelled);
  } catch (const server::MethodError& e) {
    return e.kind;
  }
  return "no error";
}

TEST(ListMethod, RefusalsBecomeErrorKinds) {
  const std::string dir = make_tree();
  server::MethodTable table;
  server::add_lister_methods(table, server::DaemonInfo{});
  auto with = [&](const std::string& path, const std::string& sw, bool env_nil = false) {
    return [=](server::Packer& p) {
      p.pack_array(3);
      protocol::pack_bytes(p, path);
      p.pack_array(1);
      protocol::pack_text(p, sw);
      if (env_nil) p.pack_nil();
      else pack_env(p, c_env());
    };
  };
  EXPECT_EQ(error_kind(table, with(dir, "-alR")), "unsupported");
  EXPECT_EQ(error_kind(table, with(dir + "/missing", "-al")), "unsupported");
  EXPECT_EQ(error_kind(table, with("relative", "-al")), "bad-params");
  EXPECT_EQ(error_kind(table, [&](server::Packer& p) {
              p.pack_array(2);
              protocol::pack_bytes(p, dir);
              p.pack(42);
            }),
            "bad-params");
  // With nil for env the daemon's TZ and the C locale apply.
  if (!std::getenv("TZ")) {
    EXPECT_EQ(error_kind(table, with(dir, "-al", true)), "no error");
  }
  remove_tree(dir);
}

TEST(ListMethod, CancelledCallsReplyCancelled) {
  std::string templ = (std::filesystem::temp_directory_path() / "descent-lister-rpc-XXXXXX").string();
  ASSERT_TRUE(::mkdtemp(templ.data()));
  for (int i = 0; i < 600; ++i) std::fclose(std::fopen((templ + "/f" + std::to_string(i)).c_str(), "w"));
  server::MethodTable table;
  server::add_lister_methods(table, server::DaemonInfo{});
  EXPECT_EQ(error_kind(
                table,
                [&](server::Packer& p) {
                  p.pack_array(3);
                  protocol::pack_bytes(p, templ);
                  p.pack_array(1);
                  protocol::pack_text(p, "-al");
                  pack_env(p, c_env());
                },
                true),
            "cancelled");
  std::filesystem::remove_all(templ);
}

}  // namespace
