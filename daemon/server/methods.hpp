// The daemon's RPC methods: each area registers its handlers in a
// MethodTable; the server only decodes, looks up, runs and encodes.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include <msgpack.hpp>

namespace descent::server {

using Packer = msgpack::packer<msgpack::sbuffer>;

// A refusal that becomes an error reply {kind, message}; the connection and
// the daemon carry on. `kind` is a short token the client maps to a Lisp
// error symbol: "bad-params", "unknown-method", "protocol-mismatch",
// "not-found", "conflict", "cancelled", "os-error", ...
// `details`, when not empty, is one packed MessagePack value sent along as
// the error's "details", for a client that acts on the refusal (wdired
// asking about each occupied destination).
struct MethodError : std::runtime_error {
  MethodError(std::string kind, const std::string& message, std::string details = {})
      : std::runtime_error(message), kind(std::move(kind)), details(std::move(details)) {}
  std::string kind;
  std::string details;
};

// Typed access to a request's parameter array, with errors that name the
// method, the parameter and what was expected.
class Params {
 public:
  Params(std::string_view method, const msgpack::object& params);

  std::size_t size() const { return size_; }
  // Throws unless size() is within [min, max].
  void expect_count(std::size_t min, std::size_t max) const;
  const msgpack::object& at(std::size_t index) const;

  std::int64_t integer(std::size_t index, std::string_view name) const;
  double number(std::size_t index, std::string_view name) const;
  bool boolean(std::size_t index, std::string_view name) const;
  // A file name or path: MessagePack bin (preferred) or str, taken as bytes.
  std::string bytes(std::size_t index, std::string_view name) const;
  // Like bytes(), and refuses NUL bytes and relative paths.
  std::string absolute_path(std::size_t index, std::string_view name) const;
  bool is_nil(std::size_t index) const;
  // The array at `index` (described as `expected` if it is something else),
  // refused when it holds more than `max` elements: "METHOD: at most MAX NAME".
  std::span<const msgpack::object> array(std::size_t index, std::string_view name, std::string_view expected,
                                         std::size_t max) const;

  [[noreturn]] void fail(std::size_t index, std::string_view name, std::string_view expected) const;

 private:
  std::string method_;
  const msgpack::object* items_;
  std::size_t size_;
};

// What a handler gets. It packs exactly one object into `result`.
struct Call {
  Params params;
  Packer& result;
  // Set when the client sent `cancel` for this request or disconnected, or the
  // daemon is stopping; long handlers poll it and stop leaving no trace.
  const std::atomic<bool>& cancelled;
  // Sends a notification [2, method, params] to the calling client (thread-safe;
  // for progress of long requests). `write` packs the params array.
  std::function<void(std::string_view method, const std::function<void(Packer&)>& write)> notify;
  std::uint32_t request_id;
  // For a method registered with `packed_params`, called as a request: its
  // params array still packed (a view into the request, valid during the
  // call), and `params` empty. Empty otherwise.
  std::string_view packed_params = {};
  // Set by a handler whose work is done but can be taken back (a rename
  // batch, by its undo). A client that pressed C-g just as the work ended
  // sends `cancel` for a call that has finished, or is finishing, and hangs
  // up without reading the reply: the server then runs this, on a worker,
  // so that "cancelled" stays true whenever the cancel came. It returns
  // what it did, for the log.
  std::function<std::string()> take_back = {};
};

enum class Execution {
  inline_,  // quick; runs on the I/O thread
  worker,   // may take long (file system work): runs on a worker thread
};

struct Method {
  std::function<void(Call&)> run;
  Execution execution = Execution::inline_;
  // The handler decodes its params from Call::packed_params itself (and
  // copes with Call::params when that is empty): for requests whose object
  // tree would cost several times their bytes.
  bool packed_params = false;
};

class MethodTable {
 public:
  void add(std::string name, Method method) { methods_[std::move(name)] = std::move(method); }
  const Method* find(std::string_view name) const {
    auto it = methods_.find(name);
    return it == methods_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, Method, std::less<>> methods_;
};

// What every handler may need to know about the running daemon.
struct DaemonInfo {
  std::filesystem::path socket_path;
  std::filesystem::path state_dir;
  std::int64_t started_unix = 0;  // seconds since the epoch
};

}  // namespace descent::server
