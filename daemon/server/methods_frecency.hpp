// The frecency methods of descentd. Paths travel as MessagePack bin (str is
// accepted too); they must be absolute and are normalized lexically (trailing
// and repeated slashes, ".", "..") before use.
//
//   frecency.add    [path]  or  [path, unix-time]          -> true
//       A visit. Also accepted as a notification (Emacs sends it fire-and-
//       forget). The directory must exist: "not-found" (ENOENT, ENOTDIR) or
//       "os-error" otherwise. Without a time the daemon's clock is used.
//   frecency.query  [keywords: array of bin, limit: int]    -> [match...]
//       Best first; limit 0 means all. Matches: {"path": bin, "score": float,
//       "rank": float, "last": int (unix seconds of the last visit)}. A
//       float with an integral value arrives as an integer (msgpack-cxx
//       packs it so): read "score" and "rank" as any number.
//       Directories met that no longer exist are dropped from the index.
//   frecency.list   []                                      -> [match...]
//       Every entry, best first, without checking the file system.
//   frecency.remove [path]                                  -> true | false (was not there)
//   frecency.import [format: "zoxide" | "z" | "autojump", file: bin] -> int
//       The number of entries read. The file is read by the daemon, so it
//       must be an absolute path. A malformed file: "bad-params" naming the
//       line; the index is unchanged.
//
// Every method runs on a worker: writes fsync, and queries stat() what they
// return; the index's own mutex serialises them, so no visit is lost.
//
// Error kinds: "bad-params" (a refused argument or import file),
// "not-found", "os-error" (with the strerror text and the file), and
// "state-error" (the SQLite database failed; the message says how).
#pragma once

#include "engine/frecency/index.hpp"
#include "server/methods.hpp"

namespace descent::server {

// `index` must outlive the table's use. Open it at start-up with
//   frecency::Index index(info.state_dir / "state.db");
void add_frecency_methods(MethodTable& methods, const DaemonInfo& info, frecency::Index& index);

}  // namespace descent::server
