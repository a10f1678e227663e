#include "worker.hpp"

#include <cerrno>
#include <chrono>
#include <deque>
#include <list>
#include <optional>
#include <set>
#include <vector>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/status_codes.hpp"
#include "node_link.hpp"
#include "node_type.hpp"
#include "pull_link.hpp"
#include "remote_copy.hpp"
#include "ssh_link.hpp"
#include "wss_link.hpp"
#include "zmq_link.hpp"
#include "gorgone/protocol/response.hpp"

namespace gorgone::proxy {
namespace {

// Scalar members only: Gorgone ignores arrays and objects (subnode lists) when deciding
// whether a node's session must be recreated.
std::map<std::string, std::string> scalars(const std::string& node_json) {
  std::map<std::string, std::string> out;
  json::Document d;
  if (!json::parse(d, node_json) || !d.IsObject()) return out;
  for (const auto& m : d.GetObject())
    if (!m.value.IsObject() && !m.value.IsArray())
      out[m.name.GetString()] = json::as_text(m.value).value_or(m.value.IsNull() ? "" : json::dump(m.value));
  return out;
}

// A PROCESSCOPY series keeps at most this many messages (and bytes of them) sent and not
// yet answered by the node (a node's core answers each message as it arrives): enough that
// the node always has the next chunks while it works on one, few enough that a large copy
// is never held in memory whole (the link keeps what is in flight, to send it again after
// a lost session): about 3.3 MB with the default buffer_size.
constexpr std::size_t kCopyWindowFrames = 16;
constexpr std::size_t kCopyWindowBytes = 4u << 20;

}  // namespace

// One node as seen from a worker. The node object (its queue of frames not yet handed to
// the link, its back-off) lives as long as the node is registered; the link's session is
// recreated whenever the node stops answering.
class NodeConnection {
 public:
  struct Pending {
    std::string action;
    std::string token;
    std::string target;
    std::string text;  // the frame as sent; for a copy, its current message ("" = not made yet)
    // REMOTECOPY: the PROCESSCOPY series is made one message at a time, at most a window of
    // them in flight (see copy_wait()), and stays at the front of the queue until its `end`
    // message went out, so that nothing interleaves with it.
    std::shared_ptr<RemoteCopy> copy;
    std::string wire_target;
  };
  std::string id;
  Link kind = Link::kZmq;  // what carries frames (an SSH node takes REMOTECOPY as it is)
  std::unique_ptr<NodeLink> link;
  // A list, not a deque: most nodes hold nothing most of the time, and an empty std::deque
  // allocates about 600 bytes (thousands of nodes a worker).
  std::list<Pending> queue;
  // Pull nodes: how many frames at the head of the queue came back from the hooks (they go
  // first, in the order they were sent); and the link, typed.
  std::size_t returned = 0;
  PullLink* pull = nullptr;
  void pop_front() {
    queue.pop_front();
    if (returned) --returned;
  }
  // For the metrics (Worker::figures()).
  std::uint64_t frames_sent = 0, bytes_sent = 0, frames_received = 0, bytes_received = 0;
  Clock::time_point retry_at;  // no session before this (back-off after silence)
  int silent_attempts = 0;
  bool closed = false;  // erased from the worker's connections (a poll round may still hold it)
};

namespace {

// Messages of the series `token` the link holds in flight, and their bytes. Nothing
// interleaves with a series, so they are the newest ones: counted from the back.
std::size_t series_in_flight(const NodeLink& link, const std::string& token, std::size_t* bytes = nullptr) {
  const auto& frames = link.in_flight();
  std::size_t n = 0, size = 0;
  for (auto it = frames.rbegin(); it != frames.rend() && it->token == token && it->action == "PROCESSCOPY"; ++it) {
    ++n;
    size += it->text.size();
  }
  if (bytes) *bytes = size;
  return n;
}

enum class CopyWait { kNone, kWindow, kArchiver };

// Why the series at the head of the queue cannot give its next message now, if it cannot.
CopyWait copy_wait(NodeConnection& c) {
  if (c.queue.empty()) return CopyWait::kNone;
  NodeConnection::Pending& p = c.queue.front();
  if (!p.copy || !p.text.empty() || p.copy->done()) return CopyWait::kNone;
  std::size_t bytes = 0;
  if (series_in_flight(*c.link, p.token, &bytes) >= kCopyWindowFrames || bytes >= kCopyWindowBytes)
    return CopyWait::kWindow;
  return p.copy->available() ? CopyWait::kNone : CopyWait::kArchiver;
}

}  // namespace

Worker::Worker(int pool_id, Host& host, Settings settings, std::string core_id)
    : pool_id_(pool_id),
      host_(host),
      settings_(settings),
      core_id_(std::move(core_id)),
      routers_(std::make_unique<ZmqRouters>(host, settings.max_frame_size)) {}

Worker::~Worker() { shut_down(); }

void Worker::shut_down() {
  stop();
  // A worker that failed and was not replaced (the proxy is stopping): what reached its
  // control socket since gets its KO rows, and the socket closes now — not when the module
  // is unloaded, which may never happen, and the core cannot end its ZMQ context while a
  // socket of it is open.
  if (failure_ && control_) {
    try {
      std::set<std::string> done;
      ko_unread(stopped_text(*failure_), done);
    } catch (...) {
    }
    control_.reset();
  }
}

std::string Worker::stopped_text(const std::string& why) const {
  return "proxy worker " + std::to_string(pool_id_) + " stopped on an internal error (" + why + ")";
}

void Worker::adopt(Worker& failed) {
  control_ = std::move(failed.control_);
  node_configs_ = std::move(failed.node_configs_);
  failed.failure_.reset();
}

void Worker::start() {
  running_ = true;
  if (!control_) {
    // Connected here, on the caller's thread, so that the routing id exists on the core's
    // router as soon as start() returns (the thread only takes the socket over).
    control_ = std::make_unique<zmq::socket_t>(host_.zmq_context(), zmq::socket_type::dealer);
    control_->set(zmq::sockopt::routing_id, "gorgone-proxy-" + std::to_string(pool_id_));
    control_->set(zmq::sockopt::linger, 0);
    // In-process link to the core: never drop on a high-water mark (see the core's router).
    control_->set(zmq::sockopt::sndhwm, 0);
    control_->set(zmq::sockopt::rcvhwm, 0);
    control_->connect(control_endpoint_.empty() ? host_.core_info().internal_endpoint : control_endpoint_);
  }
  thread_ = std::thread([this] {
    std::optional<std::string> error;
    try {
      run();
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception";
    }
    if (error) {
      try {
        fail_held(*error);
      } catch (...) {
        host_.log(Severity::kError, "[proxy] worker " + std::to_string(pool_id_) +
                                        ": could not give every held frame its KO row");
      }
      // The control socket stays open: frames routed here until the proxy replaces this
      // worker wait in it for the successor, which adopts it (see adopt()).
      failure_ = *error;
    } else {
      try {
        ko_held_on_stop();
      } catch (...) {
        host_.log(Severity::kError, "[proxy] worker " + std::to_string(pool_id_) +
                                        ": could not give every held frame its KO row");
      }
      control_.reset();
    }
    connections_.clear();
    // The routers' sockets close on the thread that used them.
    routers_ = std::make_unique<ZmqRouters>(host_, settings_.max_frame_size);
    running_ = false;
  });
}

void Worker::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Worker::to_core(std::string_view action, std::string_view token, std::string_view data) {
  to_proxy(protocol::Frame{std::string(action), std::string(token), "", std::string(data)});
}

void Worker::to_proxy(protocol::Frame frame, std::shared_ptr<json::Document> doc) {
  if (deliver_) return deliver_(std::move(frame), std::move(doc));
  if (doc) frame.data = json::dump(*doc);
  control_->send(zmq::buffer(protocol::build_frame(frame)), zmq::send_flags::dontwait);
}

void Worker::history_ko(const std::string& token, const std::string& message) {
  host_.add_history(&token, code::kActionFinishKo, json::message(message));
}

void Worker::pong_reset(const std::string& node_id) {
  to_core("PONGRESET", protocol::generate_token(), "{\"data\":{\"id\":" + json::quote(node_id) + "}}");
}

void Worker::run() {
  to_core("PROXYREADY", protocol::generate_token(), "{\"pool_id\":" + std::to_string(pool_id_) + "}");

  // Poll items and, at the same index, the node each one belongs to (none for the control
  // socket). The nodes are held for the round: handling one item may close another node's
  // link (erasing it from connections_), which then stays alive, marked closed, until the
  // round ends.
  // A series at the head of a node's queue that waits for its archiver adds the archiver's
  // descriptor (`wakes` marks those items); one that waits for the node's answers (a full
  // window) does not ask for writability, which would wake the loop for nothing.
  std::vector<zmq::pollitem_t> items;
  std::vector<std::shared_ptr<NodeConnection>> owners;
  std::vector<bool> wakes;
  while (!stop_) {
    if (turn_hook_) turn_hook_();
    items.clear();
    owners.clear();
    wakes.clear();
    items.push_back({static_cast<void*>(*control_), 0, ZMQ_POLLIN, 0});
    owners.push_back(nullptr);
    wakes.push_back(false);
    for (auto& [id, c] : connections_) {
      const CopyWait wait = c->link->is_open() ? copy_wait(*c) : CopyWait::kNone;
      auto item = c->link->poll_item(!c->queue.empty() && wait == CopyWait::kNone);
      if (item) {
        items.push_back(*item);
        owners.push_back(c);
        wakes.push_back(false);
      }
      if (wait == CopyWait::kArchiver) {
        items.push_back({nullptr, c->queue.front().copy->wake_fd(), ZMQ_POLLIN, 0});
        owners.push_back(c);
        wakes.push_back(true);
      }
    }
    // Then the routers push_zmq nodes are reached through (their messages name the node).
    const std::size_t routers_at = items.size();
    const std::size_t routers = routers_->add_poll_items(items);
    try {
      zmq::poll(items.data(), items.size(), poll_timeout());
    } catch (const zmq::error_t& e) {
      // A signal for the process (SIGTERM, SIGINT, SIGHUP) may land on this thread: the
      // core's loop handles it; here it only cuts the wait short.
      if (e.num() != EINTR) throw;
      continue;
    }
    if (items[0].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 1000; ++i) {
        zmq::message_t msg;
        if (!control_->recv(msg, zmq::recv_flags::dontwait)) break;
        handle_control(msg.to_string_view());
      }
    }
    for (std::size_t i = 1; i < routers_at; ++i) {
      if (!(items[i].revents & (ZMQ_POLLIN | ZMQ_POLLOUT))) continue;
      NodeConnection& c = *owners[i];
      // Closed by a control frame or an earlier item of this round, or its session ended:
      // what was polled is gone.
      if (c.closed || !c.link->is_open()) continue;
      if (wakes[i]) {
        // The archiver has the next chunk (or ended): drain its signal, go on with the series.
        if (!c.queue.empty() && c.queue.front().copy) c.queue.front().copy->clear_wake();
        flush(c);
        continue;
      }
      if (items[i].revents & ZMQ_POLLIN) on_node_message(c);
      if (!c.closed && c.link->is_open()) flush(c);
    }
    // Each message read from a router went to its node's link; each node that got something
    // is then handled as a readable node of its own would be. (A control frame above may
    // have closed routers' connections: their messages are dropped as unknown.)
    for (const std::string& id : routers_->dispatch(items.data() + routers_at, routers)) {
      auto it = connections_.find(id);
      if (it == connections_.end()) continue;
      std::shared_ptr<NodeConnection> c = it->second;  // held: handling it may close it
      if (!c->link->is_open()) continue;
      on_node_message(*c);
      if (!c->closed && c->link->is_open()) flush(*c);
    }
    owners.clear();
    check_timeouts();
    publish_figures(now());
  }
  host_.log(Severity::kInfo, "[proxy] worker " + std::to_string(pool_id_) + " has quit");
}

void Worker::close_node(const std::string& node_id, bool reset) {
  auto it = connections_.find(node_id);
  if (it == connections_.end()) return;
  it->second->closed = true;
  connections_.erase(it);
  if (reset) pong_reset(node_id);
}

namespace {

// "parent~~target" -> the node the frame is for, for messages.
std::string node_of(const std::string& target) {
  auto sep = target.find("~~");
  return sep == std::string::npos ? target : target.substr(sep + 2);
}

// Frames of the proxy to its workers: they carry no request of a caller.
bool is_control_action(const std::string& a) {
  return a == "ACK" || a == "PROXYADDNODE" || a == "PROXYDELNODE" || a == "PROXYCLOSECONNECTION" ||
         a == kPullDone || a == kPullReturn || a.rfind("BCAST", 0) == 0;
}

}  // namespace

void Worker::handle_control(std::string_view text) {
  std::optional<protocol::Frame> frame;
  try {
    frame = protocol::parse_frame(text);
    if (frame) on_control(*frame);  // no frame: the core's ACKs to what we sent
  } catch (const std::exception& e) {
    std::string action = frame ? frame->action : std::string("a frame");
    std::string node = frame ? node_of(frame->target) : std::string("?");
    bool ko = frame && !frame->token.empty() && !is_control_action(frame->action);
    host_.log(Severity::kError, "[proxy] worker " + std::to_string(pool_id_) + ": internal error handling " + action +
                                    " for node '" + node + "': " + e.what() + (ko ? " (KO row written)" : ""));
    if (ko)
      history_ko(frame->token, "proxy - internal error handling " + action + " for node '" + node + "': " + e.what());
  }
}

void Worker::on_control(const protocol::Frame& frame) {
  const std::string& a = frame.action;
  if (a == "ACK") return;
  std::string parent, target;
  auto sep = frame.target.find("~~");
  if (sep != std::string::npos) {
    parent = frame.target.substr(0, sep);
    target = frame.target.substr(sep + 2);
  }
  if (a == "PROXYADDNODE") {
    if (parent.empty()) return;
    auto old = node_configs_.find(parent);
    auto conn = connections_.find(parent);
    std::list<NodeConnection::Pending> held;
    std::size_t returned = 0;
    if (old != node_configs_.end() && conn != connections_.end()) {
      if (scalars(old->second) == scalars(frame.data)) {
        host_.log(Severity::kDebug, "[proxy] Session not changed " + parent);
        // The node (re)announced itself: a link waiting out a back-off tries again now.
        if (!conn->second->link->is_open() && !conn->second->queue.empty()) {
          conn->second->retry_at = now();
          flush(*conn->second);
        }
      } else {
        // New connection settings: a new link, and the frames held for the node keep their
        // place (re-registering a node must not lose them).
        host_.log(Severity::kInfo, "[proxy] Recreate session for " + parent);
        cut_series(*conn->second);  // the old link forgets what it has in flight
        held = std::move(conn->second->queue);
        returned = conn->second->returned;
        close_node(parent, true);
      }
    }
    node_configs_[parent] = frame.data;
    if (!held.empty()) {
      if (NodeConnection* c = connection_for(parent)) {
        c->queue = std::move(held);
        c->returned = returned;
        flush(*c);
      } else {
        for (const auto& p : held)
          history_ko(p.token, "Send message problem for '" + p.target + "': node '" + parent +
                                  "' cannot be reached with its new settings");
      }
    }
    return;
  }
  if (a == kPullDone || a == kPullReturn) {
    on_pull_answer(frame, parent);
    return;
  }
  if (a == "PROXYDELNODE") {
    host_.log(Severity::kInfo, "[proxy] Node '" + parent + "' removed from worker " + std::to_string(pool_id_));
    node_configs_.erase(parent);
    if (auto it = connections_.find(parent); it != connections_.end())
      for (const auto& p : it->second->queue)
        history_ko(p.token, "Send message problem for '" + p.target + "': node '" + parent + "' was unregistered");
    close_node(parent, true);
    return;
  }
  if (a == "PROXYCLOSECONNECTION") {
    // The next session gets a fresh routing id and handshake; frames held for the node stay.
    if (auto it = connections_.find(parent); it != connections_.end()) {
      host_.log(Severity::kInfo, "[proxy] Close connection for " + parent);
      end_session(*it->second);
      it->second->retry_at = now();
    }
    return;
  }
  if (a.rfind("BCAST", 0) == 0) return;
  if (sep == std::string::npos) {
    history_ko(frame.token, "unknown target format '" + frame.target + "'");
    return;
  }
  NodeConnection* c = connection_for(parent);
  if (!c) {
    history_ko(frame.token, "cannot connect on target node '" + parent + "'");
    return;
  }
  // A pull node's frames always name their final target (Gorgone's pull_request).
  const bool name_target = parent != target || c->kind == Link::kExternalRouter;
  std::string out = protocol::build_frame(a, frame.token, name_target ? target : "", frame.data);
  // Periodic PING and GETLOG carry no token; while a node is away keep one of each, so
  // that it does not get a burst of stale ones when it comes back.
  if (frame.token.empty())
    for (const auto& p : c->queue)
      if (p.action == a && p.token.empty()) return;
  if (c->queue.size() >= settings_.max_queue) {
    history_ko(frame.token, "Send message problem for '" + target + "': node '" + parent + "' is unreachable and " +
                                 std::to_string(settings_.max_queue) + " frames already wait for it (max_queue)");
    return;
  }
  if (a == "REMOTECOPY" && c->kind != Link::kSsh) {
    // Only checks here: a directory is archived on the copy's own thread once the series
    // reaches the head of the queue, and gives up when we are asked to stop.
    auto job =
        RemoteCopy::start(frame.data, parent, frame.token, static_cast<std::size_t>(settings_.buffer_size), &stop_);
    if (!job) {
      history_ko(frame.token, job.error());
      return;
    }
    c->queue.push_back({"PROCESSCOPY", frame.token, target, "", std::move(job.value()), name_target ? target : ""});
  } else {
    c->queue.push_back({a, frame.token, target, std::move(out), nullptr, ""});
  }
  flush(*c);
}

NodeConnection* Worker::connection_for(const std::string& node_id) {
  auto it = connections_.find(node_id);
  if (it != connections_.end()) return it->second.get();
  auto cfg = node_configs_.find(node_id);
  if (cfg == node_configs_.end()) return nullptr;
  json::Document d;
  if (!json::parse(d, cfg->second) || !d.IsObject()) return nullptr;
  auto type = node_type_of(d);
  if (!type) {
    host_.log(Severity::kError, "[proxy] node '" + node_id + "': " + type.error());
    return nullptr;
  }
  const Link carrier = kind(type->type).link;
  std::unique_ptr<NodeLink> link;
  if (link_factory_) {
    link = link_factory_(node_id, d);
  } else if (carrier == Link::kZmq) {
    link = make_zmq_link(host_, settings_, *routers_, node_id, d, client_keys_);
  } else if (carrier == Link::kSsh) {
    link = make_ssh_link(host_, settings_, node_id, d);
  } else if (carrier == Link::kWebsocket) {
    if (!wss_) {
      host_.log(Severity::kError, "[proxy] node '" + node_id + "' is a " + type->name +
                                      " node, but this proxy's httpserver (the wss listener) is not enabled");
      return nullptr;
    }
    link = std::make_unique<WssLink>(wss_, node_id);
  } else if (carrier == Link::kExternalRouter) {
    // Frames for a pull node go out through the hooks, which own the external router.
    link = std::make_unique<PullLink>([this, node_id](std::uint64_t session, const std::string& text) {
      to_proxy(protocol::Frame{kPullSend, std::to_string(session), node_id, text});
    });
  } else {
    host_.log(Severity::kError, "[proxy] node '" + node_id + "': type '" + type->name + "' is not served by a pool worker");
    return nullptr;
  }
  if (!link) return nullptr;
  auto c = std::make_shared<NodeConnection>();
  c->id = node_id;
  c->kind = carrier;
  if (carrier == Link::kExternalRouter && !link_factory_) c->pull = static_cast<PullLink*>(link.get());
  c->link = std::move(link);
  c->retry_at = now();
  NodeConnection* raw = c.get();
  connections_[node_id] = std::move(c);
  return raw;
}

void Worker::end_session(NodeConnection& c) {
  cut_series(c);
  c.link->close();
}

void Worker::cut_series(NodeConnection& c) {
  // A pull node's frames in flight all come back from the hooks (done or returned, in
  // order): nothing is forgotten there.
  if (c.kind == Link::kExternalRouter) return;
  // The series at the head of the queue, behind the messages of it handed back by a lost
  // session (sent again first).
  auto it = c.queue.begin();
  while (it != c.queue.end() && !it->copy && it->action == "PROCESSCOPY") ++it;
  if (it == c.queue.end() || !it->copy) return;
  const std::string token = it->token;
  std::size_t lost = series_in_flight(*c.link, token);
  if (lost == 0) return;
  // Closing forgets what is in flight: the node may have some of those messages or none, so
  // the rest of the series cannot make it whole. It ends here with a KO; the node, which
  // never gets its `end` message, installs nothing.
  NodeConnection::Pending p = *it;
  c.queue.erase(c.queue.begin(), std::next(it));
  host_.log(Severity::kError, "[proxy] node '" + c.id + "': session closed with " + std::to_string(lost) +
                                  " PROCESSCOPY message(s) unanswered; copy to '" + p.target + "' abandoned (KO row written)");
  history_ko(token, "Send message problem for '" + p.target + "': remote copy failed: the session with node '" + c.id +
                        "' was closed with " + std::to_string(lost) + " chunk(s) unanswered");
}

void Worker::flush(NodeConnection& c) {
  bool on_frame = false;  // true while the front frame is being made or sent
  try {
    flush_queue(c, on_frame);
  } catch (const std::exception& e) {
    if (on_frame && !c.queue.empty()) {
      // This frame cannot be sent: it alone gets a KO; the ones behind it still go.
      NodeConnection::Pending p = std::move(c.queue.front());
      c.pop_front();
      host_.log(Severity::kError, "[proxy] node '" + c.id + "': internal error sending " + p.action + ": " + e.what() +
                                      (p.token.empty() ? "" : " (KO row written)"));
      if (!p.token.empty())
        history_ko(p.token, "Send message problem for '" + p.target + "': internal error sending " + p.action +
                                " to node '" + c.id + "': " + e.what());
      return;
    }
    host_.log(Severity::kError, "[proxy] node '" + c.id + "': internal error opening a session: " + e.what() + "; " +
                                    std::to_string(c.queue.size()) + " frame(s) held, retrying in 5 s");
    end_session(c);
    c.retry_at = now() + std::chrono::seconds(5);
  }
}

void Worker::flush_queue(NodeConnection& c, bool& on_frame) {
  auto now = this->now();
  if (!c.link->is_open()) {
    if (c.queue.empty() || now < c.retry_at) return;
    if (!c.link->open(now)) {
      c.retry_at = now + std::chrono::seconds(5);
      return;
    }
  }
  if (!c.link->ready(now)) return;
  while (!c.queue.empty()) {
    on_frame = true;
    NodeConnection::Pending& p = c.queue.front();
    if (p.copy && p.text.empty()) {
      // A full window or an archiver behind: the rest waits (for an answer, or wake_fd()).
      if (copy_wait(c) != CopyWait::kNone) {
        on_frame = false;
        return;
      }
      auto data = p.copy->next();
      if (!data) {
        history_ko(p.token, data.error());
        c.pop_front();
        continue;
      }
      p.text = protocol::build_frame("PROCESSCOPY", p.token, p.wire_target, *data);
    }
    if (!c.link->send({p.action, p.token, p.target, p.text})) {
      on_frame = false;
      return;  // node away: keep the rest
    }
    ++c.frames_sent;
    c.bytes_sent += p.text.size();
    if (p.copy && !p.copy->done()) {
      p.text.clear();  // the next message of this copy
      continue;
    }
    c.pop_front();
  }
  on_frame = false;
}

std::size_t Worker::ko_unread(const std::string& worker, std::set<std::string>& done) {
  std::size_t unread = 0;
  zmq::message_t msg;
  while (control_->recv(msg, zmq::recv_flags::dontwait)) {
    auto frame = protocol::parse_frame(msg.to_string_view());
    if (!frame || frame->token.empty() || is_control_action(frame->action)) continue;
    if (!done.insert(frame->token).second) continue;
    ++unread;
    history_ko(frame->token, "Send message problem for '" + node_of(frame->target) + "': " + worker +
                                 " before reading this " + frame->action);
  }
  return unread;
}

void Worker::fail_held(const std::string& why) {
  const std::string worker = stopped_text(why);
  std::set<std::string> done;  // a copy's token appears once per chunk: one row each
  auto ko = [&](const std::string& token, const std::string& message) {
    if (token.empty() || !done.insert(token).second) return;
    history_ko(token, message);
  };
  for (const auto& [id, c] : connections_) {
    for (const auto& p : c->link->in_flight())
      ko(p.token, "Send message problem for '" + p.target + "': " + worker + " before node '" + id + "' answered");
    for (const auto& p : c->queue)
      ko(p.token, "Send message problem for '" + p.target + "': " + worker + "; the frame held for node '" + id +
                      "' was not sent");
  }
  // Frames the core routed to this worker that it never read.
  std::size_t unread = control_ ? ko_unread(worker, done) : 0;
  host_.log(Severity::kError, "[proxy] worker " + std::to_string(pool_id_) + " stopped on error: " + why + "; " +
                                  std::to_string(done.size()) + " held frame(s) got a KO row (" +
                                  std::to_string(unread) + " unread)");
}

// A clean stop: frames still waiting for a node that never took them would vanish with the
// process. Each gets a KO row; frames already sent (in flight) are the node's now.
void Worker::ko_held_on_stop() {
  const std::string worker = "the proxy is stopping";
  std::set<std::string> done;
  for (const auto& [id, c] : connections_)
    for (const auto& p : c->queue)
      if (!p.token.empty() && done.insert(p.token).second)
        history_ko(p.token, "Send message problem for '" + p.target + "': " + worker + "; the frame held for node '" +
                                id + "' was not sent");
  std::size_t unread = control_ ? ko_unread(worker, done) : 0;
  if (!done.empty())
    host_.log(Severity::kInfo, "[proxy] worker " + std::to_string(pool_id_) + " stopping: " +
                                   std::to_string(done.size()) + " held frame(s) got a KO row (" +
                                   std::to_string(unread) + " unread)");
}

void Worker::fail_node(NodeConnection& c, const std::string& reason) {
  std::string id = c.id;
  host_.log(Severity::kError, "[proxy] node '" + id + "' refused the session: " + reason);
  // The node answered and said no: the frames cannot be delivered. Each gets a KO row.
  for (const auto& p : c.queue) history_ko(p.token, "Send message problem for '" + p.target + "': " + reason);
  close_node(id, true);
}

void Worker::on_node_message(NodeConnection& c) {
  const std::string id = c.id;
  for (int i = 0; i < 1000 && !c.closed && c.link->is_open(); ++i) {
    try {
      if (!on_node_event(c)) return;
    } catch (const std::exception& e) {
      host_.log(Severity::kError, "[proxy] node '" + id + "': internal error handling a message from it: " +
                                      e.what() + "; message dropped");
      return;
    }
  }
}

bool Worker::on_node_event(NodeConnection& c) {
  using Kind = NodeLink::Event::Kind;
  auto ev = c.link->receive(now());
  switch (ev.kind) {
    case Kind::kNone:
      return false;
    case Kind::kIgnored:
      break;
    case Kind::kEstablished:
      host_.log(Severity::kInfo, "[proxy] session established with node '" + c.id + "'");
      c.silent_attempts = 0;
      flush(c);
      break;
    case Kind::kResponse:
      ++c.frames_received;
      // The message as the node wrote it: "[TYPE] [token] json".
      c.bytes_received += ev.response.type.size() + ev.response.token.size() + ev.response.json.size() + 5;
      on_node_text(c, ev.response);
      break;
    case Kind::kRotated:
      host_.log(Severity::kInfo, "[proxy] node '" + c.id + "' rotated the session key");
      break;
    case Kind::kLost:
      // Open a new session and keep the held frames; what was in flight goes first.
      host_.log(Severity::kError, "[proxy] node '" + c.id + "': session lost (" + ev.reason + "); reconnecting, " +
                                      std::to_string(ev.unanswered.size()) + " unanswered frame(s) sent again");
      requeue(c, ev.unanswered);
      c.retry_at = now();
      flush(c);
      return false;
    case Kind::kRefused:
      requeue(c, ev.unanswered);
      fail_node(c, ev.reason);
      return false;
    case Kind::kAway:
      requeue(c, ev.unanswered);
      back_off(c, ev.reason);
      return false;
  }
  return true;
}

void Worker::on_pull_answer(const protocol::Frame& frame, const std::string& node_id) {
  auto it = connections_.find(node_id);
  const std::uint64_t session = std::strtoull(frame.token.c_str(), nullptr, 10);
  if (frame.action == kPullDone) {
    if (it == connections_.end() || !it->second->pull) return;
    it->second->pull->done(session);
    flush(*it->second);  // the window has room again
    return;
  }
  // A frame the hooks could not hand to the node's connection: it goes back to the head of
  // the node's queue, after the ones returned before it.
  auto inner = protocol::parse_frame(frame.data);
  if (!inner) {
    host_.log(Severity::kError, "[proxy] node '" + node_id + "': a returned frame cannot be read");
    return;
  }
  if (it == connections_.end()) {
    history_ko(inner->token, "Send message problem for '" + node_id + "': node '" + node_id + "' was unregistered");
    return;
  }
  NodeConnection& c = *it->second;
  const std::string target = inner->target.empty() ? node_id : inner->target;
  c.queue.insert(std::next(c.queue.begin(), static_cast<std::ptrdiff_t>(std::min(c.returned, c.queue.size()))),
                 NodeConnection::Pending{inner->action, inner->token, target, std::string(frame.data), nullptr, ""});
  ++c.returned;
  if (c.pull && c.link->is_open() && session == c.pull->session())
    back_off(c, "not connected (pull node: frames are held until it connects again)");
}

void Worker::requeue(NodeConnection& c, std::deque<NodeLink::Frame>& frames) {
  for (auto it = frames.rbegin(); it != frames.rend(); ++it)
    c.queue.push_front({it->action, it->token, it->target, std::move(it->text), nullptr, ""});
  frames.clear();
}

void Worker::back_off(NodeConnection& c, const std::string& why) {
  // Keep the node's frames and try again with a new session after a back-off (1, 2, 4 ... 30 s).
  int backoff = std::min(30, 1 << std::min(c.silent_attempts, 5));
  ++c.silent_attempts;
  host_.log(Severity::kError, "[proxy] node '" + c.id + "': " + why + "; " + std::to_string(c.queue.size()) +
                                  " frame(s) held, retrying in " + std::to_string(backoff) + " s");
  end_session(c);
  c.retry_at = now() + std::chrono::seconds(backoff);
  pong_reset(c.id);
}

void Worker::on_node_text(NodeConnection& c, const protocol::Response& r) {
  try {
    on_node_response(c, r);
  } catch (const std::exception& e) {
    host_.log(Severity::kError, "[proxy] node '" + c.id + "': internal error handling its " + r.type + ": " +
                                    e.what() + (r.token.empty() ? "" : " (KO row written)"));
    if (!r.token.empty())
      history_ko(r.token, "proxy - internal error handling " + r.type + " from node '" + c.id + "': " + e.what());
  }
}

void Worker::on_node_response(NodeConnection& c, const protocol::Response& r) {
  // (The link has retired the frame this answers.)
  // A frame whose JSON cannot be read (malformed, nested too deeply, absurd numbers) costs
  // that frame and one log line naming the node; the session stays up.
  auto parse = [&](json::Document& d) {
    std::string error;
    if (json::parse(d, r.json, &error) && d.IsObject()) return true;
    host_.log(Severity::kError, "[proxy] node '" + c.id + "': " + r.type + " answer ignored: " +
                                    (error.empty() ? std::string("not a JSON object") : error));
    return false;
  };
  if (r.type == "PONG") {
    json::Document d;
    if (!parse(d)) return;
    if (!d.HasMember("data") || !d["data"].IsObject()) d.AddMember("data", json::Value(rapidjson::kObjectType), d.GetAllocator());
    json::Value& data = d["data"];
    data.RemoveMember("id");
    data.AddMember("id", json::Value(c.id.c_str(), d.GetAllocator()), d.GetAllocator());
    to_proxy(protocol::Frame{"PONG", r.token, "", ""}, std::make_shared<json::Document>(std::move(d)));
  } else if (r.type == "REGISTERNODES" || r.type == "UNREGISTERNODES") {
    // The node's own request: the target names the node whose connection carried it, so that
    // the proxy applies what that node may register, not what the configuration may.
    to_proxy(protocol::Frame{r.type, r.token, c.id, r.json});
  } else if (r.type == "SYNCLOGS") {
    // New rows on this node, whatever id the message names: the proxy syncs this node.
    to_core(r.type, r.token, "{\"code\":0,\"data\":{\"id\":" + json::quote(c.id) + "}}");
  } else if (r.type == "ACK") {
    json::Document d;
    if (!parse(d)) return;
    auto data = d.FindMember("data");
    if (data == d.MemberEnd() || !data->value.IsObject()) return;
    if (json::member_text(data->value, "action").value_or("") != "getlog") return;
    data->value.RemoveMember("id");
    data->value.AddMember("id", json::Value(c.id.c_str(), d.GetAllocator()), d.GetAllocator());
    to_proxy(protocol::Frame{"SETLOGS", r.token, "", ""}, std::make_shared<json::Document>(std::move(d)));
  }
}

void Worker::publish_figures(Clock::time_point now) {
  if (now - figures_at_ < std::chrono::seconds(1)) return;
  figures_at_ = now;
  auto f = std::make_shared<Figures>();
  f->nodes.reserve(connections_.size());
  for (const auto& [id, c] : connections_) {
    NodeFigures n;
    n.node = id;
    n.frames_sent = c->frames_sent;
    n.bytes_sent = c->bytes_sent;
    n.frames_received = c->frames_received;
    n.bytes_received = c->bytes_received;
    n.held = c->queue.size();
    n.in_flight = c->link->in_flight().size();
    f->held += n.held;
    f->in_flight += n.in_flight;
    f->nodes.push_back(std::move(n));
  }
  std::lock_guard lock(figures_mu_);
  figures_ = std::move(f);
}

std::chrono::milliseconds Worker::poll_timeout() {
  auto wait = std::chrono::milliseconds(200);
  const auto now = this->now();
  for (const auto& [id, c] : connections_) {
    if (c->queue.empty() || !c->link->is_open()) continue;
    auto retry = c->link->retry_at();
    if (!retry) continue;
    // At least a few milliseconds: a link that stays full does not make the loop spin.
    auto in = std::chrono::duration_cast<std::chrono::milliseconds>(*retry - now);
    wait = std::min(wait, std::max(in, std::chrono::milliseconds(5)));
  }
  return wait;
}

void Worker::check_timeouts() {
  auto now = this->now();
  for (auto& [id, c] : connections_) {
    if (!c->link->is_open()) {
      if (!c->queue.empty() && now >= c->retry_at) flush(*c);
      continue;
    }
    // A frame the transport could not take a moment ago is offered again.
    if (auto retry = c->link->retry_at(); retry && now >= *retry && !c->queue.empty()) {
      flush(*c);
      if (c->closed || !c->link->is_open()) continue;
    }
    auto deadline = c->link->deadline();
    if (!deadline || now <= *deadline) continue;
    // No answer: the node is down or unreachable.
    back_off(*c, "no answer to the handshake within " + std::to_string(settings_.handshake_timeout) + " s");
  }
}

}  // namespace gorgone::proxy
