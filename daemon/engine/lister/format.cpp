// Formatting pieces of GNU ls that the listing needs bit-exactly: gnulib's
// human_readable() and filevercmp(). Re-derived from their documented
// behaviour so that the differential tests against ls can decide.
#include <cstdint>
#include <string>
#include <string_view>

#include "lister.hpp"

namespace descent::lister::format {

std::string human(std::uint64_t n, bool autoscale, bool base_1024, std::uint64_t from_block,
                  std::uint64_t to_block) {
  const unsigned base = base_1024 ? 1024 : 1000;
  std::uint64_t amount = 0;
  unsigned tenths = 0;
  // 0: exact; 1: below the half tenth; 2: exactly half; 3: above the half.
  unsigned rounding = 0;
  if (to_block <= from_block) {
    if (from_block % to_block != 0) throw Unsupported("block sizes that do not divide");
    const std::uint64_t multiplier = from_block / to_block;
    if (n > UINT64_MAX / multiplier) throw Unsupported("block count overflows");
    amount = n * multiplier;
  } else {
    if (to_block % from_block != 0) throw Unsupported("block sizes that do not divide");
    const std::uint64_t divisor = to_block / from_block;
    const std::uint64_t r10 = (n % divisor) * 10;
    const std::uint64_t r2 = (r10 % divisor) * 2;
    amount = n / divisor;
    tenths = static_cast<unsigned>(r10 / divisor);
    rounding = r2 < divisor ? 0 < r2 : 2 + (divisor < r2);
  }

  static constexpr char power_letter[] = {'\0', 'K', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'};
  constexpr int exponent_max = sizeof power_letter - 1;
  int exponent = 0;
  std::string fraction;
  if (autoscale && base <= amount) {
    do {
      const unsigned r10 = static_cast<unsigned>(amount % base) * 10 + tenths;
      const unsigned r2 = (r10 % base) * 2 + (rounding >> 1);
      amount /= base;
      tenths = r10 / base;
      rounding = r2 < base ? (r2 + rounding) != 0 : 2 + (base < r2 + rounding);
      exponent++;
    } while (base <= amount && exponent < exponent_max);

    if (amount < 10) {
      // ls rounds up (human_ceiling), never to nearest.
      if (0 < rounding) {
        tenths++;
        rounding = 0;
        if (tenths == 10) {
          amount++;
          tenths = 0;
        }
      }
      if (amount < 10) {
        fraction = {'.', static_cast<char>('0' + tenths)};
        tenths = rounding = 0;
      }
    }
  }
  if (0 < tenths + rounding) {
    amount++;
    if (autoscale && amount == base && exponent < exponent_max) {
      exponent++;
      fraction = ".0";
      amount = 1;
    }
  }
  std::string out = std::to_string(amount) + fraction;
  if (exponent) out += (!base_1024 && exponent == 1) ? 'k' : power_letter[exponent];
  return out;
}

namespace {

bool c_isdigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool c_isalpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool c_isalnum(unsigned char c) { return c_isdigit(c) || c_isalpha(c); }

// The length of S before its suffix (\.[A-Za-z~][A-Za-z0-9~]*)*$; the suffix
// may be all of S (".hidden"), as coreutils 9.1's gnulib has it.
std::size_t prefix_length(std::string_view s) {
  const std::size_t n = s.size();
  std::size_t prefix = 0;
  for (std::size_t i = 0;;) {
    while (i + 1 < n && s[i] == '.' && (c_isalpha(s[i + 1]) || s[i + 1] == '~'))
      for (i += 2; i < n && (c_isalnum(s[i]) || s[i] == '~'); i++) continue;
    if (i == n) return prefix;
    prefix = ++i;
  }
}

int order(std::string_view s, std::size_t pos) {
  if (pos == s.size()) return -1;
  const unsigned char c = s[pos];
  if (c_isdigit(c)) return 0;
  if (c_isalpha(c)) return c;
  if (c == '~') return -2;
  return c + 256;
}

// Debian's version comparison (dpkg's verrevcmp) over the first len bytes.
int verrevcmp(std::string_view s1, std::string_view s2) {
  std::size_t p1 = 0, p2 = 0;
  const std::size_t l1 = s1.size(), l2 = s2.size();
  while (p1 < l1 || p2 < l2) {
    int first_diff = 0;
    while ((p1 < l1 && !c_isdigit(s1[p1])) || (p2 < l2 && !c_isdigit(s2[p2]))) {
      const int c1 = order(s1, p1);
      const int c2 = order(s2, p2);
      if (c1 != c2) return c1 - c2;
      p1++;
      p2++;
    }
    while (p1 < l1 && s1[p1] == '0') p1++;
    while (p2 < l2 && s2[p2] == '0') p2++;
    while (p1 < l1 && p2 < l2 && c_isdigit(s1[p1]) && c_isdigit(s2[p2])) {
      if (!first_diff) first_diff = static_cast<unsigned char>(s1[p1]) - static_cast<unsigned char>(s2[p2]);
      p1++;
      p2++;
    }
    if (p1 < l1 && c_isdigit(s1[p1])) return 1;
    if (p2 < l2 && c_isdigit(s2[p2])) return -1;
    if (first_diff) return first_diff;
  }
  return 0;
}

}  // namespace

int filevercmp(std::string_view a, std::string_view b) {
  if (a.empty()) return b.empty() ? 0 : -1;
  if (b.empty()) return 1;
  // "." first, then "..", then other names with a leading dot, then the rest.
  if (a[0] == '.') {
    if (b[0] != '.') return -1;
    const bool adot = a.size() == 1, bdot = b.size() == 1;
    if (adot) return bdot ? 0 : -1;
    if (bdot) return 1;
    const bool adotdot = a == "..", bdotdot = b == "..";
    if (adotdot) return bdotdot ? 0 : -1;
    if (bdotdot) return 1;
  } else if (b[0] == '.') {
    return 1;
  }
  const std::size_t aprefix = prefix_length(a), bprefix = prefix_length(b);
  const bool one_pass_only = aprefix == a.size() && bprefix == b.size();
  const int result = verrevcmp(a.substr(0, aprefix), b.substr(0, bprefix));
  return result || one_pass_only ? result : verrevcmp(a, b);
}

}  // namespace descent::lister::format
