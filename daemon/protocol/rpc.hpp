// MessagePack-RPC messages: request [0, id, method, params], response
// [1, id, error, result], notification [2, method, params]. An error is a map
// {"kind": str, "message": str}.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <msgpack.hpp>

#include "protocol/frame.hpp"

namespace descent::protocol {

using Packer = msgpack::packer<msgpack::sbuffer>;
// Packs the params array (or a result) into the packer.
using Writer = std::function<void(Packer&)>;

// The first request on every connection: [protocol_version, client_name].
inline constexpr std::string_view hello_method = "hello";

enum class MessageType : std::uint8_t { request = 0, response = 1, notification = 2 };

// Views into an object_handle's zone: valid while that handle lives.
struct Request {
  std::uint32_t id;
  std::string_view method;
  const msgpack::object* params;  // always an array
};
struct Response {
  std::uint32_t id;
  const msgpack::object* error;  // nil on success
  const msgpack::object* result;
};
struct Notification {
  std::string_view method;
  const msgpack::object* params;  // always an array
};
using Message = std::variant<Request, Response, Notification>;

// Interprets a decoded payload; throws ProtocolError saying what is wrong.
Message parse_message(const msgpack::object& payload);

// A request [0, id, method, params] read without unpacking its params, for
// methods that decode them straight from the bytes (a rename batch of 100k
// entries as an object tree costs twice the payload again).
struct PackedRequest {
  std::uint32_t id = 0;
  std::string method;
  std::size_t params_offset = 0;  // where the packed params array begins
};
// nullopt for anything else, and for anything unusual, which parse_message
// is left to judge. Checks only the envelope: check_payload checks the rest.
std::optional<PackedRequest> peek_request(std::string_view payload);

// The element count of the array whose header is at `offset`, moving `offset`
// past the header; nullopt (and `offset` unchanged) if no array starts there.
std::optional<std::uint32_t> read_array_header(std::string_view packed, std::size_t& offset);

std::string request_frame(std::uint32_t id, std::string_view method, const Writer& params);
// The same frame, packed in place after its header: a large request (a
// 100k rename batch is 14 MB) is written once, not copied into a string.
msgpack::sbuffer request_frame_buffer(std::uint32_t id, std::string_view method, const Writer& params,
                                      std::size_t expected_size = 0);
std::string notification_frame(std::string_view method, const Writer& params);
std::string result_frame(std::uint32_t id, const msgpack::sbuffer& packed_result);
// `id` is empty when the request's id could not be read.
// `details`, when not empty, is one packed MessagePack value, sent as the
// error's "details".
std::string error_frame(std::optional<std::uint32_t> id, std::string_view kind, std::string_view message,
                        std::string_view details = {});

// Packs a byte string as MessagePack bin: how every file name travels.
void pack_bytes(Packer& packer, std::string_view bytes);
void pack_text(Packer& packer, std::string_view text);
// Appends a value that was packed earlier (e.g. params converted before
// connecting) as it is.
void pack_packed(Packer& packer, const msgpack::sbuffer& packed);
void pack_packed(Packer& packer, std::string_view packed);

// Reads a str or bin as bytes; nullopt for anything else.
std::optional<std::string_view> as_bytes(const msgpack::object& object);

// Reads any MessagePack number as a double; nullopt for anything else.
// (msgpack-cxx may pack an integral double as an integer.)
std::optional<double> as_number(const msgpack::object& object);

// The {kind, message, details} of an error reply, tolerating a plain string.
struct RemoteError {
  std::string kind;
  std::string message;
  std::string details;  // the packed "details" value; empty if there is none
};
RemoteError read_error(const msgpack::object& error);

// Looks a key up in a MessagePack map whose keys are str; nullptr if absent.
const msgpack::object* map_find(const msgpack::object& map, std::string_view key);

}  // namespace descent::protocol
