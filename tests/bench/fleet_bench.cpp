// How many nodes one central keeps pinged, and what each costs it.
//
// Child processes play N push_zmq nodes (one external ROUTER per node, the real handshake,
// PONG and empty GETLOG answers; at most 2000 nodes a process, so that the simulators are not
// the ones that run out of descriptors); a real central (gorgone-host with the proxy)
// registers all of them and pings them every 10 s. Prints the time from the end of the
// registration (the last REGISTERNODES request answered) until every node answered a ping,
// the CPU the central used from its start until then (and the simulators' since the end of
// the registration), the central's resident memory per node, its open descriptors, and the
// CPU it spends over 10 s of steady pinging, per 1 000 nodes.
// Run: ./build/tests/bench/fleet_bench [nodes]   (default 1000), with the registrar module
// (tests/integration) in GORGONE_MODULE_PATH.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <sstream>
#include <thread>

#include "fleet.hpp"
#include "proc_stats.hpp"
#include "zmq_node_sim.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"
#include <zmq.hpp>

using namespace gorgone;
using namespace gorgone::testing;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kNodesPerProcess = 2000;

// utime + stime of the process, in clock ticks.
long cpu_ticks(pid_t pid) { return stat_ticks(read_proc("/proc/" + std::to_string(pid) + "/stat")); }

long sims_ticks(const ForkedNodeSims& sims) {
  long sum = 0;
  for (pid_t p : sims.pids()) sum += cpu_ticks(p);
  return sum;
}

// The nodes whose PONG the central logged, read as the log grows.
class PongLog {
 public:
  explicit PongLog(std::string path) : path_(std::move(path)) {}
  void read() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) return;
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // a line still being written: read again next time
      offset_ += line.size() + 1;
      static const std::string kMark = "Pong received from '";
      auto at = line.find(kMark);
      if (at == std::string::npos) continue;
      at += kMark.size();
      ids_.insert(line.substr(at, line.find('\'', at) - at));
    }
  }
  int count() const { return static_cast<int>(ids_.size()); }

 private:
  std::string path_;
  std::size_t offset_ = 0;
  std::set<std::string> ids_;
};

int answered(Fleet& fleet) {
  auto cs = fleet.constatus("1");
  if (!cs.HasMember("data") || !cs["data"].IsObject()) return 0;
  int n = 0;
  for (const auto& m : cs["data"].GetObject()) n += m.value["ping_ok"].GetInt() >= 1 ? 1 : 0;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  int nodes = argc > 1 ? std::atoi(argv[1]) : 1000;
  // Forked first, while this process has no thread.
  ForkedNodeSims sims(nodes, kNodesPerProcess);
  Fleet fleet;
  fleet.declare({"1"});
  fleet.declare({"sim"});
  std::vector<int> ports = sims.start(fleet.private_key("sim"), fleet.thumbprint("1"));

  // Baseline: the same central with no node at all.
  HostSpec empty{"1", false, {}, true, "      pool: 4\n      ping: 10\n      synchistory_time: 60\n", "", true};
  fleet.declare(empty);
  fleet.start("1");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long base = rss_kib(fleet.daemon("1").pid());
  int base_fds = open_fds(fleet.daemon("1").pid());
  fleet.stop("1");

  // The nodes are registered at run time through the integration suite's registrar module (a
  // local module, the trusted path), 500 a request: a register file of thousands of nodes
  // would measure the host's YAML loader instead.
  HostSpec full = empty;
  full.extra_modules = "    - name: registrar\n      package: registrar\n      enable: true\n";
  fleet.declare(full);
  auto start = Clock::now();
  fleet.start("1");
  for (int first = 0; first < nodes; first += 500) {
    std::string list;
    for (int i = first; i < std::min(nodes, first + 500); ++i)
      list += std::string(list.empty() ? "" : ",") + "{\"id\":\"" + std::to_string(i + 2) +
              "\",\"type\":\"push_zmq\",\"address\":\"" + std::string(ForkedNodeSims::kAddress) + "\",\"port\":\"" + std::to_string(ports[i]) + "\"}";
    auto [status, body] =
        fleet.post("1", "/api/test/registrar/send", "{\"action\":\"REGISTERNODES\",\"nodes\":[" + list + "]}");
    if (status != 200) {
      std::fprintf(stderr, "registering nodes failed: %d %s\n", status, body.c_str());
      return 1;
    }
  }
  // The clock that matters: from the moment the last registration request was answered
  // (every node is known to the central, its first ping due within one period) until every
  // node answered a ping. The time from the central's start is printed beside it.
  const auto registered = Clock::now();
  const pid_t pid = fleet.daemon("1").pid();
  const long sims_registered = sims_ticks(sims);
  // Who answered is read from the central's log as it is written ("Pong received from '<id>'",
  // a debug line the daemon writes for each PONG the proxy handles), every 100 ms: asking
  // constatus for 10 000 nodes every 250 ms had cost the central a 2 MB JSON on its loop
  // each time, which delayed the pings being measured. constatus then confirms the count
  // (and is polled instead, every second, should the log not have those lines).
  PongLog pongs(fleet.log_path("1"));
  int ok = 0;
  auto last_status = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - start).count() < 180) {
    pongs.read();
    const bool due = std::chrono::duration<double>(Clock::now() - last_status).count() >= 1.0;
    if (pongs.count() >= nodes || (pongs.count() == 0 && due)) {
      last_status = Clock::now();
      if ((ok = answered(fleet)) >= nodes) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto done = Clock::now();
  const double tick = double(::sysconf(_SC_CLK_TCK));
  const double central_cpu = double(cpu_ticks(pid)) / tick;
  const double sims_cpu = double(sims_ticks(sims) - sims_registered) / tick;
  std::printf("nodes: %d (played by %d processes), answered a ping: %d, %.1f s after the last registration request "
              "was answered (%.1f s after the central started; registering took %.1f s). Ping period 10 s, each "
              "node's first ping at a random offset within it\n",
              nodes, sims.processes(), ok, std::chrono::duration<double>(done - registered).count(),
              std::chrono::duration<double>(done - start).count(),
              std::chrono::duration<double>(registered - start).count());
  std::printf("CPU until then: central %.1f s (from its start), simulators %.1f s (from the end of registration)\n",
              central_cpu, sims_cpu);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long loaded = rss_kib(pid);
  int fds = open_fds(pid);
  // Steady state: only the periodic pings (every 10 s) and their answers.
  long t0 = cpu_ticks(pid);
  std::this_thread::sleep_for(std::chrono::seconds(10));
  long t1 = cpu_ticks(pid);
  double cpu_pct = 100.0 * double(t1 - t0) / tick / 10.0;
  std::printf("central RSS: %ld KiB without nodes, %ld KiB with them: %.1f KiB per node\n", base, loaded,
              nodes ? double(loaded - base) / nodes : 0.0);
  std::printf("central open descriptors: %d without nodes, %d with them (%.2f per node)\n", base_fds, fds,
              nodes ? double(fds - base_fds) / nodes : 0.0);
  std::printf("central CPU over 10 s of steady pinging: %.2f %% of a core, %.3f %% per 1000 nodes\n", cpu_pct,
              nodes ? cpu_pct * 1000.0 / nodes : 0.0);
  std::fflush(stdout);
  return ok == nodes ? 0 : 1;
}
