// frecency.* through the method table, with MessagePack in and out.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <stdlib.h>

#include "protocol/rpc.hpp"
#include "server/methods_frecency.hpp"

namespace fs = std::filesystem;
using namespace descent;
using server::Packer;

namespace {

struct Outcome {
  msgpack::object_handle result;  // nil when refused
  std::string kind;               // empty when answered
  std::string message;
};

class FrecencyMethods : public ::testing::Test {
 protected:
  FrecencyMethods() {
    std::string pattern = (fs::temp_directory_path() / "descent-frecency-rpc-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    dir = pattern;
    index.emplace(dir / "state.db");
    server::add_frecency_methods(methods, info, *index);
  }
  ~FrecencyMethods() override {
    index.reset();
    if (!HasFailure()) fs::remove_all(dir);
  }

  Outcome call(std::string_view name, const std::function<void(Packer&)>& write_params) {
    msgpack::sbuffer params_buffer;
    Packer params_packer(params_buffer);
    write_params(params_packer);
    const auto params = msgpack::unpack(params_buffer.data(), params_buffer.size());
    const server::Method* method = methods.find(name);
    if (!method) throw std::runtime_error("no method " + std::string(name));
    msgpack::sbuffer result_buffer;
    Packer result(result_buffer);
    const std::atomic<bool> cancelled{false};
    server::Call call{server::Params(name, params.get()), result, cancelled, {}, 1};
    Outcome outcome;
    try {
      method->run(call);
      outcome.result = msgpack::unpack(result_buffer.data(), result_buffer.size());
    } catch (const server::MethodError& e) {
      outcome.kind = e.kind;
      outcome.message = e.what();
    }
    return outcome;
  }

  std::string make_dir(const std::string& name) {
    fs::create_directories(dir / name);
    return (dir / name).string();
  }

  fs::path dir;
  std::optional<frecency::Index> index;
  server::MethodTable methods;
  server::DaemonInfo info;
};

double number_of(const msgpack::object& o) {
  if (auto n = protocol::as_number(o)) return *n;
  throw std::runtime_error("not a number");
}

std::string path_of(const msgpack::object& match) { return std::string(*protocol::as_bytes(*protocol::map_find(match, "path"))); }

}  // namespace

TEST_F(FrecencyMethods, AddQueryListRemove) {
  const std::string src = make_dir("src");
  const std::string odd = make_dir("caf\xe9 \n-x");
  for (const auto& path : {src, src, odd})
    EXPECT_EQ(call("frecency.add", [&](Packer& p) { p.pack_array(1); protocol::pack_bytes(p, path + "/"); }).kind, "");

  auto found = call("frecency.query", [](Packer& p) {
    p.pack_array(2);
    p.pack_array(0);
    p.pack(0);
  });
  ASSERT_EQ(found.kind, "") << found.message;
  const auto& matches = found.result.get();
  ASSERT_EQ(matches.type, msgpack::type::ARRAY);
  ASSERT_EQ(matches.via.array.size, 2u);
  EXPECT_EQ(path_of(matches.via.array.ptr[0]), src);
  EXPECT_EQ(path_of(matches.via.array.ptr[1]), odd);
  EXPECT_EQ(protocol::map_find(matches.via.array.ptr[0], "path")->type, msgpack::type::BIN);
  EXPECT_EQ(number_of(*protocol::map_find(matches.via.array.ptr[0], "score")), 8.0);
  EXPECT_EQ(number_of(*protocol::map_find(matches.via.array.ptr[0], "rank")), 2.0);
  EXPECT_GT(protocol::map_find(matches.via.array.ptr[0], "last")->via.u64, 1'600'000'000u);

  found = call("frecency.query", [](Packer& p) {
    p.pack_array(2);
    p.pack_array(1);
    protocol::pack_bytes(p, "caf\xe9");
    p.pack(1);
  });
  ASSERT_EQ(found.result.get().via.array.size, 1u);
  EXPECT_EQ(path_of(found.result.get().via.array.ptr[0]), odd);

  EXPECT_EQ(call("frecency.list", [](Packer& p) { p.pack_array(0); }).result.get().via.array.size, 2u);
  EXPECT_TRUE(call("frecency.remove", [&](Packer& p) { p.pack_array(1); protocol::pack_bytes(p, odd); }).result.get().via.boolean);
  EXPECT_FALSE(call("frecency.remove", [&](Packer& p) { p.pack_array(1); protocol::pack_bytes(p, odd); }).result.get().via.boolean);
  EXPECT_EQ(index->size(), 1u);
}

TEST_F(FrecencyMethods, AddWithATime) {
  const std::string d = make_dir("d");
  call("frecency.add", [&](Packer& p) { p.pack_array(2); protocol::pack_bytes(p, d); p.pack(1234); });
  EXPECT_EQ(index->list(0).at(0).last_visit, 1234);
}

TEST_F(FrecencyMethods, RefusalsAreErrorReplies) {
  const auto add = [&](const std::string& path) {
    return call("frecency.add", [&](Packer& p) { p.pack_array(1); protocol::pack_bytes(p, path); });
  };
  auto outcome = add((dir / "missing").string());
  EXPECT_EQ(outcome.kind, "not-found");
  EXPECT_NE(outcome.message.find("missing: No such file or directory"), std::string::npos) << outcome.message;
  EXPECT_EQ(add("relative").kind, "bad-params");
  EXPECT_EQ(call("frecency.add", [](Packer& p) { p.pack_array(1); p.pack(12); }).kind, "bad-params");
  EXPECT_EQ(call("frecency.add", [](Packer& p) { p.pack_array(0); }).kind, "bad-params");
  EXPECT_EQ(call("frecency.query", [](Packer& p) { p.pack_array(1); p.pack(3); }).kind, "bad-params");
  EXPECT_EQ(call("frecency.query", [](Packer& p) { p.pack_array(2); p.pack_array(0); p.pack(-1); }).kind, "bad-params");
  const auto huge = call("frecency.query", [](Packer& p) { p.pack_array(2); p.pack_array(0); p.pack(UINT64_MAX); });
  EXPECT_NE(huge.message.find("must be an integer below 2^63"), std::string::npos) << huge.message;
  EXPECT_EQ(call("frecency.import", [](Packer& p) { p.pack_array(2); protocol::pack_text(p, "fasd"); protocol::pack_bytes(p, "/x"); }).kind,
            "bad-params");
  EXPECT_EQ(index->size(), 0u);
}

TEST_F(FrecencyMethods, ImportNamesTheLine) {
  const fs::path good = dir / "z";
  std::ofstream(good) << "/one|3|100\n/two|1|200\n";
  auto outcome = call("frecency.import", [&](Packer& p) { p.pack_array(2); protocol::pack_text(p, "z"); protocol::pack_bytes(p, good.string()); });
  ASSERT_EQ(outcome.kind, "") << outcome.message;
  EXPECT_EQ(outcome.result.get().via.u64, 2u);
  const fs::path bad = dir / "aj";
  std::ofstream(bad) << "10\t/a\n10 /b\n";
  outcome = call("frecency.import", [&](Packer& p) { p.pack_array(2); protocol::pack_text(p, "autojump"); protocol::pack_bytes(p, bad.string()); });
  EXPECT_EQ(outcome.kind, "bad-params");
  EXPECT_NE(outcome.message.find("line 2"), std::string::npos) << outcome.message;
  outcome = call("frecency.import", [&](Packer& p) { p.pack_array(2); protocol::pack_text(p, "z"); protocol::pack_bytes(p, (dir / "none").string()); });
  EXPECT_EQ(outcome.kind, "not-found");
  EXPECT_EQ(index->size(), 2u);
}
