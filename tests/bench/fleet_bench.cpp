// How many nodes one central keeps pinged, and what each costs it in memory.
//
// A simulator plays N push_zmq nodes from this process (one external ROUTER per node, the
// real handshake, PONG and empty GETLOG answers); a real central (gorgone-host with the
// proxy) registers all of them and pings them. Prints the time until every node answered
// a ping, and the central's resident memory before registration and after, per node.
// Run: ./build/tests/bench/fleet_bench [nodes]   (default 1000)
#include <cstdio>
#include <fstream>
#include <thread>

#include "fleet.hpp"
#include "zmq_node_sim.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"
#include <zmq.hpp>

using namespace gorgone;
using namespace gorgone::testing;
using Clock = std::chrono::steady_clock;

namespace {

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

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
  Fleet fleet;
  fleet.declare({"1"});
  fleet.declare({"sim"});
  zmq::context_t ctx;
  ZmqNodeSim sim(ctx, nodes, protocol::RsaKey::load_private_file(fleet.private_key("sim")).value(), fleet.thumbprint("1"));

  // Baseline: the same central with no node at all.
  HostSpec empty{"1", false, {}, true, "      pool: 4\n      ping: 10\n      synchistory_time: 60\n", "", true};
  fleet.declare(empty);
  fleet.start("1");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long base = rss_kib(fleet.daemon("1").pid());
  fleet.stop("1");

  std::string list;
  for (int i = 0; i < nodes; ++i)
    list += "  - id: " + std::to_string(i + 2) + "\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
            std::to_string(sim.ports()[i]) + "\n";
  HostSpec full = empty;
  full.nodes_yaml = list;
  fleet.declare(full);
  auto start = Clock::now();
  fleet.start("1");
  int ok = 0;
  while (std::chrono::duration<double>(Clock::now() - start).count() < 120 && (ok = answered(fleet)) < nodes)
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long loaded = rss_kib(fleet.daemon("1").pid());
  std::printf("nodes: %d, answered a ping: %d, after %.1f s (ping period 10 s, first ping at a random offset)\n",
              nodes, ok, secs);
  std::printf("central RSS: %ld KiB without nodes, %ld KiB with them: %.1f KiB per node\n", base, loaded,
              nodes ? double(loaded - base) / nodes : 0.0);
  return ok == nodes ? 0 : 1;
}
