#include <string>

#include "protocol/rpc.hpp"
#include "server/methods.hpp"

namespace descent::server {

namespace {

const char* type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "an integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "a float";
    case msgpack::type::STR: return "a string";
    case msgpack::type::BIN: return "bytes";
    case msgpack::type::ARRAY: return "an array";
    case msgpack::type::MAP: return "a map";
    case msgpack::type::EXT: return "an extension value";
  }
  return "an unknown value";
}

}  // namespace

Params::Params(std::string_view method, const msgpack::object& params)
    : method_(method), items_(params.via.array.ptr), size_(params.via.array.size) {}

void Params::expect_count(std::size_t min, std::size_t max) const {
  if (size_ >= min && size_ <= max) return;
  std::string expected = min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max);
  throw MethodError("bad-params", method_ + ": expected " + expected + " parameter" + (max == 1 ? "" : "s") +
                                      ", got " + std::to_string(size_));
}

const msgpack::object& Params::at(std::size_t index) const {
  if (index >= size_)
    throw MethodError("bad-params", method_ + ": missing parameter " + std::to_string(index + 1));
  return items_[index];
}

void Params::fail(std::size_t index, std::string_view name, std::string_view expected) const {
  std::string what = method_ + ": parameter " + std::to_string(index + 1) + " (" + std::string(name) +
                     ") must be " + std::string(expected);
  if (index < size_) what += ", got " + std::string(type_name(items_[index]));
  throw MethodError("bad-params", what);
}

std::int64_t Params::integer(std::size_t index, std::string_view name) const {
  const auto& o = at(index);
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= INT64_MAX) return static_cast<std::int64_t>(o.via.u64);
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  // An integer too large is "an integer" too: say what is wrong with it.
  fail(index, name, o.type == msgpack::type::POSITIVE_INTEGER ? "an integer below 2^63" : "an integer");
}

double Params::number(std::size_t index, std::string_view name) const {
  if (auto n = protocol::as_number(at(index))) return *n;
  fail(index, name, "a number");
}

bool Params::boolean(std::size_t index, std::string_view name) const {
  const auto& o = at(index);
  if (o.type == msgpack::type::BOOLEAN) return o.via.boolean;
  if (o.type == msgpack::type::NIL) return false;
  fail(index, name, "a boolean");
}

std::string Params::bytes(std::size_t index, std::string_view name) const {
  if (auto b = protocol::as_bytes(at(index))) return std::string(*b);
  fail(index, name, "bytes or a string");
}

std::string Params::absolute_path(std::size_t index, std::string_view name) const {
  std::string path = bytes(index, name);
  if (path.find('\0') != std::string::npos)
    throw MethodError("bad-params", method_ + ": parameter " + std::to_string(index + 1) + " (" + std::string(name) +
                                        ") contains a NUL byte");
  if (path.empty() || path.front() != '/')
    throw MethodError("bad-params", method_ + ": parameter " + std::to_string(index + 1) + " (" + std::string(name) +
                                        ") must be an absolute path");
  return path;
}

std::span<const msgpack::object> Params::array(std::size_t index, std::string_view name, std::string_view expected,
                                               std::size_t max) const {
  const msgpack::object& o = at(index);
  if (o.type != msgpack::type::ARRAY) fail(index, name, expected);
  if (o.via.array.size > max)
    throw MethodError("bad-params", method_ + ": at most " + std::to_string(max) + " " + std::string(name));
  return {o.via.array.ptr, o.via.array.size};
}

bool Params::is_nil(std::size_t index) const { return index >= size_ || items_[index].type == msgpack::type::NIL; }

}  // namespace descent::server
