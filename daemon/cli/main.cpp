// descent: the shell's client of descentd (status, stop, and the frecency
// commands). It links only the protocol library, never the engine.
#include <cstdlib>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "descent/version.hpp"
#include "protocol/client.hpp"
#include "protocol/paths.hpp"
#include "protocol/rpc.hpp"

namespace {

using namespace descent;
using protocol::Client;

struct Options {
  std::string socket;
};

std::string socket_of(const Options& options) {
  return options.socket.empty() ? protocol::default_socket_path().string() : options.socket;
}


std::string text_of(const msgpack::object& o) {
  if (auto b = protocol::as_bytes(o)) return std::string(*b);
  if (o.type == msgpack::type::POSITIVE_INTEGER) return std::to_string(o.via.u64);
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return std::to_string(o.via.i64);
  if (o.type == msgpack::type::FLOAT64 || o.type == msgpack::type::FLOAT32) return std::to_string(o.via.f64);
  if (o.type == msgpack::type::BOOLEAN) return o.via.boolean ? "true" : "false";
  return "-";
}

int status(const Options& options) {
  Client client(socket_of(options), "descent-cli", protocol::Wait{});
  auto reply = client.call("status", [](protocol::Packer& p) { p.pack_array(0); }, protocol::Wait{});
  const auto& map = *reply.result;
  for (const char* key : {"version", "protocol", "pid", "socket", "state-dir", "uptime", "connections"})
    if (const auto* value = protocol::map_find(map, key)) std::cout << key << ": " << text_of(*value) << '\n';
  return 0;
}

int stop(const Options& options) {
  Client client(socket_of(options), "descent-cli", protocol::Wait{});
  client.call("stop", [](protocol::Packer& p) { p.pack_array(0); }, protocol::Wait{});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"descent: talk to descentd from a shell"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("descent ") + version);
  Options options;
  app.add_option("--socket", options.socket, "descentd's socket (default: $XDG_RUNTIME_DIR/descent/descentd.sock)");

  int code = 0;
  auto* status_command = app.add_subcommand("status", "Show the running daemon's version, pid, socket and state");
  status_command->callback([&] { code = status(options); });
  auto* stop_command = app.add_subcommand("stop", "Stop the running daemon (it finishes or rolls back running work)");
  stop_command->callback([&] { code = stop(options); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Usage errors exit 2, as shells expect of a command given bad arguments.
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const protocol::ConnectionError& e) {
    std::cerr << "descent: " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "descent: " << e.what() << '\n';
    return 1;
  }
  return code;
}
