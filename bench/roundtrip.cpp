// Round-trip times of descentd through the protocol client: connect+hello,
// and a status call on a warm connection. Prints medians and p99 in µs.
// Usage: descent-bench-roundtrip SOCKET [ITERATIONS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocol/client.hpp"

namespace {

using Clock = std::chrono::steady_clock;

void report(const char* what, std::vector<double>& micros) {
  std::sort(micros.begin(), micros.end());
  const auto at = [&](double q) { return micros[static_cast<std::size_t>(q * (micros.size() - 1))]; };
  std::printf("%-28s n=%-6zu p50 %8.1f us   p90 %8.1f us   p99 %8.1f us\n", what, micros.size(), at(0.5), at(0.9),
              at(0.99));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SOCKET [ITERATIONS]\n", argv[0]);
    return 2;
  }
  const std::string socket = argv[1];
  const int n = argc > 2 ? std::atoi(argv[2]) : 2000;
  descent::protocol::Wait wait;

  std::vector<double> hello, status;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    descent::protocol::Client client(socket, "bench", wait);
    hello.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  descent::protocol::Client client(socket, "bench", wait);
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    client.call("status", [](descent::protocol::Packer& p) { p.pack_array(0); }, wait);
    status.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  report("connect + hello", hello);
  report("status on a warm connection", status);
  return 0;
}
