// Routed frames through a real central (gorgone-host with the proxy) to a node, against a
// baseline of the same frames sent straight to the node, in one run.
//
//   sender (test) --ZMQ+AES--> central: external router, core, proxy, worker --ZMQ+AES--> node (test)
//   sender (test) --ZMQ+AES--> node (test)                                    (baseline)
//
// Prints one-way latency (p50, p99) and throughput for both paths and their ratios.
// Run: meson compile -C build route_bench && GORGONE_HOST_BIN=... ./build/tests/bench/route_bench
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "fleet.hpp"
#include "gorgone/protocol/frame.hpp"
#include "wire_client.hpp"

using namespace gorgone;
using namespace gorgone::testing;
using Clock = std::chrono::steady_clock;

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// The node: an external router with the real handshake; records when each BENCH frame lands.
class Node {
 public:
  Node(zmq::context_t& ctx, int port, protocol::RsaKey key, std::vector<std::string> authorized)
      : socket_(ctx, zmq::socket_type::router),
        server_(protocol::HandshakeServer::Config{std::move(key), std::move(authorized), "bench-node", 32}) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::rcvhwm, 0);
    socket_.bind("tcp://127.0.0.1:" + std::to_string(port));
    thread_ = std::thread([this] { run(); });
  }
  ~Node() {
    stop_ = true;
    thread_.join();
  }
  std::atomic<long> received{0};
  std::atomic<std::int64_t> last_latency_ns{0};

 private:
  void run() {
    while (!stop_) {
      zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      for (int i = 0; i < 10000; ++i) {
        zmq::message_t id, body;
        if (!socket_.recv(id, zmq::recv_flags::dontwait)) break;
        (void)socket_.recv(body, zmq::recv_flags::none);
        auto out = server_.on_message(id.to_string(), body.to_string_view(), ::time(nullptr));
        using Kind = protocol::HandshakeServer::Outcome::Kind;
        if (out.kind != Kind::kMessage) {
          if (out.reply.empty()) continue;
          socket_.send(id, zmq::send_flags::sndmore);
          socket_.send(zmq::buffer(out.reply), zmq::send_flags::none);
          continue;
        }
        auto f = protocol::parse_frame(out.plaintext);
        if (!f || f->action != "BENCH") continue;
        std::int64_t sent = std::atoll(f->data.c_str() + 5);  // {"t":<ns>}
        last_latency_ns = now_ns() - sent;
        ++received;
      }
    }
  }
  zmq::socket_t socket_;
  protocol::HandshakeServer server_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

struct Figures {
  double p50_us, p99_us, frames_per_s;
};

Figures measure(WireClient& sender, Node& node, const std::string& target, int latency_rounds, int burst) {
  auto frame = [&](std::int64_t t) {
    return protocol::build_frame("BENCH", "", target, "{\"t\":" + std::to_string(t) + "}");
  };
  std::vector<double> lat;
  for (int i = 0; i < latency_rounds; ++i) {
    long before = node.received;
    sender.send(frame(now_ns()));
    while (node.received == before) std::this_thread::yield();
    lat.push_back(node.last_latency_ns / 1000.0);
    sender.drain();
  }
  std::sort(lat.begin(), lat.end());
  long before = node.received;
  auto start = Clock::now();
  for (int i = 0; i < burst; ++i) {
    sender.send(frame(now_ns()));
    if (i % 256 == 0) sender.drain();
  }
  while (node.received < before + burst) {
    sender.drain();
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return {lat[lat.size() / 2], lat[lat.size() * 99 / 100], burst / secs};
}

}  // namespace

int main() {
  const int rounds = 1000, burst = 20000;
  Fleet fleet;
  fleet.declare({"9"});
  fleet.declare({"2"});
  fleet.declare({"1", true, {"9"}, true, "      pool: 2\n      ping: 3600\n      synchistory_time: 3600\n",
                 "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(fleet.port("2")) + "\n",
                 true});
  zmq::context_t ctx;
  Node node(ctx, fleet.port("2"), protocol::RsaKey::load_private_file(fleet.private_key("2")).value(),
            {fleet.thumbprint("1"), fleet.thumbprint("9")});
  fleet.start("1");

  WireClient direct(ctx, "9", fleet.private_key("9"), fleet.port("2"));
  WireClient via(ctx, "9", fleet.private_key("9"), fleet.port("1"));
  if (!direct.handshake() || !via.handshake()) {
    std::fprintf(stderr, "handshake failed\n%s", fleet.logs().c_str());
    return 1;
  }
  // Warm up the central's session to the node.
  measure(via, node, "2", 10, 100);
  Figures base = measure(direct, node, "", rounds, burst);
  Figures proxied = measure(via, node, "2", rounds, burst);
  std::printf("%-28s %12s %12s %14s\n", "path", "p50 (us)", "p99 (us)", "frames/s");
  std::printf("%-28s %12.1f %12.1f %14.0f\n", "direct to node (baseline)", base.p50_us, base.p99_us, base.frames_per_s);
  std::printf("%-28s %12.1f %12.1f %14.0f\n", "through the central proxy", proxied.p50_us, proxied.p99_us,
              proxied.frames_per_s);
  std::printf("ratio proxied/direct: latency p50 x%.2f, throughput x%.2f\n", proxied.p50_us / base.p50_us,
              proxied.frames_per_s / base.frames_per_s);
  return 0;
}
