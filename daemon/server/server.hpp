// The transport: a Unix-socket acceptor, one coroutine per connection, and a
// worker pool for methods that touch the file system. It decodes, dispatches
// and encodes; everything else lives in the engine.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "server/methods.hpp"

namespace descent::server {

class Connection;

class Server {
 public:
  Server(boost::asio::io_context& io, boost::asio::local::stream_protocol::acceptor acceptor,
         MethodTable& methods, DaemonInfo info);
  ~Server();

  // Accepts until stop(); SIGINT and SIGTERM call stop().
  void start();
  // Orderly stop: no new connections, running calls cancelled (they roll
  // back), replies already queued are still written, then io.run() returns.
  void stop(std::string_view why);

  const DaemonInfo& info() const { return info_; }
  std::size_t connection_count() const { return connections_.size(); }
  bool stopping() const { return stopping_; }
  boost::asio::thread_pool& workers() { return workers_; }
  MethodTable& methods() { return methods_; }
  boost::asio::io_context& io() { return io_; }

  void forget(const std::shared_ptr<Connection>& connection) { connections_.erase(connection); }

  // After each call on a worker: free heap beyond 32 MiB goes back to the
  // system after a second without calls (main.cpp keeps freed memory in
  // the heap between calls).
  void call_finished();

  // Stops the daemon when `socket` is removed or replaced (checked every
  // two seconds). Nothing could reach it any more, and while it held its
  // lock every new daemon would take it for one that serves.
  void watch_socket(const std::filesystem::path& socket);

 private:
  boost::asio::io_context& io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::signal_set signals_;
  boost::asio::thread_pool workers_{2};
  MethodTable& methods_;
  DaemonInfo info_;
  std::set<std::shared_ptr<Connection>> connections_;
  bool stopping_ = false;
  boost::asio::steady_timer trim_timer_{io_};
  boost::asio::steady_timer socket_timer_{io_};
};

// hello, status, stop, cancel: the methods the server itself answers.
void add_core_methods(MethodTable& methods, Server& server);

}  // namespace descent::server
