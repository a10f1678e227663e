// Live results: how long a command's result takes to reach the central's history when nobody
// polls (no log endpoint call, periodic sync once an hour), directly from a poller and through
// a remote. Baseline in the same run: when the same result is in the poller's own history.
//
//   REST POST /api/nodes/2/core/action/command  ->  central 1 -> poller 2
//   REST POST /api/nodes/5/core/action/command  ->  central 1 -> remote 4 -> poller 5
//
// Prints p50/p99 of post -> final row (code 2) on the poller and on the central.
// Run: GORGONE_HOST_BIN=... GORGONE_MODULE_PATH=... ./build/tests/bench/live_bench [commands]
#include <algorithm>
#include <cstdio>
#include <thread>

#include "fleet.hpp"

using namespace gorgone;
using namespace gorgone::testing;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kHourly = "      pool: 2\n      ping: 1\n      synchistory_time: 3600\n";

std::string node(Fleet& fleet, const std::string& id, const std::string& extra = "") {
  return "  - id: " + id + "\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(fleet.port(id)) +
         "\n" + extra;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// Milliseconds from post to the final row of `token` in database `db`, polled every ms; -1
// past 10 s.
double until_final(const std::string& db, const std::string& token, Clock::time_point posted) {
  const std::string sql = "SELECT count(*) FROM gorgone_history WHERE token = '" + token + "' AND code = 2";
  while (Clock::now() - posted < std::chrono::seconds(10)) {
    if (gorgone_test::PgValue(db, sql) == "1")
      return std::chrono::duration<double, std::milli>(Clock::now() - posted).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return -1;
}

void measure(Fleet& fleet, const std::string& target, const std::string& label, int n) {
  std::vector<double> on_poller, on_central;
  int lost = 0;
  for (int i = 0; i < n; ++i) {
    auto posted = Clock::now();
    std::string token = fleet.command("1", target, "echo live-" + std::to_string(i));
    if (token.empty()) {
      ++lost;
      continue;
    }
    double p = until_final(fleet.db(target), token, posted);
    double c = until_final(fleet.db("1"), token, posted);
    if (p < 0 || c < 0) {
      ++lost;
      continue;
    }
    on_poller.push_back(p);
    on_central.push_back(c);
  }
  std::printf("%-22s %4zu results  poller p50 %7.1f ms p99 %7.1f ms   central p50 %7.1f ms p99 %7.1f ms  (%d over 10 s)\n",
              label.c_str(), on_central.size(), percentile(on_poller, 0.5), percentile(on_poller, 0.99),
              percentile(on_central, 0.5), percentile(on_central, 0.99), lost);
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 100;
  Fleet fleet;
  fleet.declare({"2", true, {"1"}});
  fleet.declare({"5", true, {"4"}});
  fleet.start("2");
  fleet.start("5");
  fleet.declare({"4", true, {"1"}, true, kHourly, node(fleet, "5")});
  fleet.start("4");
  fleet.declare({"1", false, {}, true, kHourly,
                 node(fleet, "2") + node(fleet, "4", "    nodes:\n      - id: 5\n        pathscore: 1\n"), true});
  fleet.start("1");
  // Both paths work (and every session is up) before anything is timed.
  for (const char* target : {"2", "5"}) {
    bool ok = eventually([&] { return !fleet.command("1", target, "true").empty(); });
    std::string token = fleet.command("1", target, "echo warm");
    if (!ok || token.empty() || !eventually([&] { return fleet.result("1", token, target) == "warm"; })) {
      std::fprintf(stderr, "node %s does not answer\n%s", target, fleet.logs().c_str());
      return 1;
    }
  }
  std::printf("result latency with nobody polling (synchistory_time 3600), %d commands each, one at a time\n", n);
  measure(fleet, "2", "central -> poller", n);
  measure(fleet, "5", "central -> remote -> poller", n);
  return 0;
}
