// The frecency engine against real SQLite files in temporary directories.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <stdlib.h>
#include <sys/stat.h>

#include "engine/frecency/import.hpp"
#include "engine/frecency/index.hpp"
#include "engine/frecency/matching.hpp"

namespace fs = std::filesystem;
using namespace descent::frecency;

namespace {

constexpr std::int64_t t0 = 1'700'000'000;

// A temporary directory, kept when a test fails so it can be looked at.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "descent-frecency-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    path_ = pattern;
  }
  ~TempDir() {
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "kept %s\n", path_.c_str());
      return;
    }
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The file system as the tests want it: every path is a directory unless
// listed as gone (ENOENT) or unreadable (EACCES).
struct FakeTree {
  std::set<std::string> gone;
  std::set<std::string> unreadable;
  Probe probe() {
    return [this](const std::string& path) {
      if (gone.count(path)) return ENOENT;
      if (unreadable.count(path)) return EACCES;
      return 0;
    };
  }
};

std::vector<std::string> paths_of(const std::vector<Ranked>& ranked) {
  std::vector<std::string> out;
  for (const auto& r : ranked) out.push_back(r.path);
  return out;
}

class IndexTest : public ::testing::Test {
 protected:
  TempDir dir;
  FakeTree tree;
  fs::path db_file() const { return dir.path() / "state.db"; }
};

}  // namespace

TEST(Score, RecencyFactorsAsZoxide) {
  EXPECT_EQ(score(10, t0, t0), 40);
  EXPECT_EQ(score(10, t0, t0 + hour - 1), 40);
  EXPECT_EQ(score(10, t0, t0 + hour), 20);
  EXPECT_EQ(score(10, t0, t0 + day - 1), 20);
  EXPECT_EQ(score(10, t0, t0 + day), 5);
  EXPECT_EQ(score(10, t0, t0 + week - 1), 5);
  EXPECT_EQ(score(10, t0, t0 + week), 2.5);
  // A visit stamped in the future (clock skew) counts as now.
  EXPECT_EQ(score(10, t0 + 100, t0), 40);
}

// The cases zoxide documents in its matcher's tests (src/db/stream.rs).
TEST(Matching, ZoxideExamples) {
  struct Case {
    std::vector<std::string> keywords;
    std::string path;
    bool matches;
  };
  const std::vector<Case> cases = {
      // case normalization (zoxide folds always; here because no keyword is uppercase... see SmartCase)
      {{"foo", "bar"}, "/foo/bar", true},
      // last component
      {{"ba"}, "/foo/bar", true},
      {{"fo"}, "/foo/bar", false},
      // slash as suffix
      {{"foo/"}, "/foo", false},
      {{"foo/"}, "/foo/bar", true},
      {{"foo/"}, "/foo/bar/baz", false},
      {{"foo", "/"}, "/foo", false},
      {{"foo", "/"}, "/foo/bar", true},
      {{"foo", "/"}, "/foo/bar/baz", true},
      // split components
      {{"/", "fo", "/", "ar"}, "/foo/bar", true},
      {{"oo/ba"}, "/foo/bar", true},
      // overlap
      {{"foo", "o", "bar"}, "/foo/bar", false},
      {{"/foo/", "/bar"}, "/foo/bar", false},
      {{"/foo/", "/bar"}, "/foo/baz/bar", true},
      // no keyword matches everything
      {{}, "/anything", true},
  };
  for (const auto& c : cases) {
    const Pattern pattern(c.keywords);
    std::string shown;
    for (const auto& k : c.keywords) shown += "[" + k + "]";
    EXPECT_EQ(pattern.matches(c.path, fold_case(c.path)), c.matches) << shown << " on " << c.path;
  }
}

// zoxide's matcher written plainly (rfind over the whole path), against the
// engine's faster one, on random paths and keywords over a small alphabet.
TEST(Matching, SameAnswersAsThePlainAlgorithm) {
  const auto plain = [](const std::vector<std::string>& keywords, std::string_view path) {
    if (keywords.empty()) return true;
    std::size_t at = path.rfind(keywords.back());
    if (at == std::string_view::npos || path.find('/', at + keywords.back().size()) != std::string_view::npos)
      return false;
    path = path.substr(0, at);
    for (auto k = keywords.rbegin() + 1; k != keywords.rend(); ++k) {
      at = path.rfind(*k);
      if (at == std::string_view::npos) return false;
      path = path.substr(0, at);
    }
    return true;
  };
  std::mt19937 rng(7);
  const auto random_text = [&](int max) {
    std::string s;
    for (int n = static_cast<int>(rng() % (max + 1)); n > 0; --n) s += "ab/"[rng() % 3];
    return s;
  };
  int matched = 0;
  for (int i = 0; i < 200000; ++i) {
    const std::string path = "/" + random_text(12);
    std::vector<std::string> keywords;
    for (int k = static_cast<int>(rng() % 3) + 1; k > 0; --k) keywords.push_back(random_text(4));
    const bool expected = plain(keywords, path);
    matched += expected;
    ASSERT_EQ(keywords_match(keywords, path), expected) << path;
  }
  EXPECT_GT(matched, 1000);
}

TEST(Matching, SmartCase) {
  const auto matches = [](std::vector<std::string> keywords, const std::string& path) {
    return Pattern(keywords).matches(path, fold_case(path));
  };
  // All lowercase: insensitive (zoxide's "fOo bAr" case is sensitive here).
  EXPECT_TRUE(matches({"foo", "bar"}, "/FOO/Bar"));
  EXPECT_TRUE(matches({"src"}, "/home/u/Src"));
  // An uppercase letter anywhere makes the whole query sensitive.
  EXPECT_TRUE(matches({"Src"}, "/home/u/Src"));
  EXPECT_FALSE(matches({"Src"}, "/home/u/src"));
  EXPECT_FALSE(matches({"home", "Src"}, "/HOME/u/Src"));
  EXPECT_TRUE(matches({"HOME", "Src"}, "/HOME/u/Src"));
}

TEST(Matching, UnicodeAndRawBytes) {
  EXPECT_EQ(fold_case("/Été/ÇA/Straße"), "/été/ça/straße");
  EXPECT_TRUE(has_uppercase("Été"));
  EXPECT_FALSE(has_uppercase("été/ß/日本"));
  const auto matches = [](std::vector<std::string> keywords, const std::string& path) {
    return Pattern(keywords).matches(path, fold_case(path));
  };
  EXPECT_TRUE(matches({"été"}, "/docs/ÉTÉ"));
  EXPECT_FALSE(matches({"Été"}, "/docs/ÉTÉ"));
  EXPECT_TRUE(matches({"日本"}, "/home/日本語"));
  // Latin-1 bytes are not UTF-8: kept as they are, and still matchable.
  const std::string latin1 = "/data/caf\xe9/Ma\xefs";
  EXPECT_EQ(fold_case(latin1), "/data/caf\xe9/ma\xefs");
  EXPECT_TRUE(matches({"caf\xe9", "ma\xefs"}, latin1));
  EXPECT_FALSE(has_uppercase("\xc3"));  // a truncated sequence is not a letter
}

TEST(Paths, NormalizedLexically) {
  EXPECT_EQ(normalize_path("/"), "/");
  EXPECT_EQ(normalize_path("//"), "/");
  EXPECT_EQ(normalize_path("/home/u/"), "/home/u");
  EXPECT_EQ(normalize_path("/home//u/./src/"), "/home/u/src");
  EXPECT_EQ(normalize_path("/home/u/../v"), "/home/v");
  EXPECT_EQ(normalize_path("/../x"), "/x");
  EXPECT_EQ(normalize_path("/a b/-x/\\y\n"), "/a b/-x/\\y\n");
  EXPECT_THROW(normalize_path(""), Refusal);
  EXPECT_THROW(normalize_path("relative/dir"), Refusal);
  EXPECT_THROW(normalize_path(std::string("/a\0b", 4)), Refusal);
  EXPECT_THROW(normalize_path("/" + std::string(5000, 'x')), Refusal);
}

TEST_F(IndexTest, VisitsAddUpAndLastVisitMoves) {
  Index index(db_file(), tree.probe());
  index.add("/home/u/src/", t0);
  index.add("/home/u/src", t0 + 10);
  index.add("/home/u/doc", t0 + 20);
  const auto all = index.list(t0 + 30);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].path, "/home/u/src");
  EXPECT_EQ(all[0].rank, 2);
  EXPECT_EQ(all[0].last_visit, t0 + 10);
  EXPECT_EQ(all[0].score, 8);
  EXPECT_EQ(all[1].rank, 1);
  // An older timestamp (a late notification) does not move the visit back.
  index.add("/home/u/src", t0 - 100);
  EXPECT_EQ(index.list(t0).front().last_visit, t0 + 10);
}

TEST_F(IndexTest, RecencyOutranksFrequency) {
  Index index(db_file(), tree.probe());
  for (int i = 0; i < 5; ++i) index.add("/old/often", t0);
  index.add("/new/once", t0 + 2 * week);
  // often: 5 × 0.25 = 1.25; once: 1 × 4 = 4.
  EXPECT_EQ(paths_of(index.query({}, 0, t0 + 2 * week)), (std::vector<std::string>{"/new/once", "/old/often"}));
  // A day later: often still 1.25, once 1 × 0.5.
  EXPECT_EQ(paths_of(index.query({}, 0, t0 + 2 * week + day)), (std::vector<std::string>{"/old/often", "/new/once"}));
}

TEST_F(IndexTest, TiesGoToTheShallowerPath) {
  Index index(db_file(), tree.probe());
  index.add("/a/b/c/project", t0);
  index.add("/a/project", t0);
  index.add("/a/b/project", t0);
  EXPECT_EQ(paths_of(index.query({"project"}, 0, t0)),
            (std::vector<std::string>{"/a/project", "/a/b/project", "/a/b/c/project"}));
  EXPECT_EQ(index.query({"project"}, 1, t0).at(0).path, "/a/project");
}

TEST_F(IndexTest, AgingScalesWhenTheSumPassesTheLimit) {
  // zoxide: once the ranks sum over 10000, each is multiplied by
  // 0.9 × 10000 / sum and those under 1 are dropped.
  const fs::path file = dir.path() / "seed.z";
  {
    std::ofstream seed(file);
    seed << "/big|9998|" << t0 << "\n/small|1.05|" << t0 << "\n";
  }
  Index index(db_file(), tree.probe());
  index.import_file(ImportFormat::z, file.string());
  EXPECT_EQ(index.size(), 2u);
  index.add("/first", t0);  // sum 10000.05: over the limit
  const double factor1 = 0.9 * 10000 / 10000.05;
  auto all = index.list(t0);
  ASSERT_EQ(all.size(), 1u) << "1.05 × 0.9 and 1 × 0.9 are under 1: dropped";
  EXPECT_DOUBLE_EQ(all[0].rank, 9998 * factor1);

  // Adds under the limit do not age; the first add over it does.
  index.add("/other", t0);
  const double before = index.list(t0)[0].rank;
  double sum = before + 1;
  int adds = 1;
  while (sum + 1 <= 10000) {
    index.add("/other", t0);
    sum += 1;
    ++adds;
  }
  EXPECT_EQ(index.size(), 2u);
  EXPECT_DOUBLE_EQ(index.list(t0)[0].rank, before) << "no aging while the sum is at most 10000";
  index.add("/third", t0);  // sum + 1 > 10000
  const double factor2 = 0.9 * 10000 / (sum + 1);
  all = index.list(t0);
  ASSERT_EQ(all.size(), 2u) << "/third (1 × factor) dropped";
  EXPECT_DOUBLE_EQ(all[0].rank, before * factor2);
  EXPECT_DOUBLE_EQ(all[1].rank, adds * factor2);

  // The database holds exactly what the copy shows.
  Index reopened(db_file(), tree.probe());
  const auto again = reopened.list(t0);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].rank, index.list(t0)[0].rank);
  EXPECT_EQ(again[1].rank, index.list(t0)[1].rank);
}

TEST_F(IndexTest, GoneDirectoriesAreDroppedWhenMet) {
  Index index(db_file(), tree.probe());
  index.add("/w/alpha", t0);
  index.add("/w/alpha", t0);
  index.add("/w/beta", t0);
  index.add("/w/gamma", t0);
  tree.gone.insert("/w/alpha");
  tree.unreadable.insert("/w/beta");
  EXPECT_EQ(paths_of(index.query({"w"}, 0, t0)), (std::vector<std::string>{}));
  EXPECT_EQ(paths_of(index.query({}, 0, t0)), (std::vector<std::string>{"/w/gamma"}));
  // alpha is gone for good; beta (EACCES) is kept for when it is readable.
  EXPECT_EQ(index.size(), 2u);
  tree.unreadable.clear();
  EXPECT_EQ(paths_of(index.query({"be"}, 0, t0)), (std::vector<std::string>{"/w/beta"}));
  Index reopened(db_file(), tree.probe());
  EXPECT_EQ(reopened.size(), 2u);
}

TEST_F(IndexTest, OnlyWhatAQueryMeetsIsChecked) {
  Index index(db_file(), tree.probe());
  index.add("/x/one", t0);
  index.add("/x/one", t0);
  index.add("/x/two", t0);
  tree.gone.insert("/x/two");
  EXPECT_EQ(index.query({}, 1, t0).at(0).path, "/x/one");
  EXPECT_EQ(index.size(), 2u) << "two was never met";
  tree.gone.insert("/x/one");
  EXPECT_TRUE(index.query({}, 1, t0).empty());
  EXPECT_EQ(index.size(), 0u);
}

TEST_F(IndexTest, ALimitedQuerySearchesPastManyGoneDirectories) {
  Index index(db_file(), tree.probe());
  std::string z;
  for (int i = 0; i < 100; ++i) z += "/g/d" + std::to_string(i) + "|" + std::to_string(1000 - i) + "|" + std::to_string(t0) + "\n";
  index.import(ImportFormat::z, z);
  for (int i = 0; i < 40; ++i) tree.gone.insert("/g/d" + std::to_string(i));
  tree.unreadable.insert("/g/d40");
  EXPECT_EQ(paths_of(index.query({"d"}, 3, t0)), (std::vector<std::string>{"/g/d41", "/g/d42", "/g/d43"}));
  EXPECT_EQ(index.size(), 60u) << "the 40 gone were dropped, the unreadable one kept";
  EXPECT_EQ(paths_of(index.query({"d4"}, 1, t0)), (std::vector<std::string>{"/g/d41"}));
}

TEST_F(IndexTest, RealFileSystem) {
  const fs::path present = dir.path() / "present";
  const fs::path file = dir.path() / "a-file";
  fs::create_directory(present);
  std::ofstream(file) << "x";
  Index index(db_file());
  index.add(present.string(), t0);
  try {
    index.add((dir.path() / "missing").string(), t0);
    FAIL() << "a missing directory was recorded";
  } catch (const OsError& e) {
    EXPECT_EQ(e.error, ENOENT);
    EXPECT_NE(std::string(e.what()).find("missing: No such file or directory"), std::string::npos) << e.what();
  }
  EXPECT_THROW(index.add(file.string(), t0), OsError);
  EXPECT_EQ(index.query({"present"}, 1, t0).at(0).path, present.string());
  fs::remove(present);
  EXPECT_TRUE(index.query({"present"}, 1, t0).empty());
  EXPECT_EQ(index.size(), 0u);
}

TEST_F(IndexTest, NamesAreBytes) {
  Index index(db_file(), tree.probe());
  const std::string odd = std::string("/srv/caf\xe9\xff/new\nline/-dash/ back\\slash");
  index.add(odd, t0);
  Index reopened(db_file(), tree.probe());
  const auto found = reopened.query({"\\slash"}, 0, t0);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].path, odd);
  EXPECT_EQ(reopened.query({"caf\xe9"}, 0, t0).size(), 0u) << "not the last component";
  EXPECT_EQ(reopened.query({"caf\xe9", "dash", "slash"}, 0, t0).size(), 1u);
}

TEST_F(IndexTest, Remove) {
  Index index(db_file(), tree.probe());
  index.add("/k/keep", t0);
  index.add("/k/drop", t0);
  EXPECT_TRUE(index.remove("/k/drop/"));
  EXPECT_FALSE(index.remove("/k/drop"));
  EXPECT_EQ(paths_of(index.list(t0)), (std::vector<std::string>{"/k/keep"}));
  EXPECT_EQ(Index(db_file(), tree.probe()).size(), 1u);
}

TEST_F(IndexTest, TwoConnectionsSeeEachOther) {
  Index first(db_file(), tree.probe());
  Index second(db_file(), tree.probe());
  first.add("/shared/one", t0);
  EXPECT_EQ(second.size(), 1u);
  second.add("/shared/one", t0);
  EXPECT_EQ(first.list(t0).at(0).rank, 2);
}

TEST_F(IndexTest, ConcurrentWritersLoseNothing) {
  Index index(db_file(), tree.probe());
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      try {
        for (int i = 0; i < 250; ++i) {
          index.add("/shared/hot", t0);
          index.add("/writer" + std::to_string(w) + "/d" + std::to_string(i % 10), t0);
        }
      } catch (...) {
        ++failures;
      }
    });
  }
  for (auto& writer : writers) writer.join();
  EXPECT_EQ(failures.load(), 0);
  Index reopened(db_file(), tree.probe());
  const auto all = reopened.list(t0);
  ASSERT_EQ(all.size(), 41u);
  EXPECT_EQ(all[0].path, "/shared/hot");
  EXPECT_EQ(all[0].rank, 1000) << "4 writers × 250 visits";
  double others = 0;
  for (std::size_t i = 1; i < all.size(); ++i) others += all[i].rank;
  EXPECT_EQ(others, 1000);
}

// ---- import ----

namespace {

std::string zoxide_database(const std::vector<Entry>& entries, std::uint32_t version = 3) {
  std::string out;
  const auto put = [&](const void* p, std::size_t n) { out.append(static_cast<const char*>(p), n); };
  put(&version, 4);
  const std::uint64_t count = entries.size();
  put(&count, 8);
  for (const auto& e : entries) {
    const std::uint64_t length = e.path.size();
    put(&length, 8);
    out += e.path;
    put(&e.rank, 8);
    const std::uint64_t last = static_cast<std::uint64_t>(e.last_visit);
    put(&last, 8);
  }
  return out;
}

std::string refusal_of(ImportFormat format, std::string_view contents) {
  try {
    parse_import(format, contents);
  } catch (const Refusal& refusal) {
    return refusal.what();
  }
  return "(accepted)";
}

}  // namespace

// zoxide's own import test (src/cmd/import.rs, from_z): ranks add up,
// the later visit wins.
TEST_F(IndexTest, ImportZMergesAsZoxide) {
  Index index(db_file(), tree.probe());
  const fs::path seed = dir.path() / "seed";
  std::ofstream(seed) << "/quux/quuz|1|100\n/corge/grault/garply|6|600\n/waldo/fred/plugh|3|300\n"
                         "/xyzzy/thud|8|800\n/foo/bar|9|900\n";
  EXPECT_EQ(index.import_file(ImportFormat::z, seed.string()), 5u);
  const fs::path z = dir.path() / "z";
  std::ofstream(z) << "/baz|7|700\n/quux/quuz|4|400\n/foo/bar|2|200\n/quux/quuz|5|500";  // no final newline
  EXPECT_EQ(index.import_file(ImportFormat::z, z.string()), 4u);

  std::map<std::string, std::pair<double, std::int64_t>> got;
  for (const auto& r : index.list(1000)) got[r.path] = {r.rank, r.last_visit};
  const std::map<std::string, std::pair<double, std::int64_t>> expected = {
      {"/baz", {7, 700}},         {"/corge/grault/garply", {6, 600}}, {"/foo/bar", {11, 900}},
      {"/quux/quuz", {10, 500}},  {"/waldo/fred/plugh", {3, 300}},    {"/xyzzy/thud", {8, 800}},
  };
  EXPECT_EQ(got, expected);
}

// A FIFO (or any file that is not regular) is refused at once: opened
// blocking, it held a worker until someone wrote to it, and two such
// imports stopped the daemon answering, and stopping.
TEST_F(IndexTest, ImportRefusesAFifoWithoutWaiting) {
  Index index(db_file(), tree.probe());
  const fs::path fifo = dir.path() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  try {
    index.import_file(ImportFormat::z, fifo.string());
    ADD_FAILURE() << "the FIFO was read";
  } catch (const Refusal& refusal) {
    EXPECT_NE(std::string(refusal.what()).find("not a regular file"), std::string::npos) << refusal.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(IndexTest, ImportDoesNotAge) {
  // As zoxide: an import only merges; the next visit ages. (A z file is
  // already aged by z, which keeps its sum under 9000.)
  Index index(db_file(), tree.probe());
  std::string z;
  for (int i = 0; i < 3000; ++i) z += "/d" + std::to_string(i) + "|5|" + std::to_string(t0) + "\n";
  EXPECT_EQ(index.import(ImportFormat::z, z), 3000u);
  EXPECT_EQ(index.size(), 3000u);
  index.add("/d0", t0);  // sum 15001: every rank × 0.9·10000/15001, 5 → 3.0
  EXPECT_EQ(index.size(), 3000u);
  EXPECT_DOUBLE_EQ(index.query({"d0"}, 1, t0).at(0).rank, 6 * (0.9 * 10000 / 15001));
  EXPECT_DOUBLE_EQ(index.query({"d1"}, 1, t0).at(0).rank, 5 * (0.9 * 10000 / 15001));
}

// Aging drops most of a large index: the copy's arenas are compacted, and
// every survivor is still found, by its own bytes.
TEST_F(IndexTest, CopyStaysRightThroughMassDrops) {
  Index index(db_file(), tree.probe());
  std::string z;
  const std::string padding(40, 'p');
  for (int i = 0; i < 20000; ++i)
    z += "/mass/" + padding + "/Dir" + std::to_string(i) + "|" + (i % 10 == 0 ? "50" : "1") + "|" + std::to_string(t0) + "\n";
  index.import(ImportFormat::z, z);
  index.add("/mass/extra", t0);  // ages: rank 1 entries drop, rank 50 ones stay
  ASSERT_EQ(index.size(), 2000u);
  for (int i = 0; i < 20000; i += 10) {
    const auto found = index.query({"dir" + std::to_string(i)}, 1, t0);
    ASSERT_EQ(found.size(), 1u) << i;
    EXPECT_EQ(found[0].path, "/mass/" + padding + "/Dir" + std::to_string(i));
  }
  std::size_t starting_with_1 = 0;
  for (int i = 0; i < 20000; i += 10) starting_with_1 += std::to_string(i).front() == '1';
  EXPECT_EQ(index.query({"dir1"}, 0, t0).size(), starting_with_1);
  EXPECT_TRUE(index.remove("/mass/" + padding + "/Dir0"));
  EXPECT_TRUE(index.query({"dir0"}, 0, t0).empty());
}

// The index's first test on the last component never changes an answer:
// its matches are exactly the entries the plain matcher accepts.
TEST_F(IndexTest, QueriesSelectWhatThePatternMatches) {
  Index index(db_file(), tree.probe());
  std::mt19937 rng(11);
  const auto word = [&] {
    std::string w;
    for (int n = 1 + static_cast<int>(rng() % 3); n > 0; --n) w += "aAb\xc3\xa9"[rng() % 5];
    return w;
  };
  std::set<std::string> paths;
  while (paths.size() < 3000) {
    std::string path;
    for (int n = 1 + static_cast<int>(rng() % 4); n > 0; --n) path += "/" + word();
    paths.insert(normalize_path(path));
  }
  std::string z;
  for (const auto& path : paths) z += path + "|1|" + std::to_string(t0) + "\n";
  index.import(ImportFormat::z, z);
  for (int q = 0; q < 300; ++q) {
    std::vector<std::string> keywords;
    for (int n = static_cast<int>(rng() % 3); n >= 0; --n) keywords.push_back(rng() % 4 ? word() : word() + "/" + word());
    std::set<std::string> expected, got;
    const Pattern pattern(keywords);
    for (const auto& path : paths)
      if (pattern.matches(path, fold_case(path))) expected.insert(path);
    for (const auto& r : index.query(keywords, 0, t0)) got.insert(r.path);
    ASSERT_EQ(got, expected) << "query " << q;
  }
}

TEST_F(IndexTest, ImportAutojumpAsZoxide) {
  Index index(db_file(), tree.probe());
  EXPECT_EQ(index.import(ImportFormat::autojump, "7.0\t/baz\n2.0\t/foo/bar\n5.0\t/quux/quuz\n"), 3u);
  std::map<std::string, double> got;
  for (const auto& r : index.list(t0)) {
    got[r.path] = r.rank;
    EXPECT_EQ(r.last_visit, 0);
  }
  EXPECT_NEAR(got.at("/baz"), 1 / (1 + std::exp(-7.0)), 1e-12);
  EXPECT_NEAR(got.at("/foo/bar"), 1 / (1 + std::exp(-2.0)), 1e-12);
  // A path with a tab after the first one keeps it.
  EXPECT_EQ(index.import(ImportFormat::autojump, "1\t/tab\there\n"), 1u);
  EXPECT_EQ(index.query({"here"}, 0, t0).at(0).path, "/tab\there");
}

TEST_F(IndexTest, ImportZoxideDatabaseAndListing) {
  Index index(db_file(), tree.probe());
  const std::string db = zoxide_database({{"/tmp/zt/a/foo", 2, t0}, {"/tmp/zt/b/Bar", 1, t0 + 5}});
  EXPECT_EQ(index.import(ImportFormat::zoxide, db), 2u);
  EXPECT_EQ(index.query({"bar"}, 0, t0 + 5).at(0).last_visit, t0 + 5);
  EXPECT_EQ(index.query({"foo"}, 0, t0).at(0).rank, 2);
  // `zoxide query --list --score` as zoxide 0.4.3 prints it.
  EXPECT_EQ(index.import(ImportFormat::zoxide, "   8 /tmp/zt/a/foo\n  4.5 /tmp/zt/c d\n"), 2u);
  EXPECT_EQ(index.query({"foo"}, 0, t0).at(0).rank, 10);
  EXPECT_EQ(index.query({"c d"}, 0, t0).at(0).rank, 4.5);
}

TEST(Import, MalformedInputNamesTheLine) {
  EXPECT_EQ(refusal_of(ImportFormat::z, "/a|1|2\n\n/b|x|3\n"), "line 3: invalid rank \"x\"");
  EXPECT_EQ(refusal_of(ImportFormat::z, "/a|1|2\n/b|1\n"), "line 2: expected path|rank|time, got \"/b|1\"");
  EXPECT_EQ(refusal_of(ImportFormat::z, "/a|1|17000000"), "(accepted)");
  EXPECT_EQ(refusal_of(ImportFormat::z, "/a|1|"), "line 1: invalid time \"\"");
  EXPECT_EQ(refusal_of(ImportFormat::z, "/a|-1|5"), "line 1: invalid rank \"-1\"");
  EXPECT_EQ(refusal_of(ImportFormat::z, "/a|nan|5"), "line 1: invalid rank \"nan\"");
  EXPECT_EQ(refusal_of(ImportFormat::z, "rel|1|5"), "line 1: not an absolute path: \"rel\"");
  EXPECT_EQ(refusal_of(ImportFormat::z, "/p|a|th|1|5"), "(accepted)") << "a path may hold '|'";
  EXPECT_EQ(refusal_of(ImportFormat::autojump, "1\t/a\n2 /b\n"), "line 2: expected weight<TAB>path, got \"2 /b\"");
  EXPECT_EQ(refusal_of(ImportFormat::autojump, "1e999\t/a\n"), "line 1: invalid weight \"1e999\"");
  EXPECT_EQ(refusal_of(ImportFormat::zoxide, "  3 /a\n  3\n"), "line 2: expected <score> <path>, got \"  3\"");
}

TEST(Import, TruncatedZoxideDatabaseIsRefused) {
  const std::string db = zoxide_database({{"/one", 1, t0}, {"/two", 2, t0}});
  EXPECT_EQ(refusal_of(ImportFormat::zoxide, db), "(accepted)");
  for (std::size_t cut = 1; cut < db.size(); ++cut)
    EXPECT_NE(refusal_of(ImportFormat::zoxide, db.substr(0, cut)), "(accepted)") << "cut at " << cut;
  EXPECT_EQ(refusal_of(ImportFormat::zoxide, db.substr(0, db.size() - 3)), "zoxide database: entry 2 (byte 40): truncated");
  EXPECT_EQ(refusal_of(ImportFormat::zoxide, db + "x"), "zoxide database: 1 bytes after the last entry");
  EXPECT_EQ(refusal_of(ImportFormat::zoxide, zoxide_database({}, 2)),
            "zoxide database: version 2 is not supported (only 3, zoxide 0.4 to 0.9)");
  // A count that claims more than the file can hold is refused before any allocation.
  std::string huge = zoxide_database({});
  const std::uint64_t claim = UINT64_MAX / 2;
  huge.replace(4, 8, reinterpret_cast<const char*>(&claim), 8);
  EXPECT_NE(refusal_of(ImportFormat::zoxide, huge).find("header claims"), std::string::npos);
}

TEST_F(IndexTest, RefusedImportLeavesTheIndexUnchanged) {
  Index index(db_file(), tree.probe());
  index.add("/before", t0);
  const fs::path bad = dir.path() / "bad.z";
  std::ofstream(bad) << "/a|1|2\n/before|5|" << t0 << "\n/c|1\n";
  try {
    index.import_file(ImportFormat::z, bad.string());
    FAIL() << "accepted";
  } catch (const Refusal& refusal) {
    EXPECT_EQ(std::string(refusal.what()), bad.string() + ": line 3: expected path|rank|time, got \"/c|1\"");
  }
  EXPECT_EQ(paths_of(index.list(t0)), (std::vector<std::string>{"/before"}));
  EXPECT_EQ(index.list(t0)[0].rank, 1);
  EXPECT_EQ(Index(db_file(), tree.probe()).size(), 1u);
  try {
    index.import_file(ImportFormat::z, (dir.path() / "nope").string());
    FAIL() << "accepted";
  } catch (const OsError& e) {
    EXPECT_EQ(e.error, ENOENT);
    EXPECT_NE(std::string(e.what()).find("nope: No such file or directory"), std::string::npos);
  }
  EXPECT_THROW(index.import_file(ImportFormat::z, dir.path().string()), Refusal) << "a directory";
}
