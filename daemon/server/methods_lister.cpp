#include "server/methods_lister.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/lister/lister.hpp"
#include "protocol/rpc.hpp"

namespace descent::server {

namespace {

using protocol::pack_bytes;
using protocol::pack_text;

// More switches or variables than this is not a dired-listing-switches.
constexpr std::uint32_t max_switches = 64;
constexpr std::uint32_t max_variables = 64;

#ifdef DESCENT_TEST_HOOKS
std::atomic<std::int64_t> test_delay_us{0};
#endif

std::vector<std::string> switches_of(const Params& params) {
  const auto array = params.array(1, "switches", "an array of strings", max_switches);
  std::vector<std::string> switches;
  switches.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    const auto bytes = protocol::as_bytes(array[i]);
    if (!bytes || bytes->find('\0') != std::string_view::npos)
      params.fail(1, "switches", "an array of strings without NUL bytes");
    switches.emplace_back(*bytes);
  }
  return switches;
}

lister::Environment environment_of(const Params& params) {
  lister::Environment env;
  if (params.is_nil(2)) return env;
  const msgpack::object& map = params.at(2);
  if (map.type != msgpack::type::MAP) params.fail(2, "env", "a map of strings to strings, or nil");
  if (map.via.map.size > max_variables)
    throw MethodError("bad-params", "list: at most " + std::to_string(max_variables) + " environment variables");
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto key = protocol::as_bytes(map.via.map.ptr[i].key);
    const auto value = protocol::as_bytes(map.via.map.ptr[i].val);
    if (!key || !value) params.fail(2, "env", "a map of strings to strings");
    env.emplace(std::string(*key), std::string(*value));
  }
  return env;
}

// The offsets as the module reads them: little-endian uint32 pairs.
std::string packed_offsets(const std::vector<lister::NameSpan>& names) {
  std::string out(names.size() * 8, '\0');
  char* p = out.data();
  for (const lister::NameSpan& n : names)
    for (std::uint32_t v : {n.begin, n.end})
      for (int shift = 0; shift < 32; shift += 8) *p++ = static_cast<char>((v >> shift) & 0xff);
  return out;
}

void run_list(Call& call) {
  call.params.expect_count(2, 3);
  const std::string dir = call.params.absolute_path(0, "dir");
  const std::vector<std::string> switches = switches_of(call.params);
  const lister::Environment env = environment_of(call.params);

  lister::Control control;
  control.cancelled = &call.cancelled;
#ifdef DESCENT_TEST_HOOKS
  control.delay_per_entry = std::chrono::microseconds(test_delay_us.load());
#endif
  lister::Listing listing;
  try {
    listing = lister::list(dir, switches, env, control);
  } catch (const lister::Unsupported& e) {
    throw MethodError("unsupported", std::string("list: ") + e.what());
  } catch (const lister::Cancelled&) {
    throw MethodError("cancelled", "list: cancelled");
  }
  auto& r = call.result;
  r.pack_map(3);
  pack_text(r, "text");
  pack_bytes(r, listing.text);
  pack_text(r, "offsets");
  pack_bytes(r, packed_offsets(listing.names));
  pack_text(r, "quoting-style");
  pack_text(r, listing.quoting_style);
}

}  // namespace

void add_lister_methods(MethodTable& methods, const DaemonInfo&) {
  methods.add("list", {run_list, Execution::worker});

#ifdef DESCENT_TEST_HOOKS
  if (const char* hooks = std::getenv("DESCENT_TEST_HOOKS"); hooks && std::string_view(hooks) == "1") {
    methods.add("test.list-delay", {[](Call& call) {
                  call.params.expect_count(1, 1);
                  const auto us = call.params.integer(0, "microseconds");
                  if (us < 0 || us > 10'000'000) call.params.fail(0, "microseconds", "between 0 and 10000000");
                  test_delay_us = us;
                  call.result.pack(true);
                }});
  }
#endif
}

}  // namespace descent::server
