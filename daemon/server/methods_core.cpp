#include <chrono>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include "descent/version.hpp"
#include "protocol/rpc.hpp"
#include "server/server.hpp"

namespace descent::server {

using protocol::pack_bytes;
using protocol::pack_text;

void add_core_methods(MethodTable& methods, Server& server) {
  methods.add("status", {[&server](Call& call) {
                  call.params.expect_count(0, 0);
                  const DaemonInfo& info = server.info();
                  auto& r = call.result;
                  r.pack_map(8);
                  pack_text(r, "version");
                  pack_text(r, version);
                  pack_text(r, "protocol");
                  r.pack(protocol_version);
                  pack_text(r, "pid");
                  r.pack(static_cast<std::int64_t>(::getpid()));
                  pack_text(r, "socket");
                  pack_bytes(r, info.socket_path.native());
                  pack_text(r, "state-dir");
                  pack_bytes(r, info.state_dir.native());
                  pack_text(r, "started");
                  r.pack(info.started_unix);
                  pack_text(r, "uptime");
                  r.pack(static_cast<std::int64_t>(std::time(nullptr)) - info.started_unix);
                  pack_text(r, "connections");
                  r.pack(static_cast<std::uint64_t>(server.connection_count()));
                }});

  methods.add("stop", {[&server](Call& call) {
                  call.params.expect_count(0, 0);
                  call.result.pack(true);
                  // Posted twice so that the reply, posted after this handler
                  // returns, is queued before the stop closes the connection.
                  auto& io = server.io();
                  boost::asio::post(io, [&server, &io] {
                    boost::asio::post(io, [&server] { server.stop("stop requested by a client"); });
                  });
                }});

#ifdef DESCENT_TEST_HOOKS
  // A slow call for tests of C-g and cancellation; present only when the
  // daemon was started with DESCENT_TEST_HOOKS=1 in its environment.
  if (const char* hooks = std::getenv("DESCENT_TEST_HOOKS"); hooks && std::string_view(hooks) == "1") {
    methods.add("test.sleep", {[](Call& call) {
                                 call.params.expect_count(1, 1);
                                 const auto ms = call.params.integer(0, "milliseconds");
                                 const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
                                 while (std::chrono::steady_clock::now() < end) {
                                   if (call.cancelled) throw MethodError("cancelled", "test.sleep cancelled");
                                   std::this_thread::sleep_for(std::chrono::milliseconds(5));
                                 }
                                 call.result.pack(true);
                               },
                               Execution::worker});
    // Returns its parameters unchanged: the codec's round trip, end to end.
    methods.add("test.echo", {[](Call& call) {
                                msgpack::object params;
                                params.type = msgpack::type::ARRAY;
                                params.via.array.size = static_cast<std::uint32_t>(call.params.size());
                                params.via.array.ptr = call.params.size() ? const_cast<msgpack::object*>(&call.params.at(0)) : nullptr;
                                call.result.pack(params);
                              }});
  }
#endif
}

}  // namespace descent::server
