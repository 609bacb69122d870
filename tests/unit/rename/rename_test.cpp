// The rename engine against real temporary trees and a real SQLite journal:
// each "must hold" of issue #4 is a test here; the snapshot is the oracle.
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <atomic>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "engine/rename/filesystem.hpp"
#include "tree.hpp"

namespace descent::rename::testing {
namespace {

class RenameTest : public ::testing::Test {
 protected:
  RenameTest() : db_(state::Database::open(state_.path("state.db"))) {}

  Renamer renamer(std::optional<Failpoint> failpoint = std::nullopt) {
    Renamer::Options options;
    options.trash_dir = trash();
    options.failpoint = failpoint;
    return Renamer(db_, options);
  }
  std::string trash() const { return state_.path("Trash"); }
  std::string p(std::string_view relative) const { return tree_.path(relative); }

  Outcome submit(const std::vector<Operation>& ops, std::optional<Failpoint> failpoint = std::nullopt) {
    Batch batch{ops};
    auto r = renamer(failpoint);
    return r.submit(batch, never_);
  }

  // Expects the batch to be refused without any change; returns the problems.
  std::vector<Problem> refused(const std::vector<Operation>& ops) {
    const Snapshot before = snapshot(tree_.root);
    try {
      submit(ops);
    } catch (const BatchRefused& e) {
      EXPECT_EQ(snapshot(tree_.root), before);
      return e.problems;
    }
    ADD_FAILURE() << "the batch was not refused";
    return {};
  }

  // Runs `ops` (or, without them, the undo of the last batch) in a child
  // process that is killed at step k, as a daemon killed with -9 stops.
  void killed_at(std::size_t k, const std::vector<Operation>* ops) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Its own connection, as a restarted daemon would have.
      auto db = state::Database::open(state_.path("state.db"));
      Renamer::Options options;
      options.trash_dir = trash();
      options.failpoint = Failpoint{k, Failpoint::Action::kill};
      Renamer r(db, options);
      std::atomic<bool> never{false};
      try {
        if (ops) {
          r.submit({*ops}, never);
        } else {
          r.undo(never);
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", ops ? "submit" : "undo", e.what());
      }
      ::_exit(3);  // not killed: the failpoint was not reached
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  }

  // Expects the undo of the last batch to be refused, naming `named`, and
  // nothing to change.
  void undo_is_refused(const std::string& named) {
    const auto before = snapshot(tree_.root);
    auto r = renamer();
    try {
      r.undo(never_);
      ADD_FAILURE() << "the undo was not refused";
    } catch (const UndoRefused& e) {
      EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
    }
    EXPECT_EQ(snapshot(tree_.root), before);
  }

  // Expects the tree of `rich_batch` to be as `then`, but for what a rich
  // batch's undo or rollback must make again with new inodes: re-targeted
  // links (a symlink's inode cannot be kept) and the directories the batch
  // created (n1...). Those keep their mode and contents.
  static void expect_as_remade(const Snapshot& now, const Snapshot& then) {
    ASSERT_EQ(now.size(), then.size());
    for (const auto& [name, entry] : then) {
      ASSERT_EQ(now.count(name), 1u) << name;
      if (S_ISLNK(entry.mode) || name.starts_with("n1")) {
        EXPECT_EQ(now.at(name).mode, entry.mode) << name;
        EXPECT_EQ(now.at(name).data, entry.data) << name;
      } else {
        EXPECT_EQ(now.at(name), entry) << name;
      }
    }
  }

  // Kills a run of `ops` at each of its steps in turn, as kill -9 stops the
  // daemon; each time, recovery must put the tree back as it was and say so
  // once. `also` checks more after each recovery.
  void recovers_from_a_kill_at_every_step(const std::vector<Operation>& ops,
                                          const std::function<void(Renamer&, const std::string&)>& also = {}) {
    const std::size_t steps = RenamePlan::make({ops}, trash()).steps.size();
    const auto before = snapshot(tree_.root);
    for (std::size_t k = 0; k < steps; ++k) {
      SCOPED_TRACE("killed at step " + std::to_string(k));
      ASSERT_NO_FATAL_FAILURE(killed_at(k, &ops));
      auto r = renamer();
      const auto reports = r.recover();
      ASSERT_EQ(reports.size(), 1u);
      EXPECT_NE(reports[0].find("; nothing changed"), std::string::npos) << reports[0];
      ASSERT_EQ(snapshot(tree_.root), before);
      if (also) also(r, reports[0]);
    }
  }

  TempTree tree_, state_;
  state::Database db_;
  std::atomic<bool> never_{false};
};

std::string all_reasons(const std::vector<Problem>& problems) {
  std::string out;
  for (const auto& problem : problems) out += problem.path + ": " + problem.reason + "\n";
  return out;
}

// ---- Validation before any change ----

TEST_F(RenameTest, RefusesInvalidNamesAndNamesEveryOne) {
  write_file(p("a"), "a");
  const std::string nul = p("x") + std::string(1, '\0') + "y";
  const std::string long_name = p(std::string(256, 'n'));
  std::string long_path = tree_.root;
  while (long_path.size() < 4200) long_path += "/" + std::string(200, 'd');
  const std::vector<std::string> bad = {nul, "", p("."), p(".."), tree_.root + "/sub/../a", long_name, long_path,
                                        "relative"};
  std::vector<Operation> ops;
  for (const auto& destination : bad) ops.push_back(rename_op(p("a"), destination));
  // Each op renames the same source: the first bad name is refused on its own, so give each its own source.
  for (std::size_t i = 0; i < bad.size(); ++i) {
    write_file(p("s" + std::to_string(i)), "s");
    ops[i] = rename_op(p("s" + std::to_string(i)), bad[i]);
  }
  const auto problems = refused(ops);
  ASSERT_EQ(problems.size(), bad.size()) << all_reasons(problems);
  const std::string text = all_reasons(problems);
  EXPECT_NE(text.find("NUL"), std::string::npos) << text;
  EXPECT_NE(text.find("empty"), std::string::npos) << text;
  EXPECT_NE(text.find("\".\" is not a file name"), std::string::npos) << text;
  EXPECT_NE(text.find("\"..\" is not a file name"), std::string::npos) << text;
  EXPECT_NE(text.find("NAME_MAX"), std::string::npos) << text;
  EXPECT_NE(text.find("PATH_MAX"), std::string::npos) << text;
  EXPECT_NE(text.find("not an absolute path"), std::string::npos) << text;
}

TEST_F(RenameTest, RefusesTwoSourcesToOneDestination) {
  write_file(p("a"), "a");
  write_file(p("b"), "b");
  const auto problems = refused({rename_op(p("a"), p("c")), rename_op(p("b"), p("c"))});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].reason.find("two files would get this name"), std::string::npos);
  EXPECT_NE(problems[0].reason.find(p("a")), std::string::npos);
  EXPECT_NE(problems[0].reason.find(p("b")), std::string::npos);
}

TEST_F(RenameTest, RefusesOccupiedDestinationUnlessConfirmed) {
  write_file(p("a"), "a");
  write_file(p("b"), "b");
  const auto problems = refused({rename_op(p("a"), p("b"))});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].reason.find("already exists"), std::string::npos) << problems[0].reason;
}

TEST_F(RenameTest, RefusesChangedAndVanishedSources) {
  write_file(p("a"), "a");
  write_file(p("gone"), "g");
  auto changed = rename_op(p("a"), p("a2"));
  auto vanished = rename_op(p("gone"), p("gone2"));
  // Replace a by another file (another inode), remove gone.
  write_file(p("a.new"), "other");
  ASSERT_EQ(::rename(p("a.new").c_str(), p("a").c_str()), 0);
  ASSERT_EQ(::unlink(p("gone").c_str()), 0);
  const auto problems = refused({changed, vanished});
  ASSERT_EQ(problems.size(), 2u) << all_reasons(problems);
  const std::string text = all_reasons(problems);
  EXPECT_NE(text.find(p("a") + ": changed on disk since the edit began"), std::string::npos) << text;
  EXPECT_NE(text.find(p("gone") + ": vanished since the edit began"), std::string::npos) << text;
}

// chattr +a or +i on a directory (root only): what moves into an append-only
// directory cannot move out again, so a batch that failed later could not be
// rolled back, nor undone; nothing moves out of either. Refused up front,
// naming the directory, rather than left half done ("broken").
class LockedDirectory {
 public:
  LockedDirectory(const std::string& dir, int flag) : dir_(dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int flags = 0;
    set_ = fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags |= flag, true) &&
           ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    if (fd >= 0) ::close(fd);
  }
  ~LockedDirectory() {
    const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int flags = 0;
    if (set_ && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
      flags &= ~(FS_APPEND_FL | FS_IMMUTABLE_FL);
      ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
    if (fd >= 0) ::close(fd);
  }
  bool set() const { return set_; }

 private:
  std::string dir_;
  bool set_ = false;
};

TEST_F(RenameTest, RefusesAnAppendOnlyOrImmutableDirectory) {
  make_dir(p("in"));
  make_dir(p("frozen"));
  write_file(p("a"), "a");
  write_file(p("b"), "b");
  write_file(p("frozen/c"), "c");
  LockedDirectory append_only(p("in"), FS_APPEND_FL);
  LockedDirectory immutable(p("frozen"), FS_IMMUTABLE_FL);
  if (!append_only.set() || !immutable.set()) GTEST_SKIP() << "chattr needs root and a file system that has it";
  const auto problems = refused({rename_op(p("a"), p("in/a")), rename_op(p("b"), p("b2")),
                                 rename_op(p("frozen/c"), p("c2"))});
  const std::string text = all_reasons(problems);
  ASSERT_EQ(problems.size(), 2u) << text;
  EXPECT_NE(text.find(p("in") + ": is append-only (chattr +a)"), std::string::npos) << text;
  EXPECT_NE(text.find(p("frozen") + ": is immutable (chattr +i)"), std::string::npos) << text;
}

TEST_F(RenameTest, RefusesToUndoThroughAnAppendOnlyDirectory) {
  make_dir(p("in"));
  write_file(p("a"), "a");
  submit({rename_op(p("a"), p("in/a"))});
  LockedDirectory append_only(p("in"), FS_APPEND_FL);
  if (!append_only.set()) GTEST_SKIP() << "chattr needs root and a file system that has it";
  undo_is_refused(p("in") + " is append-only (chattr +a)");
}

TEST_F(RenameTest, RefusesDirectoryIntoItsOwnSubtree) {
  make_dir(p("d"));
  make_dir(p("d/sub"));
  const auto problems = refused({rename_op(p("d"), p("d/sub/d"))});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].reason.find("own subtree"), std::string::npos);
}

// "." and ".." expanded by Emacs name the source's own directory or one
// above it: overwriting it would take the source along to the trash.
TEST_F(RenameTest, RefusesADestinationThatContainsTheSource) {
  make_dir(p("d"));
  write_file(p("d/a"), "a");
  write_file(p("d/b"), "b");
  make_dir(p("d/sub"));
  make_dir(p("d/sub/deeper"));
  write_file(p("d/c"), "c");
  const auto problems = refused({rename_op(p("d/a"), p("d"), true), rename_op(p("d/b"), tree_.root),
                                 rename_op(p("d/sub/deeper"), p("d/sub"), true), rename_op(p("d/c"), "/")});
  ASSERT_EQ(problems.size(), 4u) << all_reasons(problems);
  const std::string text = all_reasons(problems);
  EXPECT_NE(text.find(p("d/a") + ": " + p("d") + " is a directory that contains " + p("d/a")), std::string::npos)
      << text;
  EXPECT_NE(text.find(p("d/b") + ": " + tree_.root + " is a directory that contains " + p("d/b")), std::string::npos)
      << text;
  EXPECT_NE(text.find(p("d/sub/deeper") + ": " + p("d/sub") + " is a directory that contains " + p("d/sub/deeper")),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(p("d/c") + ": / is a directory that contains " + p("d/c")), std::string::npos) << text;
  for (const auto& problem : problems) EXPECT_TRUE(problem.occupied.empty()) << problem.reason;
  // Free in the final tree when the directory leaves in the same batch.
  const auto before = snapshot(tree_.root);
  submit({rename_op(p("d/a"), p("d")), rename_op(p("d"), p("e"))});
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("d"), before.at("d/a"));
  EXPECT_EQ(after.at("e"), before.at("d"));
}

// Another name of the same inode is occupied like any other file, not the
// source itself spelled in another case.
TEST_F(RenameTest, AHardLinkOfTheSourceIsOccupied) {
  write_file(p("a"), "a");
  ASSERT_EQ(::link(p("a").c_str(), p("b").c_str()), 0);
  const auto problems = refused({rename_op(p("a"), p("b"))});
  ASSERT_EQ(problems.size(), 1u) << all_reasons(problems);
  EXPECT_EQ(problems[0].occupied, p("b"));
  EXPECT_NE(problems[0].reason.find("already exists"), std::string::npos) << problems[0].reason;
  // Confirmed: b goes to the trash, a takes its name.
  const auto before = snapshot(tree_.root);
  submit({rename_op(p("a"), p("b"), true)});
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.size(), 1u);
  EXPECT_EQ(after.at("b"), before.at("a"));
  EXPECT_EQ(snapshot(trash()).count("files/b"), 1u);
  auto r = renamer();
  r.undo(never_);
  EXPECT_EQ(snapshot(tree_.root), before);
}

// A killed batch whose move lands on a hard link of its source: before the
// victim went to the trash, the destination already holds the inode, and
// recovery must not take the move for done.
TEST_F(RenameTest, KillBeforeOverwritingAHardLinkThenRecoveryRollsBack) {
  write_file(p("a"), "a");
  ASSERT_EQ(::link(p("a").c_str(), p("b").c_str()), 0);
  recovers_from_a_kill_at_every_step({rename_op(p("a"), p("b"), true)});
}

// What rename(2) and mv refuse whatever the user answers is refused at
// once, not asked about: a directory replaced by a file or the reverse, a
// directory that is not empty, a victim the trash cannot take.
TEST_F(RenameTest, RefusesOverwritesThatCannotWorkWithoutAsking) {
  write_file(p("file"), "f");
  make_dir(p("full"));
  write_file(p("full/x"), "x");
  make_dir(p("full2"));
  write_file(p("full2/x"), "x");
  make_dir(p("empty"));
  make_dir(p("dir"));
  write_file(p("other-file"), "o");
  make_dir(p("dir2"));
  make_dir(p("dir3"));
  for (const bool overwrite : {false, true}) {
    SCOPED_TRACE(overwrite ? "confirmed" : "not confirmed");
    const auto problems = refused({rename_op(p("file"), p("empty"), overwrite),
                                   rename_op(p("other-file"), p("full"), overwrite),
                                   rename_op(p("dir"), p("full2"), overwrite)});
    ASSERT_EQ(problems.size(), 3u) << all_reasons(problems);
    const std::string text = all_reasons(problems);
    EXPECT_NE(text.find("cannot replace the directory " + p("empty") + " with a non-directory"), std::string::npos)
        << text;
    EXPECT_NE(text.find("cannot replace the directory " + p("full") + " with a non-directory"), std::string::npos)
        << text;
    EXPECT_NE(text.find(p("dir") + ": cannot replace the directory " + p("full2") + ": it is not empty"),
              std::string::npos)
        << text;
    for (const auto& problem : problems) EXPECT_TRUE(problem.occupied.empty()) << problem.reason;
    const auto reverse = refused({rename_op(p("dir2"), p("other-file"), overwrite)});
    ASSERT_EQ(reverse.size(), 1u) << all_reasons(reverse);
    EXPECT_NE(reverse[0].reason.find("cannot replace the non-directory " + p("other-file") + " with a directory"),
              std::string::npos)
        << reverse[0].reason;
    EXPECT_TRUE(reverse[0].occupied.empty());
  }
  // A directory onto an empty directory is asked about, and replaces it once confirmed.
  const auto asked = refused({rename_op(p("dir3"), p("empty"))});
  ASSERT_EQ(asked.size(), 1u) << all_reasons(asked);
  EXPECT_EQ(asked[0].occupied, p("empty"));
  const auto before = snapshot(tree_.root);
  submit({rename_op(p("dir3"), p("empty"), true)});
  EXPECT_EQ(snapshot(tree_.root).at("empty"), before.at("dir3"));
  EXPECT_EQ(snapshot(trash()).at("files/empty"), before.at("empty"));
}

// A victim on another file system than the home trash goes to that file
// system's trash ($topdir/.Trash-$uid: here /dev/shm's), and undo brings it
// back from there.
TEST_F(RenameTest, AVictimOnAnotherFileSystemGoesToItsOwnTrash) {
  TempTree other("/dev/shm");
  if (id_of(other.root).dev == id_of(tree_.root).dev) GTEST_SKIP() << "/dev/shm is on the same file system";
  // Named after the tree, so that tests running at once share no name in
  // the shared trash.
  const std::string name = std::filesystem::path(other.root).filename().string();
  write_file(other.path("new"), "new");
  write_file(other.path(name), "victim");
  const auto before = snapshot(other.root);
  const auto asked = refused({rename_op(other.path("new"), other.path(name))});
  ASSERT_EQ(asked.size(), 1u) << all_reasons(asked);
  EXPECT_EQ(asked[0].occupied, other.path(name));
  EXPECT_EQ(snapshot(other.root), before);

  submit({rename_op(other.path("new"), other.path(name), true)});
  EXPECT_EQ(snapshot(other.root).at(name), before.at("new"));
  const std::string volume_trash = "/dev/shm/.Trash-" + std::to_string(::geteuid());
  struct stat st {};
  ASSERT_EQ(::lstat(volume_trash.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_uid, ::geteuid());
  const auto trashed = snapshot(volume_trash);
  ASSERT_EQ(trashed.count("files/" + name), 1u);
  EXPECT_EQ(trashed.at("files/" + name), before.at(name));
  ASSERT_EQ(trashed.count("info/" + name + ".trashinfo"), 1u);
  EXPECT_NE(trashed.at("info/" + name + ".trashinfo").data.find("Path=" + other.path(name) + "\n"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(trash() + "/files/" + name));  // not the home trash

  auto r = renamer();
  r.undo(never_);
  EXPECT_EQ(snapshot(other.root), before);
  EXPECT_EQ(snapshot(volume_trash).count("files/" + name), 0u);
  EXPECT_EQ(snapshot(volume_trash).count("info/" + name + ".trashinfo"), 0u);
}

// A file system of the test's own (a small tmpfs at vol/; root only), for
// what /dev/shm cannot show without touching the machine's shared trash:
// an administrator's .Trash, and a .Trash-UID another user made first.
class VolumeTrashTest : public RenameTest {
 protected:
  void SetUp() override {
    make_dir(vol_);
    if (::mount("descent-test", vol_.c_str(), "tmpfs", 0, "size=1m") != 0)
      GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
    mounted_ = true;
    write_file(v("a"), "a");
    write_file(v("b"), "victim");
  }
  void TearDown() override {
    if (mounted_) ::umount2(vol_.c_str(), MNT_DETACH);
  }
  std::string v(std::string_view relative) const { return vol_ + "/" + std::string(relative); }
  static std::string uid() { return std::to_string(::geteuid()); }

  // Replaces b with a, confirmed; expects b in `trash` (relative to vol/)
  // and undo to bring it back from there.
  void goes_to(const std::string& trash) {
    const auto before = snapshot(vol_);
    submit({rename_op(v("a"), v("b"), true)});
    const auto trashed = snapshot(v(trash));
    ASSERT_EQ(trashed.count("files/b"), 1u) << trash;
    EXPECT_EQ(trashed.at("files/b"), before.at("b"));
    EXPECT_EQ(trashed.count("info/b.trashinfo"), 1u);
    struct stat st {};
    ASSERT_EQ(::lstat(v(trash).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    auto r = renamer();
    r.undo(never_);
    EXPECT_EQ(snapshot(vol_).at("b"), before.at("b"));
    EXPECT_EQ(snapshot(vol_).at("a"), before.at("a"));
  }
  // Expects the overwrite to be refused, naming `trash`, with nothing changed.
  void is_refused_for(const std::string& trash) {
    const auto before = snapshot(vol_);
    const auto problems = refused({rename_op(v("a"), v("b"), true)});
    ASSERT_EQ(problems.size(), 1u) << all_reasons(problems);
    EXPECT_NE(problems[0].reason.find("cannot overwrite " + v("b") + ": it is on another file system than the trash"),
              std::string::npos)
        << problems[0].reason;
    EXPECT_NE(problems[0].reason.find(v(trash) + " is not a trash directory of this user's"), std::string::npos)
        << problems[0].reason;
    EXPECT_EQ(snapshot(vol_), before);
  }

  std::string vol_ = p("vol");
  bool mounted_ = false;
};

TEST_F(VolumeTrashTest, MakesItsOwnTrashAtTheTop) { goes_to(".Trash-" + uid()); }

// An administrator's $topdir/.Trash is used only when it is sticky: in a
// plain shared directory any user could take another's files out.
TEST_F(VolumeTrashTest, UsesAnAdministratorsStickyTrash) {
  make_dir(v(".Trash"));
  ASSERT_EQ(::chmod(v(".Trash").c_str(), 01777), 0);
  goes_to(".Trash/" + uid());
  EXPECT_FALSE(std::filesystem::exists(v(".Trash-" + uid())));
}

TEST_F(VolumeTrashTest, PassesOverAnAdministratorsTrashThatIsNotSticky) {
  make_dir(v(".Trash"));
  ASSERT_EQ(::chmod(v(".Trash").c_str(), 0777), 0);
  goes_to(".Trash-" + uid());
  EXPECT_TRUE(snapshot(v(".Trash")).empty());
}

// Made first by someone else, as a link to a directory of theirs or as
// their own directory: the victim would be handed to them.
TEST_F(VolumeTrashTest, RefusesATrashAnotherUserMadeFirst) {
  make_dir(v("theirs"));
  make_link(v("theirs"), v(".Trash-" + uid()));
  is_refused_for(".Trash-" + uid());
  ASSERT_EQ(::unlink(v(".Trash-" + uid()).c_str()), 0);
  make_dir(v(".Trash-" + uid()));
  ASSERT_EQ(::chown(v(".Trash-" + uid()).c_str(), 65534, 65534), 0);
  is_refused_for(".Trash-" + uid());
  EXPECT_TRUE(snapshot(v("theirs")).empty());
}

// kill -9 at any step of an overwrite into a file system's own trash, and
// recovery puts the victim back. (The trash directories are made first:
// once made, they stay, as other programs share them.)
TEST_F(VolumeTrashTest, AKillAtEveryStepIntoItsOwnTrashLosesNothing) {
  for (const char* dir : {"", "/files", "/info"}) {
    make_dir(v(".Trash-" + uid() + dir));
    ASSERT_EQ(::chmod(v(".Trash-" + uid() + dir).c_str(), 0700), 0);
  }
  recovers_from_a_kill_at_every_step({rename_op(v("a"), v("b"), true)});
}

// The trash is looked for once per file system; each refusal still names
// its own file.
TEST_F(VolumeTrashTest, EachFileTheTrashCannotTakeIsNamed) {
  make_link(v("theirs"), v(".Trash-" + uid()));
  write_file(v("c"), "c");
  write_file(v("d"), "victim d");
  const auto problems = refused({rename_op(v("a"), v("b"), true), rename_op(v("c"), v("d"), true)});
  ASSERT_EQ(problems.size(), 2u) << all_reasons(problems);
  const std::string reasons = all_reasons(problems);
  for (const char* victim : {"b", "d"})
    EXPECT_NE(reasons.find("cannot overwrite " + v(victim) + ": it is on another file system than the trash"),
              std::string::npos)
        << reasons;
}

// The same, done between planning and the step: the step fails before it
// makes anything in the other user's directory, and the batch rolls back.
TEST_F(VolumeTrashTest, ATrashLinkedAwayWhileTheBatchRunsIsNotUsed) {
  make_dir(v("theirs"));
  write_file(v("x"), "x");
  const std::vector<Operation> ops = {rename_op(v("x"), v("x2")), rename_op(v("a"), v("b"), true)};
  const auto steps = RenamePlan::make({ops}, trash()).steps;
  std::size_t k = 0;
  while (k < steps.size() && steps[k].kind != Step::Kind::trash) ++k;
  ASSERT_GE(k, 1u);
  ASSERT_LT(k, steps.size());
  ASSERT_EQ(steps[k - 1].to, v("x2"));
  const auto before = snapshot(vol_);
  std::thread meddler([&] {
    for (int i = 0; i < 200 && !std::filesystem::exists(v("x2")); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    make_link(v("theirs"), v(".Trash-" + uid()));
  });
  try {
    submit(ops, Failpoint{k, Failpoint::Action::pause});  // the meddler acts during the pause
    ADD_FAILURE() << "the batch went through";
  } catch (const StepFailed& e) {
    EXPECT_NE(std::string(e.what()).find(v(".Trash-" + uid()) + " is not a trash directory of this user's"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("rolled back, nothing changed"), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  meddler.join();
  auto now = snapshot(vol_);
  now.erase(".Trash-" + uid());
  EXPECT_EQ(now, before);
  EXPECT_TRUE(snapshot(v("theirs")).empty());
}

// A name left by a move that waits for the user's yes (its destination is
// taken) is free for another file of the batch: only the question is asked,
// not a refusal for the other file too. Found by tests/fuzz (seed 5936).
TEST_F(RenameTest, AMoveAwaitingConfirmationStillFreesItsName) {
  make_dir(p("d"));
  write_file(p("d/n"), "d/n");
  write_file(p("d/taken"), "victim");
  write_file(p("n"), "n");
  const auto asked = refused({rename_op(p("d/n"), p("d/taken")), rename_op(p("n"), p("d/n"))});
  ASSERT_EQ(asked.size(), 1u) << all_reasons(asked);
  EXPECT_EQ(asked[0].occupied, p("d/taken"));
  const auto before = snapshot(tree_.root);
  submit({rename_op(p("d/n"), p("d/taken"), true), rename_op(p("n"), p("d/n"))});
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("d/taken"), before.at("d/n"));
  EXPECT_EQ(after.at("d/n"), before.at("n"));
  EXPECT_EQ(snapshot(trash()).at("files/taken"), before.at("d/taken"));
}

TEST_F(RenameTest, RefusedBatchListsEveryOffendingEntry) {
  write_file(p("a"), "a");
  write_file(p("b"), "b");
  write_file(p("c"), "c");
  write_file(p("ok"), "ok");
  try {
    submit({rename_op(p("ok"), p("ok2")), rename_op(p("a"), p("c")), rename_op(p("b"), p(".."))});
    FAIL();
  } catch (const BatchRefused& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(p("a")), std::string::npos) << message;
    EXPECT_NE(message.find(p("..")), std::string::npos) << message;
    EXPECT_EQ(e.problems.size(), 2u);
  }
  EXPECT_TRUE(std::filesystem::exists(p("ok")));
}

// ---- What must work ----

TEST_F(RenameTest, ChainRunsDestinationFirst) {
  write_file(p("a"), "A");
  write_file(p("b"), "B");
  write_file(p("c"), "C");
  auto before = snapshot(tree_.root);
  const auto outcome = submit({rename_op(p("a"), p("b")), rename_op(p("b"), p("c")), rename_op(p("c"), p("d"))});
  EXPECT_EQ(outcome.steps, 3u);
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("b"), before.at("a"));
  EXPECT_EQ(after.at("c"), before.at("b"));
  EXPECT_EQ(after.at("d"), before.at("c"));
  EXPECT_EQ(after.count("a"), 0u);
}

TEST_F(RenameTest, SwapIsOneExchange) {
  write_file(p("a"), "A");
  write_file(p("b"), "B");
  auto before = snapshot(tree_.root);
  const auto plan = RenamePlan::make({{rename_op(p("a"), p("b")), rename_op(p("b"), p("a"))}}, trash());
  ASSERT_EQ(plan.steps.size(), 1u);
  EXPECT_EQ(plan.steps[0].kind, Step::Kind::exchange);
  submit({rename_op(p("a"), p("b")), rename_op(p("b"), p("a"))});
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("a"), before.at("b"));
  EXPECT_EQ(after.at("b"), before.at("a"));
}

TEST_F(RenameTest, LongerCycleUsesOneTemporaryName) {
  for (const char* n : {"a", "b", "c", "d"}) write_file(p(n), n);
  auto before = snapshot(tree_.root);
  std::vector<Operation> ops = {rename_op(p("a"), p("b")), rename_op(p("b"), p("c")), rename_op(p("c"), p("d")),
                                rename_op(p("d"), p("a"))};
  const auto plan = RenamePlan::make({ops}, trash());
  EXPECT_EQ(plan.steps.size(), 5u);  // four moves and one through a temporary name
  std::size_t temporaries_used = 0;
  for (const auto& step : plan.steps) {
    EXPECT_EQ(step.kind, Step::Kind::move);
    if (step.to.find(".descent-tmp-") != std::string::npos) {
      ++temporaries_used;
      EXPECT_EQ(detail::split(step.to).first, tree_.root);  // in its own directory
    }
  }
  EXPECT_EQ(temporaries_used, 1u);
  submit(ops);
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("b"), before.at("a"));
  EXPECT_EQ(after.at("c"), before.at("b"));
  EXPECT_EQ(after.at("d"), before.at("c"));
  EXPECT_EQ(after.at("a"), before.at("d"));
  EXPECT_TRUE(temporaries(after).empty());
}

TEST_F(RenameTest, DirectoryAndEntriesInsideItInOneBatch) {
  make_dir(p("d"));
  write_file(p("d/a"), "A");
  write_file(p("d/b"), "B");
  auto before = snapshot(tree_.root);
  // Destinations are spelled in the final tree: d is e afterwards.
  submit({rename_op(p("d/a"), p("e/a2")), rename_op(p("d"), p("e")), rename_op(p("d/b"), p("e/b2"))});
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("e"), before.at("d"));
  EXPECT_EQ(after.at("e/a2"), before.at("d/a"));
  EXPECT_EQ(after.at("e/b2"), before.at("d/b"));
  EXPECT_EQ(after.size(), 3u);
}

// moves_of(): what an undo tells the client to point its buffers back at.
TEST_F(RenameTest, MovesSayWhatEachBatchRenamed) {
  using Moves = std::set<std::pair<std::string, std::string>>;
  auto moves = [&](std::int64_t batch) {
    Moves out;
    for (const auto& [before, after] : renamer().moves(batch)) out.emplace(before, after);
    return out;
  };
  auto pair = [&](std::string_view before, std::string_view after) { return std::make_pair(p(before), p(after)); };
  for (const char* n : {"a", "b", "c", "d"}) write_file(p(n), n);
  make_dir(p("d1"));
  make_dir(p("d2"));
  write_file(p("d1/a"), "A");
  write_file(p("d2/b"), "B");
  make_dir(p("e"));
  write_file(p("e/x"), "X");
  write_file(p("e/carried"), "C");
  write_file(p("f"), "new");
  write_file(p("victim"), "victim");

  // A cycle through a temporary name, and swapped directories with a
  // rename inside one: one pair per edit, no temporary name.
  const auto cycle = submit({rename_op(p("a"), p("b")), rename_op(p("b"), p("c")), rename_op(p("c"), p("d")),
                             rename_op(p("d"), p("a")), rename_op(p("d1"), p("d2")), rename_op(p("d2"), p("d1")),
                             rename_op(p("d1/a"), p("d2/a2"))});
  EXPECT_EQ(moves(cycle.batch), (Moves{pair("a", "b"), pair("b", "c"), pair("c", "d"), pair("d", "a"),
                                       pair("d1", "d2"), pair("d2", "d1"), pair("d1/a", "d2/a2")}));
  // A renamed directory with a rename inside it: the file carried along has
  // no pair of its own; neither has the victim of a confirmed overwrite.
  const auto nested = submit({rename_op(p("e/x"), p("g/y")), rename_op(p("e"), p("g")),
                              rename_op(p("f"), p("victim"), true)});
  EXPECT_EQ(moves(nested.batch), (Moves{pair("e", "g"), pair("e/x", "g/y"), pair("f", "victim")}));
  // Renaming nothing, or a batch the journal does not hold: no pairs.
  const auto chmod = submit({chmod_op(p("victim"), 0600)});
  EXPECT_TRUE(moves(chmod.batch).empty());
  EXPECT_TRUE(moves(chmod.batch + 1000).empty());

  // The undo's outcome carries them, and an undone batch keeps them.
  auto r = renamer();
  EXPECT_TRUE(r.undo(never_).moves.empty());
  const auto undone = r.undo(never_);
  ASSERT_EQ(undone.batch, nested.batch);
  EXPECT_EQ(Moves(undone.moves.begin(), undone.moves.end()), moves(nested.batch));
  EXPECT_EQ(moves(nested.batch).size(), 3u);
}

// The planner remembers the last directory it resolved and answers for its
// entries from that; a batch that moves, creates or re-creates directories
// between entries must see each change. Over 64 entries a directory is also
// read with getdents, so these take that path too.
TEST_F(RenameTest, ManyEntriesOfAMovedDirectoryUnderItsNewName) {
  make_dir(p("d"));
  for (int i = 0; i < 100; ++i) write_file(p("d/f" + std::to_string(i)), "F" + std::to_string(i));
  write_file(p("d/keep"), "K");
  auto before = snapshot(tree_.root);
  std::vector<Operation> ops;
  for (int i = 0; i < 50; ++i) ops.push_back(rename_op(p("d/f" + std::to_string(i)), p("e/g" + std::to_string(i))));
  ops.push_back(rename_op(p("d"), p("e")));
  for (int i = 50; i < 100; ++i) ops.push_back(rename_op(p("d/f" + std::to_string(i)), p("e/g" + std::to_string(i))));
  submit(ops);
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("e"), before.at("d"));
  EXPECT_EQ(after.at("e/keep"), before.at("d/keep"));
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(after.at("e/g" + std::to_string(i)), before.at("d/f" + std::to_string(i))) << i;
  EXPECT_EQ(after.size(), 102u);
}

TEST_F(RenameTest, ManyEntriesIntoTheOldNameOfADirectoryThatMovesAway) {
  make_dir(p("d"));
  write_file(p("d/in"), "I");
  for (int i = 0; i < 80; ++i) write_file(p("a" + std::to_string(i)), "A" + std::to_string(i));
  auto before = snapshot(tree_.root);
  std::vector<Operation> ops;
  for (int i = 0; i < 40; ++i) ops.push_back(rename_op(p("a" + std::to_string(i)), p("d/a" + std::to_string(i))));
  ops.push_back(rename_op(p("d"), p("e")));
  // A name that is free in the new d, though the old d has it.
  ops.push_back(rename_op(p("a40"), p("d/in")));
  for (int i = 41; i < 80; ++i) ops.push_back(rename_op(p("a" + std::to_string(i)), p("d/a" + std::to_string(i))));
  submit(ops);
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("e"), before.at("d"));
  EXPECT_EQ(after.at("e/in"), before.at("d/in"));
  EXPECT_EQ(after.at("d/in"), before.at("a40"));
  for (int i = 0; i < 80; ++i)
    if (i != 40) {
      EXPECT_EQ(after.at("d/a" + std::to_string(i)), before.at("a" + std::to_string(i))) << i;
    }
  EXPECT_EQ(after.size(), 83u);  // d (new), e, e/in, d/in and 79 entries
}

TEST_F(RenameTest, ManyEntriesWithCyclesAndChainsAndNewDirectories) {
  make_dir(p("c"));
  for (int i = 0; i < 70; ++i) write_file(p("c/f" + std::to_string(i)), "F" + std::to_string(i));
  auto before = snapshot(tree_.root);
  std::vector<Operation> ops;
  ops.push_back(rename_op(p("c/f0"), p("c/f1")));  // a swap
  ops.push_back(rename_op(p("c/f1"), p("c/f0")));
  ops.push_back(rename_op(p("c/f2"), p("c/f3")));  // a cycle of three
  ops.push_back(rename_op(p("c/f3"), p("c/f4")));
  ops.push_back(rename_op(p("c/f4"), p("c/f2")));
  ops.push_back(rename_op(p("c/f5"), p("c/f6")));  // a chain ending in a free name
  ops.push_back(rename_op(p("c/f6"), p("c/f7")));
  ops.push_back(rename_op(p("c/f7"), p("c/g7")));
  for (int i = 8; i < 40; ++i) ops.push_back(rename_op(p("c/f" + std::to_string(i)), p("c/new/h" + std::to_string(i))));
  for (int i = 40; i < 70; ++i) ops.push_back(rename_op(p("c/f" + std::to_string(i)), p("c/h" + std::to_string(i))));
  submit(ops);
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("c/f1"), before.at("c/f0"));
  EXPECT_EQ(after.at("c/f0"), before.at("c/f1"));
  EXPECT_EQ(after.at("c/f3"), before.at("c/f2"));
  EXPECT_EQ(after.at("c/f4"), before.at("c/f3"));
  EXPECT_EQ(after.at("c/f2"), before.at("c/f4"));
  EXPECT_EQ(after.at("c/f6"), before.at("c/f5"));
  EXPECT_EQ(after.at("c/f7"), before.at("c/f6"));
  EXPECT_EQ(after.at("c/g7"), before.at("c/f7"));
  EXPECT_EQ(after.count("c/f5"), 0u);
  for (int i = 8; i < 40; ++i) EXPECT_EQ(after.at("c/new/h" + std::to_string(i)), before.at("c/f" + std::to_string(i))) << i;
  for (int i = 40; i < 70; ++i) EXPECT_EQ(after.at("c/h" + std::to_string(i)), before.at("c/f" + std::to_string(i))) << i;
  EXPECT_TRUE(temporaries(after).empty());
  EXPECT_EQ(after.size(), 72u);  // c, c/new and 70 entries
}

TEST_F(RenameTest, ManyEntriesRefusedWhereTheMovedDirectoryHasTheName) {
  make_dir(p("d"));
  for (int i = 0; i < 80; ++i) write_file(p("d/f" + std::to_string(i)), "F" + std::to_string(i));
  write_file(p("d/keep"), "K");
  std::vector<Operation> ops;
  ops.push_back(rename_op(p("d"), p("e")));
  for (int i = 0; i < 79; ++i) ops.push_back(rename_op(p("d/f" + std::to_string(i)), p("e/g" + std::to_string(i))));
  // Taken on disk inside the moved directory.
  ops.push_back(rename_op(p("d/f79"), p("e/keep")));
  const auto problems = refused(ops);
  const std::string reasons = all_reasons(problems);
  ASSERT_EQ(problems.size(), 1u) << reasons;
  EXPECT_EQ(problems[0].path, p("d/f79"));
  EXPECT_EQ(problems[0].occupied, p("e/keep"));
  EXPECT_NE(reasons.find(p("e/keep") + " already exists"), std::string::npos) << reasons;
}

TEST_F(RenameTest, SwappedDirectoriesWithARenameInside) {
  make_dir(p("d1"));
  make_dir(p("d2"));
  write_file(p("d1/a"), "A");
  write_file(p("d2/b"), "B");
  auto before = snapshot(tree_.root);
  submit({rename_op(p("d1"), p("d2")), rename_op(p("d2"), p("d1")), rename_op(p("d1/a"), p("d2/a2"))});
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("d2"), before.at("d1"));
  EXPECT_EQ(after.at("d1"), before.at("d2"));
  EXPECT_EQ(after.at("d2/a2"), before.at("d1/a"));
  EXPECT_EQ(after.at("d1/b"), before.at("d2/b"));
  EXPECT_EQ(after.size(), 4u);
}

TEST_F(RenameTest, FileMovesIntoTheDirectoryThatTakesItsName) {
  write_file(p("x"), "file");
  make_dir(p("y"));
  auto before = snapshot(tree_.root);
  submit({rename_op(p("y"), p("x")), rename_op(p("x"), p("x/x"))});
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("x"), before.at("y"));
  EXPECT_EQ(after.at("x/x"), before.at("x"));
  EXPECT_EQ(after.size(), 2u);
  EXPECT_TRUE(temporaries(after).empty());
  auto r = renamer();
  r.undo(never_);
  EXPECT_EQ(snapshot(tree_.root), before);
}

TEST_F(RenameTest, TwoDirectoriesMoveIntoEachOthersOldNames) {
  // In the final tree "b/a" and "a/b": a and b leave, new a/ and b/ are made.
  make_dir(p("a"));
  make_dir(p("b"));
  write_file(p("a/in-a"), "1");
  write_file(p("b/in-b"), "2");
  auto before = snapshot(tree_.root);
  submit({rename_op(p("a"), p("b/a")), rename_op(p("b"), p("a/b"))});
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("b/a"), before.at("a"));
  EXPECT_EQ(after.at("a/b"), before.at("b"));
  EXPECT_EQ(after.at("b/a/in-a"), before.at("a/in-a"));
  EXPECT_EQ(after.at("a/b/in-b"), before.at("b/in-b"));
  EXPECT_TRUE(temporaries(after).empty());
  auto r = renamer();
  r.undo(never_);
  EXPECT_EQ(snapshot(tree_.root), before);
}

TEST_F(RenameTest, CaseOnlyRename) {
  write_file(p("readme"), "r");
  auto before = snapshot(tree_.root);
  submit({rename_op(p("readme"), p("README"))});
  const auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("README"), before.at("readme"));
  EXPECT_EQ(after.size(), 1u);
}

// rename(2) and Emacs follow a symbolic link in the directory part of a
// path: a dired opened through a link renames in the directory it points to.
TEST_F(RenameTest, DirectoryReachedThroughASymlinkIsThatDirectory) {
  make_dir(p("d"));
  write_file(p("d/a"), "A");
  write_file(p("d/b"), "B");
  make_link("d", p("link"));
  make_link(p("link"), p("link-to-link"));
  auto before = snapshot(tree_.root);
  submit({rename_op(p("link/a"), p("link/a2")), rename_op(p("link/b"), p("link-to-link/new/b"))});
  auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("d/a2"), before.at("d/a"));
  EXPECT_EQ(after.at("d/new/b"), before.at("d/b"));
  EXPECT_EQ(after.at("link"), before.at("link"));
  EXPECT_EQ(after.count("d/a"), 0u);
  auto r = renamer();
  r.undo(never_);
  EXPECT_EQ(snapshot(tree_.root), before);
  // The link itself, as a source, is renamed as a link.
  submit({rename_op(p("link"), p("link2"))});
  after = snapshot(tree_.root);
  EXPECT_EQ(after.at("link2"), before.at("link"));
  EXPECT_EQ(after.at("d"), before.at("d"));
}

TEST_F(RenameTest, RefusesAParentThatIsAFileOrADanglingLink) {
  write_file(p("a"), "A");
  write_file(p("b"), "B");
  write_file(p("file"), "f");
  make_link("nowhere", p("dangling"));
  const auto problems = refused({rename_op(p("a"), p("file/a")), rename_op(p("b"), p("dangling/b"))});
  ASSERT_EQ(problems.size(), 2u) << all_reasons(problems);
  const std::string text = all_reasons(problems);
  EXPECT_NE(text.find(p("file") + " is not a directory"), std::string::npos) << text;
  EXPECT_NE(text.find(p("dangling") + " is not a directory"), std::string::npos) << text;
  EXPECT_TRUE(problems[0].occupied.empty());
  EXPECT_TRUE(problems[1].occupied.empty());
}

TEST_F(RenameTest, MovesIntoNewDirectoriesAndUndoRemovesThem) {
  write_file(p("a"), "A");
  auto before = snapshot(tree_.root);
  submit({rename_op(p("a"), p("new/deeper/a"))});
  auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("new/deeper/a"), before.at("a"));
  auto r = renamer();
  r.undo(never_);
  EXPECT_EQ(snapshot(tree_.root), before);
}

// A directory the batch made that holds other files by the time of the undo
// (saved there since) stays, with them; the rest of the undo goes on.
TEST_F(RenameTest, UndoLeavesADirectoryItMadeThatHoldsOtherFilesNow) {
  write_file(p("a"), "A");
  const auto before = snapshot(tree_.root);
  submit({rename_op(p("a"), p("new/deeper/a"))});
  write_file(p("new/deeper/mine"), "mine");
  auto r = renamer();
  r.undo(never_);
  auto now = snapshot(tree_.root);
  EXPECT_EQ(now.at("a"), before.at("a"));
  EXPECT_EQ(now.at("new/deeper/mine").data, "mine");
  now.erase("new/deeper/mine");
  now.erase("new/deeper");
  now.erase("new");
  EXPECT_EQ(now, before);
}

// The same undo, failing at a later step: its rollback leaves the kept
// directory be and puts the rest back, so the batch stays done. Then a
// restart kills no one either: kill -9 at each step of that undo, and the
// recovery finds the batch done.
TEST_F(RenameTest, AnUndoThatKeptADirectoryRollsBackAndRecovers) {
  write_file(p("a"), "A");
  write_file(p("b"), "B");
  const std::vector<Operation> ops = {rename_op(p("a"), p("n1/a")), rename_op(p("b"), p("n2/b"))};
  const auto steps = RenamePlan::make({ops}, trash()).steps;
  ASSERT_EQ(steps.size(), 4u);
  // Undo order: the last step first. Find where the undo meets n2's mkdir,
  // and fail the step after it.
  std::size_t mkdir_n2 = steps.size();
  for (std::size_t k = 0; k < steps.size(); ++k)
    if (steps[steps.size() - 1 - k].kind == Step::Kind::make_directory && steps[steps.size() - 1 - k].to == p("n2"))
      mkdir_n2 = k;
  ASSERT_LT(mkdir_n2 + 1, steps.size()) << "n2 is made first: nothing of the undo comes after it";
  submit(ops);
  write_file(p("n2/mine"), "mine");
  const auto done = snapshot(tree_.root);
  try {
    auto r = renamer(Failpoint{mkdir_n2 + 1, Failpoint::Action::fail});
    r.undo(never_);
    ADD_FAILURE() << "the undo did not fail";
  } catch (const StepFailed& e) {
    EXPECT_NE(std::string(e.what()).find("the undo was rolled back, nothing changed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(snapshot(tree_.root), done);
  for (std::size_t k = 0; k < steps.size(); ++k) {
    SCOPED_TRACE("undo killed at step " + std::to_string(k));
    ASSERT_NO_FATAL_FAILURE(killed_at(k, nullptr));
    auto r = renamer();
    const auto reports = r.recover();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].find("the batch stays done, nothing changed"), std::string::npos) << reports[0];
    EXPECT_EQ(snapshot(tree_.root), done);
  }
  // And the undo itself, at last.
  auto r = renamer();
  r.undo(never_);
  const auto now = snapshot(tree_.root);
  EXPECT_EQ(now.at("a").data, "A");
  EXPECT_EQ(now.at("b").data, "B");
  EXPECT_EQ(now.at("n2/mine").data, "mine");
  EXPECT_EQ(now.count("n1"), 0u);
}

TEST_F(RenameTest, ConfirmedOverwriteGoesToTrashAndUndoBringsItBack) {
  write_file(p("a"), "new");
  write_file(p("b"), "victim");
  auto before = snapshot(tree_.root);
  submit({rename_op(p("a"), p("b"), true)});
  auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("b"), before.at("a"));
  const auto trashed = snapshot(trash());
  ASSERT_EQ(trashed.count("files/b"), 1u);
  EXPECT_EQ(trashed.at("files/b"), before.at("b"));
  ASSERT_EQ(trashed.count("info/b.trashinfo"), 1u);
  const std::string info = trashed.at("info/b.trashinfo").data;
  EXPECT_EQ(info.rfind("[Trash Info]\nPath=", 0), 0u) << info;
  EXPECT_NE(info.find("DeletionDate="), std::string::npos);
  auto r = renamer();
  r.undo(never_);
  EXPECT_EQ(snapshot(tree_.root), before);
  EXPECT_EQ(snapshot(trash()).count("files/b"), 0u);
  EXPECT_EQ(snapshot(trash()).count("info/b.trashinfo"), 0u);
}

TEST_F(RenameTest, AcrossFileSystemsCopiesKeepingModeTimesAndXattrs) {
  TempTree other("/dev/shm");
  if (id_of(other.root).dev == id_of(tree_.root).dev) GTEST_SKIP() << "/dev/shm is on the same file system";
  write_file(other.path("f"), "contents");
  ASSERT_EQ(::chmod(other.path("f").c_str(), 0640), 0);
  const struct timespec times[2] = {{1000000000, 5}, {1200000000, 7}};
  ASSERT_EQ(::utimensat(AT_FDCWD, other.path("f").c_str(), times, 0), 0);
  const bool xattrs = ::setxattr(other.path("f").c_str(), "user.descent", "v", 1, 0) == 0;
  make_link("somewhere", other.path("l"));
  submit({rename_op(other.path("f"), p("f")), rename_op(other.path("l"), p("l"))});
  struct stat st {};
  ASSERT_EQ(::lstat(p("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 7);
  EXPECT_EQ(snapshot(tree_.root).at("f").data, "contents");
  EXPECT_EQ(snapshot(tree_.root).at("l").data, "somewhere");
  if (xattrs) {
    char value[8] = {};
    EXPECT_EQ(::getxattr(p("f").c_str(), "user.descent", value, sizeof value), 1);
    EXPECT_EQ(value[0], 'v');
  }
  EXPECT_FALSE(std::filesystem::exists(other.path("f")));
  EXPECT_FALSE(std::filesystem::is_symlink(other.path("l")));
  // Undo copies back (new inodes on the other side, same names and contents).
  auto r = renamer();
  r.undo(never_);
  const auto back = snapshot(other.root);
  EXPECT_EQ(back.at("f").data, "contents");
  EXPECT_EQ(back.at("l").data, "somewhere");
  EXPECT_TRUE(snapshot(tree_.root).empty());
}

// A directory moved to another file system: a copy of everything in it.
// Inodes differ in the copy; everything else is compared.
Snapshot without_inodes(Snapshot snap) {
  for (auto& [name, entry] : snap) entry.ino = 0;
  return snap;
}

struct timespec mtime_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  return st.st_mtim;
}

// A directory with one of everything a copy must keep, in `dir`.
void fill_directory(const std::string& d) {
  make_dir(d);
  make_dir(d + "/sub");
  make_dir(d + "/empty");
  write_file(d + "/f", "contents");
  ASSERT_EQ(::chmod((d + "/f").c_str(), 0640), 0);
  write_file(d + "/sub/g", "g");
  ASSERT_EQ(::link((d + "/f").c_str(), (d + "/sub/f-again").c_str()), 0);
  make_link("../f", d + "/sub/l");
  ASSERT_EQ(::mkfifo((d + "/p").c_str(), 0600), 0);
  const struct timespec times[2] = {{1000000000, 5}, {1200000000, 7}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (d + "/f").c_str(), times, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, (d + "/sub/l").c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  ::setxattr((d + "/sub").c_str(), "user.descent", "s", 1, 0);  // where the file system has them
  ASSERT_EQ(::utimensat(AT_FDCWD, (d + "/sub").c_str(), times, 0), 0);
  // Read-only: the original must still be removable after the batch, and the copy on undo.
  ASSERT_EQ(::chmod((d + "/sub").c_str(), 0555), 0);
}

TEST_F(RenameTest, DirectoryAcrossFileSystemsKeepsEverythingInIt) {
  TempTree other("/dev/shm");
  if (id_of(other.root).dev == id_of(tree_.root).dev) GTEST_SKIP() << "/dev/shm is on the same file system";
  const std::string d = other.path("d");
  fill_directory(d);
  const bool xattrs = ::getxattr((d + "/sub").c_str(), "user.descent", nullptr, 0) == 1;
  const Snapshot before = snapshot(d);
  submit({rename_op(d, p("moved"))});
  EXPECT_FALSE(std::filesystem::exists(d));
  const Snapshot after = snapshot(p("moved"));
  EXPECT_EQ(without_inodes(after), without_inodes(before));
  EXPECT_EQ(after.at("f").ino, after.at("sub/f-again").ino) << "hard links stay hard links";
  EXPECT_EQ(mtime_of(p("moved/f")).tv_sec, 1200000000);
  EXPECT_EQ(mtime_of(p("moved/f")).tv_nsec, 7);
  EXPECT_EQ(mtime_of(p("moved/sub")).tv_sec, 1200000000);
  EXPECT_EQ(mtime_of(p("moved/sub/l")).tv_sec, 1200000000);
  if (xattrs) {
    char value[4] = {};
    EXPECT_EQ(::getxattr(p("moved/sub").c_str(), "user.descent", value, sizeof value), 1);
  }
  EXPECT_TRUE(temporaries(snapshot(other.root)).empty());
  EXPECT_TRUE(temporaries(snapshot(tree_.root)).empty());
  // Undo copies back, and removes the read-only copy.
  auto r = renamer();
  r.undo(never_);
  EXPECT_FALSE(std::filesystem::exists(p("moved")));
  const Snapshot back = snapshot(d);
  EXPECT_EQ(without_inodes(back), without_inodes(before));
  EXPECT_EQ(back.at("f").ino, back.at("sub/f-again").ino);
  EXPECT_TRUE(temporaries(snapshot(other.root)).empty());
  EXPECT_TRUE(snapshot(tree_.root).empty());
  ::chmod((d + "/sub").c_str(), 0755);
}

// Moves across file systems both ways, among renames: whatever step fails,
// is cancelled or is killed, both trees end exactly as before, inodes
// included (the originals are set aside, not removed, until the batch is done).
class AcrossFileSystemsTest : public RenameTest {
 protected:
  void SetUp() override {
    if (id_of(other_.root).dev == id_of(tree_.root).dev) GTEST_SKIP() << "/dev/shm is on the same file system";
    fill_directory(other_.path("d"));
    write_file(p("a"), "a");
    write_file(p("x"), "x");
    write_file(other_.path("y"), "y");
    ops_ = {rename_op(p("a"), p("b")), rename_op(other_.path("d"), p("d")), rename_op(p("x"), other_.path("x")),
            rename_op(other_.path("y"), p("y"))};
    steps_ = RenamePlan::make({ops_}, trash()).steps.size();
    before_ = snapshot(tree_.root);
    other_before_ = snapshot(other_.root);
  }
  void TearDown() override {
    ::chmod(other_.path("d/sub").c_str(), 0755);
    ::chmod(p("d/sub").c_str(), 0755);
  }
  void expect_as_before() {
    EXPECT_EQ(snapshot(tree_.root), before_);
    EXPECT_EQ(snapshot(other_.root), other_before_);
  }
  TempTree other_{"/dev/shm"};
  std::vector<Operation> ops_;
  std::size_t steps_ = 0;
  Snapshot before_, other_before_;
};

TEST_F(AcrossFileSystemsTest, FailureOrCancelAtEveryStepLeavesBothTreesAsBefore) {
  ASSERT_EQ(steps_, 4u);
  for (std::size_t k = 0; k < steps_; ++k) {
    SCOPED_TRACE("at step " + std::to_string(k));
    EXPECT_THROW(submit(ops_, Failpoint{k, Failpoint::Action::fail}), StepFailed);
    expect_as_before();
    EXPECT_THROW(submit(ops_, Failpoint{k, Failpoint::Action::cancel}), BatchCancelled);
    expect_as_before();
  }
  submit(ops_);
  EXPECT_TRUE(std::filesystem::exists(p("d/sub/g")));
  EXPECT_TRUE(std::filesystem::exists(p("y")));
  EXPECT_TRUE(std::filesystem::exists(other_.path("x")));
  EXPECT_TRUE(temporaries(snapshot(tree_.root)).empty());
  EXPECT_TRUE(temporaries(snapshot(other_.root)).empty());
}

TEST_F(AcrossFileSystemsTest, KillAtEveryStepThenRecoveryLeavesBothTreesAsBefore) {
  for (std::size_t k = 0; k < steps_; ++k) {
    SCOPED_TRACE("killed at step " + std::to_string(k));
    ASSERT_NO_FATAL_FAILURE(killed_at(k, &ops_));
    const auto reports = renamer().recover();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].find("; nothing changed"), std::string::npos) << reports[0];
    expect_as_before();
  }
}

// A copy lands where one of the user's files was, moved away by an earlier
// step (along a chain, or to the trash): killed before that step, the file
// there is the user's, not a copy to drop; nor is it, after a recovery that
// put it back and was itself killed before recording so.
TEST_F(AcrossFileSystemsTest, KillBeforeTheWayIsClearForACopyLosesNothing) {
  write_file(p("v"), "the victim, confirmed");
  write_file(other_.path("w"), "w");
  before_ = snapshot(tree_.root);
  other_before_ = snapshot(other_.root);
  const std::vector<std::vector<Operation>> batches = {
      {rename_op(other_.path("y"), p("a")), rename_op(p("a"), p("z"))},  // a chain: a -> z, then the copy
      {rename_op(other_.path("w"), p("v"), true)},                        // the victim to the trash, then the copy
  };
  for (const auto& ops : batches) {
    const std::size_t steps = RenamePlan::make({ops}, trash()).steps.size();
    ASSERT_EQ(steps, 2u);
    for (std::size_t k = 0; k < steps; ++k) {
      SCOPED_TRACE("killed at step " + std::to_string(k) + " of " + ops[0].destination);
      ASSERT_NO_FATAL_FAILURE(killed_at(k, &ops));
      auto reports = renamer().recover();
      ASSERT_EQ(reports.size(), 1u);
      EXPECT_NE(reports[0].find("; nothing changed"), std::string::npos) << reports[0];
      expect_as_before();
    }
    // A recovery killed once it had put step 0 back: the next one takes over.
    ASSERT_NO_FATAL_FAILURE(killed_at(1, &ops));
    const Step first = renamer().journal().steps(renamer().journal().recent(1).at(0).id).at(0);
    ASSERT_EQ(::rename(first.to.c_str(), first.from.c_str()), 0);
    if (first.kind == Step::Kind::trash) std::filesystem::remove(first.scratch());
    ASSERT_EQ(renamer().recover().size(), 1u);
    expect_as_before();
  }
  EXPECT_FALSE(std::filesystem::exists(trash() + "/files/v"));
}

// A crash can also come inside a step: each half-done state of a move
// across file systems, made by hand, is settled without losing the only
// complete copy.
TEST_F(AcrossFileSystemsTest, RecoverySettlesEveryHalfDoneCopy) {
  Step step;
  step.kind = Step::Kind::copy_move;
  step.from = other_.path("d");
  step.to = p("d");
  step.id = id_of(step.from);
  step.scratch() = p(".descent-tmp-test-0");
  const std::string aside = other_.path(".descent-tmp-test-0");
  auto copy_of_d = [&](const std::string& where) { fill_directory(where); };
  detail::Directories dirs;
  detail::StepRunner runner(dirs);
  using detail::Status;
  const Snapshot d_before = snapshot(step.from);

  // Copying: a partial copy under the scratch name.
  make_dir(step.scratch());
  write_file(step.scratch() + "/f", "cont");
  EXPECT_EQ(runner.settle(step), Status::not_applied);
  expect_as_before();

  // Copied, the original not yet set aside: the copy goes.
  copy_of_d(step.to);
  EXPECT_EQ(runner.settle(step), Status::not_applied);
  expect_as_before();

  // The original set aside: applied, and reverting brings back the same inodes.
  copy_of_d(step.to);
  ASSERT_EQ(::rename(step.from.c_str(), aside.c_str()), 0);
  EXPECT_EQ(runner.settle(step), Status::applied);
  runner.revert(step);
  expect_as_before();

  // Reverting, stopped while removing the copy: the original is still aside.
  make_dir(step.to);
  ASSERT_EQ(::rename(step.from.c_str(), aside.c_str()), 0);
  EXPECT_EQ(runner.settle(step), Status::applied);
  runner.revert(step);
  expect_as_before();

  // The batch was done and the original on its way out: applied; reverting copies back.
  copy_of_d(step.to);
  ASSERT_EQ(::rename(step.from.c_str(), (aside + "-gone").c_str()), 0);
  ::unlink((aside + "-gone/f").c_str());
  EXPECT_EQ(runner.settle(step), Status::applied);
  EXPECT_FALSE(std::filesystem::exists(aside + "-gone"));
  runner.revert(step);
  EXPECT_FALSE(std::filesystem::exists(step.to));
  EXPECT_EQ(without_inodes(snapshot(step.from)), without_inodes(d_before));

  // An undo copying back, stopped halfway: the copy stays, the partial copy back goes.
  ::chmod((step.from + "/sub").c_str(), 0755);
  ASSERT_EQ(::rename(step.from.c_str(), step.to.c_str()), -1);  // across file systems: EXDEV
  copy_of_d(step.to);
  std::filesystem::remove_all(step.from);
  make_dir(aside + "-back");
  EXPECT_EQ(runner.settle(step), Status::applied);
  EXPECT_FALSE(std::filesystem::exists(aside + "-back"));
  EXPECT_TRUE(std::filesystem::exists(step.to + "/sub/g"));

  // Neither side: unknown, and nothing is touched.
  ::chmod((step.to + "/sub").c_str(), 0755);
  std::filesystem::remove_all(step.to);
  EXPECT_EQ(runner.settle(step), Status::unknown);
  EXPECT_TRUE(temporaries(snapshot(tree_.root)).empty());
  EXPECT_TRUE(temporaries(snapshot(other_.root)).empty());
}

// C-g while a big file is being copied: the copy stops part-way (a
// one-step batch: had the step finished, the batch would have succeeded).
// A move across file systems that does not fit (a full USB stick): the
// batch stops at that step and rolls back, and the error names the move,
// not the copy's temporary name. Needs a small tmpfs (root).
TEST_F(RenameTest, AFullFileSystemStopsACopyAndNamesTheMove) {
  const std::string small = p("small");
  make_dir(small);
  if (::mount("descent-test", small.c_str(), "tmpfs", 0, "size=64k") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{small};
  write_file(p("a"), "a");
  write_file(p("big"), std::string(256 << 10, 'x'));
  const auto before = snapshot(tree_.root);
  try {
    submit({rename_op(p("a"), p("b")), rename_op(p("big"), p("small/big"))});
    ADD_FAILURE() << "the batch did not fail";
  } catch (const StepFailed& e) {
    EXPECT_EQ(e.path, p("big"));
    EXPECT_EQ(e.error, ENOSPC);
    EXPECT_NE(std::string(e.what()).find("moving " + p("big") + " to " + p("small/big") + " across file systems"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("rolled back, nothing changed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(snapshot(tree_.root), before);
}

TEST_F(RenameTest, CancelDuringALongCopyStopsItAndChangesNothing) {
  TempTree other("/dev/shm");
  if (id_of(other.root).dev == id_of(tree_.root).dev) GTEST_SKIP() << "/dev/shm is on the same file system";
  const std::string big = other.path("big");
  constexpr std::uintmax_t size = 128u << 20;
  {
    const std::string chunk(1 << 20, 'x');
    std::ofstream out(big, std::ios::binary);
    for (std::uintmax_t i = 0; i < size >> 20; ++i) out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  }
  const FileId id = id_of(big);
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    // As soon as the copy has begun.
    while (!cancelled) {
      if (std::filesystem::directory_iterator(tree_.root) != std::filesystem::directory_iterator()) cancelled = true;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  auto r = renamer();
  EXPECT_THROW(r.submit({{rename_op(big, p("big"))}}, cancelled), BatchCancelled);
  cancelled = true;
  canceller.join();
  EXPECT_EQ(id_of(big), id);
  EXPECT_EQ(std::filesystem::file_size(big), size);
  EXPECT_TRUE(std::filesystem::is_empty(tree_.root));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(other.root), std::filesystem::directory_iterator()), 1);
}

TEST_F(AcrossFileSystemsTest, RefusesEditsInsideADirectoryThatIsCopied) {
  write_file(other_.path("d/inner"), "i");
  auto problems = refused({rename_op(other_.path("d"), p("d")), rename_op(other_.path("d/inner"), other_.path("d/i2")),
                           rename_op(p("a"), p("d/a"))});
  ASSERT_EQ(problems.size(), 2u) << all_reasons(problems);
  EXPECT_NE(all_reasons(problems).find("moves to another file system in the same batch"), std::string::npos)
      << all_reasons(problems);
  // And a chmod with the move: the copy is another inode.
  problems = refused({rename_op(other_.path("y"), p("y")), chmod_op(other_.path("y"), 0600)});
  ASSERT_EQ(problems.size(), 1u) << all_reasons(problems);
  EXPECT_NE(problems[0].reason.find("cannot change its mode"), std::string::npos) << problems[0].reason;
}

TEST_F(RenameTest, ChmodAndRetargetWithRenamesAndUndo) {
  write_file(p("f"), "F");
  make_link("old-target", p("l"));
  auto before = snapshot(tree_.root);
  submit({rename_op(p("f"), p("g")), chmod_op(p("f"), 0600), rename_op(p("l"), p("m")),
          retarget_op(p("l"), "new-target")});
  auto after = snapshot(tree_.root);
  EXPECT_EQ(after.at("g").ino, before.at("f").ino);
  EXPECT_EQ(after.at("g").mode & 07777, 0600u);
  EXPECT_EQ(after.at("m").data, "new-target");
  EXPECT_TRUE(temporaries(after).empty());
  auto r = renamer();
  r.undo(never_);
  auto back = snapshot(tree_.root);
  EXPECT_EQ(back.at("f"), before.at("f"));
  EXPECT_EQ(back.at("l").data, "old-target");  // a symlink's inode cannot be kept
  EXPECT_EQ(back.size(), before.size());
}

TEST_F(RenameTest, EveryStepRefusesToReplace) {
  write_file(p("a"), "A");
  write_file(p("b"), "B");
  detail::Directories dirs;
  detail::StepRunner runner(dirs);
  Step step;
  step.from = p("a");
  step.to = p("b");
  step.id = id_of(p("a"));
  try {
    runner.apply(step);
    FAIL();
  } catch (const detail::OsError& e) {
    EXPECT_EQ(e.error, EEXIST);
    EXPECT_NE(std::string(e.what()).find("File exists"), std::string::npos);
  }
  EXPECT_EQ(snapshot(tree_.root).at("b").data, "B");
}

// ---- Journal ----

TEST_F(RenameTest, JournalIsDurableAndMarksDone) {
  {  // finished before the journal commits
    auto mode = db_.prepare("PRAGMA journal_mode");
    ASSERT_TRUE(mode.step());
    EXPECT_EQ(mode.column_bytes(0), "wal");
    auto sync = db_.prepare("PRAGMA synchronous");
    ASSERT_TRUE(sync.step());
    EXPECT_EQ(sync.column_int64(0), 2);  // FULL
  }
  write_file(p("a"), "A");
  const auto outcome = submit({rename_op(p("a"), p("b"))});
  auto r = renamer();
  const auto entry = r.journal().find(outcome.batch);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->state, Journal::State::done);
  EXPECT_EQ(entry->operations, 1);
  const auto steps = r.journal().steps(outcome.batch);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].from, p("a"));
}

// Marking a batch done must not rewrite its plan: plans live in their own
// table, and go with their batch when the history is pruned.
TEST_F(RenameTest, JournalKeepsPlansApartAndPrunesThemWithTheirBatches) {
  write_file(p("f0"), "x");
  for (int i = 0; i < 3; ++i) submit({rename_op(p("f" + std::to_string(i)), p("f" + std::to_string(i + 1)))});
  auto r = renamer();
  {
    auto empty_rows = db_.prepare("SELECT count(*) FROM rename_batches WHERE length(plan) = 0");
    ASSERT_TRUE(empty_rows.step());
    EXPECT_EQ(empty_rows.column_int64(0), 3);
  }
  r.journal().prune(1);
  {
    auto plans = db_.prepare("SELECT count(*) FROM rename_plans");
    ASSERT_TRUE(plans.step());
    EXPECT_EQ(plans.column_int64(0), 1);
  }
  r.undo(never_);
  EXPECT_TRUE(std::filesystem::exists(p("f2")));
  EXPECT_FALSE(std::filesystem::exists(p("f3")));
}

// A batch journaled before rename_plans existed, its plan in its own row,
// is still undone.
TEST_F(RenameTest, UndoesABatchJournaledWithItsPlanInItsRow) {
  write_file(p("a"), "A");
  const auto outcome = submit({rename_op(p("a"), p("b"))});
  auto r = renamer();
  const std::vector<Step> steps = r.journal().steps(outcome.batch);
  auto move_back = db_.prepare("UPDATE rename_batches SET plan = ? WHERE id = ?");
  move_back.bind_blob(1, encode_steps(steps)).bind(2, outcome.batch);
  move_back.run();
  auto drop = db_.prepare("DELETE FROM rename_plans WHERE batch = ?");
  drop.bind(1, outcome.batch);
  drop.run();
  ASSERT_EQ(r.journal().steps(outcome.batch).size(), 1u);
  r.undo(never_);
  EXPECT_TRUE(std::filesystem::exists(p("a")));
  EXPECT_FALSE(std::filesystem::exists(p("b")));
}

TEST(RenamePlanEncoding, RoundTripsAndRefusesCorruptBlobs) {
  Step s;
  s.kind = Step::Kind::retarget;
  s.from = std::string("/a\n\xff", 4);
  s.to = "/b";
  s.id = {1, 2};
  s.other = {3, 4};
  s.link_old() = "x";
  s.link_new() = "y";
  s.scratch() = "/t";
  s.info() = "i";
  s.old_mode = 0644;
  s.new_mode = 0600;
  const auto blob = encode_steps({s, s});
  const auto back = decode_steps(blob);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].from, s.from);
  EXPECT_EQ(back[1].new_mode, 0600u);
  EXPECT_THROW(decode_steps(blob.substr(0, blob.size() - 1)), std::runtime_error);
  std::string empty = encode_steps({});
  empty.pop_back();  // the count: claim 2^56 steps in a short blob
  const std::string huge = empty + std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x01", 9);
  try {
    decode_steps(huge);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("too many steps"), std::string::npos) << e.what();
  }
}

// ---- Undo ----

TEST_F(RenameTest, UndoesTheLastHundredBatchesMostRecentFirst) {
  write_file(p("f0"), "x");
  auto before = snapshot(tree_.root);
  for (int i = 0; i < 102; ++i)
    submit({rename_op(p("f" + std::to_string(i)), p("f" + std::to_string(i + 1)))});
  auto r = renamer();
  for (int i = 102; i > 2; --i) {
    ASSERT_TRUE(std::filesystem::exists(p("f" + std::to_string(i)))) << i;
    r.undo(never_);
  }
  EXPECT_TRUE(std::filesystem::exists(p("f2")));
  EXPECT_THROW(r.undo(never_), UndoRefused);  // older history is gone
  EXPECT_TRUE(std::filesystem::exists(p("f2")));
  (void)before;
}

TEST_F(RenameTest, UndoOfAGivenBatchOnlyIfItIsTheMostRecent) {
  write_file(p("a"), "A");
  const auto first = submit({rename_op(p("a"), p("b"))});
  const auto second = submit({rename_op(p("b"), p("c"))});
  auto r = renamer();
  EXPECT_THROW(r.undo(never_, {}, first.batch), UndoRefused);
  EXPECT_TRUE(std::filesystem::exists(p("c")));
  r.undo(never_, {}, second.batch);
  EXPECT_TRUE(std::filesystem::exists(p("b")));
  EXPECT_THROW(r.undo(never_, {}, second.batch), UndoRefused);  // undone already
  r.undo(never_, {}, first.batch);
  EXPECT_TRUE(std::filesystem::exists(p("a")));
}

TEST_F(RenameTest, UndoRefusesIfFilesMovedSince) {
  write_file(p("a"), "A");
  write_file(p("b"), "B");
  submit({rename_op(p("a"), p("a2")), rename_op(p("b"), p("b2"))});
  ASSERT_EQ(::rename(p("b2").c_str(), p("elsewhere").c_str()), 0);
  undo_is_refused(p("b2"));
}

TEST_F(RenameTest, UndoRefusesIfAnOldNameWasTakenSince) {
  write_file(p("a"), "A");
  write_file(p("b"), "B");
  write_file(p("c"), "C");
  make_dir(p("d"));
  write_file(p("d/x"), "X");
  submit({rename_op(p("a"), p("a2")), rename_op(p("b"), p("c")), rename_op(p("c"), p("b")),
          rename_op(p("d"), p("e"))});
  // A swap and a directory need no free name: undo works once `a` is free.
  write_file(p("a"), "new");
  undo_is_refused(p("a") + " exists again");
  ASSERT_EQ(::unlink(p("a").c_str()), 0);
  renamer().undo(never_);
  EXPECT_EQ(snapshot(tree_.root).at("d/x").data, "X");
}

// ---- Failure, cancel, crash at step k ----

TEST_F(RenameTest, RichBatchHasThirtySteps) {
  const auto ops = rich_batch(tree_);
  const auto plan = RenamePlan::make({ops}, trash());
  EXPECT_GE(plan.steps.size(), 30u);
}

TEST_F(RenameTest, FailureAtEveryStepLeavesTheTreeAsBefore) {
  const auto ops = rich_batch(tree_);
  const std::size_t steps = RenamePlan::make({ops}, trash()).steps.size();
  const auto before = snapshot(tree_.root);
  for (std::size_t k = 0; k < steps; ++k) {
    SCOPED_TRACE("failing at step " + std::to_string(k));
    try {
      submit(ops, Failpoint{k, Failpoint::Action::fail});
      FAIL();
    } catch (const StepFailed& e) {
      EXPECT_TRUE(e.reverted);
      EXPECT_EQ(e.error, EIO);
      EXPECT_FALSE(e.path.empty());
      EXPECT_NE(std::string(e.what()).find(e.path.substr(tree_.root.size())), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("Input/output error"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("nothing changed"), std::string::npos) << e.what();
    }
    ASSERT_EQ(snapshot(tree_.root), before);
    EXPECT_FALSE(std::filesystem::exists(trash() + "/files/victim"));
  }
  // And without a failpoint the same batch goes through.
  submit(ops);
  EXPECT_TRUE(temporaries(snapshot(tree_.root)).empty());
}

TEST_F(RenameTest, CancelAtEveryStepLeavesTheTreeAsBefore) {
  const auto ops = rich_batch(tree_);
  const std::size_t steps = RenamePlan::make({ops}, trash()).steps.size();
  const auto before = snapshot(tree_.root);
  for (std::size_t k = 0; k < steps; ++k) {
    SCOPED_TRACE("cancelling at step " + std::to_string(k));
    EXPECT_THROW(submit(ops, Failpoint{k, Failpoint::Action::cancel}), BatchCancelled);
    ASSERT_EQ(snapshot(tree_.root), before);
  }
}

TEST_F(RenameTest, CancelledBeforeStartingChangesNothing) {
  write_file(p("a"), "A");
  const auto before = snapshot(tree_.root);
  std::atomic<bool> cancelled{true};
  auto r = renamer();
  EXPECT_THROW(r.submit({{rename_op(p("a"), p("b"))}}, cancelled), BatchCancelled);
  EXPECT_EQ(snapshot(tree_.root), before);
}

TEST_F(RenameTest, KillAtEveryStepThenRecoveryRollsBack) {
  const auto ops = rich_batch(tree_);
  recovers_from_a_kill_at_every_step(ops, [&](Renamer& r, const std::string& report) {
    EXPECT_NE(report.find("recovered an interrupted batch of " + std::to_string(ops.size()) + " operations from "),
              std::string::npos)
        << report;
    // The next client is told, once.
    const auto told = r.journal().take_recoveries();
    ASSERT_EQ(told.size(), 1u);
    EXPECT_EQ(told[0], report);
    EXPECT_TRUE(r.journal().take_recoveries().empty());
    EXPECT_TRUE(r.recover().empty());
  });
}

// Recovery goes from the last step down, so when it looks at a step, the
// ones before it may not have run: what sits where a step makes a directory
// or re-targets a link may still be the user's own.
TEST_F(RenameTest, KillBeforeAnEarlierStepClearsTheWayLosesNothing) {
  make_dir(p("D"));
  write_file(p("f"), "f");
  recovers_from_a_kill_at_every_step({rename_op(p("D"), p("E")), rename_op(p("f"), p("D/f"))});
}

TEST_F(RenameTest, KillBeforeALinkIsReplacedKeepsTheOldLinkAsItWas) {
  make_link("T", p("a"));
  make_link("U", p("b"));  // already points where `a` is re-targeted to
  recovers_from_a_kill_at_every_step(
      {rename_op(p("b"), p("c")), rename_op(p("a"), p("b")), retarget_op(p("a"), "U")});
}

// Killed after the last step, before the journal says "done" (or, for an
// undo, "undone"): the batch is rolled back; the undo is taken back, the
// batch stays done.
TEST_F(RenameTest, KillBeforeTheFinalMarkThenRecoveryAgrees) {
  make_dir(p("D"));
  write_file(p("f"), "f");
  const std::vector<Operation> ops = {rename_op(p("D"), p("E")), rename_op(p("f"), p("D/f"))};
  const auto before = snapshot(tree_.root);
  const std::size_t steps = RenamePlan::make({ops}, trash()).steps.size();
  ASSERT_NO_FATAL_FAILURE(killed_at(steps, &ops));
  ASSERT_EQ(renamer().recover().size(), 1u);
  EXPECT_EQ(snapshot(tree_.root), before);

  submit(ops);
  ASSERT_NO_FATAL_FAILURE(killed_at(steps, nullptr));
  const auto reports = renamer().recover();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("the batch stays done"), std::string::npos) << reports[0];
  const auto now = snapshot(tree_.root);
  EXPECT_EQ(now.at("E").ino, before.at("D").ino);
  EXPECT_EQ(now.at("D/f"), before.at("f"));
  EXPECT_EQ(now.size(), before.size() + 1);
}

// The journal cannot record the end (a full disk): the steps are taken back,
// so that no later start finds a "running" batch over a tree that has moved
// on since.
TEST_F(RenameTest, AFailedFinalMarkTakesTheStepsBack) {
  auto ops = rich_batch(tree_);
  const auto before = snapshot(tree_.root);
  const std::size_t steps = RenamePlan::make({ops}, trash()).steps.size();
  try {
    submit(ops, Failpoint{steps, Failpoint::Action::fail});
    ADD_FAILURE() << "the batch did not fail";
  } catch (const StepFailed& e) {
    EXPECT_NE(std::string(e.what()).find("the journal could not record the batch as done"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("rolled back, nothing changed"), std::string::npos) << e.what();
  }
  expect_as_remade(snapshot(tree_.root), before);
  EXPECT_TRUE(renamer().recover().empty());

  for (auto& op : ops)  // the re-made link is another file now
    if (!op.source.empty()) op.id = id_of(op.source);
  submit(ops);
  const auto done = snapshot(tree_.root);
  auto r = renamer(Failpoint{steps, Failpoint::Action::fail});
  EXPECT_THROW(r.undo(never_), StepFailed);
  expect_as_remade(snapshot(tree_.root), done);
  EXPECT_TRUE(renamer().recover().empty());
  renamer().undo(never_);
  expect_as_remade(snapshot(tree_.root), before);
}

// A batch the journal still calls running (its rollback could not be
// recorded, here: killed before step 0) is settled before the next batch
// runs, not at the next start, where the next batch's files at the same
// names would be taken for it and rolled back.
TEST_F(RenameTest, ABatchLeftRunningIsSettledBeforeTheNextOne) {
  write_file(p("a"), "a");
  const std::vector<Operation> ops = {rename_op(p("a"), p("b"))};
  ASSERT_NO_FATAL_FAILURE(killed_at(0, &ops));
  submit(ops);
  const auto done = snapshot(tree_.root);
  EXPECT_EQ(renamer().journal().take_recoveries().size(), 1u);  // the next client is told
  EXPECT_TRUE(renamer().recover().empty());                     // the next start
  EXPECT_EQ(snapshot(tree_.root), done);
  ASSERT_NO_FATAL_FAILURE(killed_at(0, nullptr));  // an undo left "undoing"
  renamer().undo(never_);
  EXPECT_FALSE(std::filesystem::exists(p("b")));
  EXPECT_TRUE(renamer().recover().empty());
}

TEST_F(RenameTest, KillDuringUndoThenRecoveryKeepsTheBatchDone) {
  const auto ops = rich_batch(tree_);
  submit(ops);
  const auto done = snapshot(tree_.root);
  const std::size_t steps = renamer().journal().steps(renamer().journal().last_done()->id).size();
  for (std::size_t k : {std::size_t(0), steps / 2, steps - 1}) {
    ASSERT_NO_FATAL_FAILURE(killed_at(k, nullptr));
    auto r = renamer();
    const auto reports = r.recover();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].find("undo"), std::string::npos) << reports[0];
    EXPECT_NE(reports[0].find("the batch stays done"), std::string::npos) << reports[0];
    expect_as_remade(snapshot(tree_.root), done);
  }
}

// An undo killed half-way is taken forward again at the next start, so the
// batch stays done; but a file put by hand where the undo had put one back
// is not the batch's: it is left where it is, and recovery says so.
TEST_F(RenameTest, RecoveryOfAKilledUndoMovesNoFileItDidNotPutBack) {
  write_file(p("a"), "a");
  write_file(p("b"), "b");
  submit({rename_op(p("a"), p("a2")), rename_op(p("b"), p("b2"))});
  ASSERT_NO_FATAL_FAILURE(killed_at(1, nullptr));  // b is back, a2 not yet
  ASSERT_EQ(snapshot(tree_.root).at("b").data, "b");
  write_file(p("b.new"), "mine");  // made first: another inode than b's
  ASSERT_EQ(::rename(p("b.new").c_str(), p("b").c_str()), 0);
  const auto reports = renamer().recover();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("could not restore everything"), std::string::npos) << reports[0];
  EXPECT_NE(reports[0].find("renaming " + p("b") + " to " + p("b2") + ": not as the undo left it"),
            std::string::npos)
      << reports[0];
  const auto now = snapshot(tree_.root);
  EXPECT_EQ(now.at("b").data, "mine");
  EXPECT_EQ(now.count("b2"), 0u);
  EXPECT_EQ(now.at("a2").data, "a");
}

// A file replaced after planning, before its step (an editor saving by
// writing a new file), or a directory on the way swapped for a symbolic link
// to elsewhere: the step would move a file nobody asked to move. It fails,
// the batch is rolled back, and the newcomer is left alone.
TEST_F(RenameTest, AFileReplacedWhileTheBatchRunsIsNotMoved) {
  make_dir(p("d"));
  make_dir(p("outside"));
  write_file(p("a"), "a");
  write_file(p("b"), "b");
  write_file(p("d/c"), "c");
  write_file(p("outside/c"), "not the user's c");
  for (const bool swap_directory : {false, true}) {
    SCOPED_TRACE(swap_directory ? "d swapped for a link" : "b replaced");
    const std::vector<Operation> ops = {rename_op(p("a"), p("a2")), rename_op(p("b"), p("b2")),
                                        rename_op(p("d/c"), p("d/c2"))};
    std::thread meddler([&] {
      for (int i = 0; i < 200 && !std::filesystem::exists(p("a2")); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      if (swap_directory) {
        ASSERT_EQ(::rename(p("d").c_str(), p("d.real").c_str()), 0);
        ASSERT_EQ(::symlink(p("outside").c_str(), p("d").c_str()), 0);
      } else {
        write_file(p("b.new"), "mine");
        ASSERT_EQ(::rename(p("b.new").c_str(), p("b").c_str()), 0);
      }
    });
    try {
      submit(ops, Failpoint{1, Failpoint::Action::pause});  // the meddler acts during the pause
      ADD_FAILURE() << "the batch went through";
    } catch (const StepFailed& e) {
      EXPECT_NE(std::string(e.what()).find(": it is not the file the plan saw (replaced since, or reached another way); the batch was rolled back"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("rolled back, nothing changed"), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
    meddler.join();
    const auto now = snapshot(tree_.root);
    EXPECT_EQ(now.at("a").data, "a");
    EXPECT_EQ(now.count("a2"), 0u);
    EXPECT_EQ(now.at("outside/c").data, "not the user's c");
    EXPECT_EQ(now.count("outside/c2"), 0u);
    if (swap_directory) {
      EXPECT_EQ(now.at("d.real/c").data, "c");
    } else {
      EXPECT_EQ(now.at("b").data, "mine");
      EXPECT_EQ(now.count("b2"), 0u);
    }
  }
}

// ---- Property: random batches end as predicted ----

TEST_F(RenameTest, RandomBatchesEndAsPredicted) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with DESCENT_RENAME_SEED)");
  std::mt19937 random(std::getenv("DESCENT_RENAME_SEED") ? std::atoi(std::getenv("DESCENT_RENAME_SEED")) : seed);
  for (int round = 0; round < 12; ++round) {
    TempTree t;
    const int dirs = 1 + static_cast<int>(random() % 3);
    const int count = round == 11 ? 2000 : 1 + static_cast<int>(random() % 60);
    std::vector<std::string> names;
    for (int d = 0; d < dirs; ++d) make_dir(t.path("d" + std::to_string(d)));
    for (int i = 0; i < count; ++i) {
      const std::string name = "d" + std::to_string(random() % dirs) + "/f" + std::to_string(i);
      write_file(t.path(name), "contents of " + name);
      names.push_back(name);
    }
    const auto before = snapshot(t.root);
    // Destinations: a permutation of the names (cycles, chains, swaps), some
    // replaced by fresh names (chains ending in a free name) or names in new
    // directories.
    std::vector<std::string> targets = names;
    std::shuffle(targets.begin(), targets.end(), random);
    for (auto& target : targets) {
      const auto roll = random() % 10;
      if (roll == 0) target = "new" + std::to_string(random() % 3) + "/g" + std::to_string(random());
      else if (roll == 1) target = "d" + std::to_string(random() % dirs) + "/h" + std::to_string(random());
    }
    std::vector<Operation> ops;
    std::map<std::string, Entry> expected;
    for (const auto& [name, entry] : before)
      if (S_ISDIR(entry.mode)) expected[name] = entry;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (random() % 7 == 0) {
        expected[names[i]] = before.at(names[i]);  // stays
        // Its name must not be a target of another: swap it in.
        auto it = std::find(targets.begin(), targets.end(), names[i]);
        if (it != targets.end()) *it = "d0/free" + std::to_string(i);
        continue;
      }
      ops.push_back(rename_op(t.path(names[i]), t.path(targets[i])));
    }
    // Rebuild the expectations after the fix-ups above.
    expected.clear();
    for (const auto& [name, entry] : before)
      if (S_ISDIR(entry.mode)) expected[name] = entry;
    std::set<std::string> moving;
    for (const auto& op : ops) moving.insert(op.source.substr(t.root.size() + 1));
    for (const auto& name : names)
      if (!moving.count(name)) expected[name] = before.at(name);
    bool clash = false;
    for (std::size_t i = 0, o = 0; i < names.size(); ++i) {
      if (!moving.count(names[i])) continue;
      const std::string target = ops[o++].destination.substr(t.root.size() + 1);
      if (expected.count(target)) clash = true;
      expected[target] = before.at(names[i]);
    }
    if (clash) continue;  // a fix-up made two sources collide: not a valid batch
    Renamer::Options options;
    options.trash_dir = trash();
    Renamer r(db_, options);
    const auto outcome = r.submit({ops}, never_);
    using Moves = std::set<std::pair<std::string, std::string>>;
    Moves renamed;
    for (const auto& op : ops)
      if (op.source != op.destination) renamed.emplace(op.source, op.destination);  // a shuffle keeps some
    const auto moves = r.moves(outcome.batch);
    EXPECT_EQ(Moves(moves.begin(), moves.end()), renamed) << "round " << round;
    auto after = snapshot(t.root);
    EXPECT_TRUE(temporaries(after).empty());
    // New directories appear in `after` only.
    for (auto it = after.begin(); it != after.end();)
      it = (S_ISDIR(it->second.mode) && !expected.count(it->first)) ? after.erase(it) : std::next(it);
    for (auto& [name, entry] : expected)
      if (S_ISDIR(entry.mode) && after.count(name)) entry = after.at(name);  // mtime-free, but inode kept
    ASSERT_EQ(after, expected) << "round " << round;
  }
}

}  // namespace
}  // namespace descent::rename::testing
