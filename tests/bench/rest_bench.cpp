// End to end through the REST API, as a Centreon client drives a central: a central with
// the proxy and one of our pollers behind it.
//
//   commands   POST /api/nodes/2/core/action/command [{"command":"echo ..."}], then
//              GET /api/nodes/2/log/:token until the result is there (N per client)
//   routed     GET /api/nodes/2/internal/thumbprint (a fork-free action answered by the poller),
//              then GET /api/nodes/2/log/:token until its row is there
//
// Prints requests/s with 1 and 8 clients, and the central's RSS idle, after the burst, and
// 5 s later. Run: GORGONE_HOST_BIN=... GORGONE_MODULE_PATH=... ./build/tests/bench/rest_bench [N] [routed]
// ("routed" runs the routed rows alone, for a profiler attached to the central).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "fleet.hpp"
#include "proc_stats.hpp"

using namespace gorgone;
using namespace gorgone::testing;
using Clock = std::chrono::steady_clock;

namespace {

// Runs `one(client, i)` n times on each of `clients` threads; returns requests per second
// and counts the failures.
template <typename F>
double rate(int clients, int n, std::atomic<int>& failed, F&& one) {
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      for (int i = 0; i < n; ++i)
        if (!one(c, i)) ++failed;
    });
  for (auto& t : threads) t.join();
  return clients * n / std::chrono::duration<double>(Clock::now() - start).count();
}

bool command_round_trip(Fleet& fleet, int c, int i) {
  std::string word = "r" + std::to_string(c) + "-" + std::to_string(i);
  std::string token = fleet.command("1", "2", "echo " + word);
  if (token.empty()) return false;
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    if (fleet.result("1", token, "2") == word) return true;
  }
  return false;
}

// The poller answers with its key's thumbprint; its row reaches the central by log sync.
std::atomic<long> log_fetches{0};

bool routed(Fleet& fleet) {
  auto [status, body] = fleet.get("1", "/api/nodes/2/internal/thumbprint");
  json::Document d;
  if (status != 200 || !json::parse(d, body) || !d.IsObject() || !d.HasMember("token")) return false;
  const std::string token = d["token"].GetString();
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    ++log_fetches;
    for (const auto& [code, data] : fleet.rows("1", token, "2"))
      if (code == 2 && data.find("thumbprint") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 500;
  // "routed": only the routed rows (for a profiler attached to the central).
  const bool routed_only = argc > 2 && std::string(argv[2]) == "routed";
  Fleet fleet;
  start_central_and_poller(fleet);
  std::atomic<int> failed{0};
  if (!eventually([&] { return command_round_trip(fleet, 0, 0); })) {
    std::fprintf(stderr, "the poller does not answer\n%s", fleet.logs().c_str());
    return 1;
  }
  const pid_t central = fleet.daemon("1").pid();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long idle = rss_kib(central);
  std::printf("REST end to end, central -> our poller (%d requests per row)\n", n);
  if (!routed_only) {
    double c1 = rate(1, n / 4, failed, [&](int c, int i) { return command_round_trip(fleet, c, i); });
    std::printf("  echo commands, result fetched, 1 client    %8.1f /s\n", c1);
    double c8 = rate(8, n / 8, failed, [&](int c, int i) { return command_round_trip(fleet, c + 1, i); });
    std::printf("  echo commands, result fetched, 8 clients   %8.1f /s\n", c8);
  }
  double r1 = rate(1, n, failed, [&](int, int) { return routed(fleet); });
  std::printf("  routed thumbprint, 1 client                %8.1f /s\n", r1);
  double r8 = rate(8, n, failed, [&](int, int) { return routed(fleet); });
  std::printf("  routed thumbprint, 8 clients               %8.1f /s\n", r8);
  std::printf("  log fetches per routed request               %6.2f\n", double(log_fetches.load()) / (9.0 * n));
  long after = rss_kib(central);
  std::this_thread::sleep_for(std::chrono::seconds(5));
  long later = rss_kib(central);
  std::printf("  central RSS: idle %ld KiB, after the burst %ld KiB, 5 s later %ld KiB\n", idle, after, later);
  std::printf("  failed requests: %d\n", failed.load());
  return failed.load() == 0 ? 0 : 1;
}
