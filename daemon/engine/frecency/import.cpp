#include "engine/frecency/import.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string>

namespace descent::frecency {

namespace {

[[noreturn]] void refuse_line(std::size_t line, const std::string& why) {
  throw Refusal("line " + std::to_string(line) + ": " + why);
}

// A whole field as a finite, non-negative number (ranks and weights).
bool parse_rank(std::string_view field, double& out) {
  if (field.empty()) return false;
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), out);
  return error == std::errc() && end == field.data() + field.size() && std::isfinite(out) && out >= 0;
}

bool parse_time(std::string_view field, std::int64_t& out) {
  if (field.empty()) return false;
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), out);
  return error == std::errc() && end == field.data() + field.size() && out >= 0;
}

std::string quoted(std::string_view field) {
  constexpr std::size_t shown = 40;
  std::string out = "\"";
  out.append(field.substr(0, shown));
  if (field.size() > shown) out += "…";
  return out + "\"";
}

std::string path_on_line(std::size_t line, std::string_view path) {
  try {
    return normalize_path(path);
  } catch (const Refusal& refusal) {
    refuse_line(line, refusal.what());
  }
}

// Calls `each(line_number, line)` for every non-empty line; the last line may
// lack its newline (zoxide's own tests write such files).
template <typename Each>
void for_each_line(std::string_view contents, Each each) {
  std::size_t number = 0;
  while (!contents.empty()) {
    ++number;
    const std::size_t end = contents.find('\n');
    const std::string_view line = contents.substr(0, end);
    if (!line.empty()) each(number, line);
    if (end == std::string_view::npos) break;
    contents.remove_prefix(end + 1);
  }
}

std::vector<Entry> parse_z(std::string_view contents) {
  std::vector<Entry> entries;
  for_each_line(contents, [&](std::size_t number, std::string_view line) {
    // path|rank|time, split from the right: a path may itself contain '|'.
    const std::size_t time_bar = line.rfind('|');
    if (time_bar == std::string_view::npos || time_bar == 0)
      refuse_line(number, "expected path|rank|time, got " + quoted(line));
    const std::size_t rank_bar = line.rfind('|', time_bar - 1);
    if (rank_bar == std::string_view::npos)
      refuse_line(number, "expected path|rank|time, got " + quoted(line));
    Entry entry;
    if (!parse_rank(line.substr(rank_bar + 1, time_bar - rank_bar - 1), entry.rank))
      refuse_line(number, "invalid rank " + quoted(line.substr(rank_bar + 1, time_bar - rank_bar - 1)));
    if (!parse_time(line.substr(time_bar + 1), entry.last_visit))
      refuse_line(number, "invalid time " + quoted(line.substr(time_bar + 1)));
    entry.path = path_on_line(number, line.substr(0, rank_bar));
    entries.push_back(std::move(entry));
  });
  return entries;
}

std::vector<Entry> parse_autojump(std::string_view contents) {
  std::vector<Entry> entries;
  for_each_line(contents, [&](std::size_t number, std::string_view line) {
    const std::size_t tab = line.find('\t');
    if (tab == std::string_view::npos) refuse_line(number, "expected weight<TAB>path, got " + quoted(line));
    double weight;
    if (!parse_rank(line.substr(0, tab), weight)) refuse_line(number, "invalid weight " + quoted(line.substr(0, tab)));
    // As zoxide does: autojump's weights grow differently, so each becomes a
    // rank in (0.5, 1) through a sigmoid, and the visit time is unknown (0).
    entries.push_back(Entry{path_on_line(number, line.substr(tab + 1)), 1.0 / (1.0 + std::exp(-weight)), 0});
  });
  return entries;
}

// `zoxide query --list --score`: "<spaces><score> <path>" per line. The
// score already includes the recency factor and no time is given, so the
// score becomes the rank and the visit time is unknown (0).
std::vector<Entry> parse_zoxide_listing(std::string_view contents) {
  std::vector<Entry> entries;
  for_each_line(contents, [&](std::size_t number, std::string_view line) {
    const std::size_t start = line.find_first_not_of(' ');
    const std::size_t space = start == std::string_view::npos ? start : line.find(' ', start);
    if (space == std::string_view::npos) refuse_line(number, "expected <score> <path>, got " + quoted(line));
    double rank;
    if (!parse_rank(line.substr(start, space - start), rank))
      refuse_line(number, "invalid score " + quoted(line.substr(start, space - start)));
    entries.push_back(Entry{path_on_line(number, line.substr(space + 1)), rank, 0});
  });
  return entries;
}

// zoxide's db.zo (bincode, little-endian, the format of zoxide 0.4 to 0.9):
// u32 version (3), u64 count, then per directory u64 length, the path
// bytes, f64 rank, u64 last visit.
class BincodeReader {
 public:
  explicit BincodeReader(std::string_view bytes) : bytes_(bytes) {}

  bool take(void* out, std::size_t size) {
    if (bytes_.size() - at_ < size) return false;
    std::memcpy(out, bytes_.data() + at_, size);
    at_ += size;
    return true;
  }
  bool take_view(std::string_view& out, std::uint64_t size) {
    if (bytes_.size() - at_ < size) return false;
    out = bytes_.substr(at_, size);
    at_ += size;
    return true;
  }
  std::size_t remaining() const { return bytes_.size() - at_; }
  std::size_t offset() const { return at_; }

 private:
  std::string_view bytes_;
  std::size_t at_ = 0;
};

std::vector<Entry> parse_zoxide_database(std::string_view contents) {
  static_assert(std::endian::native == std::endian::little, "db.zo is read with memcpy");
  BincodeReader reader(contents);
  std::uint32_t version = 0;
  std::uint64_t count = 0;
  if (!reader.take(&version, sizeof version)) throw Refusal("zoxide database: truncated header");
  if (version != 3)
    throw Refusal("zoxide database: version " + std::to_string(version) + " is not supported (only 3, zoxide 0.4 to 0.9)");
  if (!reader.take(&count, sizeof count)) throw Refusal("zoxide database: truncated header");
  // The count is a claim: every entry takes at least 24 bytes, so check it
  // against what is there before reserving anything.
  constexpr std::uint64_t smallest_entry = 8 + 8 + 8;
  if (count > reader.remaining() / smallest_entry)
    throw Refusal("zoxide database: header claims " + std::to_string(count) + " entries but the file holds at most " +
                  std::to_string(reader.remaining() / smallest_entry) + " (truncated?)");
  std::vector<Entry> entries;
  entries.reserve(count);
  for (std::uint64_t i = 1; i <= count; ++i) {
    const std::size_t start = reader.offset();
    const auto refuse = [&](const std::string& why) -> void {
      throw Refusal("zoxide database: entry " + std::to_string(i) + " (byte " + std::to_string(start) + "): " + why);
    };
    std::uint64_t length = 0;
    std::string_view path;
    Entry entry;
    std::uint64_t last = 0;
    if (!reader.take(&length, sizeof length) || !reader.take_view(path, length) ||
        !reader.take(&entry.rank, sizeof entry.rank) || !reader.take(&last, sizeof last))
      refuse("truncated");
    if (!std::isfinite(entry.rank) || entry.rank < 0) refuse("invalid rank");
    if (last > static_cast<std::uint64_t>(INT64_MAX)) refuse("invalid time");
    entry.last_visit = static_cast<std::int64_t>(last);
    try {
      entry.path = normalize_path(path);
    } catch (const Refusal& refusal) {
      refuse(refusal.what());
    }
    entries.push_back(std::move(entry));
  }
  if (reader.remaining() != 0)
    throw Refusal("zoxide database: " + std::to_string(reader.remaining()) + " bytes after the last entry");
  return entries;
}

}  // namespace

std::vector<Entry> parse_import(ImportFormat format, std::string_view contents) {
  switch (format) {
    case ImportFormat::z:
      return parse_z(contents);
    case ImportFormat::autojump:
      return parse_autojump(contents);
    case ImportFormat::zoxide:
      // The database starts with its version as a little-endian u32; a
      // listing starts with spaces or digits.
      if (!contents.empty() && static_cast<unsigned char>(contents[0]) < 0x20 && contents[0] != '\n')
        return parse_zoxide_database(contents);
      return parse_zoxide_listing(contents);
  }
  throw Refusal("unknown import format");
}

}  // namespace descent::frecency
