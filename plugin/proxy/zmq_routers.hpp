// The ROUTER sockets a worker reaches its push_zmq nodes through: each connects to many
// nodes, so that a node costs the central one file descriptor (its TCP connection) instead
// of a socket of its own (a connection and a mailbox). A ROUTER names each node's connection
// by the routing id given at connect time (ZMQ_CONNECT_ROUTING_ID): a message read from it
// goes to the peer that id names, and a frame for a node is sent under it.
//
// Connections are made with ZMQ_IMMEDIATE=0: libzmq then creates the connection's pipe, and
// gives it the connect routing id, at connect() time, and keeps both across reconnections
// (with 1 the pipe is made when TCP is up and the peer is named by what it announces, so the
// id would be lost). A pipe that exists before TCP is up would hold frames for an absent node,
// so each router's monitor (ZMQ_EVENT_CONNECTED/DISCONNECTED) tells the peer whether its
// connection is up, and links hand frames over only while it is.
// ZMQ_ROUTER_MANDATORY makes a send to a full pipe EAGAIN (the frame stays with the worker
// and is retried) and a send to a vanished peer an error, never a silent drop.
// Disconnecting works per endpoint, so one router holds at most one connection per endpoint:
// two nodes behind the same address and port go on different routers (and, as events name a
// connection by the address libzmq resolved, at most one per port among nodes given by host
// name).
// Thread-safety: thread-bound to the worker's thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "gorgone/module.hpp"

namespace gorgone::proxy {

// What a router tells the link a connection belongs to.
class RouterPeer {
 public:
  virtual ~RouterPeer() = default;
  // A message the node sent on this connection.
  virtual void on_message(std::string body) = 0;
  // The connection's TCP link came up (true) or went down (false).
  virtual void on_connection(bool up) = 0;
};

class ZmqRouters {
 public:
  enum class Sent {
    kOk,
    kFull,  // the connection's pipe is at its high-water mark: try again shortly
    kGone,  // no such connection any more
  };

  // `max_frame_size`: a node that sends more gets its connection closed by ZMQ; `sndhwm`:
  // messages a connection's pipe holds (tests lower it).
  ZmqRouters(Host& host, std::int64_t max_frame_size, int sndhwm = 1000);
  ~ZmqRouters();
  ZmqRouters(const ZmqRouters&) = delete;
  ZmqRouters& operator=(const ZmqRouters&) = delete;

  // Connects `endpoint` for node `node_id` on a router that has no connection to that
  // endpoint, a new one if none, and returns the connection's local id (unique for the life
  // of this object: "<node>#<n>"). The node sees `remote_id` as our routing id. `peer` gets
  // what comes of the connection until disconnect(). Throws zmq::error_t when the endpoint
  // cannot be connected (bad address), and whatever Host::zmq_context() throws.
  std::string connect(const std::string& node_id, const std::string& endpoint, const std::string& remote_id,
                      RouterPeer& peer);
  // Ends the connection `local_id` (what its pipe still holds is discarded).
  void disconnect(const std::string& local_id);
  Sent send(const std::string& local_id, std::string_view body);

  // Two poll items per router (its socket and its monitor), appended to `items`; returns how
  // many routers that is.
  std::size_t add_poll_items(std::vector<zmq::pollitem_t>& items);
  // Reads what the items add_poll_items() appended (starting at `items`, for the first
  // `routers` routers: a connect since may have added one) found: each message goes to the
  // peer its routing id names, each connection event to its peer. Returns the nodes whose
  // peers got something (or were touched), each once, in order.
  std::vector<std::string> dispatch(const zmq::pollitem_t* items, std::size_t routers);
  // Hands `body` to the peer `local_id` names; false when none does (the message is dropped,
  // with a debug log line).
  bool deliver(const std::string& local_id, std::string body);
  // A peer wants the worker to read it (something happened without a message).
  void touch(const std::string& local_id);
  std::vector<std::string> take_touched();

  std::size_t router_count() const { return routers_.size(); }
  // The router a connection is on (tests).
  std::optional<std::size_t> router_of(const std::string& local_id) const;

 private:
  struct Router {
    std::unique_ptr<zmq::socket_t> socket;
    std::unique_ptr<zmq::socket_t> monitor;
    // What libzmq's events name each connection by (see event_key()) -> its local id; also
    // what keeps a second connection to an endpoint off this router.
    std::map<std::string, std::string> by_key;
  };
  struct Connection {
    RouterPeer* peer = nullptr;
    std::string node_id;
    std::size_t router = 0;
    std::string endpoint;  // as connected
    std::string key;
    int fd = -1;  // the TCP connection's descriptor while up
  };
  Router& make_router();
  void on_monitor(Router& r, std::vector<std::string>& touched, std::set<std::string>& seen);
  void on_socket(Router& r, std::vector<std::string>& touched, std::set<std::string>& seen);

  Host& host_;
  std::int64_t max_frame_size_;
  int sndhwm_;
  std::vector<Router> routers_;
  std::map<std::string, Connection> connections_;  // local id -> connection
  std::vector<std::string> touched_;
  std::uint64_t counter_ = 0;
};

}  // namespace gorgone::proxy
