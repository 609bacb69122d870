// descent-module: Emacs's door to descentd. It encodes Lisp calls as
// MessagePack-RPC, waits for the reply in short slices while polling for C-g,
// and turns every failure into a Lisp signal. It never touches the file
// system for descent's features, and never keeps an emacs_env.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <poll.h>
#include <string>
#include <vector>

#include <emacs-module.h>

#include "descent/version.hpp"
#include "emacs.hpp"
#include "protocol/client.hpp"
#include "protocol/rpc.hpp"

#define DESCENT_EXPORT __attribute__((visibility("default")))

extern "C" DESCENT_EXPORT int plugin_is_GPL_compatible;
int plugin_is_GPL_compatible;

namespace descent::module {

Symbols symbols;

namespace {

using protocol::Packer;

constexpr std::size_t max_nesting = 16;

}  // namespace

std::string Env::text(emacs_value v) const {
  ptrdiff_t size = 0;
  raw_->copy_string_contents(raw_, v, nullptr, &size);
  check();
  std::string out(static_cast<std::size_t>(size), '\0');
  raw_->copy_string_contents(raw_, v, out.data(), &size);
  check();
  out.resize(static_cast<std::size_t>(size > 0 ? size - 1 : 0));  // drop the terminating NUL
  return out;
}

emacs_value Env::make_text(std::string_view utf8) const {
  emacs_value v = raw_->make_string(raw_, utf8.data(), static_cast<ptrdiff_t>(utf8.size()));
  if (raw_->non_local_exit_check(raw_) != emacs_funcall_exit_return) {
    // Not valid UTF-8 after all: hand the bytes over unchanged.
    raw_->non_local_exit_clear(raw_);
    return make_bytes(utf8);
  }
  return v;
}

void Env::signal(emacs_value error, std::initializer_list<emacs_value> data) const noexcept {
  emacs_value list = raw_->funcall(raw_, symbols.list, static_cast<ptrdiff_t>(data.size()),
                                   const_cast<emacs_value*>(data.begin()));
  if (raw_->non_local_exit_check(raw_) == emacs_funcall_exit_return) raw_->non_local_exit_signal(raw_, error, list);
}

namespace {

// An error's text as a Lisp string, whatever its bytes: a message naming a
// file whose name is not UTF-8 is not valid UTF-8 either, and make_string
// signals on it (returning NULL) where a caller expects a value.  Its bytes
// are then handed over unchanged, as a unibyte string.
emacs_value error_text(emacs_env* raw, std::string_view message) noexcept {
  emacs_value text = raw->make_string(raw, message.data(), static_cast<ptrdiff_t>(message.size()));
  if (raw->non_local_exit_check(raw) != emacs_funcall_exit_return) {
    raw->non_local_exit_clear(raw);
    text = raw->make_unibyte_string(raw, message.data(), static_cast<ptrdiff_t>(message.size()));
  }
  return text;
}

}  // namespace

void Env::signal(emacs_value error, std::string_view message) const noexcept {
  emacs_value text = error_text(raw_, message);
  if (raw_->non_local_exit_check(raw_) == emacs_funcall_exit_return) signal(error, {text});
}

namespace {

// ---------------------------------------------------------------- Lisp -> MessagePack

std::string base64_decode(std::string_view in) {
  static constexpr unsigned char invalid = 0xff;
  static const auto table = [] {
    std::array<unsigned char, 256> t{};
    t.fill(invalid);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (unsigned char i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = i;
    return t;
  }();
  std::string out;
  out.reserve(in.size() / 4 * 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const unsigned char v = table[static_cast<unsigned char>(c)];
    if (v == invalid) continue;  // '=' padding
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// A unibyte string's bytes. The module API only copies text out as UTF-8 and
// refuses raw bytes, so the bytes cross as base64 (a C primitive in Emacs).
std::string bytes_of_unibyte(const Env& env, emacs_value s) {
  return base64_decode(env.text(env.funcall(symbols.base64_encode_string, {s, symbols.t})));
}

struct DescentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void pack_value(const Env& env, Packer& p, emacs_value v, std::size_t depth);

void pack_sequence_or_plist(const Env& env, Packer& p, emacs_value list, std::size_t depth) {
  const auto n = static_cast<std::size_t>(env.integer(env.funcall(symbols.length, {list})));
  const bool plist = !env.is_nil(env.funcall(symbols.keywordp, {env.funcall(symbols.car, {list})}));
  if (plist) {
    if (n % 2 != 0) throw DescentError("descent: a plist parameter has an odd number of elements");
    p.pack_map(static_cast<std::uint32_t>(n / 2));
  } else {
    p.pack_array(static_cast<std::uint32_t>(n));
  }
  emacs_value rest = list;
  for (std::size_t i = 0; i < n; ++i) {
    emacs_value item = env.funcall(symbols.car, {rest});
    if (plist && i % 2 == 0) {
      std::string key = env.text(env.funcall(symbols.symbol_name, {item}));
      protocol::pack_text(p, std::string_view(key).substr(1));  // without the colon
    } else {
      pack_value(env, p, item, depth + 1);
    }
    rest = env.funcall(symbols.cdr, {rest});
  }
}

void pack_value(const Env& env, Packer& p, emacs_value v, std::size_t depth) {
  if (depth > max_nesting) throw DescentError("descent: parameters nested too deeply");
  const emacs_value type = env.type_of(v);
  if (env.is_nil(v)) {
    p.pack_nil();
  } else if (env.eq(v, symbols.t)) {
    p.pack_true();
  } else if (env.eq(type, symbols.integer)) {
    p.pack(env.integer(v));
  } else if (env.eq(type, symbols.float_)) {
    p.pack(env.number(v));
  } else if (env.eq(type, symbols.string)) {
    if (env.is_nil(env.funcall(symbols.multibyte_string_p, {v})))
      protocol::pack_bytes(p, bytes_of_unibyte(env, v));
    else
      protocol::pack_text(p, env.text(v));
  } else if (env.eq(type, symbols.vector)) {
    const std::size_t n = env.vector_size(v);
    p.pack_array(static_cast<std::uint32_t>(n));
    for (std::size_t i = 0; i < n; ++i) pack_value(env, p, env.vector_get(v, i), depth + 1);
  } else if (env.eq(type, symbols.cons)) {
    pack_sequence_or_plist(env, p, v, depth);
  } else if (env.eq(type, symbols.symbol)) {
    protocol::pack_text(p, env.text(env.funcall(symbols.symbol_name, {v})));
  } else {
    throw DescentError("descent: cannot send a value of type " +
                       env.text(env.funcall(symbols.symbol_name, {type})) + " to descentd");
  }
}

// ---------------------------------------------------------------- MessagePack -> Lisp

// Map keys come back as keywords. The daemon uses a handful of keys, so each
// is interned once and kept as a global reference; a reply of 10k maps then
// costs no intern at all. Bounded, in case a reply carries arbitrary keys.
emacs_value keyword(const Env& env, std::string_view key) {
  static std::map<std::string, emacs_value, std::less<>> cache;
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  emacs_value symbol = env.funcall(symbols.intern, {env.make_text(":" + std::string(key))});
  if (cache.size() < 256) cache.emplace(std::string(key), symbol = env.global(symbol));
  return symbol;
}

emacs_value make_value(const Env& env, const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return symbols.nil;
    case msgpack::type::BOOLEAN: return o.via.boolean ? symbols.t : symbols.nil;
    case msgpack::type::POSITIVE_INTEGER:
      if (o.via.u64 <= static_cast<std::uint64_t>(INT64_MAX)) return env.make_integer(static_cast<std::int64_t>(o.via.u64));
      return env.make_float(static_cast<double>(o.via.u64));
    case msgpack::type::NEGATIVE_INTEGER: return env.make_integer(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return env.make_float(o.via.f64);
    case msgpack::type::STR: return env.make_text(std::string_view(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN: return env.make_bytes(std::string_view(o.via.bin.ptr, o.via.bin.size));
    case msgpack::type::ARRAY: {
      const auto n = o.via.array.size;
      emacs_value vector = env.funcall(symbols.make_vector, {env.make_integer(n), symbols.nil});
      for (std::uint32_t i = 0; i < n; ++i) env.vector_set(vector, i, make_value(env, o.via.array.ptr[i]));
      return vector;
    }
    case msgpack::type::MAP: {
      emacs_value plist = symbols.nil;
      const emacs_value cons = symbols.cons;  // the type's name is the function's
      for (std::uint32_t i = o.via.map.size; i-- > 0;) {
        const auto& kv = o.via.map.ptr[i];
        plist = env.funcall(cons, {make_value(env, kv.val), plist});
        plist = env.funcall(cons, {keyword(env, protocol::as_bytes(kv.key).value_or("?")), plist});
      }
      return plist;
    }
    case msgpack::type::EXT: return symbols.nil;
  }
  return symbols.nil;
}

// ---------------------------------------------------------------- connections

// One persistent connection per socket path. Plain C++ state: no emacs_env
// and no emacs_value is ever kept here.
using Connections = std::map<std::string, std::unique_ptr<protocol::Client>, std::less<>>;
Connections connections;

// A listing asked for before it is inserted (descent--mod-list-prefetch),
// so that descentd lists while Emacs does what comes before the insertion.
// On a connection of its own: no other call's replies cross its way, and
// dropping it cancels a listing nobody wanted after all.
// The connection stays for the next prefetch, its buffers paged in.
struct Prefetch {
  std::string socket;
  std::string params;  // packed, to recognise the listing asked for
  std::uint32_t id = 0;
};
std::optional<Prefetch> prefetched;
Connections prefetch_connections;

// A cached connection whose daemon went away shows end-of-file while idle;
// finding that out before sending means a request is never sent into the
// void, and never retried after the daemon may have acted on it.
bool still_alive(const protocol::Client& client) {
  if (!client.is_open()) return false;
  pollfd p{client.fd(), POLLIN | POLLRDHUP, 0};
  const int n = ::poll(&p, 1, 0);
  return n == 0;  // idle and nothing pending: alive
}

protocol::Wait wait_for(const Env& env, std::optional<std::chrono::milliseconds> timeout) {
  protocol::Wait wait;
  emacs_env* raw = env.raw();
  // process_input returns quit after C-g, leaving the quit pending in Emacs.
  wait.keep_going = [raw] { return raw->process_input(raw) == emacs_process_input_continue; };
  wait.timeout = timeout;
  return wait;
}

// The live connection of `pool` to `socket`, made anew if it is gone, with
// `hello` for the daemon to answer the handshake; `keep_going`, if given,
// replaces the usual check for C-g while it waits.
protocol::Client& connection(const Env& env, const std::string& socket, Connections& pool = connections,
                             std::chrono::milliseconds hello = std::chrono::seconds(5),
                             const std::function<bool()>& keep_going = {}) {
  auto it = pool.find(socket);
  if (it != pool.end() && still_alive(*it->second)) return *it->second;
  if (it != pool.end()) pool.erase(it);
  protocol::Wait wait = wait_for(env, hello);
  if (keep_going) wait.keep_going = keep_going;
  auto client = std::make_unique<protocol::Client>(socket, "emacs", wait);
  return *pool.emplace(socket, std::move(client)).first->second;
}

// ---------------------------------------------------------------- exported functions

emacs_value mod_version(const Env& env, ptrdiff_t, emacs_value*) { return env.make_text(version); }

emacs_value mod_call(const Env& env, ptrdiff_t nargs, emacs_value* args) {
  const std::string socket = env.text(args[0]);
  const std::string method = env.text(args[1]);
  std::optional<std::chrono::milliseconds> timeout;
  if (nargs > 3 && !env.is_nil(args[3]))
    timeout = std::chrono::milliseconds(static_cast<std::int64_t>(env.number(env.funcall(symbols.float_, {args[3]})) * 1000));

  msgpack::sbuffer params;
  Packer packer(params);
  if (env.is_nil(args[2]))
    packer.pack_array(0);
  else if (env.eq(env.type_of(args[2]), symbols.vector) || env.eq(env.type_of(args[2]), symbols.cons))
    pack_value(env, packer, args[2], 0);
  else
    throw DescentError("descent: PARAMS must be a vector or a list");

  auto& client = connection(env, socket);
  auto reply = client.call(method, [&](Packer& p) { protocol::pack_packed(p, params); }, wait_for(env, timeout));
  return make_value(env, *reply.result);
}

// ---------------------------------------------------------------- listings

// Symbols only the listing uses, interned once in init().
struct ListingSymbols {
  emacs_value add_text_properties, invisible, detail, link, utf_8, ascii;
};
ListingSymbols listing_symbols;

// What a listing's bytes are, found in one pass: whether they are final
// text as they are (ASCII without CR), and whether every line starts with
// a space (a name with a newline starts a line without one).
struct ListingShape {
  bool ascii_without_cr = true;
  bool lines_start_with_space = true;
};

ListingShape shape_of(std::string_view text) {
  ListingShape shape;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80 || c == '\r') shape.ascii_without_cr = false;
    if (c == '\n' && i + 1 < text.size() && text[i + 1] != ' ') shape.lines_start_with_space = false;
  }
  return shape;
}

// Strict UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF): exactly what Emacs's utf-8 decodes to the same characters as
// the module API's make_string, and without CR, which decoding would touch.
bool plain_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      if (c == '\r') return false;
      ++p;
      continue;
    }
    std::size_t n;
    std::uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) n = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 3, cp = c & 0x07;
    else return false;
    if (static_cast<std::size_t>(end - p) <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if ((p[k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    p += n + 1;
  }
  return true;
}

// Byte offsets into a listing as buffer positions from `begin`: one
// character per byte for raw bytes, per UTF-8 sequence for decoded text.
// Offsets mostly come in increasing order, so counting goes on from the
// last one instead of from the start.
class Positions {
 public:
  Positions(std::string_view text, std::int64_t begin, bool utf8) : text_(text), begin_(begin), utf8_(utf8) {}
  std::int64_t at(std::uint32_t offset) {
    if (!utf8_) return begin_ + offset;
    if (offset < byte_) byte_ = 0, chars_ = 0;
    for (; byte_ < offset; ++byte_)
      if ((static_cast<unsigned char>(text_[byte_]) & 0xc0) != 0x80) ++chars_;
    return begin_ + static_cast<std::int64_t>(chars_);
  }

 private:
  std::string_view text_;
  std::int64_t begin_;
  bool utf8_;
  std::size_t byte_ = 0, chars_ = 0;
};

// The daemon's `list` reply, inserted at point with the `dired-filename'
// property on every name; see the docstring in init() for the arguments.
// Doing it here spares Lisp a loop over every name of a 100k-entry
// listing, and Dired its own loop over every line.
emacs_value mod_insert_listing(const Env& env, ptrdiff_t nargs, emacs_value* args) {
  auto arg = [&](ptrdiff_t i) { return nargs > i ? args[i] : symbols.nil; };
  const std::string socket = env.text(args[0]);
  msgpack::sbuffer params;
  Packer packer(params);
  pack_value(env, packer, args[1], 0);
  std::optional<std::chrono::milliseconds> timeout;
  if (!env.is_nil(arg(2)))
    timeout = std::chrono::milliseconds(static_cast<std::int64_t>(env.number(env.funcall(symbols.float_, {arg(2)})) * 1000));
  const emacs_value decoding = arg(3);
  const bool dired_properties = !env.is_nil(arg(4));
  const std::string wanted = env.is_nil(arg(5)) ? std::string() : bytes_of_unibyte(env, arg(5));
  const emacs_value name_properties = dired_properties ? arg(4) : symbols.nil;

  std::optional<Prefetch> ahead = std::move(prefetched);
  prefetched.reset();
  const bool asked_ahead =
      ahead && ahead->socket == socket && ahead->params == std::string_view(params.data(), params.size());
  // Not the listing asked for ahead: its connection closes, and the daemon
  // stops making it.
  if (ahead && !asked_ahead) prefetch_connections.erase(ahead->socket);
  protocol::Client::Reply reply;
  if (asked_ahead) {
    auto& client = *prefetch_connections.at(socket);
    try {
      reply = client.await("list", ahead->id, wait_for(env, timeout));
    } catch (...) {
      prefetch_connections.erase(socket);
      throw;
    }
  } else {
    reply = connection(env, socket).call("list", [&](Packer& p) { protocol::pack_packed(p, params); },
                                         wait_for(env, timeout));
  }
  const auto* text = protocol::map_find(*reply.result, "text");
  const auto* offsets = protocol::map_find(*reply.result, "offsets");
  const auto text_bytes = text ? protocol::as_bytes(*text) : std::nullopt;
  const auto offset_bytes = offsets ? protocol::as_bytes(*offsets) : std::nullopt;
  if (!text_bytes || !offset_bytes || offset_bytes->size() % 8 != 0)
    throw DescentError("descent: descentd's listing reply is malformed");
  const std::string_view listing = *text_bytes;
  auto read_u32 = [&](std::size_t at) {
    const auto* b = reinterpret_cast<const unsigned char*>(offset_bytes->data() + at);
    return std::uint32_t{b[0]} | (std::uint32_t{b[1]} << 8) | (std::uint32_t{b[2]} << 16) | (std::uint32_t{b[3]} << 24);
  };
  for (std::size_t at = 0; at < offset_bytes->size(); at += 8)
    if (read_u32(at) > read_u32(at + 4) || read_u32(at + 4) > listing.size())
      throw DescentError("descent: descentd's listing offsets are out of range");

  // Decoded here when that gives what `insert-directory' would: ASCII
  // without CR decodes to itself in any ASCII-compatible coding system, and
  // plain UTF-8 in utf-8 is what make_string makes of it.
  const ListingShape shape = shape_of(listing);
  const bool utf8 = !shape.ascii_without_cr && env.eq(decoding, listing_symbols.utf_8) && plain_utf8(listing);
  const bool decoded =
      utf8 || (shape.ascii_without_cr && (env.eq(decoding, listing_symbols.utf_8) || env.eq(decoding, listing_symbols.ascii)));
  const bool propertize = dired_properties && decoded && shape.lines_start_with_space;

  const std::int64_t begin = env.integer(env.funcall(symbols.point, {}));
  env.funcall(symbols.insert, {utf8 ? env.make_text(listing) : env.make_bytes(listing)});
  // Positions are counted forwards; the properties are put backwards,
  // which Emacs's interval tree takes several times faster (each split
  // then happens at the tree's unpropertized start, not at a leaf).
  struct Line {
    std::int64_t bol, from, to, eol;
  };
  std::vector<Line> lines;
  lines.reserve(offset_bytes->size() / 8);
  Positions position(listing, begin, utf8);
  emacs_value wanted_position = symbols.nil;
  for (std::size_t at = 0; at < offset_bytes->size(); at += 8) {
    const std::uint32_t name_begin = read_u32(at), name_end = read_u32(at + 4);
    if (!wanted.empty() && env.is_nil(wanted_position) && listing.substr(name_begin, name_end - name_begin) == wanted)
      wanted_position = env.make_integer(position.at(name_begin));
    Line line{};
    if (propertize) {
      const std::size_t before = name_begin == 0 ? std::string_view::npos : listing.rfind('\n', name_begin - 1);
      line.bol = position.at(before == std::string_view::npos ? 0 : static_cast<std::uint32_t>(before + 1));
    }
    line.from = position.at(name_begin);
    line.to = position.at(name_end);
    if (propertize) {
      const std::size_t after = listing.find('\n', name_end);
      line.eol = position.at(static_cast<std::uint32_t>(after == std::string_view::npos ? listing.size() : after));
    }
    lines.push_back(line);
  }
  for (auto line = lines.rbegin(); line != lines.rend(); ++line) {
    if (!propertize) {
      env.funcall(symbols.put_text_property,
                  {env.make_integer(line->from), env.make_integer(line->to), symbols.dired_filename, symbols.t});
      continue;
    }
    // What `dired-insert-set-properties' puts on a file's line, in the
    // same order, so that each interval's properties are the same: the
    // details `dired-hide-details-mode' hides, the name, a link's target.
    if (line->bol + 1 < line->from - 1)
      env.funcall(symbols.put_text_property, {env.make_integer(line->bol + 1), env.make_integer(line->from - 1),
                                              listing_symbols.invisible, listing_symbols.detail});
    env.funcall(listing_symbols.add_text_properties,
                {env.make_integer(line->from), env.make_integer(line->to), name_properties});
    if (line->to + 4 < line->eol)
      env.funcall(symbols.put_text_property, {env.make_integer(line->to + 4), env.make_integer(line->eol),
                                              listing_symbols.invisible, listing_symbols.link});
  }
  const auto* style = protocol::map_find(*reply.result, "quoting-style");
  const emacs_value end = env.make_integer(position.at(static_cast<std::uint32_t>(listing.size())));
  return env.funcall(symbols.list, {end, style ? make_value(env, *style) : symbols.nil, decoded ? symbols.t : symbols.nil,
                                    propertize ? symbols.t : symbols.nil, wanted_position});
}

// A string as the bytes of a file name: a unibyte string's bytes, a
// multibyte string's UTF-8.
std::string name_bytes(const Env& env, emacs_value s) {
  if (!env.eq(env.type_of(s), symbols.string)) throw DescentError("descent: a file name must be a string");
  if (env.is_nil(env.funcall(symbols.multibyte_string_p, {s}))) return bytes_of_unibyte(env, s);
  return env.text(s);
}

// The same for the many names of a rename batch, without a funcall per
// name (packing 100k renames: 0.32 s -> 0.25 s): Emacs 28 copies out a multibyte
// string's UTF-8 and a unibyte string's bytes as they are. Whatever it
// refuses (raw bytes in a multibyte string) goes through name_bytes, which
// says why.
std::string batch_name_bytes(const Env& env, emacs_value s) {
  emacs_env* raw = env.raw();
  // Only a refused string (or one too long for the buffer) is tried again;
  // a quit or anything else unwinds.
  auto forgive = [&] {
    if (raw->non_local_exit_check(raw) == emacs_funcall_exit_signal) {
      emacs_value symbol = nullptr, data = nullptr;
      raw->non_local_exit_get(raw, &symbol, &data);
      if (env.eq(symbol, symbols.quit)) env.check();
      raw->non_local_exit_clear(raw);
    }
    env.check();
  };
  // One call for a name that fits, as nearly every name does.
  char buffer[1024];
  ptrdiff_t size = sizeof buffer;
  if (raw->copy_string_contents(raw, s, buffer, &size)) return std::string(buffer, size > 0 ? size - 1 : 0);
  forgive();
  size = 0;
  if (raw->copy_string_contents(raw, s, nullptr, &size)) {
    std::string out(static_cast<std::size_t>(size), '\0');
    if (raw->copy_string_contents(raw, s, out.data(), &size)) {
      out.resize(static_cast<std::size_t>(size > 0 ? size - 1 : 0));  // drop the terminating NUL
      return out;
    }
  }
  forgive();
  return name_bytes(env, s);
}

// One wdired commit: OPS, a vector of [rename FROM TO DEV INO OVERWRITE],
// [chmod PATH DEV INO MODE] and [retarget PATH DEV INO TARGET], packed
// straight into rename.submit's maps. The generic packer would walk 100k
// plists with millions of funcalls; vectors are read without any.
emacs_value mod_rename_submit(const Env& env, ptrdiff_t nargs, emacs_value* args) {
  const std::string socket = env.text(args[0]);
  const emacs_value ops = args[1];
  const emacs_value progress = nargs > 2 ? args[2] : symbols.nil;
  if (!env.eq(env.type_of(ops), symbols.vector)) throw DescentError("descent: OPS must be a vector");
  const emacs_value rename = env.intern("rename"), chmod = env.intern("chmod"), retarget = env.intern("retarget");

  const std::size_t n = env.vector_size(ops);
  auto unsigned_at = [&](emacs_value op, std::size_t i, const char* what) {
    const std::int64_t value = env.integer(env.vector_get(op, i));
    if (value < 0) throw DescentError(std::string("descent: a negative ") + what + " in a rename operation");
    return static_cast<std::uint64_t>(value);
  };
  // Packed straight into the request's frame as the client builds it: no
  // copy of a batch that is 14 MB at 100k renames. Nothing is sent before
  // every operation is packed, so a malformed one sends nothing.
  auto pack_operations = [&](Packer& p) {
    p.pack_array(1);
    p.pack_array(static_cast<std::uint32_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
      const emacs_value op = env.vector_get(ops, i);
      if (!env.eq(env.type_of(op), symbols.vector)) throw DescentError("descent: every operation must be a vector");
      const std::size_t size = env.vector_size(op);
      const emacs_value kind = size > 0 ? env.vector_get(op, 0) : symbols.nil;
      const bool is_rename = env.eq(kind, rename), is_chmod = env.eq(kind, chmod), is_retarget = env.eq(kind, retarget);
      if (!(is_rename || is_chmod || is_retarget) || size != (is_rename ? 6u : 5u))
        throw DescentError("descent: malformed rename operation " + std::to_string(i));
      p.pack_map(5 + (is_rename ? 1 : 0));
      protocol::pack_text(p, "op");
      protocol::pack_text(p, is_rename ? "rename" : is_chmod ? "chmod" : "retarget");
      protocol::pack_text(p, is_rename ? "from" : "path");
      protocol::pack_bytes(p, batch_name_bytes(env, env.vector_get(op, 1)));
      std::size_t next = 2;
      if (is_rename) {
        protocol::pack_text(p, "to");
        protocol::pack_bytes(p, batch_name_bytes(env, env.vector_get(op, next++)));
      }
      protocol::pack_text(p, "dev");
      p.pack_uint64(unsigned_at(op, next++, "device"));
      protocol::pack_text(p, "ino");
      p.pack_uint64(unsigned_at(op, next++, "inode"));
      if (is_rename) {
        protocol::pack_text(p, "overwrite");
        p.pack(!env.is_nil(env.vector_get(op, next)));
      } else if (is_chmod) {
        protocol::pack_text(p, "mode");
        p.pack_uint64(unsigned_at(op, next, "mode"));
      } else {
        protocol::pack_text(p, "target");
        protocol::pack_bytes(p, batch_name_bytes(env, env.vector_get(op, next)));
      }
    }
  };

  auto wait = wait_for(env, std::nullopt);
  // C-g cancels the batch until its outcome is here, even while the caller
  // holds quits off (descent-wdired does, so that a C-g after that cannot
  // lose the outcome of a batch that is done): C-g then only sets
  // quit-flag, which is taken here, and the quit signalled on return.
  const emacs_value quit_flag = env.intern("quit-flag"), symbol_value = env.intern("symbol-value"),
                    set = env.intern("set");
  wait.keep_going = [&env, quit_flag, symbol_value, set] {
    emacs_env* raw = env.raw();
    if (raw->process_input(raw) != emacs_process_input_continue) return false;
    try {
      if (env.is_nil(env.funcall(symbol_value, {quit_flag}))) return true;
      env.funcall(set, {quit_flag, symbols.nil});
    } catch (const NonLocalExit&) {
      // Pending in Emacs, and returned to it once the batch is cancelled.
    }
    return false;
  };
  wait.expected_size = n * 256;  // pages beyond what is written are never touched
  if (!env.is_nil(progress))
    wait.on_notification = [&](const protocol::Notification& note) {
      // [request_id, done, total]
      if (note.method != "rename.progress" || note.params->via.array.size != 3) return;
      const auto done = protocol::as_number(note.params->via.array.ptr[1]);
      const auto total = protocol::as_number(note.params->via.array.ptr[2]);
      if (done && total)
        env.funcall(progress, {env.make_integer(static_cast<std::int64_t>(*done)),
                               env.make_integer(static_cast<std::int64_t>(*total))});
    };
  // A new connection's handshake too: a daemon that accepts and never
  // answers (stopped) must not hold a C-g for the handshake's 5 s.
  auto& client = connection(env, socket, connections, std::chrono::seconds(5), wait.keep_going);
  const std::uint32_t id = client.send_request("rename.submit", pack_operations, wait);
  auto cancel = [&] {
    client.notify("cancel", [&](Packer& out) {
      out.pack_array(1);
      out.pack(id);
    });
  };
  protocol::Client::Reply reply;
  try {
    reply = client.await("rename.submit", id, wait);
  } catch (const NonLocalExit&) {
    // The progress function signalled or threw: as for C-g, the batch must
    // not go on without anyone to tell how it ended.
    cancel();
    connections.erase(socket);
    throw;
  }
  try {
    return make_value(env, *reply.result);
  } catch (const NonLocalExit&) {
    // A quit while the outcome is made (a caller that does not hold quits
    // off): the batch is done, and nobody will know. Cancelled now, the
    // daemon takes it back.
    cancel();
    throw;
  }
}

// Sends `list` with PARAMS now, for mod_insert_listing to take the reply
// of when it is asked for the same listing; anything else it is asked for
// drops this one. An optimisation only: nil, and nothing else, when no
// daemon takes it.
emacs_value mod_list_prefetch(const Env& env, ptrdiff_t, emacs_value* args) {
  const std::string socket = env.text(args[0]);
  msgpack::sbuffer params;
  Packer packer(params);
  pack_value(env, packer, args[1], 0);
  if (prefetched) prefetch_connections.erase(prefetched->socket);  // not taken: stop it
  prefetched.reset();
  try {
    const std::uint32_t id = connection(env, socket, prefetch_connections)
                                 .send_request("list", [&](Packer& p) { protocol::pack_packed(p, params); },
                                               wait_for(env, std::chrono::seconds(5)));
    prefetched = Prefetch{socket, std::string(params.data(), params.size()), id};
    return symbols.t;
  } catch (const protocol::ConnectionError&) {
  } catch (const protocol::ProtocolMismatch&) {
  } catch (const protocol::TimedOut&) {
  }
  prefetch_connections.erase(socket);
  return symbols.nil;
}

emacs_value mod_notify(const Env& env, ptrdiff_t, emacs_value* args) {
  const std::string socket = env.text(args[0]);
  const std::string method = env.text(args[1]);
  msgpack::sbuffer params;
  Packer packer(params);
  pack_value(env, packer, env.is_nil(args[2]) ? env.funcall(symbols.vconcat, {}) : args[2], 0);
  try {
    // A notification must not hold Emacs up: a daemon that accepts and
    // does not answer (stopped, hung) gets half a second, not five.
    auto& client = connection(env, socket, connections, std::chrono::milliseconds(500));
    return client.notify(method, [&](Packer& p) { protocol::pack_packed(p, params); }) ? symbols.t : symbols.nil;
  } catch (const protocol::ConnectionError&) {
    return symbols.nil;  // no daemon: a notification costs nothing and says nothing
  } catch (const protocol::TimedOut&) {
    return symbols.nil;
  }
}

emacs_value mod_disconnect(const Env& env, ptrdiff_t nargs, emacs_value* args) {
  prefetched.reset();
  prefetch_connections.clear();
  if (nargs > 0 && !env.is_nil(args[0]))
    connections.erase(env.text(args[0]));
  else
    connections.clear();
  return symbols.nil;
}

// ---------------------------------------------------------------- the one door

using Function = emacs_value (*)(const Env&, ptrdiff_t, emacs_value*);

// Every exported function enters here: no C++ exception ever reaches Emacs,
// and a non-local exit that Emacs started is passed back untouched.
template <Function F>
emacs_value trampoline(emacs_env* raw, ptrdiff_t nargs, emacs_value* args, void*) noexcept {
  const Env env(raw);
  try {
    return F(env, nargs, args);
  } catch (const NonLocalExit&) {
    // Emacs's own signal, throw or quit is pending: return to let it unwind.
  } catch (const protocol::Cancelled&) {
    // process_input left the quit pending; make sure of it.
    if (raw->non_local_exit_check(raw) == emacs_funcall_exit_return) env.signal(symbols.quit, {});
  } catch (const protocol::ConnectionLost& e) {
    // Not "unavailable": that one is retried after starting a daemon, and a
    // request that may have been carried out must not run twice.
    emacs_value message = error_text(raw, e.what());
    env.signal(symbols.daemon_lost, {message});
  } catch (const protocol::ConnectionError& e) {
    raw->non_local_exit_clear(raw);
    emacs_value message = error_text(raw, e.what());
    env.signal(symbols.daemon_unavailable, {message});
  } catch (const protocol::ProtocolMismatch& e) {
    env.signal(symbols.protocol_mismatch, e.what());
  } catch (const protocol::RemoteFailure& e) {
    emacs_value message = error_text(raw, e.what());
    emacs_value kind = error_text(raw, e.kind);
    emacs_value details = symbols.nil;
    if (!e.details.empty()) {
      // The refusal's particulars (e.g. which destinations are occupied), for
      // Lisp to act on; a malformed value is dropped, the message still says it.
      try {
        const auto handle = msgpack::unpack(e.details.data(), e.details.size());
        details = make_value(env, handle.get());
      } catch (...) {
        raw->non_local_exit_clear(raw);
        details = symbols.nil;
      }
    }
    env.signal(symbols.daemon_error, {message, kind, details});
  } catch (const protocol::TimedOut& e) {
    env.signal(symbols.timeout, e.what());
  } catch (const std::bad_alloc&) {
    env.signal(symbols.descent_error, "descent: out of memory");
  } catch (const std::exception& e) {
    env.signal(symbols.descent_error, e.what());
  } catch (...) {
    env.signal(symbols.descent_error, "descent: unexpected internal error");
  }
  return nullptr;
}

void define_function(const Env& env, const char* name, ptrdiff_t min, ptrdiff_t max, emacs_function f,
                     const char* doc) {
  emacs_value function = env.checked(env.raw()->make_function(env.raw(), min, max, f, doc, nullptr));
  env.funcall(symbols.defalias, {env.intern(name), function});
}

void define_error(const Env& env, emacs_value symbol, const char* message, emacs_value parent) {
  env.funcall(symbols.define_error, {symbol, env.make_text(message), parent});
}

void init(const Env& env) {
  auto g = [&](const char* name) { return env.global(env.intern(name)); };
  symbols = Symbols{
      g("nil"), g("t"), g("integer"), g("float"), g("string"), g("vector"), g("cons"), g("symbol"),
      g("list"), g("length"), g("car"), g("cdr"), g("make-vector"), g("vconcat"), g("intern"),
      g("symbol-name"), g("keywordp"), g("multibyte-string-p"), g("base64-encode-string"),
      g("define-error"), g("defalias"), g("provide"), g("point"), g("insert"), g("put-text-property"),
      g("dired-filename"),
      g("descent-error"), g("descent-daemon-unavailable"), g("descent-protocol-mismatch"),
      g("descent-daemon-error"), g("descent-timeout"), g("quit"), g("descent-daemon-lost")};
  listing_symbols = ListingSymbols{g("add-text-properties"), g("invisible"), g("dired-hide-details-detail"),
                                   g("dired-hide-details-link"), g("utf-8"), g("ascii")};

  // The same hierarchy descent.el defines, so the module is usable alone.
  define_error(env, symbols.descent_error, "descent error", env.intern("error"));
  define_error(env, symbols.daemon_unavailable, "descentd is not available", symbols.descent_error);
  define_error(env, symbols.protocol_mismatch, "descent module and daemon do not match", symbols.descent_error);
  define_error(env, symbols.daemon_error, "descentd refused", symbols.descent_error);
  define_error(env, symbols.daemon_lost, "the connection to descentd broke during a call", symbols.descent_error);
  define_error(env, symbols.timeout, "descentd did not answer in time", symbols.descent_error);

  define_function(env, "descent--mod-version", 0, 0, trampoline<mod_version>,
                  "Return the version of the loaded descent module, a string.\n\n(fn)");
  define_function(env, "descent--mod-call", 3, 4, trampoline<mod_call>,
                  "Call METHOD of descentd at SOCKET with PARAMS, a vector, and return the result.\n"
                  "Waits at most TIMEOUT seconds (nil: no limit); \\[keyboard-quit] cancels the call.\n"
                  "Unibyte strings travel as bytes, multibyte strings as text; maps come back\n"
                  "as plists with keyword keys, arrays as vectors.\n\n"
                  "(fn SOCKET METHOD PARAMS &optional TIMEOUT)");
  define_function(env, "descent--mod-insert-listing", 2, 6, trampoline<mod_insert_listing>,
                  "Insert at point descentd's listing for PARAMS, [DIR SWITCHES ENV].\n"
                  "Every file name gets the `dired-filename' property, as `insert-directory'\n"
                  "leaves them.  Wait at most TIMEOUT seconds; \\[keyboard-quit] cancels.\n"
                  "DECODING says what decoding the listing would do: `utf-8' (plain UTF-8\n"
                  "and ASCII are inserted decoded), `ascii' (ASCII without CR decodes to\n"
                  "itself), nil (insert the raw bytes).  NAME-PROPERTIES non-nil, when the\n"
                  "text is inserted decoded and every line starts with a space, puts what\n"
                  "`dired-insert-set-properties' puts on each file's line, NAME-PROPERTIES\n"
                  "on its name.  WANTED, a unibyte string, is a name to find.\n"
                  "Return (END QUOTING-STYLE DECODED PROPERTIZED WANTED-POSITION).\n\n"
                  "(fn SOCKET PARAMS &optional TIMEOUT DECODING NAME-PROPERTIES WANTED)");
  define_function(env, "descent--mod-rename-submit", 2, 3, trampoline<mod_rename_submit>,
                  "Submit OPS to descentd at SOCKET as one rename batch; return its outcome.\n"
                  "OPS is a vector of [rename FROM TO DEV INO OVERWRITE], [chmod PATH DEV INO\n"
                  "MODE] and [retarget PATH DEV INO TARGET]; names are unibyte strings of\n"
                  "bytes (multibyte ones travel as UTF-8).  PROGRESS, if non-nil, is called\n"
                  "with DONE and TOTAL as the daemon reports them.  No time limit;\n"
                  "\\[keyboard-quit] cancels, and the daemon rolls the batch back (or undoes it,\n"
                  "if it had just ended), even with `inhibit-quit' bound.  Bind it to t\n"
                  "around the call, so that a \\[keyboard-quit] after the outcome is back\n"
                  "cannot lose it: it is then only in `quit-flag'.\n\n"
                  "(fn SOCKET OPS &optional PROGRESS)");
  define_function(env, "descent--mod-list-prefetch", 2, 2, trampoline<mod_list_prefetch>,
                  "Ask descentd at SOCKET for the listing of PARAMS now, without waiting.\n"
                  "The next `descent--mod-insert-listing' with the same SOCKET and PARAMS\n"
                  "takes its reply; one with others cancels it.  Return t if it was sent,\n"
                  "nil if no daemon could take it.\n\n"
                  "(fn SOCKET PARAMS)");
  define_function(env, "descent--mod-notify", 3, 3, trampoline<mod_notify>,
                  "Send METHOD with PARAMS to descentd at SOCKET without waiting for a reply.\n"
                  "Return t if it was sent, nil if no daemon could take it.\n\n"
                  "(fn SOCKET METHOD PARAMS)");
  define_function(env, "descent--mod-disconnect", 0, 1, trampoline<mod_disconnect>,
                  "Close the connection to SOCKET, or every connection if SOCKET is nil.\n\n"
                  "(fn &optional SOCKET)");
  env.funcall(symbols.provide, {env.intern("descent-module")});
}

}  // namespace
}  // namespace descent::module

extern "C" DESCENT_EXPORT int emacs_module_init(emacs_runtime* runtime) noexcept {
  // Refuse politely an Emacs older than the API we were built for (28).
  if (runtime->size < static_cast<ptrdiff_t>(sizeof *runtime)) return 1;
  emacs_env* raw = runtime->get_environment(runtime);
  if (raw->size < static_cast<ptrdiff_t>(sizeof(emacs_env_28))) return 2;
  try {
    descent::module::init(descent::module::Env(raw));
  } catch (const descent::module::NonLocalExit&) {
    return 3;
  } catch (...) {
    return 4;
  }
  return 0;
}
