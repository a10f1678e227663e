// The ROUTERs a worker reaches its push_zmq nodes through (zmq_routers.hpp), against plain
// ROUTER sockets standing for nodes on loopback: each session has its own ids on both sides,
// two nodes behind one endpoint do not share a router, a message nobody owns is dropped, and
// a full pipe says so instead of dropping or blocking.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>
#include <thread>

#include "recording_host.hpp"
#include "zmq_routers.hpp"

namespace gorgone::proxy {
namespace {
using namespace std::chrono_literals;

using LogHost = gorgone::testing::RecordingHost;

struct Peer : RouterPeer {
  void on_message(std::string body) override { messages.push_back(std::move(body)); }
  void on_connection(bool up) override { connected = up; }
  std::vector<std::string> messages;
  bool connected = false;
};

// A node: a ROUTER bound on loopback that reports who sent what.
struct Node {
  explicit Node(zmq::context_t& ctx, const std::string& bind = "tcp://127.0.0.1:0")
      : socket(ctx, zmq::socket_type::router) {
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::router_mandatory, 1);
    // Binding a port again (a restarted node): while nobody listened, the routers' reconnect
    // attempts to this ephemeral port may hold it for a moment (a connection to itself).
    for (int attempt = 0;; ++attempt) {
      try {
        socket.bind(bind);
        break;
      } catch (const zmq::error_t& e) {
        if (e.num() != EADDRINUSE || attempt >= 100) throw;
        std::this_thread::sleep_for(50ms);
      }
    }
    endpoint = socket.get(zmq::sockopt::last_endpoint);
  }
  // The next message: (routing id it came from, body); empty id after `limit`.
  std::pair<std::string, std::string> next(std::chrono::milliseconds limit = 10s) {
    zmq::pollitem_t item{static_cast<void*>(socket), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, limit);
    if (!(item.revents & ZMQ_POLLIN)) return {};
    zmq::message_t id, body;
    (void)socket.recv(id, zmq::recv_flags::none);
    (void)socket.recv(body, zmq::recv_flags::none);
    return {id.to_string(), body.to_string()};
  }
  void reply(const std::string& to, const std::string& body) {
    socket.send(zmq::buffer(to), zmq::send_flags::sndmore);
    socket.send(zmq::buffer(body), zmq::send_flags::none);
  }
  zmq::socket_t socket;
  std::string endpoint;
};

class ZmqRoutersTest : public ::testing::Test {
 protected:
  // Runs the routers' side (poll, dispatch) until `done` or 10 s.
  bool pump_until(ZmqRouters& routers, const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::vector<zmq::pollitem_t> items;
      std::size_t n = routers.add_poll_items(items);
      zmq::poll(items.data(), items.size(), 20ms);
      routers.dispatch(items.data(), n);
    }
    return true;
  }
  LogHost host_;
};

// Each session is a connection of its own: a new local id (libzmq aborts on a reused one
// while the old pipe lingers) and the routing id drawn for it, which is what the node sees;
// the node's answers reach the current session's peer only.
TEST_F(ZmqRoutersTest, EachSessionHasItsOwnIdsOnBothSides) {
  Node node(host_.context_);
  ZmqRouters routers(host_, 1 << 20);
  Peer first, second;
  std::string a = routers.connect("2", node.endpoint, "remote-a", first);
  ASSERT_TRUE(pump_until(routers, [&] { return first.connected; }));
  ASSERT_EQ(routers.send(a, "hello-a"), ZmqRouters::Sent::kOk);
  auto got = node.next();
  EXPECT_EQ(got, std::make_pair(std::string("remote-a"), std::string("hello-a")));
  node.reply("remote-a", "answer-a");
  ASSERT_TRUE(pump_until(routers, [&] { return !first.messages.empty(); }));
  EXPECT_EQ(first.messages, std::vector<std::string>{"answer-a"});

  // A new session for the same node, at once.
  routers.disconnect(a);
  std::string b = routers.connect("2", node.endpoint, "remote-b", second);
  EXPECT_NE(a, b);
  EXPECT_EQ(routers.send(a, "stale"), ZmqRouters::Sent::kGone);
  ASSERT_TRUE(pump_until(routers, [&] { return second.connected; }));
  ASSERT_EQ(routers.send(b, "hello-b"), ZmqRouters::Sent::kOk);
  got = node.next();
  EXPECT_EQ(got, std::make_pair(std::string("remote-b"), std::string("hello-b")));
  node.reply("remote-b", "answer-b");
  ASSERT_TRUE(pump_until(routers, [&] { return !second.messages.empty(); }));
  EXPECT_EQ(second.messages, std::vector<std::string>{"answer-b"});
  EXPECT_EQ(first.messages.size(), 1u);
}

// Disconnecting works per endpoint: two nodes behind one address and port are on two
// routers, and ending one's session leaves the other's connection (and its id) alone.
TEST_F(ZmqRoutersTest, TwoNodesBehindOneEndpointAreOnTwoRouters) {
  Node node(host_.context_);
  ZmqRouters routers(host_, 1 << 20);
  Peer two, three;
  std::string a = routers.connect("2", node.endpoint, "remote-2", two);
  std::string b = routers.connect("3", node.endpoint, "remote-3", three);
  ASSERT_TRUE(routers.router_of(a) && routers.router_of(b));
  EXPECT_NE(*routers.router_of(a), *routers.router_of(b));
  ASSERT_TRUE(pump_until(routers, [&] { return two.connected && three.connected; }));
  const std::size_t first_router = *routers.router_of(a);
  routers.disconnect(a);
  ASSERT_EQ(routers.send(b, "still-here"), ZmqRouters::Sent::kOk);
  auto got = node.next();
  EXPECT_EQ(got, std::make_pair(std::string("remote-3"), std::string("still-here")));
  node.reply("remote-3", "answer-3");
  ASSERT_TRUE(pump_until(routers, [&] { return !three.messages.empty(); }));
  EXPECT_TRUE(two.messages.empty());
  // The freed place is used again by the next connection to that endpoint.
  Peer again;
  std::string c = routers.connect("2", node.endpoint, "remote-2b", again);
  EXPECT_EQ(routers.router_of(c), std::optional<std::size_t>(first_router));
  EXPECT_EQ(routers.router_count(), 2u);
}

// A node that restarts: its connection goes down and comes back up, the link is told both,
// and the connection keeps its ids (ZMQ_IMMEDIATE=0: the pipe outlives the TCP connection).
// Later connection attempts are named by the address libzmq resolved, which a node given by
// host name must still be recognised by.
TEST_F(ZmqRoutersTest, ARestartedNodeIsSeenGoingAndComingBackWithTheSameIds) {
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    SCOPED_TRACE(host);
    auto node = std::make_unique<Node>(host_.context_);
    const std::string port = node->endpoint.substr(node->endpoint.rfind(':') + 1);
    ZmqRouters routers(host_, 1 << 20);
    Peer peer;
    std::string a = routers.connect("2", "tcp://" + host + ":" + port, "remote", peer);
    ASSERT_TRUE(pump_until(routers, [&] { return peer.connected; }));
    node.reset();
    ASSERT_TRUE(pump_until(routers, [&] { return !peer.connected; }));
    node = std::make_unique<Node>(host_.context_, "tcp://127.0.0.1:" + port);
    ASSERT_TRUE(pump_until(routers, [&] { return peer.connected; })) << "the restarted node was not recognised";
    ASSERT_EQ(routers.send(a, "again"), ZmqRouters::Sent::kOk);
    EXPECT_EQ(node->next(), std::make_pair(std::string("remote"), std::string("again")));
    node->reply("remote", "back");
    ASSERT_TRUE(pump_until(routers, [&] { return !peer.messages.empty(); }));
  }
}

// Routers made where others were just destroyed (a worker replaced, a proxy reloaded) still
// connect: their in-process monitor names never clash with those of sockets libzmq is still
// closing on its reaper thread.
TEST_F(ZmqRoutersTest, RoutersMadeWhereOthersWereJustDestroyedStillConnect) {
  Node node(host_.context_);
  std::optional<ZmqRouters> routers;  // the same storage, every round
  for (int round = 0; round < 200; ++round) {
    routers.emplace(host_, 1 << 20);
    Peer peer;
    ASSERT_NO_THROW((void)routers->connect("2", node.endpoint, "remote", peer)) << "round " << round;
    routers.reset();
  }
}

// A message whose routing id names no connection (one closed since) is dropped with a debug
// line; a binary id is logged in hex.
TEST_F(ZmqRoutersTest, AMessageForAnUnknownRoutingIdIsDroppedWithALogLine) {
  ZmqRouters routers(host_, 1 << 20);
  EXPECT_FALSE(routers.deliver("9#4", "late answer"));
  EXPECT_TRUE(host_.logged("[proxy] a message from routing id '9#4' that names no node connection was dropped (11 bytes)"));
  EXPECT_FALSE(routers.deliver(std::string("\0\1", 2), "x"));
  EXPECT_TRUE(host_.logged("routing id 0x0001 that names"));
}

// A pipe at its high-water mark (the node does not read) refuses the frame with kFull
// instead of dropping it or blocking; once the node reads, frames go again.
TEST_F(ZmqRoutersTest, AFullPipeRefusesFramesUntilTheNodeReads) {
  Node node(host_.context_);
  node.socket.set(zmq::sockopt::rcvhwm, 1);
  node.socket.set(zmq::sockopt::rcvbuf, 4096);
  ZmqRouters routers(host_, 1 << 20, 1);
  Peer peer;
  std::string a = routers.connect("2", node.endpoint, "remote", peer);
  ASSERT_TRUE(pump_until(routers, [&] { return peer.connected; }));
  (void)routers.send(a, "first");
  ASSERT_EQ(node.next().second, "first");  // the node has the connection's routing id
  const std::string big(256 * 1024, 'x');
  int sent = 0;
  bool full = false;
  for (int i = 0; i < 2000 && !full; ++i) {
    auto r = routers.send(a, big);
    ASSERT_NE(r, ZmqRouters::Sent::kGone);
    if (r == ZmqRouters::Sent::kFull) full = true;
    else ++sent;
  }
  ASSERT_TRUE(full) << "never full after " << sent << " frames";
  // The node reads what was sent; the refused frame then goes.
  for (int i = 0; i < sent; ++i) ASSERT_EQ(node.next().second.size(), big.size()) << i;
  ASSERT_TRUE(pump_until(routers, [&] { return routers.send(a, "after") == ZmqRouters::Sent::kOk; }));
  EXPECT_EQ(node.next().second, "after");
}

}  // namespace
}  // namespace gorgone::proxy
