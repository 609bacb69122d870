#include "server/methods_rename.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <string>

#include "protocol/rpc.hpp"

namespace descent::server {

namespace {

using protocol::pack_bytes;
using protocol::pack_text;

// More edits than any directory listing a person edits; the frame limit
// (16 MiB) bounds it anyway.
constexpr std::uint32_t max_operations = 1'000'000;

[[noreturn]] void bad(std::uint32_t index, const std::string& what) {
  throw MethodError("bad-params", "rename.submit: operation " + std::to_string(index) + ": " + what);
}

const msgpack::object& field(const msgpack::object& map, std::uint32_t index, std::string_view key) {
  const msgpack::object* value = protocol::map_find(map, key);
  if (!value) bad(index, "\"" + std::string(key) + "\" is missing");
  return *value;
}

// A view into the request, which lives until the reply is sent.
std::string_view bytes_field(const msgpack::object& map, std::uint32_t index, std::string_view key) {
  const auto bytes = protocol::as_bytes(field(map, index, key));
  if (!bytes) bad(index, "\"" + std::string(key) + "\" must be a file name (bin or str)");
  return *bytes;
}

std::uint64_t unsigned_field(const msgpack::object& map, std::uint32_t index, std::string_view key) {
  const msgpack::object& value = field(map, index, key);
  if (value.type != msgpack::type::POSITIVE_INTEGER) bad(index, "\"" + std::string(key) + "\" must be an integer ≥ 0");
  return value.via.u64;
}

// One operation, as views into the request (which lives until the reply).
rename::OperationView operation_of(const msgpack::object& map, std::uint32_t i) {
  if (map.type != msgpack::type::MAP) bad(i, "must be a map");
  const auto kind = protocol::as_bytes(field(map, i, "op"));
  if (!kind) bad(i, "\"op\" must be a string");
  rename::OperationView op;
  if (*kind == "mkdir") {
    op.kind = rename::Operation::Kind::make_directory;
    op.source = bytes_field(map, i, "path");
    return op;
  }
  if (*kind != "rename" && *kind != "chmod" && *kind != "retarget")
    bad(i, "unknown \"op\" " + std::string(*kind) + " (rename, chmod, retarget or mkdir)");
  op.id.dev = unsigned_field(map, i, "dev");
  op.id.ino = unsigned_field(map, i, "ino");
  if (*kind == "rename") {
    op.kind = rename::Operation::Kind::rename;
    op.source = bytes_field(map, i, "from");
    op.destination = bytes_field(map, i, "to");
    if (const msgpack::object* overwrite = protocol::map_find(map, "overwrite")) {
      if (overwrite->type != msgpack::type::BOOLEAN && overwrite->type != msgpack::type::NIL)
        bad(i, "\"overwrite\" must be true or false");
      op.overwrite = overwrite->type == msgpack::type::BOOLEAN && overwrite->via.boolean;
    }
  } else if (*kind == "chmod") {
    op.kind = rename::Operation::Kind::chmod;
    op.source = bytes_field(map, i, "path");
    const std::uint64_t mode = unsigned_field(map, i, "mode");
    if (mode > 07777) bad(i, "\"mode\" must be permission bits (07777 at most)");
    op.mode = static_cast<std::uint32_t>(mode);
  } else {
    op.kind = rename::Operation::Kind::retarget;
    op.source = bytes_field(map, i, "path");
    op.target = bytes_field(map, i, "target");
  }
  return op;
}

// The operations as views into the decoded request (valid while `params`
// is): no second copy of 100k paths.
std::vector<rename::OperationView> operations_of(const Params& params) {
  params.expect_count(1, 1);
  const auto array = params.array(0, "operations", "an array of maps", max_operations);
  std::vector<rename::OperationView> operations;
  operations.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) operations.push_back(operation_of(array[i], static_cast<std::uint32_t>(i)));
  return operations;
}

// The same from the packed params: a 100k batch as one object tree costs
// ~26 MB of zone besides its 14 MB of bytes, so each operation is unpacked
// alone into a small zone, its strings left in the request (views).
// `unpacked` keeps params of an unusual shape, decoded whole so that Params
// words the error as for every method.
std::vector<rename::OperationView> operations_of(const Call& call, msgpack::object_handle& unpacked) {
  const std::string_view packed = call.packed_params;
  if (packed.empty()) return operations_of(call.params);
  std::size_t offset = 0;
  std::optional<std::uint32_t> count;
  if (protocol::read_array_header(packed, offset) == 1u) count = protocol::read_array_header(packed, offset);
  if (!count) {
    unpacked = protocol::decode_payload(packed.data(), packed.size());
    return operations_of(Params("rename.submit", unpacked.get()));
  }
  if (*count > max_operations)
    throw MethodError("bad-params", "rename.submit: at most " + std::to_string(max_operations) + " operations");
  std::vector<rename::OperationView> operations;
  operations.reserve(*count);
  // The server checked every claim against the bytes (check_payload).
  const msgpack::unpack_limit limits(packed.size(), packed.size(), packed.size(), packed.size(), packed.size(),
                                     protocol::max_depth + 1);
  const auto by_reference = [](msgpack::type::object_type, std::size_t, void*) { return true; };
  msgpack::zone zone;
  for (std::uint32_t i = 0; i < *count; ++i) {
    msgpack::object map;
    try {
      map = msgpack::unpack(zone, packed.data(), packed.size(), offset, by_reference, nullptr, limits);
    } catch (const std::exception& e) {
      throw MethodError("bad-params", "rename.submit: operation " + std::to_string(i) + ": " + e.what());
    }
    operations.push_back(operation_of(map, i));
    zone.clear();
  }
  return operations;
}

// [before, after, before, after...]: flat, as bin.
void pack_moves(Packer& out, const std::vector<std::pair<std::string, std::string>>& moves) {
  out.pack_array(static_cast<std::uint32_t>(2 * moves.size()));
  for (const auto& [before, after] : moves) {
    pack_bytes(out, before);
    pack_bytes(out, after);
  }
}

void pack_outcome(Packer& out, const rename::Outcome& outcome) {
  out.pack_map(4 + (outcome.moves.empty() ? 0 : 1) + (outcome.trashed ? 1 : 0));
  if (outcome.trashed) {
    pack_text(out, "trashed");
    out.pack_uint64(outcome.trashed);
  }
  pack_text(out, "batch");
  out.pack_int64(outcome.batch);
  pack_text(out, "operations");
  out.pack_uint64(outcome.operations);
  pack_text(out, "steps");
  out.pack_uint64(outcome.steps);
  pack_text(out, "directories");
  out.pack_array(static_cast<std::uint32_t>(outcome.directories.size()));
  for (const auto& dir : outcome.directories) pack_bytes(out, dir);
  if (!outcome.moves.empty()) {
    pack_text(out, "moves");
    pack_moves(out, outcome.moves);
  }
}

const char* state_name(rename::Journal::State state) {
  using State = rename::Journal::State;
  switch (state) {
    case State::running: return "running";
    case State::done: return "done";
    case State::rolled_back: return "rolled-back";
    case State::undoing: return "undoing";
    case State::undone: return "undone";
    case State::broken: return "broken";
  }
  return "broken";
}

// A refusal's details: {"problems": [{"path": bin, "reason": str,
// "occupied": bin (only when the destination exists outside the batch)}]}.
std::string problems_of(const std::vector<rename::Problem>& problems) {
  msgpack::sbuffer buffer;
  Packer out(buffer);
  out.pack_map(1);
  pack_text(out, "problems");
  out.pack_array(static_cast<std::uint32_t>(problems.size()));
  for (const auto& problem : problems) {
    out.pack_map(problem.occupied.empty() ? 2 : 3);
    pack_text(out, "path");
    pack_bytes(out, problem.path);
    pack_text(out, "reason");
    pack_text(out, problem.reason);
    if (!problem.occupied.empty()) {
      pack_text(out, "occupied");
      pack_bytes(out, problem.occupied);
    }
  }
  return std::string(buffer.data(), buffer.size());
}

// rename.identify for one directory: {"names": [bin...], "ids": [dev, ino,
// dev, ino...]} of its entries (lstat, so a mount point shows its own
// device), or nil if it cannot be read.
void identify_directory(const std::string& dir, Packer& out, const std::atomic<bool>& cancelled) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* stream = fd >= 0 ? ::fdopendir(fd) : nullptr;
  if (!stream) {
    if (fd >= 0) ::close(fd);
    out.pack_nil();
    return;
  }
  std::vector<std::string> names;
  std::vector<std::uint64_t> ids;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (names.size() % 1024 == 0 && cancelled.load(std::memory_order_relaxed)) break;
    struct stat st {};
    if (::fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
    names.emplace_back(name);
    ids.push_back(st.st_dev);
    ids.push_back(st.st_ino);
  }
  ::closedir(stream);
  if (cancelled.load(std::memory_order_relaxed)) throw MethodError("cancelled", "rename.identify: cancelled");
  out.pack_map(2);
  pack_text(out, "names");
  out.pack_array(static_cast<std::uint32_t>(names.size()));
  for (const auto& name : names) pack_bytes(out, name);
  pack_text(out, "ids");
  out.pack_array(static_cast<std::uint32_t>(ids.size()));
  for (const auto id : ids) out.pack_uint64(id);
}

// The engine's failures, as error replies.
template <typename Body>
void translating(std::string_view method, Body body) {
  try {
    body();
  } catch (const rename::BatchRefused& e) {
    throw MethodError("refused", e.what(), problems_of(e.problems));
  } catch (const rename::StepFailed& e) {
    throw MethodError("os-error", e.what());
  } catch (const rename::BatchCancelled& e) {
    throw MethodError("cancelled", e.what());
  } catch (const rename::UndoRefused& e) {
    throw MethodError("conflict", e.what());
  } catch (const state::SqliteError& e) {
    throw MethodError("state-error", std::string(method) + ": the state database failed: " + e.what());
  }
}

// Undoes `batch`, committed a moment ago, for a client that cancelled it as
// it ended (see Call::take_back); under area.mutex. Returns whether it was
// undone; `what` says what happened, for the log or the reply.
bool undo_late(RenameArea& area, std::int64_t batch, std::string& what) {
  const std::atomic<bool> never{false};
  try {
    area.renamer.undo(never, {}, batch);
    what = "undid rename batch " + std::to_string(batch) + ", cancelled as it ended";
    return true;
  } catch (const std::exception& e) {
    what = "could not take back rename batch " + std::to_string(batch) +
           " (cancelled as it ended), so its renames stand: " + e.what();
    // The client, told the batch was cancelled, is told otherwise at its
    // next call that asks (Emacs: the next commit or undo).
    try {
      area.renamer.journal().add_recovery(batch, static_cast<std::int64_t>(std::time(nullptr)), what);
    } catch (const std::exception&) {
    }
    return false;
  }
}

rename::Renamer::Progress progress_of(Call& call) {
  return [&call](std::size_t done, std::size_t total) {
    call.notify("rename.progress", [&](Packer& out) {
      out.pack_array(3);
      out.pack_uint32(call.request_id);
      out.pack_uint64(done);
      out.pack_uint64(total);
    });
  };
}

}  // namespace

rename::Renamer::Options rename_options_from_environment() {
  rename::Renamer::Options options;
  options.trash_dir = rename::default_trash_dir();
#ifdef DESCENT_TEST_HOOKS
  if (const char* spec = std::getenv("DESCENT_FAILPOINT")) options.failpoint = rename::Failpoint::parse(spec);
#endif
  return options;
}

RenameArea::RenameArea(const DaemonInfo& info)
    : database(state::Database::open(info.state_dir / "state.db")),
      renamer(database, rename_options_from_environment()),
      recovered(renamer.recover()) {}

void add_rename_methods(MethodTable& methods, const DaemonInfo&, RenameArea& area) {
  methods.add("rename.submit", {[&area](Call& call) {
                                  msgpack::object_handle unpacked;
                                  auto operations = operations_of(call, unpacked);
                                  translating("rename.submit", [&] {
                                    std::lock_guard lock(area.mutex);
                                    const auto outcome = area.renamer.submit(std::move(operations), call.cancelled,
                                                                             progress_of(call));
                                    if (outcome.batch == 0) return pack_outcome(call.result, outcome);
                                    // The batch ends with no look at the cancel flag after the last step:
                                    // a cancel that came since still means "as if never submitted".
                                    if (call.cancelled.load()) {
                                      std::string what;
                                      if (undo_late(area, outcome.batch, what))
                                        throw MethodError("cancelled", "rename.submit: " + what);
                                      return pack_outcome(call.result, outcome);  // it stands, as the reply says
                                    }
                                    call.take_back = [&area, batch = outcome.batch] {
                                      std::lock_guard again(area.mutex);
                                      std::string what;
                                      undo_late(area, batch, what);
                                      return what;
                                    };
                                    pack_outcome(call.result, outcome);
                                  });
                                },
                                Execution::worker, /*packed_params=*/true});

  methods.add("rename.identify", {[](Call& call) {
                                    call.params.expect_count(1, 1);
                                    const auto dirs = call.params.array(0, "directories",
                                                                        "an array of directory names", 10'000);
                                    auto& out = call.result;
                                    out.pack_array(static_cast<std::uint32_t>(dirs.size()));
                                    for (std::size_t i = 0; i < dirs.size(); ++i) {
                                      const auto bytes = protocol::as_bytes(dirs[i]);
                                      if (!bytes || bytes->empty() || bytes->front() != '/' ||
                                          bytes->find('\0') != std::string_view::npos)
                                        throw MethodError("bad-params", "rename.identify: directory " +
                                                                            std::to_string(i) +
                                                                            " must be an absolute file name");
                                      identify_directory(std::string(*bytes), out, call.cancelled);
                                    }
                                  },
                                  Execution::worker});

  methods.add("rename.undo", {[&area](Call& call) {
                                call.params.expect_count(0, 0);
                                translating("rename.undo", [&] {
                                  std::lock_guard lock(area.mutex);
                                  pack_outcome(call.result, area.renamer.undo(call.cancelled, progress_of(call)));
                                });
                              },
                              Execution::worker});

  methods.add("rename.recent", {[&area](Call& call) {
                                  call.params.expect_count(0, 1);
                                  std::int64_t limit = 100;
                                  if (call.params.size() == 1) limit = call.params.integer(0, "limit");
                                  if (limit < 1 || limit > 1000)
                                    throw MethodError("bad-params", "rename.recent: limit must be within 1..1000");
                                  translating("rename.recent", [&] {
                                    std::lock_guard lock(area.mutex);
                                    const auto entries = area.renamer.journal().recent(static_cast<std::size_t>(limit));
                                    auto& out = call.result;
                                    out.pack_array(static_cast<std::uint32_t>(entries.size()));
                                    for (const auto& e : entries) {
                                      out.pack_map(6);
                                      pack_text(out, "batch");
                                      out.pack_int64(e.id);
                                      pack_text(out, "created");
                                      out.pack_int64(e.created);
                                      pack_text(out, "operations");
                                      out.pack_int64(e.operations);
                                      pack_text(out, "steps");
                                      out.pack_int64(e.steps);
                                      pack_text(out, "state");
                                      pack_text(out, state_name(e.state));
                                      pack_text(out, "message");
                                      pack_text(out, e.message);
                                    }
                                  });
                                },
                                Execution::worker});

  methods.add("rename.moves", {[&area](Call& call) {
                                 call.params.expect_count(1, 1);
                                 const std::int64_t batch = call.params.integer(0, "batch");
                                 translating("rename.moves", [&] {
                                   std::lock_guard lock(area.mutex);
                                   pack_moves(call.result, area.renamer.moves(batch));
                                 });
                               },
                               Execution::worker});

  methods.add("rename.recovery", {[&area](Call& call) {
                                    call.params.expect_count(0, 0);
                                    translating("rename.recovery", [&] {
                                      std::lock_guard lock(area.mutex);
                                      const auto reports = area.renamer.journal().take_recoveries();
                                      call.result.pack_array(static_cast<std::uint32_t>(reports.size()));
                                      for (const auto& report : reports) pack_text(call.result, report);
                                    });
                                  },
                                  Execution::worker});
}

}  // namespace descent::server
