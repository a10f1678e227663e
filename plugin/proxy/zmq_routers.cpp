#include "zmq_routers.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "gorgone/protocol/crypto.hpp"
#include "inproc_address.hpp"

namespace gorgone::proxy {
namespace {

// Messages read from one router per loop turn: a busy router does not starve the others.
constexpr int kMaxReadsPerTurn = 1000;

// A routing id for a log line: as it is when printable, in hex otherwise.
std::string printable_id(const std::string& id) {
  for (unsigned char ch : id)
    if (ch < 0x20 || ch > 0x7e) return "0x" + protocol::to_hex(id);
  return "'" + id + "'";
}

// How libzmq names a TCP endpoint in its events. The first connection attempt uses the
// address as given, later ones the address it resolved to (numeric, IPv6 in brackets), so a
// numeric address is connected in that form from the start and names the connection in
// every event; a host name gets the key "tcp://*:<port>" instead, and its events (whatever
// the name resolved to) are recognised by the port (one such connection per port on a
// router). Other transports are named as given.
struct EventKey {
  std::string connect_to;  // what to connect
  std::string key;         // what events name the connection by, or the wildcard key
};

EventKey event_key(const std::string& endpoint) {
  const std::string scheme = "tcp://";
  if (endpoint.rfind(scheme, 0) != 0) return {endpoint, endpoint};
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon < scheme.size()) return {endpoint, endpoint};
  std::string host = endpoint.substr(scheme.size(), colon - scheme.size());
  const std::string port = endpoint.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned char buf[sizeof(struct in6_addr)];
  char text[INET6_ADDRSTRLEN];
  if (::inet_pton(AF_INET, host.c_str(), buf) == 1 && ::inet_ntop(AF_INET, buf, text, sizeof text)) {
    std::string canonical = scheme + text + ":" + port;
    return {canonical, canonical};
  }
  if (::inet_pton(AF_INET6, host.c_str(), buf) == 1 && ::inet_ntop(AF_INET6, buf, text, sizeof text)) {
    std::string canonical = scheme + "[" + text + "]:" + port;
    return {canonical, canonical};
  }
  return {endpoint, scheme + "*:" + port};
}

// The wildcard key of an endpoint an event names: "tcp://*:<port>".
std::string wildcard_of(const std::string& named) {
  const std::string scheme = "tcp://";
  const auto colon = named.rfind(':');
  if (named.rfind(scheme, 0) != 0 || colon == std::string::npos) return "";
  return scheme + "*:" + named.substr(colon + 1);
}

}  // namespace

ZmqRouters::ZmqRouters(Host& host, std::int64_t max_frame_size, int sndhwm)
    : host_(host), max_frame_size_(max_frame_size), sndhwm_(sndhwm) {}

ZmqRouters::~ZmqRouters() {
  for (auto& r : routers_) {
    // Stop the monitor before closing either end of it.
    if (r.socket) ::zmq_socket_monitor(static_cast<void*>(*r.socket), nullptr, 0);
    r.monitor.reset();
    r.socket.reset();
  }
}

ZmqRouters::Router& ZmqRouters::make_router() {
  zmq::context_t& ctx = host_.zmq_context();
  Router r;
  r.socket = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::router);
  r.socket->set(zmq::sockopt::linger, 0);
  r.socket->set(zmq::sockopt::reconnect_ivl, 1000);
  r.socket->set(zmq::sockopt::connect_timeout, 30000);
  // A node that sends more than max_frame_size gets its connection closed by ZMQ rather than
  // making this process buffer it.
  r.socket->set(zmq::sockopt::maxmsgsize, max_frame_size_);
  r.socket->set(zmq::sockopt::router_mandatory, 1);
  r.socket->set(zmq::sockopt::immediate, 0);
  r.socket->set(zmq::sockopt::sndhwm, sndhwm_);
  // The monitor's address, unique in the context even when these routers replace others.
  const std::string address = unique_inproc_address("router-monitor");
  if (::zmq_socket_monitor(static_cast<void*>(*r.socket), address.c_str(),
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
    throw zmq::error_t();
  r.monitor = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::pair);
  r.monitor->set(zmq::sockopt::linger, 0);
  r.monitor->connect(address);
  routers_.push_back(std::move(r));
  return routers_.back();
}

std::string ZmqRouters::connect(const std::string& node_id, const std::string& endpoint, const std::string& remote_id,
                                RouterPeer& peer) {
  const EventKey key = event_key(endpoint);
  for (std::size_t i = 0;; ++i) {
    if (i == routers_.size()) make_router();
    Router& r = routers_[i];
    if (r.by_key.count(key.key)) continue;
    // Never reused: libzmq aborts when a connect routing id names a pipe it still has.
    std::string local_id = node_id + "#" + std::to_string(++counter_);
    // Both are copied into the connection at connect() time: each connection has its own.
    r.socket->set(zmq::sockopt::connect_routing_id, local_id);
    r.socket->set(zmq::sockopt::routing_id, remote_id);
    r.socket->connect(key.connect_to);
    r.by_key[key.key] = local_id;
    connections_[local_id] = Connection{&peer, node_id, i, key.connect_to, key.key, -1};
    return local_id;
  }
}

void ZmqRouters::disconnect(const std::string& local_id) {
  auto it = connections_.find(local_id);
  if (it == connections_.end()) return;
  Router& r = routers_[it->second.router];
  try {
    r.socket->disconnect(it->second.endpoint);
  } catch (const zmq::error_t&) {
    // Already gone (ENOENT): nothing left to end.
  }
  r.by_key.erase(it->second.key);
  connections_.erase(it);
}

ZmqRouters::Sent ZmqRouters::send(const std::string& local_id, std::string_view body) {
  auto it = connections_.find(local_id);
  if (it == connections_.end()) return Sent::kGone;
  zmq::socket_t& s = *routers_[it->second.router].socket;
  try {
    if (!s.send(zmq::buffer(local_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return Sent::kFull;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return Sent::kGone;
    throw;
  }
  // The routing id was accepted: the pipe has room for the message.
  s.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
  return Sent::kOk;
}

std::size_t ZmqRouters::add_poll_items(std::vector<zmq::pollitem_t>& items) {
  for (auto& r : routers_) {
    items.push_back({static_cast<void*>(*r.socket), 0, ZMQ_POLLIN, 0});
    items.push_back({static_cast<void*>(*r.monitor), 0, ZMQ_POLLIN, 0});
  }
  return routers_.size();
}

std::vector<std::string> ZmqRouters::dispatch(const zmq::pollitem_t* items, std::size_t routers) {
  std::vector<std::string> touched;
  std::set<std::string> seen;
  for (const auto& id : take_touched())
    if (seen.insert(id).second) touched.push_back(id);
  for (std::size_t i = 0; i < routers && i < routers_.size(); ++i) {
    // Connection events first: a message read below may be the first on a connection whose
    // CONNECTED event is waiting.
    if (items[2 * i + 1].revents & ZMQ_POLLIN) on_monitor(routers_[i], touched, seen);
    if (items[2 * i].revents & ZMQ_POLLIN) on_socket(routers_[i], touched, seen);
  }
  return touched;
}

void ZmqRouters::on_monitor(Router& r, std::vector<std::string>& touched, std::set<std::string>& seen) {
  for (int n = 0; n < kMaxReadsPerTurn; ++n) {
    zmq::message_t event, address;
    if (!r.monitor->recv(event, zmq::recv_flags::dontwait)) return;
    if (!event.more() || !r.monitor->recv(address, zmq::recv_flags::none)) continue;
    if (event.size() < 6) continue;
    std::uint16_t kind = 0;
    std::uint32_t value = 0;
    std::memcpy(&kind, event.data(), sizeof kind);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
    auto id = r.by_key.find(address.to_string());
    if (id == r.by_key.end()) id = r.by_key.find(wildcard_of(address.to_string()));
    if (id == r.by_key.end()) continue;  // a connection ended since
    Connection& c = connections_.at(id->second);
    if (kind == ZMQ_EVENT_CONNECTED) {
      c.fd = static_cast<int>(value);
      c.peer->on_connection(true);
      if (seen.insert(c.node_id).second) touched.push_back(c.node_id);
    } else if (kind == ZMQ_EVENT_DISCONNECTED && c.fd == static_cast<int>(value)) {
      // (A DISCONNECTED naming another descriptor is a late event of an earlier connection.)
      c.fd = -1;
      c.peer->on_connection(false);
    }
  }
}

void ZmqRouters::on_socket(Router& r, std::vector<std::string>& touched, std::set<std::string>& seen) {
  for (int n = 0; n < kMaxReadsPerTurn; ++n) {
    zmq::message_t id, body;
    if (!r.socket->recv(id, zmq::recv_flags::dontwait)) return;
    if (!id.more()) continue;
    (void)r.socket->recv(body, zmq::recv_flags::none);
    // A node's ROUTER sends one body frame; anything more is not ours to read.
    bool extra = body.more();
    while (extra) {
      zmq::message_t skip;
      (void)r.socket->recv(skip, zmq::recv_flags::none);
      extra = skip.more();
    }
    std::string local_id = id.to_string();
    if (!deliver(local_id, body.to_string())) continue;
    const std::string& node = connections_.at(local_id).node_id;
    if (seen.insert(node).second) touched.push_back(node);
  }
}

bool ZmqRouters::deliver(const std::string& local_id, std::string body) {
  auto it = connections_.find(local_id);
  if (it == connections_.end()) {
    host_.log(Severity::kDebug, "[proxy] a message from routing id " + printable_id(local_id) +
                                    " that names no node connection was dropped (" + std::to_string(body.size()) +
                                    " bytes)");
    return false;
  }
  it->second.peer->on_message(std::move(body));
  return true;
}

void ZmqRouters::touch(const std::string& local_id) {
  auto it = connections_.find(local_id);
  if (it != connections_.end()) touched_.push_back(it->second.node_id);
}

std::vector<std::string> ZmqRouters::take_touched() {
  std::vector<std::string> out;
  out.swap(touched_);
  return out;
}

std::optional<std::size_t> ZmqRouters::router_of(const std::string& local_id) const {
  auto it = connections_.find(local_id);
  if (it == connections_.end()) return std::nullopt;
  return it->second.router;
}

}  // namespace gorgone::proxy
