// The rename methods of descentd (issue #4): the batches behind wdired's
// C-c C-c. Every file name is MessagePack bin (str accepted), absolute, and
// arrives with the (device, inode) the editor saw.
//
//   rename.submit   [operations]                       -> outcome
//       operations: an array of maps, one per edit, all applied as one batch:
//         {"op": "rename",   "from": bin, "to": bin, "dev": int, "ino": int,
//                            "overwrite": bool (optional; the user confirmed
//                            replacing what is at "to": it goes to the trash)}
//         {"op": "chmod",    "path": bin, "dev": int, "ino": int, "mode": int (07777 at most)}
//         {"op": "retarget", "path": bin, "dev": int, "ino": int, "target": bin}
//         {"op": "mkdir",    "path": bin}
//       "from"/"path" name a file as it is before the batch; "to" names it as
//       it must be after the whole batch: when the batch also renames a
//       directory above it, "to" spells that directory's new name. Missing
//       parent directories of "to" are created.
//       Long batches send notifications [2, "rename.progress", [request_id,
//       done, total]] about every 100 ms. A `cancel` of the request (C-g), a
//       lost client or a stopping daemon rolls the batch back.
//       outcome: {"batch": int (0 if there was nothing to do), "operations": int,
//                 "steps": int, "directories": [bin...] (whose listings changed)}
//   rename.identify [directories]                      -> [listing or nil...]
//       What each directory holds now: {"names": [bin...], "ids": [dev, ino,
//       dev, ino...]} (lstat), or nil if it cannot be read: the (device,
//       inode) of every file an editor shows, recorded when editing begins.
//   rename.undo     []                                 -> outcome
//       Reverts the most recent batch not yet undone (of the last 100). Its
//       outcome also has "moves": what the batch had renamed, as
//       rename.moves gives it (absent when it renamed nothing).
//   rename.moves    [batch]                            -> [before, after, ...]
//       What the batch renamed, flat, as bin: each object's name before the
//       batch, then after it (a file carried along by a renamed directory is
//       not listed apart). Empty for a batch the journal no longer holds.
//   rename.recent   [] or [limit]                      -> [entry...], newest first
//       entry: {"batch": int, "created": int (unix seconds), "operations": int,
//               "steps": int, "state": "done" | "rolled-back" | "undone" |
//               "broken" | "running" | "undoing", "message": str}
//   rename.recovery []                                 -> [str...]
//       What start-up recovery did ("recovered an interrupted batch of N
//       operations from TIME; nothing changed"), each told to one client once.
//
// Error kinds: "bad-params" (malformed operations), "refused" (validation:
// nothing was touched; the message names every offending entry and why, and
// the details {"problems": [{"path": bin, "reason": str, "occupied": bin}]}
// list them, "occupied" naming a destination that exists outside the batch),
// "os-error" (a step failed; the message names the file and the strerror
// text and says the batch was rolled back), "cancelled" (rolled back),
// "conflict" (undo: nothing to undo, or the files moved since; nothing
// changed), "state-error" (the journal database failed).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "engine/rename/rename.hpp"
#include "server/methods.hpp"

namespace descent::server {

// What the daemon keeps for the rename methods: its own connection to the
// state database, the Renamer, and what recovery did at start-up. Construct
// it once at start-up, before serving; the constructor runs crash recovery
// (log the lines in `recovered`).
struct RenameArea {
  explicit RenameArea(const DaemonInfo& info);
  state::Database database;
  rename::Renamer renamer;
  std::vector<std::string> recovered;
  std::mutex mutex;  // the SQLite connection and the file system: one batch at a time
};

// Options from the environment: the trash ($XDG_DATA_HOME/Trash) and, in
// builds with DESCENT_TEST_HOOKS, DESCENT_FAILPOINT=rename-step:K:fail|kill|sigterm|cancel.
rename::Renamer::Options rename_options_from_environment();

// `area` must outlive the table's use. Calls are serialized: one batch at a time.
void add_rename_methods(MethodTable& methods, const DaemonInfo& info, RenameArea& area);

}  // namespace descent::server
