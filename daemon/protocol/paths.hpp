// Where the daemon listens, shared by descentd, the CLI and the tests.
#pragma once

#include <filesystem>

namespace descent::protocol {

// $XDG_RUNTIME_DIR/descent/descentd.sock, or /tmp/descent-UID/descentd.sock
// when XDG_RUNTIME_DIR is unset or not absolute.
std::filesystem::path default_socket_path();

// descentd.pid beside the socket.
std::filesystem::path pid_file_for(const std::filesystem::path& socket_path);

}  // namespace descent::protocol
