// The listing method of descentd (issue #3): what `ls --dired SWITCHES -- DIR`
// prints, made by the lister engine, for the insert-directory advice.
//
//   list [dir: bin, switches: array of str|bin, env: map str -> str|bin | nil]
//     -> {"text": bin, "offsets": bin, "quoting-style": str}
//       dir: absolute path (a directory, or a single file as dired inserts
//         after a rename); switches: as Emacs splits dired-listing-switches
//         ("-al", "--group-directories-first", "--time-style=long-iso", ...);
//         env: the caller's LC_ALL, LC_COLLATE, LC_CTYPE, LC_TIME, LC_NUMERIC,
//         LC_MESSAGES, LANG, LANGUAGE, TZ, TIME_STYLE, and BLOCK_SIZE, LS_BLOCK_SIZE,
//         BLOCKSIZE, POSIXLY_CORRECT, QUOTING_STYLE when set (absent = unset;
//         other names are ignored).
//       text: the listing lines exactly as ls prints them, without the
//         //DIRED// and //DIRED-OPTIONS// trailer lines.
//       offsets: the //DIRED// numbers packed as little-endian uint32, two per
//         file name (begin, end), byte offsets into text, in line order:
//         8 bytes a file, so the module reads them with one memcpy each.
//       quoting-style: "literal" or "escape" (-b), as //DIRED-OPTIONS// says.
//   Runs on a worker thread; polls the call's cancel flag between entries.
//
// Error kinds: "unsupported" (switches, locale or file outside what the engine
// reproduces byte for byte, or any file ls would complain about: run the real
// ls instead; the message says why), "cancelled", "bad-params".
//
// Test hooks (DESCENT_TEST_HOOKS builds, daemon started with
// DESCENT_TEST_HOOKS=1): `test.list-delay [microseconds]` -> true makes every
// later `list` sleep that long per entry (0 turns it off), for C-g tests.
#pragma once

#include "server/methods.hpp"

namespace descent::server {

// The lister keeps no state; nothing to open at start-up.
void add_lister_methods(MethodTable& methods, const DaemonInfo& info);

}  // namespace descent::server
