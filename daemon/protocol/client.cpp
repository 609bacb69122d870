#include "protocol/client.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "descent/version.hpp"

namespace descent::protocol {

namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point deadline_of(const Wait& wait) {
  return wait.timeout ? Clock::now() + *wait.timeout : Clock::time_point::max();
}

std::string errno_text(int error) { return std::strerror(error); }

}  // namespace

Client::Client(std::string socket_path, std::string_view client_name, const Wait& wait)
    : socket_path_(std::move(socket_path)) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof address.sun_path)
    throw ConnectionError("socket path too long for a Unix socket: " + socket_path_, ENAMETOOLONG);
  std::memcpy(address.sun_path, socket_path_.c_str(), socket_path_.size() + 1);

  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw ConnectionError("socket: " + errno_text(errno), errno);
  // A Unix-socket connect completes or fails at once (EAGAIN when the backlog
  // is full is a failure too: the daemon is not keeping up or is wedged).
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    close();
    throw ConnectionError("cannot connect to descentd at " + socket_path_ + ": " + errno_text(error), error);
  }

  Wait hello_wait = wait;
  if (!hello_wait.timeout) hello_wait.timeout = std::chrono::seconds(5);
  try {
    hello_ = call(hello_method,
                  [&](Packer& p) {
                    p.pack_array(2);
                    p.pack(protocol_version);
                    pack_text(p, client_name);
                  },
                  hello_wait);
  } catch (const RemoteFailure& e) {
    close();
    if (e.kind == "protocol-mismatch") throw ProtocolMismatch(e.what());
    throw;
  } catch (...) {
    close();
    throw;
  }
  if (hello_.result->type != msgpack::type::MAP) {
    close();
    throw ProtocolMismatch("descentd at " + socket_path_ + " answered hello with something unexpected");
  }
}

Client::~Client() { close(); }

void Client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  inbox_.clear();
}

void Client::broken(const std::string& doing, int error) {
  close();
  std::string what = "connection to descentd at " + socket_path_ + " lost while " + doing;
  if (error) what += ": " + errno_text(error);
  throw ConnectionError(what, error);
}

bool Client::wait_fd(short events, const Wait& wait, Clock::time_point deadline) {
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    const auto slice = std::min(wait.slice, left);
    pollfd p{fd_, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(slice.count(), 1)));
    if (n < 0 && errno != EINTR) broken("waiting", errno);
    // Asked every time, not only when the slice ran out: a large request
    // going out, or a reply coming in, keeps the socket ready for long
    // stretches, and C-g must still be seen within a slice.
    if (wait.keep_going && !wait.keep_going()) throw Cancelled();
    if (n > 0) return true;
  }
}

void Client::send_all(std::string_view bytes, const Wait& wait, Clock::time_point deadline) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_fd(POLLOUT, wait, deadline)) throw TimedOut("descentd did not take the request in time");
    } else if (n < 0 && errno != EINTR) {
      broken("sending", errno);
    }
  }
}

Client::Received Client::receive(const Wait& wait, Clock::time_point deadline) {
  auto fill = [&](std::size_t want) {
    char chunk[65536];
    while (inbox_.size() < want) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        inbox_.append(chunk, static_cast<std::size_t>(n));
      } else if (n == 0) {
        broken("waiting for a reply (the daemon closed the connection)", 0);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait_fd(POLLIN, wait, deadline)) throw TimedOut("descentd did not answer in time");
      } else if (errno != EINTR) {
        broken("reading", errno);
      }
    }
  };
  fill(header_size);
  const std::uint32_t size =
      decode_header(std::span<const unsigned char, header_size>(reinterpret_cast<const unsigned char*>(inbox_.data()), header_size));
  if (size > max_response_size) {
    close();
    throw ProtocolMismatch("descentd sent a reply of " + std::to_string(size) + " bytes, over the limit");
  }
  inbox_.reserve(header_size + size);
  fill(header_size + size);
  // The message keeps its frame and points into it; the inbox goes on in
  // the buffer of an earlier message that nobody holds any more.
  std::shared_ptr<std::string> bytes =
      spare_ && spare_.use_count() == 1 ? std::move(spare_) : std::make_shared<std::string>();
  bytes->clear();
  const std::size_t frame = header_size + size;
  if (inbox_.size() == frame) {
    bytes->swap(inbox_);
  } else {
    bytes->assign(inbox_, 0, frame);
    inbox_.erase(0, frame);
  }
  spare_ = bytes;
  auto handle = decode_payload(bytes->data() + header_size, size, /*by_reference=*/true);
  return {std::move(handle), std::move(bytes)};
}

template <typename Body>
auto Client::guarded(std::string_view method, std::uint32_t id, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Cancelled&) {
    // Tell the daemon to stop and roll back, then drop the connection: a
    // reply may still be on its way and must not be mistaken for another's.
    notify("cancel", [&](Packer& p) {
      p.pack_array(1);
      p.pack(id);
    });
    close();
    throw;
  } catch (const TimedOut&) {
    notify("cancel", [&](Packer& p) {
      p.pack_array(1);
      p.pack(id);
    });
    close();
    throw;
  } catch (const ProtocolError& e) {
    close();
    throw ProtocolMismatch(std::string("descentd sent something this client cannot read: ") + e.what());
  } catch (const ConnectionLost&) {
    throw;
  } catch (const ConnectionError& e) {
    // hello has no effect, so losing it is just "unavailable": retry freely.
    if (method == hello_method) throw;
    throw ConnectionLost(std::string(e.what()) + " (during " + std::string(method) +
                             "; it may or may not have been carried out)",
                         e.error);
  }
}

std::uint32_t Client::send_request(std::string_view method, const Writer& params, const Wait& wait,
                                   Clock::time_point deadline) {
  if (fd_ < 0) throw ConnectionError("not connected to descentd at " + socket_path_, 0);
  const std::uint32_t id = next_id_++;
  const msgpack::sbuffer frame = request_frame_buffer(id, method, params, wait.expected_size);
  // The daemon refuses such a frame after its header and hangs up while the
  // rest is still being sent: say why here, before anything goes out.
  if (frame.size() > header_size + max_request_size)
    throw RequestTooLarge(std::string(method) + ": the request is " + std::to_string((frame.size() + (1u << 20) - 1) >> 20) +
                          " MiB, over descentd's limit of " + std::to_string(max_request_size >> 20) +
                          " MiB; nothing was sent");
  guarded(method, id, [&] { send_all(std::string_view(frame.data(), frame.size()), wait, deadline); });
  return id;
}

Client::Reply Client::await(std::string_view method, std::uint32_t id, const Wait& wait, Clock::time_point deadline) {
  if (fd_ < 0) throw ConnectionError("not connected to descentd at " + socket_path_, 0);
  return guarded(method, id, [&]() -> Reply {
    for (;;) {
      auto [handle, bytes] = receive(wait, deadline);
      const Message message = parse_message(handle.get());
      if (const auto* n = std::get_if<Notification>(&message)) {
        if (wait.on_notification) wait.on_notification(*n);
        // C-g pressed while a progress report ran is seen now, even if
        // the reply is already here.
        if (wait.keep_going && !wait.keep_going()) throw Cancelled();
        continue;
      }
      const auto* response = std::get_if<Response>(&message);
      if (!response || response->id != id) continue;  // a late reply to a call we gave up on
      if (response->error->type != msgpack::type::NIL) {
        auto e = read_error(*response->error);
        throw RemoteFailure(std::move(e.kind), e.message, std::move(e.details));
      }
      const msgpack::object* result = response->result;
      return Reply{std::move(handle), result, std::move(bytes)};
    }
  });
}

std::uint32_t Client::send_request(std::string_view method, const Writer& params, const Wait& wait) {
  return send_request(method, params, wait, deadline_of(wait));
}

Client::Reply Client::await(std::string_view method, std::uint32_t id, const Wait& wait) {
  return await(method, id, wait, deadline_of(wait));
}

Client::Reply Client::call(std::string_view method, const Writer& params, const Wait& wait) {
  const auto deadline = deadline_of(wait);
  const std::uint32_t id = send_request(method, params, wait, deadline);
  return await(method, id, wait, deadline);
}

bool Client::notify(std::string_view method, const Writer& params) {
  if (fd_ < 0) return false;
  const std::string frame = notification_frame(method, params);
  const ssize_t n = ::send(fd_, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(frame.size())) return true;
  // A partial frame would desynchronise the stream: drop the connection.
  close();
  return false;
}

}  // namespace descent::protocol
