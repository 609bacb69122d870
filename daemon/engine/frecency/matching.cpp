#include "engine/frecency/matching.hpp"

#include <clocale>
#include <cstdint>
#include <cstring>
#include <string.h>  // memrchr (GNU)
#include <cwctype>
#include <locale.h>

namespace descent::frecency {

namespace {

// The C.UTF-8 locale gives towlower/iswupper the Unicode tables whatever the
// daemon's own locale is; without it only ASCII folds.
locale_t unicode_locale() {
  static const locale_t locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
  return locale;
}

// Decodes one UTF-8 sequence at `at`; returns its length, or 0 if the bytes
// there are not a valid, shortest-form sequence.
std::size_t decode(std::string_view s, std::size_t at, char32_t& out) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(at);
  std::size_t length;
  char32_t code;
  if (lead < 0x80) {
    out = lead;
    return 1;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, code = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, code = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, code = lead & 0x07;
  } else {
    return 0;
  }
  if (s.size() - at < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char next = byte(at + i);
    if ((next & 0xC0) != 0x80) return 0;
    code = (code << 6) | (next & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not text.
  if ((length == 3 && code < 0x800) || (length == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
      (code >= 0xD800 && code <= 0xDFFF))
    return 0;
  out = code;
  return length;
}

void encode(char32_t code, std::string& out) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

char32_t lower(char32_t code) {
  if (code < 0x80) return (code >= 'A' && code <= 'Z') ? code + ('a' - 'A') : code;
  const locale_t locale = unicode_locale();
  if (locale == static_cast<locale_t>(0)) return code;
  const wint_t folded = towlower_l(static_cast<wint_t>(code), locale);
  // A mapping that would leave the Unicode range is not one.
  return folded <= 0x10FFFF ? static_cast<char32_t>(folded) : code;
}

bool upper(char32_t code) {
  if (code < 0x80) return code >= 'A' && code <= 'Z';
  const locale_t locale = unicode_locale();
  return locale != static_cast<locale_t>(0) && iswupper_l(static_cast<wint_t>(code), locale);
}

}  // namespace

std::string fold_case(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t at = 0; at < bytes.size();) {
    const unsigned char c = static_cast<unsigned char>(bytes[at]);
    if (c < 0x80) {  // the common case, without a decode
      out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
      ++at;
      continue;
    }
    char32_t code;
    const std::size_t length = decode(bytes, at, code);
    if (length == 0) {
      out += bytes[at++];
      continue;
    }
    encode(lower(code), out);
    at += length;
  }
  return out;
}

bool has_uppercase(std::string_view bytes) {
  for (std::size_t at = 0; at < bytes.size();) {
    char32_t code;
    const std::size_t length = decode(bytes, at, code);
    if (length == 0) {
      ++at;
      continue;
    }
    if (upper(code)) return true;
    at += length;
  }
  return false;
}

namespace {

// The start of the last occurrence of `needle` in `haystack`, or npos.
// libstdc++'s rfind compares at every position; memrchr skips to the
// candidates, which is what makes a scan of 100k paths fast.
std::size_t last_occurrence(std::string_view haystack, std::string_view needle) {
  if (needle.empty()) return haystack.size();
  if (needle.size() > haystack.size()) return std::string_view::npos;
  const char first = needle.front();
  std::size_t end = haystack.size() - needle.size() + 1;  // candidates are [0, end)
  while (end > 0) {
    const void* found = ::memrchr(haystack.data(), first, end);
    if (!found) return std::string_view::npos;
    const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(found) - haystack.data());
    if (std::memcmp(haystack.data() + at + 1, needle.data() + 1, needle.size() - 1) == 0) return at;
    end = at;
  }
  return std::string_view::npos;
}

}  // namespace

bool keywords_match(const std::vector<std::string>& keywords, std::string_view path) {
  if (keywords.empty()) return true;
  const std::string& last = keywords.back();
  // zoxide takes the last occurrence of the last keyword and refuses a '/'
  // after it: the same as an occurrence that ends past the last '/' (or on
  // it), so only the tail where such an occurrence can start is searched.
  const std::size_t slash = path.rfind('/');
  std::size_t from = 0;
  if (slash != std::string_view::npos && slash + 1 > last.size()) from = slash + 1 - last.size();
  const std::size_t in_tail = last_occurrence(path.substr(from), last);
  if (in_tail == std::string_view::npos) return false;
  const std::size_t at = from + in_tail;
  if (path.find('/', at + last.size()) != std::string_view::npos) return false;
  path = path.substr(0, at);
  for (auto keyword = keywords.rbegin() + 1; keyword != keywords.rend(); ++keyword) {
    const std::size_t found = last_occurrence(path, *keyword);
    if (found == std::string_view::npos) return false;
    path = path.substr(0, found);
  }
  return true;
}

Pattern::Pattern(const std::vector<std::string>& keywords) {
  for (const auto& keyword : keywords)
    if (has_uppercase(keyword)) case_sensitive_ = true;
  keywords_.reserve(keywords.size());
  for (const auto& keyword : keywords) keywords_.push_back(case_sensitive_ ? keyword : fold_case(keyword));
  plain_last_ = !keywords_.empty() && keywords_.back().find('/') == std::string::npos;
}

}  // namespace descent::frecency
