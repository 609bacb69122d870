// Readers for other jump tools' data: zoxide, z and autojump.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/frecency/index.hpp"

namespace descent::frecency {

// Parses the whole input or throws Refusal naming the first bad line (or, for
// zoxide's binary database, entry) and why. Paths are normalized; ranks are
// finite and not negative. Duplicates are left to the caller to merge.
std::vector<Entry> parse_import(ImportFormat format, std::string_view contents);

}  // namespace descent::frecency
