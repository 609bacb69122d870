#include "protocol/frame.hpp"

#include <limits>
#include <vector>

namespace descent::protocol {

std::array<unsigned char, header_size> encode_header(std::size_t payload_size) {
  if (payload_size > std::numeric_limits<std::uint32_t>::max())
    throw ProtocolError("message of " + std::to_string(payload_size) + " bytes is too large to frame");
  const auto n = static_cast<std::uint32_t>(payload_size);
  return {static_cast<unsigned char>(n >> 24), static_cast<unsigned char>(n >> 16),
          static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
}

std::uint32_t decode_header(std::span<const unsigned char, header_size> h) {
  return (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) | (std::uint32_t{h[2]} << 8) |
         std::uint32_t{h[3]};
}

std::string make_frame(const msgpack::sbuffer& payload) {
  const auto header = encode_header(payload.size());
  std::string frame;
  frame.reserve(header_size + payload.size());
  frame.append(reinterpret_cast<const char*>(header.data()), header.size());
  frame.append(payload.data(), payload.size());
  return frame;
}

namespace {

// Walks the encoded bytes without allocating and checks that no container
// claims more elements than bytes remain to hold them (each element takes at
// least one byte), counting claims of nested containers together. After this
// pass, unpacking allocates at most a small constant times the payload size.
class ClaimChecker : public msgpack::null_visitor {
 public:
  explicit ClaimChecker(std::size_t size) : budget_(size) {}

  bool start_array(std::uint32_t n) { return claim(n); }
  bool start_map(std::uint32_t n) {
    // A map of n pairs holds 2n objects; 64-bit arithmetic cannot overflow here.
    return claim(std::uint64_t{n} * 2);
  }
  bool end_array() { --depth_; return true; }
  bool end_map() { --depth_; return true; }
  void parse_error(std::size_t, std::size_t) { throw ProtocolError("malformed MessagePack"); }
  void insufficient_bytes(std::size_t, std::size_t) {
    throw ProtocolError("truncated MessagePack: the frame ends inside a value");
  }

 private:
  bool claim(std::uint64_t n) {
    if (++depth_ > max_depth) throw ProtocolError("MessagePack nested too deeply");
    if (n > budget_)
      throw ProtocolError("MessagePack container claims " + std::to_string(n) +
                          " elements but the frame cannot hold them");
    budget_ -= n;
    return true;
  }

  std::uint64_t budget_;
  std::size_t depth_ = 0;
};

}  // namespace

void check_payload(const char* data, std::size_t size) {
  if (size == 0) throw ProtocolError("empty message");
  std::size_t offset = 0;
  ClaimChecker checker(size);
  bool complete = false;
  try {
    complete = msgpack::parse(data, size, offset, checker);
  } catch (const ProtocolError&) {
    throw;
  } catch (const std::exception& e) {
    throw ProtocolError(std::string("malformed MessagePack: ") + e.what());
  }
  if (!complete) throw ProtocolError("truncated MessagePack: the frame ends inside a value");
  if (offset != size)
    throw ProtocolError("trailing bytes after the MessagePack value (" + std::to_string(size - offset) +
                        " bytes)");
}

msgpack::object_handle decode_payload(const char* data, std::size_t size, bool by_reference) {
  check_payload(data, size);
  const msgpack::unpack_limit limits(size, size, size, size, size, max_depth + 1);
  const auto always = [](msgpack::type::object_type, std::size_t, void*) { return true; };
  try {
    if (by_reference) {
      std::size_t offset = 0;
      return msgpack::unpack(data, size, offset, always, nullptr, limits);
    }
    return msgpack::unpack(data, size, nullptr, nullptr, limits);
  } catch (const std::exception& e) {
    throw ProtocolError(std::string("malformed MessagePack: ") + e.what());
  }
}

}  // namespace descent::protocol
