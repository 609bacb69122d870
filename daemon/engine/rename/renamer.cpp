// The executor: journal, run, revert, recover, undo.
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <set>
#include <thread>
#include <unordered_set>

#include "engine/rename/filesystem.hpp"
#include "engine/rename/rename.hpp"

namespace descent::rename {

using detail::OsError;
using detail::Status;

namespace {

std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string local_time(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm local{};
  localtime_r(&t, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

std::string plural(std::int64_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// A step as a person would say it, for errors.
std::string doing(const Step& step, bool reverting) {
  const Step::Kind k = step.kind;
  if (k == Step::Kind::move || k == Step::Kind::copy_move || k == Step::Kind::trash)
    return "renaming " + printable(reverting ? step.to : step.from) + " to " + printable(reverting ? step.from : step.to);
  if (k == Step::Kind::exchange) return "exchanging " + printable(step.from) + " with " + printable(step.to);
  if (k == Step::Kind::make_directory)
    return (reverting ? "removing directory " : "creating directory ") + printable(step.to);
  if (k == Step::Kind::chmod) return "changing the mode of " + printable(step.from);
  return "re-targeting the link " + printable(step.from);
}

// The directories to fsync and report, each once (views into `steps`, so
// that 100k steps in one directory cost no allocation each).
std::vector<std::string> directories_of(const std::vector<Step>& steps, std::size_t count) {
  std::set<std::string_view> seen;
  std::string_view last;
  auto add = [&](std::string_view path) {
    const std::string_view dir = detail::split(path).first;
    if (dir != last) seen.insert(dir);
    last = dir;
  };
  for (std::size_t i = 0; i < count && i < steps.size(); ++i) {
    const Step& step = steps[i];
    add(step.from.empty() ? step.to : step.from);
    if (!step.to.empty()) add(step.to);
    if (step.kind == Step::Kind::trash) add(step.scratch());
  }
  return {seen.begin(), seen.end()};
}

// A directory with chattr +i lets nothing in or out; one with +a lets
// files in but none out, so what a batch moved in could not be taken back
// when a later step fails, nor by an undo. Refused before anything moves,
// rather than failing at that step or leaving a batch half done.
std::vector<Problem> locked_directories(const std::vector<std::string>& directories) {
  std::vector<Problem> problems;
  for (const std::string& dir : directories) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue;  // one the batch makes: it has no flags yet
    int flags = 0;
    const bool known = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;  // not every file system has them
    ::close(fd);
    if (!known) continue;
    if (flags & FS_IMMUTABLE_FL) {
      problems.push_back({dir, "is immutable (chattr +i): nothing can be renamed into or out of it", {}});
      continue;
    }
    if (flags & FS_APPEND_FL) {
      problems.push_back({dir,
                          "is append-only (chattr +a): nothing can be renamed out of it, so what the batch "
                          "moved into it could not be taken back if a later step failed, or by an undo",
                          {}});
    }
  }
  return problems;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> moves_of(const std::vector<Step>& steps) {
  // Where each object a step moved is now -> where it was before the batch.
  // A path under a moved directory takes its origin from the directory's.
  std::map<std::string, std::string, std::less<>> origin;
  auto nearest = [&](std::string_view path, bool itself) {
    std::string_view a = itself ? path : detail::split(path).first;
    for (;;) {
      const auto it = origin.find(a);
      if (it != origin.end()) return it;
      if (a == "/" || a == "." || a.empty()) return origin.end();
      a = detail::split(a).first;
    }
  };
  auto before = [&](const std::string& path) {
    const auto it = nearest(path, true);
    return it == origin.end() ? path : it->second + path.substr(it->first.size());
  };
  // Takes the entries at and under `path` out, keyed by what follows `path`.
  // ("a-b" sorts between "a" and "a/b": the entries under are looked up
  // apart from the one at.)
  auto take = [&](const std::string& path) {
    std::vector<std::pair<std::string, std::string>> taken;
    const std::string below = path + "/";
    for (auto it = origin.lower_bound(below); it != origin.end() && it->first.starts_with(below);) {
      taken.emplace_back(it->first.substr(path.size()), std::move(it->second));
      it = origin.erase(it);
    }
    origin.erase(path);
    return taken;
  };
  auto put = [&](const std::string& path, std::string was, std::vector<std::pair<std::string, std::string>>& taken) {
    for (auto& [suffix, o] : taken) origin.insert_or_assign(path + suffix, std::move(o));
    origin.insert_or_assign(path, std::move(was));
  };
  for (const Step& step : steps) {
    if (step.kind == Step::Kind::move || step.kind == Step::Kind::copy_move) {
      std::string was = before(step.from);
      auto taken = take(step.from);
      put(step.to, std::move(was), taken);
    } else if (step.kind == Step::Kind::exchange) {
      std::string was_from = before(step.from), was_to = before(step.to);
      auto taken_from = take(step.from), taken_to = take(step.to);
      put(step.to, std::move(was_from), taken_from);
      put(step.from, std::move(was_to), taken_to);
    }
    // make_directory, chmod and retarget rename nothing; a trashed
    // victim is not the user's rename.
  }
  std::vector<std::pair<std::string, std::string>> moves;
  for (const auto& [now, was] : origin) {
    const auto up = nearest(now, false);
    const std::string carried = up == origin.end() ? now : up->second + now.substr(up->first.size());
    if (was != carried) moves.emplace_back(was, now);
  }
  return moves;
}

std::vector<std::pair<std::string, std::string>> Renamer::moves(std::int64_t batch) {
  return moves_of(journal_.steps(batch));
}

Renamer::Renamer(state::Database& db, Options options) : journal_(db), options_(std::move(options)) {}

Outcome Renamer::submit(const Batch& batch, const std::atomic<bool>& cancelled, const Progress& progress) {
  return submit(view_of(batch), cancelled, progress);
}

Outcome Renamer::submit(std::span<const OperationView> operations, const std::atomic<bool>& cancelled,
                        const Progress& progress) {
  return execute(RenamePlan::make(operations, options_.trash_dir, &cancelled), cancelled, progress);
}

Outcome Renamer::submit(std::vector<OperationView>&& operations, const std::atomic<bool>& cancelled,
                        const Progress& progress) {
  return execute(RenamePlan::make(std::move(operations), options_.trash_dir, &cancelled), cancelled, progress);
}

// A batch rolled back while the journal could not record so (a full disk)
// is still "running" there. Settled at the next start, it would be judged by
// inode against whatever the tree holds by then: a later batch that put the
// same files at the same names would be taken for it and rolled back. So it
// is settled now, while the tree is as its rollback left it, before anything
// else moves; if the journal still cannot record it, nothing else starts.
void Renamer::settle_leftovers() {
  if (!journal_.unfinished().empty()) recover();
}

Outcome Renamer::execute(const RenamePlan& plan, const std::atomic<bool>& cancelled, const Progress& progress) {
  Outcome outcome;
  outcome.operations = plan.operations;
  outcome.steps = plan.steps.size();
  outcome.trashed = static_cast<std::size_t>(std::count_if(
      plan.steps.begin(), plan.steps.end(), [](const Step& step) { return step.kind == Step::Kind::trash; }));
  if (plan.steps.empty()) return outcome;  // nothing to change, nothing to undo
  settle_leftovers();
  std::vector<std::string> directories = directories_of(plan.steps, plan.steps.size());
  if (auto locked = locked_directories(directories); !locked.empty()) throw BatchRefused(std::move(locked));
  outcome.batch = journal_.begin(plan, now_unix());
  run(outcome.batch, plan.steps, Direction::forward, cancelled, progress);
  outcome.directories = std::move(directories);
  return outcome;
}

Outcome Renamer::undo(const std::atomic<bool>& cancelled, const Progress& progress, std::optional<std::int64_t> only) {
  settle_leftovers();
  const auto entry = journal_.last_done();
  if (!entry) throw UndoRefused("no rename batch to undo");
  if (only && entry->id != *only)
    throw UndoRefused("batch " + std::to_string(*only) + " is not the most recent one (" + std::to_string(entry->id) +
                      " is); nothing was changed");
  const std::vector<Step> steps = journal_.steps(entry->id);
  // Nothing may have moved since: every object where the batch left it.
  // A path below a directory that a later step moved is checked as the undo
  // reaches it instead.
  {
    detail::Directories dirs;
    detail::StepRunner runner(dirs);
    std::unordered_set<std::string> later_sources;
    std::set<std::pair<std::uint64_t, std::uint64_t>> seen;
    for (std::size_t i = steps.size(); i-- > 0;) {
      const Step& step = steps[i];
      const auto key = std::make_pair(step.id.dev, step.id.ino);
      const bool last_for_object = step.kind == Step::Kind::make_directory || seen.insert(key).second;
      bool final_path = true;
      const std::string& where = step.to.empty() ? step.from : step.to;
      for (std::string_view a = detail::split(where).first; final_path; a = detail::split(a).first) {
        if (later_sources.count(std::string(a))) final_path = false;
        if (a == "/" || a.empty()) break;
      }
      if (last_for_object && final_path && step.kind != Step::Kind::make_directory && !runner.shows_done(step))
        throw UndoRefused("cannot undo the batch of " + local_time(entry->created) + ": " +
                          printable(step.kind == Step::Kind::chmod || step.kind == Step::Kind::retarget ? step.from
                                                                                                        : step.to) +
                          " changed since; nothing was changed");
      if (step.kind == Step::Kind::move || step.kind == Step::Kind::exchange || step.kind == Step::Kind::copy_move) {
        later_sources.insert(step.from);
        later_sources.insert(step.to);
      }
    }
    // And every name the undo gives back is free: one the batch left
    // empty (no step moved anything into it) that something took since
    // would fail its step part-way. Paths under a name the batch moved are
    // looked at through that name instead.
    std::unordered_set<std::string> entered, positions;
    for (const Step& step : steps) {
      if (!step.to.empty()) entered.insert(step.to);
      positions.insert(step.from);
      positions.insert(step.to);
    }
    for (const Step& step : steps) {
      if (step.kind != Step::Kind::move && step.kind != Step::Kind::copy_move && step.kind != Step::Kind::trash)
        continue;
      if (entered.count(step.from)) continue;
      bool under_moved = false;
      for (std::string_view a = detail::split(step.from).first; !under_moved && a != "/" && !a.empty();
           a = detail::split(a).first)
        under_moved = positions.count(std::string(a)) > 0;
      struct stat st {};
      if (!under_moved && ::lstat(step.from.c_str(), &st) == 0)
        throw UndoRefused("cannot undo the batch of " + local_time(entry->created) + ": " + printable(step.from) +
                          " exists again (made since the batch); nothing was changed");
    }
  }
  std::vector<std::string> directories = directories_of(steps, steps.size());
  if (const auto locked = locked_directories(directories); !locked.empty())
    throw UndoRefused("cannot undo the batch of " + local_time(entry->created) + ": " + printable(locked[0].path) +
                      " " + locked[0].reason + "; nothing was changed");
  journal_.mark(entry->id, Journal::State::undoing);
  run(entry->id, steps, Direction::backward, cancelled, progress);
  Outcome outcome;
  outcome.batch = entry->id;
  outcome.operations = static_cast<std::size_t>(entry->operations);
  outcome.steps = steps.size();
  outcome.directories = std::move(directories);
  outcome.moves = moves_of(steps);
  return outcome;
}

void Renamer::run(std::int64_t batch, const std::vector<Step>& steps, Direction direction,
                  const std::atomic<bool>& cancelled, const Progress& progress) {
  const bool forward = direction == Direction::forward;
  const std::size_t n = steps.size();
  auto step_at = [&](std::size_t k) -> const Step& { return forward ? steps[k] : steps[n - 1 - k]; };
  detail::Directories dirs;
  detail::StepRunner runner(dirs);
  if (forward) runner.cancel_on(&cancelled);  // a rollback is never cancelled

  std::size_t k = 0;
  std::optional<OsError> failure;
  bool was_cancelled = false;
  // An undo leaves a directory the batch made if something else was put in
  // it since: those files are not the batch's to move or delete, and the
  // rest of the undo need not wait for them. So the step is kept as done,
  // which is also what recovery and a rollback of the undo find there.
  std::vector<char> kept;
  auto last_report = std::chrono::steady_clock::now();
  for (; k < n; ++k) {
    if (cancelled.load(std::memory_order_relaxed)) {
      was_cancelled = true;
      break;
    }
    const Step& step = step_at(k);
#ifdef DESCENT_TEST_HOOKS
    if (options_.failpoint && options_.failpoint->step == k) {
      switch (options_.failpoint->action) {
        case Failpoint::Action::fail:
          failure.emplace(doing(step, !forward) + " (injected failure)",
                          step.from.empty() ? step.to : step.from, EIO);
          break;
        case Failpoint::Action::kill:
          ::raise(SIGKILL);
          break;
        case Failpoint::Action::sigterm: {
          // The signal arrives while step k is pending. The daemon reacts on
          // its I/O thread by raising the cancel flag: wait for that (a few
          // seconds at most), so that "SIGTERM at step k" means just that.
          ::raise(SIGTERM);
          const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
          while (!cancelled.load() && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          was_cancelled = cancelled.load();
          break;
        }
        case Failpoint::Action::cancel:
          was_cancelled = true;
          break;
        case Failpoint::Action::pause:
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
          break;
        case Failpoint::Action::stall: {
          // As a slow file system would hold the batch here: until the
          // client cancels (then the loop sees it), 10 s at most.
          const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (!cancelled.load() && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          break;
        }
      }
      if (failure || was_cancelled) break;
    }
#endif
    try {
      if (forward) {
        runner.apply(step);
      } else {
        runner.revert(step);
      }
    } catch (const OsError& e) {
      if (!forward && step.kind == Step::Kind::make_directory && (e.error == ENOTEMPTY || e.error == EEXIST)) {
        kept.resize(n);
        kept[k] = 1;
        continue;
      }
      if (e.error == ECANCELED) {
        was_cancelled = true;
      } else {
        failure = e;
      }
      break;
    }
    if (progress && (k & 63) == 63) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_report >= std::chrono::milliseconds(100)) {
        last_report = now;
        progress(k + 1, n);
      }
    }
  }

  // A leftover scratch name is untidy, not harmful: say so in the journal.
  auto finish_all = [&] {
    std::vector<std::string> problems;
    for (const Step& step : steps) {
      try {
        runner.finish(step);
      } catch (const OsError& e) {
        problems.push_back(std::string("left behind: ") + e.what());
      }
    }
    return problems;
  };
  if (!failure && !was_cancelled) {
    auto problems = finish_all();
    for (auto& problem : detail::Directories::sync(directories_of(steps, n))) problems.push_back(std::move(problem));
    // Every step is done, but until the journal says so a restart would take
    // the batch for an interrupted one (and the undo for one to redo), maybe
    // days later, over files the user has since worked on. So a mark that
    // fails (a full disk) takes the steps back like a failed step: then the
    // journal's word is true of the tree whether or not its next mark lands.
    try {
#ifdef DESCENT_TEST_HOOKS
      // Step n: after the last step, before the mark.
      if (options_.failpoint && options_.failpoint->step == n) {
        if (options_.failpoint->action == Failpoint::Action::kill) ::raise(SIGKILL);
        if (options_.failpoint->action == Failpoint::Action::fail)
          throw state::SqliteError(13, "database or disk is full (injected failure)");  // SQLITE_FULL
      }
#endif
      journal_.mark(batch, forward ? Journal::State::done : Journal::State::undone,
                    problems.empty() ? std::string() : problems.front());
    } catch (const std::exception& e) {
      failure.emplace(detail::OsError::Told{},
                      std::string("the journal could not record ") + (forward ? "the batch" : "the undo") +
                          " as done (" + e.what() + ")",
                      std::string(), EIO);
    }
    if (!failure) {
      // Only the history is at stake: the next batch prunes it again.
      if (forward) {
        try {
          journal_.prune(options_.undo_history);
        } catch (const std::exception&) {
        }
      }
      if (progress) progress(n, n);
      return;
    }
  }

  // Put back steps k-1 ... 0, in reverse; keep going past a step that cannot
  // be put back, so as little as possible is left behind, and say what.
  std::vector<std::string> left;
  for (std::size_t j = k; j-- > 0;) {
    const Step& step = step_at(j);
    if (!kept.empty() && kept[j]) continue;  // never taken away
    try {
      if (forward) {
        runner.revert(step);
      } else {
        runner.apply(step);
      }
    } catch (const OsError& e) {
      left.push_back(e.what());
    }
  }
  finish_all();
  detail::Directories::sync(directories_of(steps, n));
  const std::string what = forward ? "the batch" : "the undo";
  std::string message;
  if (failure) {
    message = std::string(failure->what());
  } else {
    message = "cancelled";
  }
  if (left.empty()) {
    message += "; " + what + " was rolled back, nothing changed";
    journal_.mark(batch, forward ? Journal::State::rolled_back : Journal::State::done,
                  forward ? message : std::string());
  } else {
    message += "; rolling " + what + " back failed too: " + left.front();
    if (left.size() > 1) message += " (and " + std::to_string(left.size() - 1) + " more)";
    journal_.mark(batch, Journal::State::broken, message);
  }
  if (failure) throw StepFailed(message, failure->path, failure->error, left.empty());
  throw BatchCancelled(message);
}

std::vector<std::string> Renamer::recover() {
  std::vector<std::string> reports;
  for (const Journal::Entry& entry : journal_.unfinished()) {
    std::vector<Step> steps;
    std::vector<std::string> problems;
    try {
      steps = journal_.steps(entry.id);
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
    detail::Directories dirs;
    detail::StepRunner runner(dirs);
    runner.know(steps);
    const bool was_undo = entry.state == Journal::State::undoing;
    auto attempt = [&](auto&& action) {
      try {
        action();
      } catch (const std::exception& e) {
        problems.push_back(e.what());
      }
    };
    if (!was_undo) {
      // Steps after the crash point show as not applied; those before, applied.
      for (std::size_t i = steps.size(); i-- > 0;) {
        attempt([&] {
          switch (runner.settle(steps[i])) {
            case Status::applied:
              runner.revert(steps[i]);
              break;
            case Status::not_applied:
            case Status::unknown:
              // Not done: beyond the crash point, the step's source need not
              // exist yet (an earlier step, not run either, would create it).
              break;
          }
        });
      }
    } else {
      // An undo reverts the steps from the last one down; it was stopped
      // after reverting steps m..n-1. Find m (from the end, each check sees
      // the state its step left) and run those steps forwards again, so the
      // batch stays done, as before the undo began. A directory the batch
      // made is there whether the undo kept it (see run()) or had not come
      // to it yet: it does not mark where the undo stopped, and stays.
      std::size_t m = steps.size();
      attempt([&] {
        for (std::size_t i = steps.size(); i-- > 0;) {
          if (runner.settle(steps[i]) != Status::applied) {
            m = i;
          } else if (steps[i].kind != Step::Kind::make_directory) {
            break;
          }
        }
      });
      for (std::size_t i = m; problems.empty() && i < steps.size(); ++i) {
        if (steps[i].kind == Step::Kind::make_directory && runner.shows_done(steps[i])) continue;
        attempt([&] {
          // Only what the undo put back, as it left it: something else there
          // now (put by hand before this start) is not the batch's to move.
          // A copy back across file systems is another inode: not checked.
          if (steps[i].kind != Step::Kind::copy_move && runner.settle(steps[i]) != Status::not_applied)
            throw std::runtime_error(doing(steps[i], false) + ": not as the undo left it; left as it is");
          runner.apply(steps[i]);
        });
      }
    }
    for (const Step& step : steps) attempt([&] { runner.finish(step); });
    detail::Directories::sync(directories_of(steps, steps.size()));
    std::string message = std::string("recovered an interrupted ") + (was_undo ? "undo of a batch" : "batch") +
                          " of " + plural(entry.operations, "operation") + " from " + local_time(entry.created);
    if (problems.empty()) {
      message += was_undo ? "; the batch stays done, nothing changed" : "; nothing changed";
      journal_.mark(entry.id, was_undo ? Journal::State::done : Journal::State::rolled_back, message);
    } else {
      message += "; could not restore everything: " + problems.front();
      if (problems.size() > 1) message += " (and " + std::to_string(problems.size() - 1) + " more)";
      journal_.mark(entry.id, Journal::State::broken, message);
    }
    journal_.add_recovery(entry.id, now_unix(), message);
    reports.push_back(message);
  }
  return reports;
}

}  // namespace descent::rename
