// A blocking client for descentd, for the Emacs module, the CLI and the
// tests. Every wait is cut into short slices so the caller can poll for quit.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "protocol/rpc.hpp"

namespace descent::protocol {

// The daemon could not be reached, or the connection broke: starting a
// daemon and retrying is the cure.
struct ConnectionError : std::runtime_error {
  ConnectionError(const std::string& what, int error) : std::runtime_error(what), error(error) {}
  int error;  // errno, 0 if none applies
};

// The connection broke after a request was (perhaps partly) sent: the daemon
// may have acted on it, so this is never retried blindly. (A daemon that dies
// mid-batch rolls the batch back when it restarts.)
struct ConnectionLost : ConnectionError {
  using ConnectionError::ConnectionError;
};

// The daemon speaks another protocol version: rebuild or restart.
struct ProtocolMismatch : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The daemon answered with an error reply.
// `details` is the packed "details" value of the reply, if any (else empty).
struct RemoteFailure : std::runtime_error {
  RemoteFailure(std::string kind, const std::string& message, std::string details = {})
      : std::runtime_error(message), kind(std::move(kind)), details(std::move(details)) {}
  std::string kind;
  std::string details;
};

// A request over the daemon's frame limit (max_request_size); not sent.
struct RequestTooLarge : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TimedOut : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The caller asked to stop waiting (C-g); a cancel was sent to the daemon.
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

struct Wait {
  // Called between slices of at most `slice`; returning false cancels.
  std::function<bool()> keep_going;
  // Progress and other notifications that arrive while waiting.
  std::function<void(const Notification&)> on_notification;
  // Roughly how large the request will be, if large: its buffer is sized
  // once instead of grown by doubling.
  std::size_t expected_size = 0;
  std::optional<std::chrono::milliseconds> timeout;
  std::chrono::milliseconds slice{20};
};

class Client {
 public:
  // Connects and says hello; throws ConnectionError, ProtocolMismatch,
  // TimedOut or Cancelled.
  Client(std::string socket_path, std::string_view client_name, const Wait& wait);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  // Sends a request and waits for its reply. The returned handle holds the
  // whole response; result() points into it.
  struct Reply {
    msgpack::object_handle handle;
    const msgpack::object* result;
    // The frame the handle's strings point into (a 100k-entry listing is
    // 10 MB: not copied once more).
    std::shared_ptr<const std::string> bytes;
  };
  Reply call(std::string_view method, const Writer& params, const Wait& wait);

  // call() in two halves, for a reply wanted later: the daemon works
  // meanwhile. Returns the request's id, for await().
  std::uint32_t send_request(std::string_view method, const Writer& params, const Wait& wait);
  Reply await(std::string_view method, std::uint32_t id, const Wait& wait);

  // Fire-and-forget: never blocks; false if the message could not be sent
  // whole right now (it is then dropped, and the connection closed).
  bool notify(std::string_view method, const Writer& params);

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& socket_path() const { return socket_path_; }
  // What the daemon said to hello: {version, protocol, pid}.
  const msgpack::object& hello() const { return *hello_.result; }

 private:
  std::uint32_t send_request(std::string_view method, const Writer& params, const Wait& wait,
                             std::chrono::steady_clock::time_point deadline);
  Reply await(std::string_view method, std::uint32_t id, const Wait& wait,
              std::chrono::steady_clock::time_point deadline);
  // Runs `body`; a failure there is reported as one of request `id`'s.
  template <typename Body>
  auto guarded(std::string_view method, std::uint32_t id, Body&& body) -> decltype(body());
  void send_all(std::string_view bytes, const Wait& wait, std::chrono::steady_clock::time_point deadline);
  struct Received {
    msgpack::object_handle handle;
    std::shared_ptr<std::string> bytes;
  };
  Received receive(const Wait& wait, std::chrono::steady_clock::time_point deadline);
  bool wait_fd(short events, const Wait& wait, std::chrono::steady_clock::time_point deadline);
  [[noreturn]] void broken(const std::string& doing, int error);
  void close();

  std::string socket_path_;
  int fd_ = -1;
  std::uint32_t next_id_ = 1;
  Reply hello_;
  std::string inbox_;  // bytes read but not yet consumed
  // The bytes of the last message received; once no reply holds them, the
  // next message is read into their buffer, whose pages are in already.
  std::shared_ptr<std::string> spare_;
};

}  // namespace descent::protocol
