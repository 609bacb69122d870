// How keywords select directories: zoxide's rules on bytes, with smart case.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace descent::frecency {

// Lowercases valid UTF-8 (full Unicode simple case mapping); any byte that is
// not part of a valid UTF-8 sequence is kept as it is, so every path folds.
std::string fold_case(std::string_view bytes);

// True if the text has an uppercase letter (ASCII or Unicode).
bool has_uppercase(std::string_view bytes);

// zoxide's matcher: the last keyword must occur in the path with no '/' after
// its last occurrence (it matches the last component), and each earlier
// keyword must occur, in order, before the one that follows it.
bool keywords_match(const std::vector<std::string>& keywords, std::string_view path);

// Keywords compiled once per query. Smart case: the whole query is
// case-sensitive when any keyword has an uppercase letter, otherwise keywords
// and paths are compared folded.
class Pattern {
 public:
  explicit Pattern(const std::vector<std::string>& keywords);

  bool case_sensitive() const { return case_sensitive_; }
  // The keyword the last component must contain, when it has no '/': an
  // entry whose last component lacks it cannot match (a fast first test).
  const std::string* last_component_keyword() const { return plain_last_ ? &keywords_.back() : nullptr; }
  // `folded` is fold_case(path), precomputed by the index.
  bool matches(std::string_view path, std::string_view folded) const {
    return keywords_match(keywords_, case_sensitive_ ? path : folded);
  }

 private:
  std::vector<std::string> keywords_;
  bool case_sensitive_ = false;
  bool plain_last_ = false;
};

}  // namespace descent::frecency
