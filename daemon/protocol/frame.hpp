// Framing: a 4-byte big-endian length, then that many bytes of MessagePack.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

#include <msgpack.hpp>

namespace descent::protocol {

// Requests are small (a rename batch of 100k entries is a few MiB); anything
// larger is refused before a byte of it is allocated.
inline constexpr std::uint32_t max_request_size = 16u << 20;
// Replies carry listings of huge directories; still bounded so that a
// corrupted length can never make a client allocate gigabytes.
inline constexpr std::uint32_t max_response_size = 512u << 20;
inline constexpr std::size_t header_size = 4;
// Deeper nesting than any message of ours has is a sign of garbage.
inline constexpr std::size_t max_depth = 16;

// Raised for anything that is not a well-formed message of ours; what() says
// what was wrong in words a person can act on.
struct ProtocolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::array<unsigned char, header_size> encode_header(std::size_t payload_size);
std::uint32_t decode_header(std::span<const unsigned char, header_size> header);

// Prepends the length header to a packed payload.
std::string make_frame(const msgpack::sbuffer& payload);

// Decodes one payload. Every count a header claims is checked against the
// bytes that remain before anything is allocated (a five-byte array header
// can claim four billion elements), then msgpack-cxx unpacks with limits
// sized to the payload as a second line of defence.
// With `by_reference`, strings and binaries are not copied: they point into
// `data`, which must then outlive the handle.
msgpack::object_handle decode_payload(const char* data, std::size_t size, bool by_reference = false);
// decode_payload's checks alone (one value, well formed, every claim within
// the bytes), allocating nothing; throws ProtocolError.
void check_payload(const char* data, std::size_t size);

}  // namespace descent::protocol
