#include <ctime>

#include "engine/rename/rename.hpp"

namespace descent::rename {

namespace {

const char* name_of(Journal::State state) {
  switch (state) {
    case Journal::State::running: return "running";
    case Journal::State::done: return "done";
    case Journal::State::rolled_back: return "rolled-back";
    case Journal::State::undoing: return "undoing";
    case Journal::State::undone: return "undone";
    case Journal::State::broken: return "broken";
  }
  return "broken";
}

Journal::State state_of(std::string_view text) {
  if (text == "running") return Journal::State::running;
  if (text == "done") return Journal::State::done;
  if (text == "rolled-back") return Journal::State::rolled_back;
  if (text == "undoing") return Journal::State::undoing;
  if (text == "undone") return Journal::State::undone;
  return Journal::State::broken;
}

constexpr const char* entry_columns = "id, created, operations, steps, state, message";

Journal::Entry read_entry(state::Statement& s) {
  Journal::Entry e;
  e.id = s.column_int64(0);
  e.created = s.column_int64(1);
  e.operations = s.column_int64(2);
  e.steps = s.column_int64(3);
  e.state = state_of(s.column_bytes(4));
  e.message = std::string(s.column_bytes(5));
  return e;
}

}  // namespace

Journal::Journal(state::Database& db) : db_(db) {
  db_.exec(
      "CREATE TABLE IF NOT EXISTS rename_batches("
      " id INTEGER PRIMARY KEY,"
      " created INTEGER NOT NULL,"
      " operations INTEGER NOT NULL,"
      " steps INTEGER NOT NULL,"
      " plan BLOB NOT NULL,"  // before rename_plans: the plan; now empty
      " state TEXT NOT NULL,"
      " message TEXT NOT NULL DEFAULT '')");
  // The plans apart from their batches: marking a batch done rewrites its
  // whole row, and a 100k batch's plan is megabytes.
  db_.exec(
      "CREATE TABLE IF NOT EXISTS rename_plans("
      " batch INTEGER PRIMARY KEY,"
      " plan BLOB NOT NULL)");  // encode_steps(): the whole ordered plan
  db_.exec(
      "CREATE TABLE IF NOT EXISTS rename_recoveries("
      " id INTEGER PRIMARY KEY,"
      " batch INTEGER NOT NULL,"
      " recovered INTEGER NOT NULL,"
      " message TEXT NOT NULL,"
      " reported INTEGER NOT NULL DEFAULT 0)");
}

std::int64_t Journal::begin(const RenamePlan& plan, std::int64_t now) {
  const std::string encoded = encode_steps(plan.steps);
  state::Transaction transaction(db_);
  auto insert = db_.prepare(
      "INSERT INTO rename_batches(created, operations, steps, plan, state) VALUES (?, ?, ?, x'', 'running')");
  insert.bind(1, now)
      .bind(2, static_cast<std::int64_t>(plan.operations))
      .bind(3, static_cast<std::int64_t>(plan.steps.size()));
  insert.run();
  const std::int64_t id = db_.last_insert_rowid();
  auto insert_plan = db_.prepare("INSERT INTO rename_plans(batch, plan) VALUES (?, ?)");
  insert_plan.bind(1, id).bind_blob(2, encoded);
  insert_plan.run();
  transaction.commit();  // with synchronous=FULL it is durable on return
  return id;
}

void Journal::mark(std::int64_t id, State state, const std::string& message) {
  auto update = db_.prepare("UPDATE rename_batches SET state = ?, message = ? WHERE id = ?");
  update.bind_text(1, name_of(state)).bind_text(2, message).bind(3, id);
  update.run();
}

std::vector<Step> Journal::steps(std::int64_t id) {
  auto select = db_.prepare("SELECT plan FROM rename_plans WHERE batch = ?");
  select.bind(1, id);
  if (select.step()) return decode_steps(select.column_bytes(0));
  // A batch journaled before rename_plans existed keeps its plan in its row.
  auto old = db_.prepare("SELECT plan FROM rename_batches WHERE id = ?");
  old.bind(1, id);
  if (!old.step()) return {};
  return decode_steps(old.column_bytes(0));
}

std::optional<Journal::Entry> Journal::find(std::int64_t id) {
  auto select = db_.prepare(std::string("SELECT ") + entry_columns + " FROM rename_batches WHERE id = ?");
  select.bind(1, id);
  if (!select.step()) return std::nullopt;
  return read_entry(select);
}

std::vector<Journal::Entry> Journal::recent(std::size_t limit) {
  auto select = db_.prepare(std::string("SELECT ") + entry_columns + " FROM rename_batches ORDER BY id DESC LIMIT ?");
  select.bind(1, static_cast<std::int64_t>(limit));
  std::vector<Entry> out;
  while (select.step()) out.push_back(read_entry(select));
  return out;
}

std::vector<Journal::Entry> Journal::unfinished() {
  auto select = db_.prepare(std::string("SELECT ") + entry_columns +
                            " FROM rename_batches WHERE state IN ('running', 'undoing') ORDER BY id DESC");
  std::vector<Entry> out;
  while (select.step()) out.push_back(read_entry(select));
  return out;
}

std::optional<Journal::Entry> Journal::last_done() {
  auto select = db_.prepare(std::string("SELECT ") + entry_columns +
                            " FROM rename_batches WHERE state = 'done' ORDER BY id DESC LIMIT 1");
  if (!select.step()) return std::nullopt;
  return read_entry(select);
}

void Journal::prune(std::size_t keep) {
  // The newest `keep` done batches stay undoable; of the rest of the history
  // (rolled back, undone, broken) as many are kept for `rename.recent`.
  auto done = db_.prepare(
      "DELETE FROM rename_batches WHERE state = 'done' AND id NOT IN "
      "(SELECT id FROM rename_batches WHERE state = 'done' ORDER BY id DESC LIMIT ?)");
  done.bind(1, static_cast<std::int64_t>(keep));
  done.run();
  auto rest = db_.prepare(
      "DELETE FROM rename_batches WHERE state IN ('rolled-back', 'undone', 'broken') AND id NOT IN "
      "(SELECT id FROM rename_batches WHERE state IN ('rolled-back', 'undone', 'broken') ORDER BY id DESC LIMIT ?)");
  rest.bind(1, static_cast<std::int64_t>(keep));
  rest.run();
  db_.exec("DELETE FROM rename_plans WHERE batch NOT IN (SELECT id FROM rename_batches)");
}

void Journal::add_recovery(std::int64_t batch, std::int64_t now, const std::string& message) {
  auto insert = db_.prepare("INSERT INTO rename_recoveries(batch, recovered, message) VALUES (?, ?, ?)");
  insert.bind(1, batch).bind(2, now).bind_text(3, message);
  insert.run();
}

std::vector<std::string> Journal::take_recoveries() {
  state::Transaction transaction(db_);
  auto select = db_.prepare("SELECT message FROM rename_recoveries WHERE reported = 0 ORDER BY id");
  std::vector<std::string> out;
  while (select.step()) out.emplace_back(select.column_bytes(0));
  db_.exec("UPDATE rename_recoveries SET reported = 1 WHERE reported = 0");
  transaction.commit();
  return out;
}

}  // namespace descent::rename
