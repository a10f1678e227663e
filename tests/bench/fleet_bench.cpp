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

class Simulator {
 public:
  Simulator(zmq::context_t& ctx, int nodes, protocol::RsaKey key, std::string authorized)
      : server_(config(std::move(key), std::move(authorized))) {
    for (int i = 0; i < nodes; ++i) {
      sockets_.emplace_back(ctx, zmq::socket_type::router);
      sockets_.back().set(zmq::sockopt::linger, 0);
      sockets_.back().bind("tcp://127.0.0.1:0");
      std::string ep = sockets_.back().get(zmq::sockopt::last_endpoint);
      ports_.push_back(std::atoi(ep.substr(ep.rfind(':') + 1).c_str()));
    }
    thread_ = std::thread([this] { run(); });
  }
  ~Simulator() {
    stop_ = true;
    thread_.join();
  }
  const std::vector<int>& ports() const { return ports_; }
  // One handshake server plays every node: no per-address HELO limit (they all come from
  // the central's one address).
  static protocol::HandshakeServer::Config config(protocol::RsaKey key, std::string authorized) {
    protocol::HandshakeServer::Config c{std::move(key), {std::move(authorized)}, "sim", 32};
    c.helo_per_minute = 0;
    return c;
  }

 private:
  void run() {
    std::vector<zmq::pollitem_t> items;
    for (auto& s : sockets_) items.push_back({static_cast<void*>(s), 0, ZMQ_POLLIN, 0});
    while (!stop_) {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        zmq::message_t id, body;
        while (sockets_[i].recv(id, zmq::recv_flags::dontwait)) {
          (void)sockets_[i].recv(body, zmq::recv_flags::none);
          answer(sockets_[i], id.to_string(), body.to_string_view(), static_cast<int>(i));
        }
      }
    }
  }
  void answer(zmq::socket_t& s, const std::string& id, std::string_view body, int index) {
    auto out = server_.on_message(id, body, ::time(nullptr));
    std::string reply;
    if (out.kind != protocol::HandshakeServer::Outcome::Kind::kMessage) {
      if (out.reply.empty()) return;
      reply = out.reply;
    } else {
      auto f = protocol::parse_frame(out.plaintext);
      if (!f) return;
      std::string token = f->token.empty() ? "t" : f->token;
      std::string node = std::to_string(index + 2);
      if (f->action == "PING")
        reply = protocol::build_response("PONG", token, 0,
                                         R"({"action":"ping","message":"ping ok","id":")" + node + R"(","data":{}})");
      else if (f->action == "GETLOG")
        reply = protocol::build_response("ACK", token, 0, R"({"action":"getlog","result":[],"id":")" + node + "\"}");
      else
        reply = protocol::build_response("ACK", token, 0, "null");
      reply = *server_.encrypt_for(id, reply);
    }
    s.send(zmq::buffer(id), zmq::send_flags::sndmore);
    s.send(zmq::buffer(reply), zmq::send_flags::none);
  }
  protocol::HandshakeServer server_;
  std::vector<zmq::socket_t> sockets_;
  std::vector<int> ports_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
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
  Fleet fleet;
  fleet.declare({"1"});
  fleet.declare({"sim"});
  zmq::context_t ctx;
  Simulator sim(ctx, nodes, protocol::RsaKey::load_private_file(fleet.private_key("sim")).value(), fleet.thumbprint("1"));

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
