// Differential tests of the listing engine: for every switch set and locale,
// its text + //DIRED// trailer must equal, byte for byte, what GNU ls prints
// for `ls --dired SWITCHES -- DIR` on generated trees with awkward names.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lister.hpp"

namespace {

using descent::lister::Environment;
namespace lister = descent::lister;

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

struct LsRun {
  int status = -1;
  std::string out, err;
};

// Runs /bin/ls without a shell, with exactly `env` as its environment.
LsRun run_ls(const std::vector<std::string>& args, const Environment& env) {
  int out_pipe[2], err_pipe[2];
  check(::pipe2(out_pipe, O_CLOEXEC) == 0 && ::pipe2(err_pipe, O_CLOEXEC) == 0, "pipe");
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> argv{const_cast<char*>("ls")}, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  check(pid >= 0, "fork");
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execve("/bin/ls", argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  LsRun run;
  // stderr is small; read stdout fully first, then stderr.
  for (auto [fd, sink] : {std::pair{out_pipe[0], &run.out}, std::pair{err_pipe[0], &run.err}}) {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) sink->append(buf, static_cast<std::size_t>(n));
    ::close(fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> words;
  std::string w;
  for (char c : s) {
    if (c == ' ') {
      if (!w.empty()) words.push_back(w);
      w.clear();
    } else {
      w += c;
    }
  }
  if (!w.empty()) words.push_back(w);
  return words;
}

// A temporary tree, kept (and named) when a test fails, as magit's
// magit-with-test-directory does.
class TempDir {
 public:
  // The tree lives one level down, so that its ".." is ours too and does not
  // change while other processes create and remove things in /tmp.
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "descent-lister-XXXXXX").string();
    check(::mkdtemp(templ.data()) != nullptr, "mkdtemp");
    base_ = templ;
    path_ = base_ + "/tree";
    check(::mkdir(path_.c_str(), 0755) == 0, "mkdir " + path_);
  }
  ~TempDir() {
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "kept the test tree %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string base_, path_;
};

void make_file(const std::string& path, std::uint64_t size, bool with_data = false, mode_t mode = 0644) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  check(fd >= 0, "create " + path);
  if (with_data) {
    std::string data(size, 'x');
    check(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()), "write " + path);
  } else {
    check(::ftruncate(fd, static_cast<off_t>(size)) == 0, "ftruncate " + path);
  }
  ::close(fd);
  check(::chmod(path.c_str(), mode) == 0, "chmod " + path);
}

void set_mtime(const std::string& path, std::time_t sec, long nsec = 0) {
  const struct timespec times[2] = {{sec, nsec}, {sec, nsec}};
  check(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0, "utimensat " + path);
}

void make_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  check(fd >= 0, "socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  check(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "bind " + path);
  ::close(fd);
}

// A POSIX access ACL granting uid 12345 read: what setfacl -m u:12345:r writes.
void give_acl(const std::string& path) {
  struct Entry {
    std::uint16_t tag, perm;
    std::uint32_t id;
  };
  struct {
    std::uint32_t version = 2;
    Entry e[5] = {{0x01, 6, UINT32_MAX}, {0x02, 4, 12345}, {0x04, 4, UINT32_MAX}, {0x10, 4, UINT32_MAX},
                  {0x20, 4, UINT32_MAX}};
  } acl;
  check(::setxattr(path.c_str(), "system.posix_acl_access", &acl, sizeof acl, 0) == 0, "setxattr " + path);
}

// The tree with every awkward thing the issue lists.
void build_awkward_tree(const TempDir& t) {
  const std::time_t now = std::time(nullptr);
  std::vector<std::string> names = {
      "plain",        "with space",     "-leading-dash", "new\nline",     "back\\slash",     "quote'single",
      "quote\"double", "bad\xff\xfe",   "trunc\xc3",     "caf\xc3\xa9",   "e\xcc\x81-combining", "\xe6\x97\xa5\xe6\x9c\xac",
      "tab\there",    "ctrl\x01x",      "del\x7f",       "star*",         "eq=sign",         "pipe|bar",
      "at@sign",      "gt>sign",        "hash#",         "~tilde",        ".hidden",         "..dots",
      "file1",        "file2",          "file10",        "file1.10.tar.gz", "file1.9.tar.gz", "a~",
      "x.tar.gz",     "Makefile",       "README.md",     "z.B",           "UPPER",           "lower",
      "nonprint\xc2\x85", "zw\xe2\x80\x8bsp", "emoji\xf0\x9f\x98\x80", "bell\x07", "cr\rx", "q?mark"};
  names.push_back(std::string(255, 'L'));
  names.push_back(std::string(250, 'w') + ".c");
  for (const auto& n : names) make_file(t / n, 0);
  // Sizes at the unit boundaries of -h (1024) and --si (1000), sparse.
  const std::uint64_t sizes[] = {1,          999,        1000,          1001,          1023,       1024,
                                 1025,       10239,      10240,         10241,         102399,     999999,
                                 1000000,    1048575,    1048576,       1048577,       1073741823, 1073741824,
                                 9999999999, 1099511627776, 999999999999};
  for (std::uint64_t s : sizes) make_file(t / ("size-" + std::to_string(s)), s);
  // Files with real blocks, for "total" and -s.
  for (std::uint64_t s : {1u, 4095u, 4096u, 4097u, 100000u, 1500000u}) make_file(t / ("data-" + std::to_string(s)), s, true);
  make_file(t / "exec", 10, true, 0755);
  make_file(t / "setuid", 0, false, 04755);
  make_file(t / "setuid-noexec", 0, false, 04644);
  make_file(t / "setgid", 0, false, 02755);
  make_file(t / "setgid-noexec", 0, false, 02644);
  make_file(t / "sticky-file", 0, false, 01644);
  make_file(t / "all-bits", 0, false, 07777);
  make_file(t / "no-perms", 0, false, 0);
  check(::mkdir((t / "subdir").c_str(), 0755) == 0, "mkdir");
  check(::mkdir((t / "dir with space").c_str(), 0700) == 0, "mkdir");
  check(::mkdir((t / "sticky-dir").c_str(), 01777) == 0, "mkdir");
  check(::chmod((t / "sticky-dir").c_str(), 01777) == 0, "chmod");
  check(::mkdir((t / "sticky-noexec").c_str(), 01776) == 0, "mkdir");
  check(::chmod((t / "sticky-noexec").c_str(), 01776) == 0, "chmod");
  check(::symlink("plain", (t / "link-good").c_str()) == 0, "symlink");
  check(::symlink("does-not-exist", (t / "link-broken").c_str()) == 0, "symlink");
  check(::symlink("subdir", (t / "link-dir").c_str()) == 0, "symlink");
  check(::symlink("exec", (t / "link-exec").c_str()) == 0, "symlink");
  check(::symlink("new\nline", (t / "link-awkward target").c_str()) == 0, "symlink");
  check(::symlink("/", (t / "link-absolute").c_str()) == 0, "symlink");
  check(::mkfifo((t / "fifo").c_str(), 0644) == 0, "mkfifo");
  make_socket(t / "sock");
  check(::link((t / "plain").c_str(), (t / "hardlink").c_str()) == 0, "link");
  check(::link((t / "plain").c_str(), (t / "hardlink2").c_str()) == 0, "link");
  // Device nodes (root only; skipped quietly where mknod is not allowed).
  ::mknod((t / "chardev").c_str(), S_IFCHR | 0600, makedev(1, 3));
  ::mknod((t / "blockdev").c_str(), S_IFBLK | 0660, makedev(259, 65536));
  // Owners without names.
  for (const char* n : {"plain", "file10", "subdir"}) check(::lchown((t / n).c_str(), 12345, 12345) == 0, "lchown");
  check(::lchown((t / "exec").c_str(), 0, 54321) == 0, "lchown");
  // Times: recent, older than six months, in the future, equal (name tie-breaks).
  std::time_t when = now - 3600;
  for (const auto& n : names) set_mtime(t / n, when -= 86400 * 7, 123456789);
  set_mtime(t / "file1", now - 86400 * 365 * 2);
  set_mtime(t / "file2", now + 86400 * 365);
  set_mtime(t / "file10", now + 60);
  set_mtime(t / "README.md", now - 86400 * 180);
  set_mtime(t / "Makefile", now - 86400 * 185);
  set_mtime(t / "x.tar.gz", 0);
  for (const char* n : {"size-1", "size-999", "size-1000", "data-1", "exec"}) set_mtime(t / n, now - 100, 5);
}

// Only links that resolve, so that -L lists without errors.
void build_link_tree(const TempDir& t) {
  make_file(t / "target", 1234, true);
  make_file(t / "exec", 10, true, 0755);
  check(::mkdir((t / "dir").c_str(), 0755) == 0, "mkdir");
  check(::symlink("target", (t / "to-file").c_str()) == 0, "symlink");
  check(::symlink("dir", (t / "to-dir").c_str()) == 0, "symlink");
  check(::symlink("exec", (t / "to-exec").c_str()) == 0, "symlink");
  check(::symlink("to-file", (t / "to-link").c_str()) == 0, "symlink");
  check(::mkfifo((t / "fifo").c_str(), 0600) == 0, "mkfifo");
  give_acl(t / "target");
}

// SELinux labels (ls shows '.', or '+' when there is an ACL too), stored as
// plain attributes: ls reads them even with SELinux off.
void build_label_tree(const TempDir& t) {
  const char label[] = "system_u:object_r:user_home_t:s0";
  make_file(t / "labelled", 10, true);
  make_file(t / "labelled-and-acl", 10, true);
  make_file(t / "unlabeled", 10, true);
  make_file(t / "plain", 10, true);
  check(::symlink("labelled", (t / "link").c_str()) == 0, "symlink");
  for (const char* n : {"labelled", "labelled-and-acl", "link"})
    check(::lsetxattr((t / n).c_str(), "security.selinux", label, sizeof label, 0) == 0, "lsetxattr");
  check(::setxattr((t / "unlabeled").c_str(), "security.selinux", "unlabeled", 10, 0) == 0, "setxattr");
  give_acl(t / "labelled-and-acl");
}

Environment locale_env(const std::string& locale) {
  Environment env{{"LC_ALL", locale}};
  if (const char* tz = std::getenv("TZ")) env["TZ"] = tz;
  return env;
}

// Compares the engine with ls for one operand; returns false when both
// agree that ls cannot be reproduced (ls reported an error).
void expect_same_as_ls(const std::string& operand, const std::string& switches, const std::string& locale) {
  const std::vector<std::string> words = split_words(switches);
  std::vector<std::string> args{"--dired"};
  args.insert(args.end(), words.begin(), words.end());
  args.push_back("--");
  args.push_back(operand);
  const Environment env = locale_env(locale);
  const LsRun ls = run_ls(args, env);
  std::string ours;
  try {
    const lister::Listing listing = lister::list(operand, words, env);
    ours = listing.text + lister::dired_trailer(listing);
  } catch (const lister::Unsupported& e) {
    EXPECT_TRUE(ls.status != 0 || !ls.err.empty())
        << "the engine refused `" << switches << "` (" << e.what() << ") but ls printed it without complaint";
    return;
  }
  ASSERT_EQ(ls.status, 0) << ls.err;
  ASSERT_EQ(ls.err, "");
  if (ours == ls.out) return;
  // Point at the first differing line, for a readable failure.
  std::size_t at = 0;
  while (at < ours.size() && at < ls.out.size() && ours[at] == ls.out[at]) ++at;
  const std::size_t line = ls.out.rfind('\n', at == 0 ? 0 : at - 1);
  const std::size_t from = line == std::string::npos ? 0 : line + 1;
  ADD_FAILURE() << "`ls --dired " << switches << "` under LC_ALL=" << locale << " differs at byte " << at
                << "\n  ls:   " << ls.out.substr(from, ls.out.find('\n', at) - from)
                << "\n  ours: " << ours.substr(from, ours.find('\n', at) - from);
}

const char* const switch_sets[] = {
    // The combinations issue #3 names.
    "-al", "-alh", "-alhv --group-directories-first", "-lA", "-alt", "-altr", "-alS", "-alX", "-alF", "-alib",
    "-algG", "-aln", "--time-style=long-iso -al", "-al --si",
    // More of each supported switch.
    "-l", "-alv", "-alp", "-als", "-alsh", "-als --si", "-ali", "-alo", "-alg", "-alnG", "-alU", "-alr",
    "-alSr", "-alXr", "-alvr", "-alb", "-alFb", "-alpb", "-alhS --group-directories-first",
    "-altr --group-directories-first", "-alF --group-directories-first", "-alp --group-directories-first",
    "--time-style=full-iso -al", "--time-style=iso -al", "--time-style=+%s.%N -al",
    "--time-style=+%Y%n%H:%M:%S -al", "--time-style=posix-long-iso -al", "--time-style locale -al",
    "-alb --group-directories-first", "-alpb --group-directories-first",
    "-l --all --human-readable --classify", "-al --indicator-style=file-type", "-al --sort=version",
    "-al --quoting-style=escape", "-alL", "-alLF", "-alLi"};

const char* const locales[] = {"C", "C.UTF-8"};

struct Case {
  std::string switches;
  std::string locale;
};

// How GoogleTest shows a case (in ctest's log): readable, not a hex dump.
void PrintTo(const Case& c, std::ostream* os) { *os << "ls " << c.switches << " under " << c.locale; }

class LsDifference : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    awkward_ = new TempDir;
    links_ = new TempDir;
    labels_ = new TempDir;
    build_awkward_tree(*awkward_);
    build_link_tree(*links_);
    build_label_tree(*labels_);
  }
  static void TearDownTestSuite() {
    delete awkward_;
    delete links_;
    delete labels_;
  }
  static TempDir* awkward_;
  static TempDir* links_;
  static TempDir* labels_;
};
TempDir* LsDifference::awkward_ = nullptr;
TempDir* LsDifference::links_ = nullptr;
TempDir* LsDifference::labels_ = nullptr;

TEST_P(LsDifference, AwkwardTree) { expect_same_as_ls(awkward_->path(), GetParam().switches, GetParam().locale); }

TEST_P(LsDifference, AwkwardTreeWithTrailingSlash) {
  expect_same_as_ls(awkward_->path() + "/", GetParam().switches, GetParam().locale);
}

TEST_P(LsDifference, LinkTree) { expect_same_as_ls(links_->path(), GetParam().switches, GetParam().locale); }

TEST_P(LsDifference, LabelTree) { expect_same_as_ls(labels_->path(), GetParam().switches, GetParam().locale); }

// What dired inserts after a rename or copy: one file named on the command
// line, and the directory itself with -d.
TEST_P(LsDifference, SingleOperands) {
  for (const char* name : {"plain", "new\nline", "link-good", "link-dir", "fifo", "subdir", "size-1048577", "exec"})
    expect_same_as_ls(*awkward_ / name, GetParam().switches, GetParam().locale);
  expect_same_as_ls(awkward_->path(), GetParam().switches + " -d", GetParam().locale);
  expect_same_as_ls(*links_ / "to-dir", GetParam().switches, GetParam().locale);
  expect_same_as_ls(*links_ / "to-dir/", GetParam().switches, GetParam().locale);
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const char* s : switch_sets)
    for (const char* l : locales) cases.push_back({s, l});
  return cases;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name;
  for (char c : info.param.switches + "_" + info.param.locale) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(Switches, LsDifference, ::testing::ValuesIn(all_cases()), case_name);

TEST(LsDifferenceExtra, EmptyDirectoryAndAclFreeDirectory) {
  TempDir t;
  for (const char* s : {"-al", "-lA", "-l", "-alh"}) expect_same_as_ls(t.path(), s, "C");
}

// Large enough that the engine stats on several threads.
TEST(LsDifferenceExtra, LargeDirectory) {
  TempDir t;
  build_awkward_tree(t);
  for (int i = 0; i < 5000; ++i) {
    const std::string name = (i % 7 ? "f" : "Dir.") + std::to_string(i * 7919 % 100003) + (i % 3 ? ".txt" : "");
    if (i % 7 == 0) check(::mkdir((t / name).c_str(), 0755) == 0, "mkdir");
    else make_file(t / name, static_cast<std::uint64_t>(i) * 1013);
  }
  for (const char* s : {"-al", "-alhv --group-directories-first", "-alt", "-alS", "-alX", "-alUi", "-aln"})
    for (const char* l : locales) expect_same_as_ls(t.path(), s, l);
}

TEST(Lister, RefusesWhatItDoesNotReproduce) {
  TempDir t;
  const Environment c = locale_env("C");
  auto refused = [&](std::vector<std::string> switches, const Environment& env) {
    try {
      lister::list(t.path(), switches, env);
    } catch (const lister::Unsupported&) {
      return true;
    }
    return false;
  };
  EXPECT_TRUE(refused({"-alR"}, c));
  EXPECT_TRUE(refused({"-a"}, c));  // not long format
  EXPECT_TRUE(refused({"-al1"}, c));
  EXPECT_TRUE(refused({"-al", "--color=always"}, c));
  EXPECT_TRUE(refused({"-al", "--group"}, c));  // abbreviations are ls's business
  EXPECT_TRUE(refused({"-al", "--time-style=bogus"}, c));
  EXPECT_TRUE(refused({"-al", "--sort=name"}, c));  // ls 9.1 rejects it: its error is the listing
  EXPECT_TRUE(refused({"-al", "file"}, c));
  EXPECT_TRUE(refused({"-al"}, Environment{{"LC_ALL", "en_US.UTF-8"}}));
  EXPECT_TRUE(refused({"-al"}, Environment{{"LANG", "de_DE.UTF-8"}}));
  Environment language = locale_env("C.UTF-8");
  language["LANGUAGE"] = "de";
  EXPECT_TRUE(refused({"-al"}, language));
  language["LC_ALL"] = "C";  // ignored in the C locale, as gettext does
  EXPECT_FALSE(refused({"-al"}, language));
  Environment block = c;
  block["BLOCK_SIZE"] = "1";
  EXPECT_TRUE(refused({"-al"}, block));
  Environment zone = c;
  zone["TZ"] = std::getenv("TZ") ? std::string("UTC+7") : std::string("Asia/Tokyo");
  EXPECT_TRUE(refused({"-al"}, zone));
  EXPECT_FALSE(refused({"-al"}, c));
  EXPECT_FALSE(refused({"-al"}, Environment{{"LANG", "C.UTF-8"}}));
  // An empty time style is no style: ls rejects it as ambiguous.
  Environment empty_style = c;
  empty_style["TIME_STYLE"] = "";
  EXPECT_TRUE(refused({"-al"}, empty_style));
  EXPECT_TRUE(refused({"-al", "--time-style="}, c));
  EXPECT_TRUE(refused({"-al", "--time-style", ""}, c));
}

// Years that glibc's strftime prints otherwise than ls's gnulib nstrftime
// ("1" for "0001", "-1" for "-001", an int overflow past year 2^31 - 1):
// the engine refuses them, and prints every other year as ls does. Only a
// file system with 64-bit times keeps such times (tmpfs; ext4 stops at 1901).
TEST(LsDifferenceExtra, YearsBeforeOneThousandAndPastInt) {
  const char* shm = "/dev/shm";
  if (::access(shm, W_OK) != 0) GTEST_SKIP() << "no /dev/shm";
  std::string base = std::string(shm) + "/descent-years-XXXXXX";
  check(::mkdtemp(base.data()) != nullptr, "mkdtemp");
  struct Year {
    std::time_t sec;
    bool same;  // strftime and nstrftime agree
  };
  const Year years[] = {
      {-62135596800, false},      // 0001-01-01
      {-62167219200, false},      // 0000-01-01
      {-62198755200, false},      // -001-01-01
      {-31556995200, false},      // 0970-01-01
      {-30610224000, false},      // 1000-01-01 (ISO year 999)
      {-30578688000, true},       // 1001-01-01
      {-2208988800, true},        // 1900-01-01
      {253402300799, true},       // 9999-12-31
      {253402300800, true},       // 10000-01-01
      {67767976233532799, false}, // year 2147483647 (ISO year 2147483648 at the end)
      {67767976233532800, false}  // year 2147483648
  };
  for (const Year& y : years) {
    const std::string dir = base + "/" + std::to_string(y.sec);
    check(::mkdir(dir.c_str(), 0755) == 0, "mkdir");
    make_file(dir + "/f", 0);
    const struct timespec times[2] = {{y.sec, 0}, {y.sec, 0}};
    if (::utimensat(AT_FDCWD, (dir + "/f").c_str(), times, 0) != 0) {
      std::filesystem::remove_all(base);
      GTEST_SKIP() << "no 64-bit times in " << shm;
    }
    const std::pair<const char*, bool> styles[] = {
        {"-l", true},          {"-l --time-style=long-iso", true}, {"-l --time-style=full-iso", true},
        {"-l --time-style=iso", true}, {"-l --time-style=+%C|%y|%G|%g|%D", true}, {"-l --time-style=+%s", false},
        {"-l --time-style=+%c", false}, {"-l --time-style=+%F", true}};
    for (auto [switches, with_year] : styles) {
      const std::vector<std::string> words = split_words(switches);
      bool refused = false;
      try {
        lister::list(dir, words, locale_env("C"));
      } catch (const lister::Unsupported&) {
        refused = true;
      }
      if (!refused) expect_same_as_ls(dir, switches, "C");
      // gnulib's %F signs a year of five digits or more.
      const bool same = y.same && !(std::string_view(switches).ends_with("%F") && y.sec >= 253402300800);
      EXPECT_EQ(refused, !same && with_year) << switches << " at " << y.sec;
    }
  }
  std::filesystem::remove_all(base);
}

// The system's zone changed while the daemon runs (timedatectl, a laptop
// that travels): ls, a new process, shows the new one, and so must the
// next listing. Run in a child in its own mount namespace, with a file of
// ours bound over /etc/localtime (root only; skipped otherwise).
TEST(Lister, FollowsTheSystemTimeZoneWhenItChanges) {
  const char* utc = "/usr/share/zoneinfo/UTC";
  const char* tokyo = "/usr/share/zoneinfo/Asia/Tokyo";
  if (::access(utc, R_OK) != 0 || ::access(tokyo, R_OK) != 0) GTEST_SKIP() << "no tzdata";
  if (std::getenv("TZ")) GTEST_SKIP() << "TZ is set";
  TempDir t;
  make_file(t / "f", 0);
  const std::filesystem::path zone = t / "localtime";
  std::filesystem::copy_file(utc, zone);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount(zone.c_str(), "/etc/localtime", nullptr, MS_BIND, nullptr) != 0)
      ::_exit(77);
    const std::vector<std::string> switches{"-l", "--time-style=+%H"};
    const std::string before = lister::list(t / "f", switches, locale_env("C")).text;
    // Another zone, written into the same file (its inode stays bound).
    std::filesystem::copy_file(tokyo, zone, std::filesystem::copy_options::overwrite_existing);
    struct timespec later[2] = {{0, UTIME_OMIT}, {std::time(nullptr) + 5, 0}};
    ::utimensat(AT_FDCWD, zone.c_str(), later, 0);  // glibc looks at the mtime's second
    const std::string after = lister::list(t / "f", switches, locale_env("C")).text;
    ::_exit(before != after ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot bind over /etc/localtime here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the listing kept the old zone";
}

TEST(Lister, CancelStopsAListing) {
  TempDir t;
  for (int i = 0; i < 600; ++i) make_file(t / ("f" + std::to_string(i)), 0);
  std::atomic<bool> cancelled{true};
  lister::Control control;
  control.cancelled = &cancelled;
  EXPECT_THROW(lister::list(t.path(), std::vector<std::string>{"-al"}, locale_env("C"), control), lister::Cancelled);
  cancelled = false;
  EXPECT_EQ(lister::list(t.path(), std::vector<std::string>{"-al"}, locale_env("C"), control).names.size(), 602u);
}

TEST(Lister, HumanReadableRoundsUp) {
  using lister::format::human;
  EXPECT_EQ(human(1023, true, true, 1, 1), "1023");
  EXPECT_EQ(human(1024, true, true, 1, 1), "1.0K");
  EXPECT_EQ(human(1025, true, true, 1, 1), "1.1K");
  EXPECT_EQ(human(10239, true, true, 1, 1), "10K");
  EXPECT_EQ(human(10241, true, true, 1, 1), "11K");
  EXPECT_EQ(human(1000, true, false, 1, 1), "1.0k");
  EXPECT_EQ(human(999999, true, false, 1, 1), "1.0M");
  EXPECT_EQ(human(3, false, false, 512, 1024), "2");
}

TEST(Lister, VersionOrder) {
  using lister::format::filevercmp;
  EXPECT_LT(filevercmp("file2", "file10"), 0);
  EXPECT_LT(filevercmp("a~", "a"), 0);
  EXPECT_LT(filevercmp(".", ".."), 0);
  EXPECT_LT(filevercmp("..", ".a"), 0);
  EXPECT_LT(filevercmp("file1.9.tar.gz", "file1.10.tar.gz"), 0);
}

}  // namespace
