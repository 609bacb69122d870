#include "protocol/paths.hpp"

#include <cstdlib>
#include <string>
#include <unistd.h>

namespace descent::protocol {

std::filesystem::path default_socket_path() {
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime && *runtime == '/')
    return std::filesystem::path(runtime) / "descent" / "descentd.sock";
  return std::filesystem::path("/tmp") / ("descent-" + std::to_string(getuid())) / "descentd.sock";
}

std::filesystem::path pid_file_for(const std::filesystem::path& socket_path) {
  return socket_path.parent_path() / "descentd.pid";
}

}  // namespace descent::protocol
