#include "protocol/rpc.hpp"

#include <algorithm>
#include <cstring>

namespace descent::protocol {

namespace {

std::uint32_t read_id(const msgpack::object& o) {
  if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 > UINT32_MAX)
    throw ProtocolError("message id must be an unsigned 32-bit integer");
  return static_cast<std::uint32_t>(o.via.u64);
}

std::string_view read_method(const msgpack::object& o) {
  auto name = as_bytes(o);
  if (!name || name->empty()) throw ProtocolError("method name must be a non-empty string");
  return *name;
}

const msgpack::object* read_params(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY) throw ProtocolError("params must be an array");
  return &o;
}

std::string frame_of(const std::function<void(Packer&)>& write) {
  msgpack::sbuffer buffer;
  Packer packer(buffer);
  write(packer);
  return make_frame(buffer);
}

}  // namespace

Message parse_message(const msgpack::object& payload) {
  if (payload.type != msgpack::type::ARRAY || payload.via.array.size == 0)
    throw ProtocolError("a message must be a MessagePack-RPC array");
  const auto& a = payload.via.array;
  const auto& type = a.ptr[0];
  if (type.type != msgpack::type::POSITIVE_INTEGER || type.via.u64 > 2)
    throw ProtocolError("unknown message type (expected 0, 1 or 2)");
  switch (static_cast<MessageType>(type.via.u64)) {
    case MessageType::request:
      if (a.size != 4) throw ProtocolError("a request must be [0, id, method, params]");
      return Request{read_id(a.ptr[1]), read_method(a.ptr[2]), read_params(a.ptr[3])};
    case MessageType::response:
      if (a.size != 4) throw ProtocolError("a response must be [1, id, error, result]");
      return Response{read_id(a.ptr[1]), &a.ptr[2], &a.ptr[3]};
    case MessageType::notification:
      if (a.size != 3) throw ProtocolError("a notification must be [2, method, params]");
      return Notification{read_method(a.ptr[1]), read_params(a.ptr[2])};
  }
  throw ProtocolError("unknown message type");
}

std::optional<std::uint32_t> read_array_header(std::string_view packed, std::size_t& offset) {
  if (offset >= packed.size()) return std::nullopt;
  const auto first = static_cast<unsigned char>(packed[offset]);
  if ((first & 0xf0) == 0x90) {
    ++offset;
    return first & 0x0f;
  }
  const std::size_t width = first == 0xdc ? 2 : first == 0xdd ? 4 : 0;
  if (width == 0 || packed.size() - offset - 1 < width) return std::nullopt;
  std::uint32_t count = 0;
  for (std::size_t k = 1; k <= width; ++k) count = (count << 8) | static_cast<unsigned char>(packed[offset + k]);
  offset += 1 + width;
  return count;
}

std::optional<PackedRequest> peek_request(std::string_view payload) {
  std::size_t offset = 0;
  if (read_array_header(payload, offset) != 4u) return std::nullopt;
  // Type, id and method are small scalars; anything bigger is not a request we peek at.
  const msgpack::unpack_limit scalars(0, 0, 1024, 1024, 0, 1);
  try {
    const auto type = msgpack::unpack(payload.data(), payload.size(), offset, nullptr, nullptr, scalars);
    if (type->type != msgpack::type::POSITIVE_INTEGER || type->via.u64 != 0) return std::nullopt;
    const auto id = msgpack::unpack(payload.data(), payload.size(), offset, nullptr, nullptr, scalars);
    if (id->type != msgpack::type::POSITIVE_INTEGER || id->via.u64 > UINT32_MAX) return std::nullopt;
    const auto method = msgpack::unpack(payload.data(), payload.size(), offset, nullptr, nullptr, scalars);
    const auto name = as_bytes(method.get());
    if (!name || name->empty()) return std::nullopt;
    PackedRequest request;
    request.id = static_cast<std::uint32_t>(id->via.u64);
    request.method = std::string(*name);
    request.params_offset = offset;
    if (!read_array_header(payload, offset)) return std::nullopt;  // parse_message refuses it
    return request;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string request_frame(std::uint32_t id, std::string_view method, const Writer& params) {
  const msgpack::sbuffer frame = request_frame_buffer(id, method, params);
  return std::string(frame.data(), frame.size());
}

msgpack::sbuffer request_frame_buffer(std::uint32_t id, std::string_view method, const Writer& params,
                                      std::size_t expected_size) {
  msgpack::sbuffer frame(std::max<std::size_t>(expected_size, MSGPACK_SBUFFER_INIT_SIZE));
  frame.write("\0\0\0\0", header_size);  // the length, once it is known
  Packer p(frame);
  p.pack_array(4);
  p.pack(0);
  p.pack(id);
  pack_text(p, method);
  params(p);
  const auto header = encode_header(frame.size() - header_size);
  std::memcpy(frame.data(), header.data(), header_size);
  return frame;
}

std::string notification_frame(std::string_view method, const Writer& params) {
  return frame_of([&](Packer& p) {
    p.pack_array(3);
    p.pack(2);
    pack_text(p, method);
    params(p);
  });
}

std::string result_frame(std::uint32_t id, const msgpack::sbuffer& packed_result) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_array(4);
  p.pack(1);
  p.pack(id);
  p.pack_nil();
  buffer.write(packed_result.data(), packed_result.size());
  return make_frame(buffer);
}

std::string error_frame(std::optional<std::uint32_t> id, std::string_view kind, std::string_view message,
                        std::string_view details) {
  return frame_of([&](Packer& p) {
    p.pack_array(4);
    p.pack(1);
    if (id)
      p.pack(*id);
    else
      p.pack_nil();
    p.pack_map(details.empty() ? 2 : 3);
    pack_text(p, "kind");
    pack_text(p, kind);
    pack_text(p, "message");
    pack_text(p, message);
    if (!details.empty()) {
      pack_text(p, "details");
      pack_packed(p, details);
    }
    p.pack_nil();
  });
}

void pack_bytes(Packer& packer, std::string_view bytes) {
  packer.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  packer.pack_bin_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
}

void pack_text(Packer& packer, std::string_view text) {
  packer.pack_str(static_cast<std::uint32_t>(text.size()));
  packer.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

void pack_packed(Packer& packer, const msgpack::sbuffer& packed) {
  pack_packed(packer, std::string_view(packed.data(), packed.size()));
}

void pack_packed(Packer& packer, std::string_view packed) {
  // pack_bin_body appends the bytes without a header: exactly a raw append.
  packer.pack_bin_body(packed.data(), static_cast<std::uint32_t>(packed.size()));
}

std::optional<std::string_view> as_bytes(const msgpack::object& o) {
  if (o.type == msgpack::type::STR) return std::string_view(o.via.str.ptr, o.via.str.size);
  if (o.type == msgpack::type::BIN) return std::string_view(o.via.bin.ptr, o.via.bin.size);
  return std::nullopt;
}

std::optional<double> as_number(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::POSITIVE_INTEGER: return static_cast<double>(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return static_cast<double>(o.via.i64);
    default: return std::nullopt;
  }
}

const msgpack::object* map_find(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (auto k = as_bytes(kv.key); k && *k == key) return &kv.val;
  }
  return nullptr;
}

RemoteError read_error(const msgpack::object& error) {
  if (auto text = as_bytes(error)) return {"error", std::string(*text), {}};
  RemoteError e{"error", "the daemon reported an error it did not describe", {}};
  if (const auto* kind = map_find(error, "kind"))
    if (auto k = as_bytes(*kind)) e.kind = *k;
  if (const auto* message = map_find(error, "message"))
    if (auto m = as_bytes(*message)) e.message = *m;
  if (const auto* details = map_find(error, "details")) {
    msgpack::sbuffer packed;
    msgpack::pack(packed, *details);
    e.details.assign(packed.data(), packed.size());
  }
  return e;
}

}  // namespace descent::protocol
