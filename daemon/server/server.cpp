#include "server/server.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <string>

#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "descent/version.hpp"
#include "protocol/frame.hpp"
#include "protocol/rpc.hpp"
#include "server/runtime.hpp"

namespace descent::server {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using local = asio::local::stream_protocol;

namespace {

// Beyond these, a connection's next request is not read until replies have
// gone out (see Connection::serve).
constexpr std::size_t max_outbox_bytes = 32u << 20;
constexpr std::size_t max_in_flight = 32;

// Completion for co_spawn: a coroutine that dies of an exception is logged,
// never silently dropped.
auto log_failure(std::string what) {
  return [what = std::move(what)](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log(what + " failed: " + e.what());
    } catch (...) {
      log(what + " failed with an unknown exception");
    }
  };
}

// The id of a request we could not fully parse, so the error reply can still
// be matched by the client.
std::optional<std::uint32_t> salvage_id(const msgpack::object& payload) {
  if (payload.type != msgpack::type::ARRAY || payload.via.array.size < 2) return std::nullopt;
  const auto& id = payload.via.array.ptr[1];
  if (id.type != msgpack::type::POSITIVE_INTEGER || id.via.u64 > UINT32_MAX) return std::nullopt;
  return static_cast<std::uint32_t>(id.via.u64);
}

}  // namespace

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server& server, local::socket socket) : server_(server), socket_(std::move(socket)) {}

  awaitable<void> serve();
  void send(std::string frame);
  void cancel_all() {
    for (auto& [id, flag] : in_flight_) flag->store(true);
  }
  // Closes once every running call has replied and every reply is written,
  // so a client whose call is cancelled by a stop still hears why.
  void shutdown() {
    closing_ = true;
    close_when_idle();
  }

 private:
  awaitable<void> write_loop();
  bool peer_allowed();
  void handle(std::string payload);
  bool handle_packed(std::string& payload);
  // `keep` holds what `params` and `packed` point into until the call is done.
  void run(const Method& method, std::string name, std::optional<std::uint32_t> id, std::shared_ptr<const void> keep,
           const msgpack::object* params, std::string_view packed = {});
  void hello(std::uint32_t id, const msgpack::object& params);
  void cancel(const msgpack::object& params);
  void take_back(std::uint32_t id, std::function<std::string()> action);
  void close_when_idle() {
    if (closing_ && !writing_ && in_flight_.empty()) close();
  }
  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    closed_ = true;
    outbox_.clear();
    outbox_bytes_ = 0;
  }

  Server& server_;
  local::socket socket_;
  std::deque<std::string> outbox_;
  std::size_t outbox_bytes_ = 0;
  std::size_t running_ = 0;  // calls handed to run() whose end has not come back
  bool writing_ = false;
  bool closing_ = false;
  bool closed_ = false;
  bool said_hello_ = false;
  std::map<std::uint32_t, std::shared_ptr<std::atomic<bool>>> in_flight_;
  // The last finished call whose work can be taken back (Call::take_back),
  // until the client's next request shows that it read the reply.
  std::optional<std::pair<std::uint32_t, std::function<std::string()>>> revocable_;
};

bool Connection::peer_allowed() {
  ucred peer{};
  socklen_t size = sizeof peer;
  if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) {
    log(std::string("closed a connection whose credentials could not be read: ") + std::strerror(errno));
    return false;
  }
  if (peer.uid != ::geteuid()) {
    log("refused a connection from uid " + std::to_string(peer.uid) + " (pid " + std::to_string(peer.pid) +
        "): only uid " + std::to_string(::geteuid()) + " may use this daemon");
    return false;
  }
  return true;
}

awaitable<void> Connection::serve() {
  auto self = shared_from_this();
  if (peer_allowed()) {
    for (;;) {
      boost::system::error_code ec;
      // A client that sends requests and does not read the replies would
      // have them pile up here without end (512 MB and growing, seen): its
      // requests wait in the socket, unread, while too much waits to be
      // sent or runs. Emacs sends one call at a time.
      while (!closed_ && (outbox_bytes_ > max_outbox_bytes || running_ >= max_in_flight)) {
        asio::steady_timer pause(socket_.get_executor(), std::chrono::milliseconds(5));
        co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      }
      unsigned char header[protocol::header_size];
      co_await asio::async_read(socket_, asio::buffer(header), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      const std::uint32_t size = protocol::decode_header(header);
      if (size > protocol::max_request_size) {
        // Refused on the length alone: nothing of it is read or allocated.
        log("refused a request frame of " + std::to_string(size) + " bytes (limit " +
            std::to_string(protocol::max_request_size) + "); connection closed");
        send(protocol::error_frame(std::nullopt, "bad-request",
                                   "request of " + std::to_string(size) + " bytes exceeds the limit of " +
                                       std::to_string(protocol::max_request_size) + " bytes"));
        break;
      }
      // A header that merely claims a large frame costs nothing: the whole
      // frame is reserved once its first 64 KiB have arrived. Reserved at
      // once, not grown by doubling, which would leave the halves behind
      // as free heap and add their size to the daemon's peak RSS.
      std::string payload;
      payload.reserve(std::min<std::size_t>(size, 64 * 1024));
      while (payload.size() < size) {
        char chunk[64 * 1024];
        const std::size_t want = std::min(sizeof chunk, size - payload.size());
        const std::size_t got =
            co_await socket_.async_read_some(asio::buffer(chunk, want), asio::redirect_error(use_awaitable, ec));
        if (ec) break;
        if (payload.size() + got > payload.capacity()) payload.reserve(size);
        payload.append(chunk, got);
      }
      if (ec) break;
      handle(std::move(payload));
    }
  }
  if (!in_flight_.empty())
    log("a client left with " + std::to_string(in_flight_.size()) + " call(s) running; cancelling them");
  cancel_all();
  shutdown();
  server_.forget(self);
}

void Connection::send(std::string frame) {
  if (closed_) return;
  outbox_bytes_ += frame.size();
  outbox_.push_back(std::move(frame));
  if (writing_) return;
  writing_ = true;
  asio::co_spawn(socket_.get_executor(), [self = shared_from_this()] { return self->write_loop(); },
                 log_failure("writing a reply"));
}

awaitable<void> Connection::write_loop() {
  while (!outbox_.empty() && !closed_) {
    boost::system::error_code ec;
    co_await asio::async_write(socket_, asio::buffer(outbox_.front()), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      close();  // the peer went away; its calls are cancelled by serve()
      break;
    }
    outbox_bytes_ -= outbox_.front().size();
    outbox_.pop_front();
  }
  writing_ = false;
  close_when_idle();
}

// A request for a method that reads its params packed: checked as any
// payload is, then run without an object tree. False if it is not one.
bool Connection::handle_packed(std::string& payload) {
  if (!said_hello_) return false;
  const auto request = protocol::peek_request(payload);
  if (!request) return false;
  const Method* method = server_.methods().find(request->method);
  if (!method || !method->packed_params) return false;
  try {
    protocol::check_payload(payload.data(), payload.size());
  } catch (const protocol::ProtocolError& e) {
    send(protocol::error_frame(std::nullopt, "bad-request", e.what()));
    return true;
  }
  static const msgpack::object no_params = [] {
    msgpack::object empty;
    empty.type = msgpack::type::ARRAY;
    empty.via.array.size = 0;
    empty.via.array.ptr = nullptr;
    return empty;
  }();
  auto kept = std::make_shared<const std::string>(std::move(payload));
  const std::string_view packed = std::string_view(*kept).substr(request->params_offset);
  run(*method, request->method, request->id, std::move(kept), &no_params, packed);
  return true;
}

void Connection::handle(std::string payload) {
  if (handle_packed(payload)) return;
  auto handle = std::make_shared<msgpack::object_handle>();
  try {
    *handle = protocol::decode_payload(payload.data(), payload.size());
  } catch (const protocol::ProtocolError& e) {
    send(protocol::error_frame(std::nullopt, "bad-request", e.what()));
    return;
  }
  protocol::Message message;
  try {
    message = protocol::parse_message(handle->get());
  } catch (const protocol::ProtocolError& e) {
    send(protocol::error_frame(salvage_id(handle->get()), "bad-request", e.what()));
    return;
  }

  if (std::holds_alternative<protocol::Response>(message)) return;  // we never ask clients anything

  if (const auto* n = std::get_if<protocol::Notification>(&message)) {
    if (!said_hello_) return;
    if (n->method == "cancel") return cancel(*n->params);
    // A batch or an undo has an outcome someone must be told, and is
    // cancelled by its id: sent without one, it would run unseen and
    // uncancellable. Refused.
    if (n->method.starts_with("rename.")) {
      log("refused " + std::string(n->method.substr(0, 64)) +
          " sent as a notification: it has an outcome to tell, so it must be a request");
      return;
    }
    if (const Method* method = server_.methods().find(n->method))
      run(*method, std::string(n->method), std::nullopt, handle, n->params);
    else
      // Only so much of the name: a client must not fill the log.
      log("ignored a notification of unknown method '" + std::string(n->method.substr(0, 64)) +
          (n->method.size() > 64 ? "...'" : "'"));
    return;
  }

  const auto& request = std::get<protocol::Request>(message);
  if (request.method != "cancel") revocable_.reset();  // the client moved on: it has the reply
  if (request.method == protocol::hello_method) return hello(request.id, *request.params);
  if (!said_hello_) {
    send(protocol::error_frame(request.id, "bad-request",
                               "the first request on a connection must be hello, not '" +
                                   std::string(request.method) + "'"));
    return;
  }
  if (request.method == "cancel") {
    cancel(*request.params);
    msgpack::sbuffer t;
    protocol::Packer(t).pack(true);
    send(protocol::result_frame(request.id, t));
    return;
  }
  const Method* method = server_.methods().find(request.method);
  if (!method) {
    send(protocol::error_frame(request.id, "unknown-method",
                               "unknown method '" + std::string(request.method) + "'"));
    return;
  }
  run(*method, std::string(request.method), request.id, handle, request.params);
}

void Connection::hello(std::uint32_t id, const msgpack::object& params) {
  try {
    Params p("hello", params);
    p.expect_count(1, 2);
    const auto theirs = p.integer(0, "protocol version");
    if (theirs != protocol_version)
      throw MethodError("protocol-mismatch",
                        "descentd " + std::string(version) + " speaks protocol " + std::to_string(protocol_version) +
                            " but this client speaks protocol " + std::to_string(theirs) +
                            ": rebuild descent (M-x descent-build-module) and restart Emacs, or stop the old "
                            "daemon (descent stop) so that the matching one starts");
  } catch (const MethodError& e) {
    send(protocol::error_frame(id, e.kind, e.what()));
    return;
  }
  said_hello_ = true;
  msgpack::sbuffer result;
  protocol::Packer p(result);
  p.pack_map(3);
  protocol::pack_text(p, "version");
  protocol::pack_text(p, version);
  protocol::pack_text(p, "protocol");
  p.pack(protocol_version);
  protocol::pack_text(p, "pid");
  p.pack(static_cast<std::int64_t>(::getpid()));
  send(protocol::result_frame(id, result));
}

void Connection::cancel(const msgpack::object& params) {
  if (params.via.array.size < 1) return;
  const auto& id = params.via.array.ptr[0];
  if (id.type != msgpack::type::POSITIVE_INTEGER) return;
  const auto which = static_cast<std::uint32_t>(id.via.u64);
  if (auto it = in_flight_.find(which); it != in_flight_.end()) {
    it->second->store(true);
    log("cancelling call " + std::to_string(it->first) + " at the client's request");
  } else if (revocable_ && revocable_->first == which) {
    auto action = std::move(revocable_->second);
    revocable_.reset();
    take_back(which, std::move(action));
  }
}

void Connection::take_back(std::uint32_t id, std::function<std::string()> action) {
  log("call " + std::to_string(id) + " was cancelled after its work was done; taking it back");
  // As a call runs: on a worker, and an orderly stop waits for it.
  asio::post(server_.workers(), [action = std::move(action), guard = asio::make_work_guard(socket_.get_executor())] {
    try {
      log(action());
    } catch (const std::exception& e) {
      log(std::string("taking a call back failed: ") + e.what());
    }
  });
}

void Connection::run(const Method& method, std::string name, std::optional<std::uint32_t> id,
                     std::shared_ptr<const void> keep, const msgpack::object* params, std::string_view packed) {
  auto cancelled = std::make_shared<std::atomic<bool>>(server_.stopping());
  if (id) in_flight_[*id] = cancelled;
  ++running_;  // every call, whatever its id (a client may reuse one), and notifications too
  auto executor = socket_.get_executor();
  auto self = shared_from_this();
  auto task = [self, executor, &method, name = std::move(name), id, keep = std::move(keep), params, packed, cancelled] {
    msgpack::sbuffer buffer;
    protocol::Packer packer(buffer);
    std::string frame;
    std::function<std::string()> take_back;
    auto notify = [self, executor](std::string_view method_name, const std::function<void(Packer&)>& write) {
      asio::post(executor, [self, frame = protocol::notification_frame(method_name, write)]() mutable {
        self->send(std::move(frame));
      });
    };
    try {
      Call call{Params(name, *params), packer, *cancelled, notify, id.value_or(0), packed};
      method.run(call);
      take_back = std::move(call.take_back);
      if (id) frame = protocol::result_frame(*id, buffer);
    } catch (const MethodError& e) {
      if (id)
        frame = protocol::error_frame(id, e.kind, e.what(), e.details);
      else
        log(name + " (notification) refused: " + e.what());
    } catch (const std::exception& e) {
      log(name + " failed: " + e.what());
      if (id) frame = protocol::error_frame(id, "internal", name + " failed: " + e.what());
    } catch (...) {
      log(name + " failed with an unknown exception");
      if (id) frame = protocol::error_frame(id, "internal", name + " failed");
    }
    asio::post(executor, [self, id, name, frame = std::move(frame), take_back = std::move(take_back)]() mutable {
      if (id) {
        // A cancel that came after the handler last looked (cancel() and
        // this run on the same thread, so none falls in between): the work
        // is taken back and the reply says so. A later one finds it in
        // `revocable_`.
        const auto it = self->in_flight_.find(*id);
        const bool cancelled = it != self->in_flight_.end() && it->second->load();
        self->in_flight_.erase(*id);
        if (take_back && cancelled) {
          frame = protocol::error_frame(id, "cancelled", name + ": cancelled as it ended; it was taken back");
          self->take_back(*id, std::move(take_back));
        } else if (take_back) {
          self->revocable_.emplace(*id, std::move(take_back));
        }
      }
      --self->running_;
      if (!frame.empty()) self->send(std::move(frame));
      self->close_when_idle();
      self->server_.call_finished();
    });
  };
  if (method.execution == Execution::worker) {
    // The work guard keeps io.run() alive until the reply is posted back, so
    // an orderly stop waits for running calls to finish or roll back.
    asio::post(server_.workers(), [task = std::move(task), guard = asio::make_work_guard(executor)]() mutable {
      task();
    });
  } else {
    task();
  }
}

Server::Server(asio::io_context& io, local::acceptor acceptor, MethodTable& methods, DaemonInfo info)
    : io_(io), acceptor_(std::move(acceptor)), signals_(io, SIGINT, SIGTERM), methods_(methods), info_(std::move(info)) {}

Server::~Server() { workers_.join(); }

void Server::call_finished() {
  if (stopping_) return;  // a pending timer would hold up the exit
  trim_timer_.expires_after(std::chrono::seconds(1));
  trim_timer_.async_wait([](const boost::system::error_code& ec) {
    // What a 10k-entry listing or batch needs stays: faulting its pages in
    // again would cost the next one more than their memory is worth.
    constexpr std::size_t kept = 32 << 20;
    if (!ec && ::mallinfo2().fordblks > kept) ::malloc_trim(0);
  });
}

void Server::start() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (!ec) stop(signal == SIGTERM ? "SIGTERM" : "SIGINT");
  });
  asio::co_spawn(
      io_,
      [this]() -> awaitable<void> {
        asio::steady_timer backoff(io_);
        std::size_t failed = 0;  // in a row: said once, then every 100th (every 10 s)
        while (!stopping_) {
          boost::system::error_code ec;
          local::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
          if (stopping_) break;
          if (!ec && failed > 1) log("accepting connections again after " + std::to_string(failed) + " failures");
          if (!ec) failed = 0;
          if (ec) {
            if (failed++ % 100 == 0) log("accept failed: " + ec.message());
            // Out of descriptors: give the clients we have a moment to leave.
            backoff.expires_after(std::chrono::milliseconds(100));
            co_await backoff.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
          }
          auto connection = std::make_shared<Connection>(*this, std::move(socket));
          connections_.insert(connection);
          asio::co_spawn(io_, [connection] { return connection->serve(); }, log_failure("a connection"));
        }
      },
      log_failure("accepting connections"));
}

void Server::watch_socket(const std::filesystem::path& socket) {
  struct stat bound {};
  if (::lstat(socket.c_str(), &bound) != 0) return;
  asio::co_spawn(
      io_,
      [this, socket, bound]() -> awaitable<void> {
        while (!stopping_) {
          socket_timer_.expires_after(std::chrono::seconds(2));
          boost::system::error_code ec;
          co_await socket_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
          if (stopping_) break;
          struct stat now {};
          if (::lstat(socket.c_str(), &now) != 0 || now.st_ino != bound.st_ino || now.st_dev != bound.st_dev) {
            log(socket.string() + " was removed or replaced");
            stop("its socket is gone");
          }
        }
      },
      log_failure("watching the socket"));
}

void Server::stop(std::string_view why) {
  if (stopping_) return;
  stopping_ = true;
  log("stopping (" + std::string(why) + ")");
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  signals_.cancel(ignored);
  trim_timer_.cancel();
  socket_timer_.cancel();
  // Copy: shutdown may erase from the set through forget().
  auto connections = connections_;
  for (const auto& c : connections) {
    c->cancel_all();
    c->shutdown();
  }
}

}  // namespace descent::server
