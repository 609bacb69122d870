#include "server/methods_frecency.hpp"

#include <cerrno>
#include <ctime>
#include <string>
#include <vector>

#include "protocol/rpc.hpp"

namespace descent::server {

namespace {

using protocol::pack_bytes;
using protocol::pack_text;

// A query names a few words; more than this is not a person typing.
constexpr std::uint32_t max_keywords = 64;

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// The engine's refusals, translated into error replies once, for every method.
template <typename Body>
void translating(std::string_view method, Body body) {
  try {
    body();
  } catch (const frecency::Refusal& e) {
    throw MethodError("bad-params", std::string(method) + ": " + e.what());
  } catch (const frecency::OsError& e) {
    throw MethodError(e.error == ENOENT || e.error == ENOTDIR ? "not-found" : "os-error", e.what());
  } catch (const state::SqliteError& e) {
    throw MethodError("state-error", std::string(method) + ": the state database failed: " + e.what());
  }
}

void pack_matches(Packer& out, const std::vector<frecency::Ranked>& matches) {
  out.pack_array(static_cast<std::uint32_t>(matches.size()));
  for (const auto& match : matches) {
    out.pack_map(4);
    pack_text(out, "path");
    pack_bytes(out, match.path);
    pack_text(out, "score");
    out.pack_double(match.score);
    pack_text(out, "rank");
    out.pack_double(match.rank);
    pack_text(out, "last");
    out.pack_int64(match.last_visit);
  }
}

std::vector<std::string> keywords_of(const Params& params, std::size_t index) {
  std::vector<std::string> keywords;
  for (const auto& keyword : params.array(index, "keywords", "an array of strings", max_keywords)) {
    const auto bytes = protocol::as_bytes(keyword);
    if (!bytes) params.fail(index, "keywords", "an array of strings (bin or str)");
    keywords.emplace_back(*bytes);
  }
  return keywords;
}

frecency::ImportFormat format_of(const Params& params, std::size_t index) {
  const std::string name = params.bytes(index, "format");
  if (name == "zoxide") return frecency::ImportFormat::zoxide;
  if (name == "z") return frecency::ImportFormat::z;
  if (name == "autojump") return frecency::ImportFormat::autojump;
  params.fail(index, "format", "one of \"zoxide\", \"z\", \"autojump\"");
}

}  // namespace

void add_frecency_methods(MethodTable& methods, const DaemonInfo&, frecency::Index& index) {
  // Writes commit with synchronous=FULL (an fsync): off the I/O thread.
  methods.add("frecency.add", {[&index](Call& call) {
                                 call.params.expect_count(1, 2);
                                 const std::string path = call.params.bytes(0, "path");
                                 std::int64_t when = unix_now();
                                 if (call.params.size() == 2 && !call.params.is_nil(1)) {
                                   when = call.params.integer(1, "time");
                                   if (when < 0) call.params.fail(1, "time", "seconds since the epoch (not negative)");
                                 }
                                 translating("frecency.add", [&] { index.add(path, when); });
                                 call.result.pack(true);
                               },
                               Execution::worker});

  // Matching is from memory (about a millisecond over 100k entries), but each
  // answer is checked with stat(), which a dead mount can block: a worker.
  methods.add("frecency.query", {[&index](Call& call) {
                                   call.params.expect_count(1, 2);
                                   const auto keywords = keywords_of(call.params, 0);
                                   std::int64_t limit = 0;
                                   if (call.params.size() == 2 && !call.params.is_nil(1)) {
                                     limit = call.params.integer(1, "limit");
                                     if (limit < 0) call.params.fail(1, "limit", "a count (0 for all)");
                                   }
                                   std::vector<frecency::Ranked> matches;
                                   translating("frecency.query", [&] {
                                     matches = index.query(keywords, static_cast<std::size_t>(limit), unix_now());
                                   });
                                   pack_matches(call.result, matches);
                                 },
                                 Execution::worker});

  methods.add("frecency.list", {[&index](Call& call) {
                                  call.params.expect_count(0, 0);
                                  std::vector<frecency::Ranked> all;
                                  translating("frecency.list", [&] { all = index.list(unix_now()); });
                                  pack_matches(call.result, all);
                                },
                                Execution::worker});

  methods.add("frecency.remove", {[&index](Call& call) {
                                    call.params.expect_count(1, 1);
                                    const std::string path = call.params.bytes(0, "path");
                                    bool removed = false;
                                    translating("frecency.remove", [&] { removed = index.remove(path); });
                                    call.result.pack(removed);
                                  },
                                  Execution::worker});

  methods.add("frecency.import", {[&index](Call& call) {
                                    call.params.expect_count(2, 2);
                                    const auto format = format_of(call.params, 0);
                                    const std::string file = call.params.absolute_path(1, "file");
                                    std::size_t count = 0;
                                    translating("frecency.import", [&] { count = index.import_file(format, file); });
                                    call.result.pack(static_cast<std::uint64_t>(count));
                                  },
                                  Execution::worker});
}

}  // namespace descent::server
