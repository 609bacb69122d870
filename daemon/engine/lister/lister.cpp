// The listing engine; see lister.hpp. The rules below follow coreutils 9.1's
// ls.c (print_long_format, gobble_file, sort_files, decode_switches) and
// gnulib's quotearg.c and filemode.c; the differential tests in
// tests/unit/lister compare every byte with the real ls.
#include "lister.hpp"

#include <fcntl.h>
#include <grp.h>
#include <locale.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cwchar>
#include <cwctype>
#include <exception>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>

namespace descent::lister {

namespace {

// ---------------------------------------------------------------- switches

enum class SortKey { name, extension, size, time, version, none };
enum class Indicator { none, slash, file_type, classify };  // ls's order matters
enum class Hidden { dot_files_hidden, almost_all, all };
enum class Scale { kibibytes, human_1024, human_si };

struct Options {
  bool long_format = false;
  Hidden hidden = Hidden::dot_files_hidden;
  Scale scale = Scale::kibibytes;
  SortKey sort = SortKey::name;
  bool reverse = false;
  Indicator indicator = Indicator::none;
  bool print_inode = false;
  bool print_block_size = false;
  bool print_owner = true;
  bool print_group = true;
  bool numeric_ids = false;
  bool escape = false;
  bool immediate_dirs = false;
  bool dereference = false;
  bool directories_first = false;
  std::optional<std::string> time_style;
};

[[noreturn]] void refuse(std::string why) { throw Unsupported(std::move(why)); }

void apply_short(Options& o, char c) {
  switch (c) {
    case 'a': o.hidden = Hidden::all; break;
    case 'A': o.hidden = Hidden::almost_all; break;
    case 'l': o.long_format = true; break;
    case 'g': o.long_format = true; o.print_owner = false; break;
    case 'o': o.long_format = true; o.print_group = false; break;
    case 'n': o.long_format = true; o.numeric_ids = true; break;
    case 'G': o.print_group = false; break;
    case 'h': o.scale = Scale::human_1024; break;
    case 't': o.sort = SortKey::time; break;
    case 'S': o.sort = SortKey::size; break;
    case 'X': o.sort = SortKey::extension; break;
    case 'v': o.sort = SortKey::version; break;
    case 'U': o.sort = SortKey::none; break;
    case 'r': o.reverse = true; break;
    case 'F': o.indicator = Indicator::classify; break;
    case 'p': o.indicator = Indicator::slash; break;
    case 'i': o.print_inode = true; break;
    case 's': o.print_block_size = true; break;
    case 'b': o.escape = true; break;
    case 'N': o.escape = false; break;
    case 'd': o.immediate_dirs = true; break;
    case 'L': o.dereference = true; break;
    case 'D': break;  // --dired: always on here
    default: refuse(std::string("switch -") + c);
  }
}

void apply_long(Options& o, std::string_view name, std::optional<std::string_view> value) {
  auto no_value = [&] {
    if (value) refuse("--" + std::string(name) + " with a value");
  };
  static constexpr std::pair<std::string_view, char> aliases[] = {
      {"all", 'a'},           {"almost-all", 'A'}, {"human-readable", 'h'}, {"reverse", 'r'},
      {"inode", 'i'},         {"size", 's'},       {"numeric-uid-gid", 'n'}, {"escape", 'b'},
      {"literal", 'N'},       {"directory", 'd'},  {"dereference", 'L'},     {"no-group", 'G'},
      {"dired", 'D'},
  };
  for (auto [long_name, letter] : aliases)
    if (name == long_name) {
      no_value();
      apply_short(o, letter);
      return;
    }
  if (name == "si") {
    no_value();
    o.scale = Scale::human_si;
  } else if (name == "group-directories-first") {
    no_value();
    o.directories_first = true;
  } else if (name == "file-type") {
    no_value();
    o.indicator = Indicator::file_type;
  } else if (name == "classify") {
    // Output is never a terminal, so "auto" means none, as in ls.
    if (!value || *value == "always" || *value == "yes" || *value == "force")
      o.indicator = Indicator::classify;
    else if (*value == "never" || *value == "no" || *value == "none" || *value == "auto" || *value == "tty" ||
             *value == "if-tty")
      o.indicator = Indicator::none;
    else
      refuse("--classify=" + std::string(*value));
  } else if (name == "indicator-style" && value) {
    if (*value == "none") o.indicator = Indicator::none;
    else if (*value == "slash") o.indicator = Indicator::slash;
    else if (*value == "file-type") o.indicator = Indicator::file_type;
    else if (*value == "classify") o.indicator = Indicator::classify;
    else refuse("--indicator-style=" + std::string(*value));
  } else if (name == "sort" && value) {
    // Not "name": GNU ls 9.1 (Debian 12's) rejects it, and its error is
    // what Dired must show (refused, ls runs).
    if (*value == "none") o.sort = SortKey::none;
    else if (*value == "size") o.sort = SortKey::size;
    else if (*value == "time") o.sort = SortKey::time;
    else if (*value == "version") o.sort = SortKey::version;
    else if (*value == "extension") o.sort = SortKey::extension;
    else refuse("--sort=" + std::string(*value));
  } else if (name == "quoting-style" && value) {
    if (*value == "literal") o.escape = false;
    else if (*value == "escape") o.escape = true;
    else refuse("--quoting-style=" + std::string(*value));
  } else if (name == "time-style" && value) {
    o.time_style = std::string(*value);
  } else {
    refuse("switch --" + std::string(name));
  }
}

Options parse_switches(std::span<const std::string> switches) {
  Options o;
  for (std::size_t i = 0; i < switches.size(); ++i) {
    const std::string& arg = switches[i];
    if (arg.size() < 2 || arg[0] != '-') refuse("argument " + arg + " is not a switch");
    if (arg[1] != '-') {
      for (char c : std::string_view(arg).substr(1)) apply_short(o, c);
      continue;
    }
    std::string_view body = std::string_view(arg).substr(2);
    if (body.empty()) refuse("a \"--\" among the switches");
    std::optional<std::string_view> value;
    if (auto eq = body.find('='); eq != std::string_view::npos) {
      value = body.substr(eq + 1);
      body = body.substr(0, eq);
    } else if ((body == "time-style" || body == "sort" || body == "indicator-style" || body == "quoting-style") &&
               i + 1 < switches.size()) {
      value = switches[++i];  // getopt_long takes a required argument from the next word
    }
    apply_long(o, body, value);
  }
  if (!o.long_format) refuse("listings without -l");
  return o;
}

// ---------------------------------------------------------------- locale

struct Locale {
  bool utf8_ctype = false;  // C.UTF-8 rather than C for LC_CTYPE (quoting of -b)
  bool hard_time = false;   // gnulib hard_locale(LC_TIME): C.UTF-8 is "hard"
};

std::string_view env_get(const Environment& env, std::string_view name) {
  auto it = env.find(name);
  return it == env.end() ? std::string_view() : std::string_view(it->second);
}

// Whether the effective value of a category names C.UTF-8 (true) or C (false).
bool category_is_utf8(const Environment& env, std::string_view category) {
  std::string_view value = env_get(env, "LC_ALL");
  if (value.empty()) value = env_get(env, category);
  if (value.empty()) value = env_get(env, "LANG");
  if (value.empty() || value == "C" || value == "POSIX") return false;
  if (value == "C.UTF-8" || value == "C.utf8") return true;
  refuse("locale " + std::string(value) + " for " + std::string(category));
}

Locale resolve_locale(const Environment& env) {
  for (std::string_view var : {"BLOCK_SIZE", "LS_BLOCK_SIZE", "BLOCKSIZE", "POSIXLY_CORRECT", "QUOTING_STYLE"})
    if (env.count(var)) refuse("environment variable " + std::string(var));
  // The daemon's clock formatting uses its own TZ; a caller with another
  // zone gets real ls.
  const char* own_tz = std::getenv("TZ");
  auto tz = env.find("TZ");
  if ((tz == env.end()) != (own_tz == nullptr) || (own_tz && tz->second != own_tz))
    refuse("a TZ that differs from the daemon's");
  Locale l;
  for (std::string_view cat : {"LC_COLLATE", "LC_NUMERIC", "LC_MESSAGES"}) category_is_utf8(env, cat);
  l.utf8_ctype = category_is_utf8(env, "LC_CTYPE");
  l.hard_time = category_is_utf8(env, "LC_TIME");
  // gettext ignores LANGUAGE only in the C locale: under C.UTF-8 it
  // translates "total" and even the time formats ("26. Nov 01:19").
  if (!env_get(env, "LANGUAGE").empty() &&
      (l.hard_time || category_is_utf8(env, "LC_MESSAGES") || category_is_utf8(env, "LC_CTYPE")))
    refuse("LANGUAGE under C.UTF-8");
  return l;
}

// ---------------------------------------------------------------- time

struct TimeFormats {
  std::string old_files;     // ls's long_time_format[0]
  std::string recent_files;  // long_time_format[1]
};

void check_strftime_format(std::string_view f) {
  static constexpr std::string_view known = "aAbBcCdDeFgGhHIjklmMnNpPrRsStTuUVwWxXyYzZ%";
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') continue;
    if (++i == f.size() || known.find(f[i]) == std::string_view::npos)
      refuse("time format " + std::string(f));
  }
}

TimeFormats time_formats(const Options& o, const Environment& env, const Locale& l) {
  // An empty style (--time-style= or TIME_STYLE set but empty) is not the
  // default: ls rejects it as ambiguous, and that error is what Dired shows.
  std::string style = "locale";
  if (o.time_style) style = *o.time_style;
  else if (auto it = env.find("TIME_STYLE"); it != env.end()) style = it->second;
  while (style.starts_with("posix-")) {
    if (!l.hard_time) {  // in the C locale the posix- styles are the default one
      style = "locale";
      break;
    }
    style.erase(0, 6);
  }
  if (style.empty()) refuse("an empty time style");
  if (style[0] == '+') {
    std::string first = style.substr(1), second = first;
    if (auto nl = first.find('\n'); nl != std::string::npos) {
      second = first.substr(nl + 1);
      first.resize(nl);
      if (second.find('\n') != std::string::npos) refuse("time style with two newlines");
    }
    check_strftime_format(first);
    check_strftime_format(second);
    return {first, second};
  }
  if (style == "full-iso") return {"%Y-%m-%d %H:%M:%S.%N %z", "%Y-%m-%d %H:%M:%S.%N %z"};
  if (style == "long-iso") return {"%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M"};
  if (style == "iso") return {"%Y-%m-%d ", "%m-%d %H:%M"};
  if (style == "locale") return {"%b %e  %Y", "%b %e %H:%M"};
  refuse("time style " + style);
}

// strftime plus gnulib's %N (nanoseconds, nine digits).
void append_time(std::string& out, const std::string& format, const std::tm& tm, long nsec) {
  std::string expanded;
  const std::string* f = &format;
  if (format.find("%N") != std::string::npos) {
    char ns[24];
    std::snprintf(ns, sizeof ns, "%09ld", nsec);
    for (std::size_t i = 0; i < format.size(); ++i) {
      if (format[i] == '%' && i + 1 < format.size()) {
        if (format[i + 1] == 'N') expanded += ns;
        else expanded.append(format, i, 2);
        ++i;
      } else {
        expanded += format[i];
      }
    }
    f = &expanded;
  }
  // ls's gnulib nstrftime and glibc's strftime print years alike only from
  // 1000 on (gnulib pads "0001" and "-001", glibc prints "1" and "-1"; %C,
  // %y and %G differ for negative years too), and glibc overflows int past
  // year INT_MAX (gnulib does not); gnulib's %F is "%+4Y-%m-%d", "+10000-01-01"
  // after 9999. %c and %x are glibc's strftime in both. One past each end,
  // for the ISO year of %G and %g.
  const long long year = tm.tm_year + 1900LL;
  if (year <= 1000 || year >= 10000)
    for (std::size_t i = 0; i + 1 < f->size(); ++i) {
      if ((*f)[i] != '%') continue;
      const char c = (*f)[++i];
      if ((c == 'F' || std::string_view("YCyGgD").find(c) != std::string_view::npos) &&
          (year <= 1000 || year >= INT_MAX || c == 'F'))
        refuse("a year that strftime prints otherwise than ls: " + std::to_string(year));
    }
  // The C locale's names whatever the daemon's own locale is; C.UTF-8 has
  // the same month and day names.
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
  if (!c_locale) refuse("no C locale object");
  char buf[512];
  const std::size_t n = ::strftime_l(buf, sizeof buf, f->c_str(), &tm, c_locale);
  if (n == 0) refuse("a time format that formats to nothing");
  out.append(buf, n);
}

// ---------------------------------------------------------------- names

// gnulib quotearg's escape style as ls -b sets it up: C escapes, octal for
// what is not printable in the locale, a backslash before `extra` bytes.
class Quoting {
 public:
  Quoting(const Options& o, const Locale& l) : escape_(o.escape), utf8_(l.utf8_ctype) {
    if (!escape_) return;
    extra_[static_cast<unsigned char>(' ')] = true;
    // ls quotes the indicator characters it may print after a name (only
    // for -F and --file-type: not for -p, nor --group-directories-first).
    if (o.indicator >= Indicator::file_type) {
      std::string_view chars = "*=>@|";
      chars.remove_prefix(static_cast<int>(o.indicator) - static_cast<int>(Indicator::file_type));
      for (char c : chars) extra_[static_cast<unsigned char>(c)] = true;
    }
  }

  const char* style() const { return escape_ ? "escape" : "literal"; }

  void append(std::string& out, std::string_view name) const {
    if (!escape_) {
      out += name;
      return;
    }
    std::mbstate_t state{};
    for (std::size_t i = 0; i < name.size(); ++i) {
      const unsigned char c = name[i];
      char esc = 0;
      switch (c) {
        case '\a': esc = 'a'; break;
        case '\b': esc = 'b'; break;
        case '\f': esc = 'f'; break;
        case '\n': esc = 'n'; break;
        case '\r': esc = 'r'; break;
        case '\t': esc = 't'; break;
        case '\v': esc = 'v'; break;
        case '\\': esc = '\\'; break;
        default: break;
      }
      if (esc) {
        out += '\\';
        out += esc;
        continue;
      }
      if (c >= 0x20 && c < 0x7f) {
        if (extra_[c]) out += '\\';
        out += static_cast<char>(c);
        continue;
      }
      if (!utf8_ || c < 0x80) {  // not printable: ASCII controls, DEL, bytes of the C locale
        octal(out, c);
        continue;
      }
      wchar_t w;
      state = {};
      const std::size_t bytes = std::mbrtowc(&w, name.data() + i, name.size() - i, &state);
      if (bytes == static_cast<std::size_t>(-1)) {
        octal(out, c);
      } else if (bytes == static_cast<std::size_t>(-2)) {
        for (; i < name.size(); ++i) octal(out, name[i]);
      } else if (!std::iswprint(static_cast<wint_t>(w))) {
        for (std::size_t k = 0; k < bytes; ++k) octal(out, name[i + k]);
        i += bytes - 1;
      } else {
        out.append(name.data() + i, bytes);
        i += bytes - 1;
      }
    }
  }

 private:
  static void octal(std::string& out, unsigned char c) {
    out += '\\';
    out += static_cast<char>('0' + (c >> 6));
    out += static_cast<char>('0' + ((c >> 3) & 7));
    out += static_cast<char>('0' + (c & 7));
  }

  bool escape_;
  bool utf8_;
  bool extra_[256] = {};
};

// Makes the calling thread's LC_CTYPE C.UTF-8 for mbrtowc/iswprint while
// alive; the daemon's other threads keep theirs.
class ThreadCtype {
 public:
  explicit ThreadCtype(bool utf8) {
    if (!utf8) return;
    static locale_t c_utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    if (!c_utf8) refuse("the C.UTF-8 locale is not installed for the daemon");
    previous_ = uselocale(c_utf8);
  }
  ~ThreadCtype() {
    if (previous_) uselocale(previous_);
  }
  ThreadCtype(const ThreadCtype&) = delete;
  ThreadCtype& operator=(const ThreadCtype&) = delete;

 private:
  locale_t previous_ = nullptr;
};

// ---------------------------------------------------------------- files

struct Entry {
  // NUL-terminated, in a NameArena (or the operand string) that outlives it.
  std::string_view name;
  std::uint32_t seq = 0;  // place in the directory's own order (what -U prints)
  std::uint32_t mode = 0;
  std::uint64_t nlink = 0, uid = 0, gid = 0, size = 0, blocks = 0, ino = 0;
  std::int64_t mtime_sec = 0;
  std::uint32_t mtime_nsec = 0;
  std::uint32_t rdev_major = 0, rdev_minor = 0;
  dev_t dev = 0;
  std::string link_target;
  std::uint32_t link_mode = 0;  // mode of a symlink's target, when ls looks (-F)
  bool acl = false;          // '+': a POSIX ACL beyond the mode bits
  bool lsm_context = false;  // '.': an SELinux label, even with SELinux off
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string os_error(std::string_view what, std::string_view path, int err) {
  return std::string(what) + " " + std::string(path) + ": " + std::strerror(err);
}

constexpr unsigned statx_needed =
    STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID | STATX_MTIME | STATX_INO | STATX_SIZE | STATX_BLOCKS;

// Stats `name` relative to `dirfd` like ls's lstat (or stat with -L).
void stat_entry(int dirfd, const char* name, bool follow, Entry& e, std::string_view shown) {
  struct statx sx;
  // AT_STATX_SYNC_AS_STAT, not DONT_SYNC: ls's lstat revalidates on network
  // file systems, and the listing must show what ls would.
  const int flags = AT_NO_AUTOMOUNT | (follow ? 0 : AT_SYMLINK_NOFOLLOW);
  if (::statx(dirfd, name, flags, statx_needed, &sx) != 0) refuse(os_error("cannot access", shown, errno));
  if ((sx.stx_mask & statx_needed) != statx_needed) refuse("incomplete statx for " + std::string(shown));
  e.mode = sx.stx_mode;
  e.nlink = sx.stx_nlink;
  e.uid = sx.stx_uid;
  e.gid = sx.stx_gid;
  e.size = sx.stx_size;
  e.blocks = sx.stx_blocks;
  e.ino = sx.stx_ino;
  e.mtime_sec = sx.stx_mtime.tv_sec;
  e.mtime_nsec = sx.stx_mtime.tv_nsec;
  e.rdev_major = sx.stx_rdev_major;
  e.rdev_minor = sx.stx_rdev_minor;
  e.dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
}

std::string read_link(int dirfd, const char* name, std::uint64_t size_hint, std::string_view shown) {
  std::string target(std::max<std::uint64_t>(size_hint, 63) + 1, '\0');
  for (;;) {
    const ssize_t n = ::readlinkat(dirfd, name, target.data(), target.size());
    if (n < 0) refuse(os_error("cannot read symbolic link", shown, errno));
    if (static_cast<std::size_t>(n) < target.size()) {
      target.resize(static_cast<std::size_t>(n));
      return target;
    }
    if (target.size() >= (1u << 20)) refuse("symbolic link target too long: " + std::string(shown));
    target.resize(target.size() * 2);
  }
}

#ifndef SYS_listxattrat
#define SYS_listxattrat 465  // Linux 6.13; older kernels answer ENOSYS
#endif

// ACL and security-context look-ups as ls does them in long format: one
// extended-attribute listing per file, skipped on a device that has
// already said it has no extended attributes (ls caches the same way).
class AttributeProbe {
 public:
  explicit AttributeProbe(std::string dir_path) : dir_path_(std::move(dir_path)) {}

  // Sets e.acl and e.lsm_context; refuses what ls reads differently (NFSv4
  // ACLs, SMACK) or reports as an error.
  void probe(int dirfd, const char* name, bool follow, Entry& e, std::string_view shown) {
    if (has_unsupported_ && e.dev == unsupported_dev_) return;
    ssize_t n = list(dirfd, name, follow);
    if (n < 0 && errno == ERANGE) {
      buffer_.resize(65536);
      n = list(dirfd, name, follow);
    }
    if (n < 0) {
      if (errno == ENOTSUP || errno == EOPNOTSUPP || errno == ENOSYS) {
        has_unsupported_ = true;
        unsupported_dev_ = e.dev;
        return;
      }
      refuse(os_error("cannot list attributes of", shown, errno));
    }
    const bool is_link = S_ISLNK(e.mode);
    for (std::string_view names(buffer_.data(), static_cast<std::size_t>(n)); !names.empty();) {
      const std::size_t end = names.find('\0');
      const std::string_view attr = names.substr(0, end);
      names.remove_prefix(end == std::string_view::npos ? names.size() : end + 1);
      if (attr == "system.nfs4_acl" || attr == "security.SMACK64")
        refuse("file with " + std::string(attr) + ": " + std::string(shown));
      // ls asks libselinux for the label (lgetfilecon, getfilecon with -L),
      // which reads this attribute whether SELinux is enforcing or not.
      if (attr == "security.selinux") e.lsm_context = label(dirfd, name, follow, shown) != "unlabeled";
      if (is_link) continue;
      if (attr == "system.posix_acl_access" || (S_ISDIR(e.mode) && attr == "system.posix_acl_default"))
        e.acl = true;
    }
  }

 private:
  ssize_t list(int dirfd, const char* name, bool follow) {
    if (!no_listxattrat_) {
      const long r = ::syscall(SYS_listxattrat, dirfd, name, follow ? 0 : AT_SYMLINK_NOFOLLOW, buffer_.data(),
                               buffer_.size());
      if (r >= 0 || errno != ENOSYS) return r;
      no_listxattrat_ = true;
    }
    // Older kernels: the path of the file, as ls itself uses.
    std::string path = name[0] == '/' || dirfd == AT_FDCWD ? std::string(name) : dir_path_ + "/" + name;
    return follow ? ::listxattr(path.c_str(), buffer_.data(), buffer_.size())
                  : ::llistxattr(path.c_str(), buffer_.data(), buffer_.size());
  }

  std::string label(int dirfd, const char* name, bool follow, std::string_view shown) const {
    const std::string path = name[0] == '/' || dirfd == AT_FDCWD ? std::string(name) : dir_path_ + "/" + name;
    char value[4096];
    const ssize_t n = follow ? ::getxattr(path.c_str(), "security.selinux", value, sizeof value)
                             : ::lgetxattr(path.c_str(), "security.selinux", value, sizeof value);
    if (n < 0) refuse(os_error("cannot read the security context of", shown, errno));
    // The label is a C string; libselinux stops at its NUL.
    return std::string(value, ::strnlen(value, static_cast<std::size_t>(n)));
  }

  std::string dir_path_;
  std::vector<char> buffer_ = std::vector<char>(4096);
  bool no_listxattrat_ = false;
  bool has_unsupported_ = false;
  dev_t unsupported_dev_ = 0;
};

// uid/gid -> name, looked up once per id and listing.
class IdNames {
 public:
  const std::string* user(std::uint64_t uid) { return lookup(users_, uid, true); }
  const std::string* group(std::uint64_t gid) { return lookup(groups_, gid, false); }

 private:
  using Cache = std::unordered_map<std::uint64_t, std::optional<std::string>>;
  const std::string* lookup(Cache& cache, std::uint64_t id, bool is_user) {
    auto [it, inserted] = cache.try_emplace(id);
    if (inserted) {
      std::vector<char> buf(16384);
      const char* name = nullptr;
      int rc;
      if (is_user) {
        struct passwd pw, *found = nullptr;
        rc = ::getpwuid_r(static_cast<uid_t>(id), &pw, buf.data(), buf.size(), &found);
        if (rc == 0 && found) name = found->pw_name;
      } else {
        struct group gr, *found = nullptr;
        rc = ::getgrgid_r(static_cast<gid_t>(id), &gr, buf.data(), buf.size(), &found);
        if (rc == 0 && found) name = found->gr_name;
      }
      if (rc == ERANGE) refuse("user or group entry too large for id " + std::to_string(id));
      if (name) {
        it->second = name;
        // ls pads by display width; only plain ASCII names have width == bytes.
        for (unsigned char c : *it->second)
          if (c < 0x20 || c >= 0x7f) refuse("user or group name that is not plain ASCII");
      }
    }
    return it->second ? &*it->second : nullptr;
  }
  Cache users_, groups_;
};

// ---------------------------------------------------------------- output

char mode_letter(std::uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return '-';
    case S_IFDIR: return 'd';
    case S_IFBLK: return 'b';
    case S_IFCHR: return 'c';
    case S_IFLNK: return 'l';
    case S_IFIFO: return 'p';
    case S_IFSOCK: return 's';
    default: return '?';
  }
}

// gnulib filemodestring(): type letter, rwx triplets with s/S/t/T.
void append_mode(std::string& out, std::uint32_t m) {
  out += mode_letter(m);
  out += m & S_IRUSR ? 'r' : '-';
  out += m & S_IWUSR ? 'w' : '-';
  out += m & S_ISUID ? (m & S_IXUSR ? 's' : 'S') : (m & S_IXUSR ? 'x' : '-');
  out += m & S_IRGRP ? 'r' : '-';
  out += m & S_IWGRP ? 'w' : '-';
  out += m & S_ISGID ? (m & S_IXGRP ? 's' : 'S') : (m & S_IXGRP ? 'x' : '-');
  out += m & S_IROTH ? 'r' : '-';
  out += m & S_IWOTH ? 'w' : '-';
  out += m & S_ISVTX ? (m & S_IXOTH ? 't' : 'T') : (m & S_IXOTH ? 'x' : '-');
}

char type_indicator(std::uint32_t mode, Indicator style) {
  if (S_ISREG(mode)) return style == Indicator::classify && (mode & (S_IXUSR | S_IXGRP | S_IXOTH)) ? '*' : 0;
  if (S_ISDIR(mode)) return '/';
  if (style == Indicator::slash) return 0;
  if (S_ISLNK(mode)) return '@';
  if (S_ISFIFO(mode)) return '|';
  if (S_ISSOCK(mode)) return '=';
  return 0;
}

void pad_left(std::string& out, std::string_view text, std::size_t width) {
  if (text.size() < width) out.append(width - text.size(), ' ');
  out += text;
}

std::string decimal(std::uint64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  return std::string(buf, end);
}

class Formatter {
 public:
  Formatter(const Options& o, const Environment& env, const Locale& l)
      : o_(o), quoting_(o, l), times_(time_formats(o, env, l)) {
    ::clock_gettime(CLOCK_REALTIME, &now_);
  }

  const Quoting& quoting() const { return quoting_; }

  std::string block_count(std::uint64_t blocks) const {
    switch (o_.scale) {
      case Scale::human_1024: return format::human(blocks, true, true, 512, 1);
      case Scale::human_si: return format::human(blocks, true, false, 512, 1);
      case Scale::kibibytes: break;
    }
    return format::human(blocks, false, false, 512, 1024);
  }
  std::string file_size(std::uint64_t size) const {
    switch (o_.scale) {
      case Scale::human_1024: return format::human(size, true, true, 1, 1);
      case Scale::human_si: return format::human(size, true, false, 1, 1);
      case Scale::kibibytes: break;
    }
    return decimal(size);
  }

  // Column widths over every file of the listing, as gobble_file grows them.
  void measure(const std::vector<Entry>& entries, IdNames& ids) {
    for (const Entry& e : entries) {
      if (o_.print_inode) inode_w_ = std::max(inode_w_, decimal(e.ino).size());
      block_w_ = std::max(block_w_, block_count(e.blocks).size());
      if (o_.print_owner) owner_w_ = std::max(owner_w_, id_width(user(ids, e.uid), e.uid));
      if (o_.print_group) group_w_ = std::max(group_w_, id_width(group(ids, e.gid), e.gid));
      nlink_w_ = std::max(nlink_w_, decimal(e.nlink).size());
      if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) {
        major_w_ = std::max(major_w_, decimal(e.rdev_major).size());
        minor_w_ = std::max(minor_w_, decimal(e.rdev_minor).size());
        size_w_ = std::max(size_w_, major_w_ + 2 + minor_w_);
      } else {
        size_w_ = std::max(size_w_, file_size(e.size).size());
      }
      any_acl_ = any_acl_ || e.acl || e.lsm_context;
    }
  }

  void line(std::string& out, std::vector<NameSpan>& names, const Entry& e, IdNames& ids, std::string_view shown) {
    out += "  ";
    if (o_.print_inode) {
      pad_left(out, decimal(e.ino), inode_w_);
      out += ' ';
    }
    if (o_.print_block_size) {
      pad_left(out, block_count(e.blocks), block_w_);
      out += ' ';
    }
    append_mode(out, e.mode);
    if (any_acl_) out += e.acl ? '+' : e.lsm_context ? '.' : ' ';
    out += ' ';
    pad_left(out, decimal(e.nlink), nlink_w_);
    out += ' ';
    if (o_.print_owner) id_column(out, user(ids, e.uid), e.uid, owner_w_);
    if (o_.print_group) id_column(out, group(ids, e.gid), e.gid, group_w_);
    if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) {
      const std::size_t blanks = size_w_ > major_w_ + 2 + minor_w_ ? size_w_ - (major_w_ + 2 + minor_w_) : 0;
      pad_left(out, decimal(e.rdev_major), major_w_ + blanks);
      out += ", ";
      pad_left(out, decimal(e.rdev_minor), minor_w_);
    } else {
      pad_left(out, file_size(e.size), size_w_);
    }
    out += ' ';
    append_mtime(out, e);
    out += ' ';
    const std::size_t begin = out.size();
    quoting_.append(out, shown);
    names.push_back({static_cast<std::uint32_t>(begin), static_cast<std::uint32_t>(out.size())});
    if (S_ISLNK(e.mode)) {
      out += " -> ";
      quoting_.append(out, e.link_target);
      if (o_.indicator != Indicator::none)
        if (char c = type_indicator(e.link_mode, o_.indicator)) out += c;
    } else if (o_.indicator != Indicator::none) {
      if (char c = type_indicator(e.mode, o_.indicator)) out += c;
    }
    out += '\n';
  }

 private:
  // -n shows numbers and needs no name service look-ups at all.
  const std::string* user(IdNames& ids, std::uint64_t uid) const { return o_.numeric_ids ? nullptr : ids.user(uid); }
  const std::string* group(IdNames& ids, std::uint64_t gid) const { return o_.numeric_ids ? nullptr : ids.group(gid); }
  static std::size_t id_width(const std::string* name, std::uint64_t id) {
    return name ? name->size() : decimal(id).size();
  }
  static void id_column(std::string& out, const std::string* name, std::uint64_t id, std::size_t width) {
    if (name) {
      out += *name;
      out.append(width > name->size() ? width - name->size() + 1 : 1, ' ');
    } else {
      pad_left(out, decimal(id), width);
      out += ' ';
    }
  }

  void append_mtime(std::string& out, const Entry& e) {
    auto before = [](std::int64_t s1, long n1, std::int64_t s2, long n2) { return s1 < s2 || (s1 == s2 && n1 < n2); };
    // A file from the future makes ls read the clock again, in case it was
    // modified since the listing began.
    if (before(now_.tv_sec, now_.tv_nsec, e.mtime_sec, e.mtime_nsec)) ::clock_gettime(CLOCK_REALTIME, &now_);
    // Six months: half a Gregorian year of 365.2425 days, in seconds.
    const std::int64_t six_months_ago = now_.tv_sec - 31556952 / 2;
    const bool recent = before(six_months_ago, now_.tv_nsec, e.mtime_sec, e.mtime_nsec) &&
                        before(e.mtime_sec, e.mtime_nsec, now_.tv_sec, now_.tv_nsec);
    const std::string& format = recent ? times_.recent_files : times_.old_files;
    // Files of one directory often share their second (an unpacked archive,
    // a build): those reuse the text instead of localtime and strftime again.
    const bool cacheable = format.find("%N") == std::string::npos;
    TimeText& slot = time_cache_[static_cast<std::uint64_t>(e.mtime_sec) % time_cache_.size()];
    if (cacheable && slot.valid && slot.sec == e.mtime_sec && slot.recent == recent) {
      out += slot.text;
      return;
    }
    const std::time_t t = static_cast<std::time_t>(e.mtime_sec);
    std::tm tm;
    if (!::localtime_r(&t, &tm)) refuse("a time localtime cannot convert");
    const std::size_t start = out.size();
    append_time(out, format, tm, e.mtime_nsec);
    if (cacheable) slot = {true, recent, e.mtime_sec, out.substr(start)};
  }

  struct TimeText {
    bool valid = false;
    bool recent = false;
    std::int64_t sec = 0;
    std::string text;
  };
  std::array<TimeText, 64> time_cache_{};

  const Options& o_;
  Quoting quoting_;
  TimeFormats times_;
  std::timespec now_{};
  std::size_t inode_w_ = 0, block_w_ = 0, owner_w_ = 0, group_w_ = 0, nlink_w_ = 0, major_w_ = 0, minor_w_ = 0,
              size_w_ = 0;
  bool any_acl_ = false;

 public:
  // ls's `is_linked_directory`: a symlink counts when ls stat'ed its target.
  static bool groups_as_directory(const Entry& e) { return S_ISDIR(e.mode) || S_ISDIR(e.link_mode); }
};

// ---------------------------------------------------------------- sorting

// The order ls prints in.
std::vector<const Entry*> sort_entries(const std::vector<Entry>& entries, const Options& o) {
  std::vector<const Entry*> order;
  order.reserve(entries.size());
  if (o.sort == SortKey::none) {
    order.resize(entries.size());
    for (const Entry& e : entries) order[e.seq] = &e;
    return order;
  }
  // What most comparisons read sits in the sorted array itself, so that a
  // comparison does not first miss the cache on a 100-byte Entry to find
  // the name.
  struct Sorted {
    std::string_view name;
    const Entry* entry;
    bool directory;
  };
  std::vector<Sorted> sorted;
  sorted.reserve(entries.size());
  for (const Entry& e : entries) sorted.push_back({e.name, &e, o.directories_first && Formatter::groups_as_directory(e)});
  // C and C.UTF-8 both collate by bytes (glibc's C.UTF-8 is code point order).
  auto by_name = [](const Sorted& a, const Sorted& b) { return a.name.compare(b.name); };
  auto extension = [](std::string_view n) {
    const std::size_t dot = n.rfind('.');
    return dot == std::string::npos ? std::string_view() : std::string_view(n).substr(dot);
  };
  auto key = [&](const Sorted& a, const Sorted& b) -> int {
    switch (o.sort) {
      case SortKey::time:
        if (a.entry->mtime_sec != b.entry->mtime_sec) return a.entry->mtime_sec < b.entry->mtime_sec ? 1 : -1;
        if (a.entry->mtime_nsec != b.entry->mtime_nsec) return a.entry->mtime_nsec < b.entry->mtime_nsec ? 1 : -1;
        return by_name(a, b);
      case SortKey::size:
        if (a.entry->size != b.entry->size) return a.entry->size < b.entry->size ? 1 : -1;
        return by_name(a, b);
      case SortKey::extension:
        if (int d = extension(a.name).compare(extension(b.name))) return d;
        return by_name(a, b);
      case SortKey::version:
        if (int d = format::filevercmp(a.name, b.name)) return d;
        return by_name(a, b);
      case SortKey::name:
      case SortKey::none: break;
    }
    return by_name(a, b);
  };
  std::sort(sorted.begin(), sorted.end(), [&](const Sorted& a, const Sorted& b) {
    if (a.directory != b.directory) return a.directory;
    return o.reverse ? key(b, a) < 0 : key(a, b) < 0;
  });
  for (const Sorted& s : sorted) order.push_back(s.entry);
  return order;
}

// ---------------------------------------------------------------- reading

struct linux_dirent64 {
  std::uint64_t d_ino;
  std::int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

class Poll {
 public:
  explicit Poll(const Control& c) : c_(c) {}
  void entry() {
    if (c_.delay_per_entry.count() > 0) std::this_thread::sleep_for(c_.delay_per_entry);
    if (c_.cancelled && ((++count_ & 255) == 0 || c_.delay_per_entry.count() > 0) &&
        c_.cancelled->load(std::memory_order_relaxed))
      throw Cancelled("listing cancelled");
  }

 private:
  const Control& c_;
  unsigned count_ = 0;
};

// Fills in what long format needs beyond statx, for a file reached by
// (dirfd, name).
void complete_entry(int dirfd, const char* name, const Options& o, AttributeProbe& attrs, Entry& e,
                    std::string_view shown) {
  attrs.probe(dirfd, name, o.dereference, e, shown);
  if (S_ISLNK(e.mode)) {
    e.link_target = read_link(dirfd, name, e.size, shown);
    // ls 9.1 follows the link for -F and --file-type, and to group linked
    // directories with --group-directories-first.
    if (o.indicator >= Indicator::file_type || o.directories_first) {
      struct statx sx;
      if (::statx(dirfd, name, AT_NO_AUTOMOUNT, STATX_TYPE | STATX_MODE, &sx) == 0) e.link_mode = sx.stx_mode;
    }
  }
}

// The names of a listing, NUL-terminated, in large blocks that never move:
// one allocation per 256 KiB instead of one per long name, and names that
// sit together in memory while sorting compares them.
class NameArena {
 public:
  std::string_view store(const char* name, std::size_t bound) {
    const std::size_t len = ::strnlen(name, bound);
    if (blocks_.empty() || used_ + len + 1 > block_size) {
      blocks_.push_back(std::make_unique<char[]>(std::max(block_size, len + 1)));
      used_ = 0;
    }
    char* at = blocks_.back().get() + used_;
    std::memcpy(at, name, len);
    at[len] = '\0';
    used_ += len + 1;
    return {at, len};
  }

 private:
  static constexpr std::size_t block_size = 256 * 1024;
  std::vector<std::unique_ptr<char[]>> blocks_;
  std::size_t used_ = 0;
};

// Reads the names (getdents64), keeping those -a/-A/default would show, and
// returns their entries in inode order: the kernel's inodes and dentries of
// neighbouring numbers were mostly made together and sit together in memory,
// so statx and listxattrat over them in that order took 10-15% less CPU
// time than in the directory's hash order (100k entries, ext4). The entries
// are made in that order too, so that filling them in walks memory forwards.
// `seq` keeps the directory's order.
std::vector<Entry> read_names(int dirfd, std::string_view dir, const Options& o, std::size_t expected,
                              NameArena& arena) {
  struct Name {
    std::uint64_t ino;
    std::string_view name;
  };
  std::vector<Name> names;
  names.reserve(expected);
  // 64 KiB, not zeroed: below malloc's mmap threshold, so a daemon that
  // lists often reuses the same heap pages instead of faulting new ones in.
  constexpr std::size_t buf_size = 64 * 1024;
  const std::unique_ptr<char[]> buf(new char[buf_size]);
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dirfd, buf.get(), buf_size);
    if (n < 0) refuse(os_error("reading directory", dir, errno));
    if (n == 0) break;
    for (long off = 0; off < n;) {
      const auto* d = reinterpret_cast<const linux_dirent64*>(buf.get() + off);
      off += d->d_reclen;
      const char* name = d->d_name;
      if (name[0] == '.') {
        const bool dot_or_dotdot = name[1] == '\0' || (name[1] == '.' && name[2] == '\0');
        if (o.hidden == Hidden::dot_files_hidden || (o.hidden == Hidden::almost_all && dot_or_dotdot)) continue;
      }
      names.push_back({d->d_ino, arena.store(name, d->d_reclen - offsetof(linux_dirent64, d_name))});
    }
  }
  if (names.size() > UINT32_MAX) refuse("a directory of more than 4 billion entries");
  std::vector<std::uint32_t> by_inode(names.size());
  for (std::uint32_t i = 0; i < by_inode.size(); ++i) by_inode[i] = i;
  std::sort(by_inode.begin(), by_inode.end(), [&](std::uint32_t a, std::uint32_t b) { return names[a].ino < names[b].ino; });
  std::vector<Entry> entries(names.size());
  for (std::size_t i = 0; i < by_inode.size(); ++i) {
    entries[i].name = names[by_inode[i]].name;
    entries[i].seq = by_inode[i];
  }
  return entries;
}

// Stats every entry (statx, xattr listing, readlink). Large directories are
// split over a few threads: each file costs two or three path look-ups that
// no single syscall can batch, and they are independent of each other.
void stat_entries(int dirfd, const std::string& dir, std::vector<Entry>& entries, const Options& o,
                  const Control& control) {
  constexpr std::size_t chunk = 512;
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  auto work = [&]() {
    AttributeProbe attrs(dir);
    Poll poll(control);
    for (;;) {
      const std::size_t begin = next.fetch_add(chunk);
      if (begin >= entries.size() || stop.load(std::memory_order_relaxed)) return;
      const std::size_t end = std::min(entries.size(), begin + chunk);
      for (std::size_t i = begin; i < end; ++i) {
        poll.entry();
        Entry& e = entries[i];
        stat_entry(dirfd, e.name.data(), o.dereference, e, e.name);
        complete_entry(dirfd, e.name.data(), o, attrs, e, e.name);
      }
    }
  };
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t helpers = entries.size() < 4 * chunk ? 0 : std::min<std::size_t>(cores, 4) - 1;
  if (helpers == 0) return work();

  // No exception may escape a thread: each helper hands its first one back.
  std::vector<std::exception_ptr> failures(helpers);
  std::vector<std::thread> threads;
  threads.reserve(helpers);
  for (std::size_t t = 0; t < helpers; ++t)
    threads.emplace_back([&, t]() noexcept {
      try {
        work();
      } catch (...) {
        failures[t] = std::current_exception();
        stop = true;
      }
    });
  std::exception_ptr own;
  try {
    work();
  } catch (...) {
    own = std::current_exception();
    stop = true;
  }
  for (auto& th : threads) th.join();
  if (own) std::rethrow_exception(own);
  for (auto& f : failures)
    if (f) std::rethrow_exception(f);
}

}  // namespace

Listing list(std::string_view dir, std::span<const std::string> switches, const Environment& env,
             const Control& control) {
  // ls, a new process each time, reads the system's time zone afresh; the
  // daemon's localtime_r does not. tzset() looks at /etc/localtime again
  // (with TZ unset: glibc re-reads it if its inode or mtime changed), so a
  // zone changed since (timedatectl, a laptop that travels) shows at once.
  ::tzset();
  const Options o = parse_switches(switches);
  const Locale locale = resolve_locale(env);
  const std::string path(dir);
  if (path.empty() || path.find('\0') != std::string::npos) refuse("an empty path or one with a NUL byte");
  ThreadCtype ctype(locale.utf8_ctype && o.escape);
  Formatter formatter(o, env, locale);
  IdNames ids;
  Poll poll(control);

  Listing listing;
  listing.quoting_style = formatter.quoting().style();

  // The operand itself, as ls gobbles a command-line argument: with -l it is
  // never followed unless -L (a symlink to a directory is shown as a link).
  Entry operand;
  operand.name = path;
  stat_entry(AT_FDCWD, path.c_str(), o.dereference, operand, path);

  if (o.immediate_dirs || !S_ISDIR(operand.mode)) {
    AttributeProbe attrs(path);
    complete_entry(AT_FDCWD, path.c_str(), o, attrs, operand, path);
    std::vector<Entry> one{std::move(operand)};
    formatter.measure(one, ids);
    formatter.line(listing.text, listing.names, one[0], ids, one[0].name);
    return listing;
  }

  Fd dirfd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirfd.get() < 0) refuse(os_error("cannot open directory", path, errno));
  // Reserve from the directory's size (16+ bytes per ext4 entry) so
  // that 100k entries do not reallocate and copy as they arrive.
  const std::size_t expected = std::min<std::uint64_t>(operand.size / 12, 1u << 18);
  NameArena arena;
  std::vector<Entry> entries = read_names(dirfd.get(), path, o, expected, arena);
  stat_entries(dirfd.get(), path, entries, o, control);
  const std::vector<const Entry*> order = sort_entries(entries, o);
  formatter.measure(entries, ids);

  std::uint64_t total_blocks = 0;
  for (const Entry& e : entries) total_blocks += e.blocks;
  std::string& out = listing.text;
  out.reserve(entries.size() * 80 + 64);
  listing.names.reserve(entries.size());
  out += "  total ";
  out += formatter.block_count(total_blocks);
  out += '\n';
  for (const Entry* e : order) {
    poll.entry();
    formatter.line(out, listing.names, *e, ids, e->name);
  }
  if (out.size() > UINT32_MAX) refuse("a listing larger than 4 GiB");
  return listing;
}

std::string dired_trailer(const Listing& listing) {
  std::string out;
  if (!listing.names.empty()) {
    out += "//DIRED//";
    for (const NameSpan& n : listing.names) {
      out += ' ';
      out += decimal(n.begin);
      out += ' ';
      out += decimal(n.end);
    }
    out += '\n';
  }
  out += "//DIRED-OPTIONS// --quoting-style=";
  out += listing.quoting_style;
  out += '\n';
  return out;
}

}  // namespace descent::lister
