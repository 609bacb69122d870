// The listing engine: what GNU ls (coreutils 9.1) prints for
// `ls --dired SWITCHES -- DIR`, as Emacs's insert-directory runs it, made
// from getdents64 + statx on the directory fd, byte for byte.
//
// Plain C++: no Asio, no Emacs. Anything outside the supported switches,
// locales and environment throws Unsupported, so that the caller runs the
// real ls instead; the engine never guesses.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace descent::lister {

// The caller must fall back to real ls; what() says why, for logs.
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The caller cancelled the listing (C-g); nothing was produced.
struct Cancelled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The variables of the caller's environment that change what ls prints:
// LC_ALL, LC_COLLATE, LC_CTYPE, LC_TIME, LC_NUMERIC, LC_MESSAGES, LANG,
// LANGUAGE, TZ, TIME_STYLE, and those the engine refuses when set
// (BLOCK_SIZE, LS_BLOCK_SIZE, BLOCKSIZE, POSIXLY_CORRECT, QUOTING_STYLE). A
// variable absent from the map is unset; other names are ignored (they do not
// change what ls -l prints).
using Environment = std::map<std::string, std::string, std::less<>>;

// Begin and end byte offsets of one file name in Listing::text: what the
// `//DIRED//` trailer of ls gives, in the same order.
struct NameSpan {
  std::uint32_t begin;
  std::uint32_t end;
};

struct Listing {
  std::string text;  // the lines, without the //DIRED// trailer
  std::vector<NameSpan> names;
  std::string quoting_style;  // "literal" or "escape", as //DIRED-OPTIONS// says
};

// How a caller steers a running listing.
struct Control {
  // Polled between entries; when it becomes true, list() throws Cancelled.
  const std::atomic<bool>* cancelled = nullptr;
  // Test-only: sleep this long per entry, so C-g tests have time to press.
  std::chrono::microseconds delay_per_entry{0};
};

// Lists `dir` (an absolute or relative path, bytes) like
// `ls --dired SWITCHES -- DIR` would. Throws Unsupported or Cancelled.
Listing list(std::string_view dir, std::span<const std::string> switches, const Environment& env,
             const Control& control = {});

// The trailer ls prints after the lines with --dired:
// "//DIRED// b e ...\n//DIRED-OPTIONS// --quoting-style=STYLE\n".
std::string dired_trailer(const Listing& listing);

// Pieces of ls's formatting, exposed for the unit tests.
namespace format {

// gnulib human_readable() with the options ls uses: `autoscale` for -h/--si,
// `base_1024` for -h; otherwise a plain ceiling division from `from_block`
// units into `to_block` units.
std::string human(std::uint64_t amount, bool autoscale, bool base_1024, std::uint64_t from_block,
                  std::uint64_t to_block);

// gnulib filevercmp(): the order of ls -v (before the strcmp tie-break).
int filevercmp(std::string_view a, std::string_view b);

}  // namespace format

}  // namespace descent::lister
