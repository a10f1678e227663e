// The link to a pull node (a poller that dialled in to this host's external router). The
// worker keeps the node's bounded queue as for any node; the frames themselves can only be
// sent by the loop thread (it owns the router), so the link hands each one to the proxy's
// hooks on the worker's control socket (PROXYPULLSEND, tagged with the link's session
// number) and the hooks answer per frame: PROXYPULLDONE (handed to the node's connection)
// or PROXYPULLRETURN with the frame (the node is not connected). After the first return
// of a session the hooks return every later frame of that session untried, so the frames
// come back in order and the worker puts them back at the head of the queue, in order, then
// retries after a back-off; a node that connects again (its REGISTERNODES) makes the worker
// retry at once.
// Thread-safety: thread-bound to the worker's thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "node_link.hpp"

namespace gorgone::proxy {

// Control actions between a worker and the hooks for pull nodes.
inline constexpr const char* kPullSend = "PROXYPULLSEND";
inline constexpr const char* kPullDone = "PROXYPULLDONE";
inline constexpr const char* kPullReturn = "PROXYPULLRETURN";

class PullLink : public NodeLink {
 public:
  // Sends `[PROXYPULLSEND] [<session>] [<node>] <frame text>` to the hooks.
  using Forward = std::function<void(std::uint64_t session, const std::string& text)>;
  // At most this many frames wait for the hooks' answer (the back-pressure of a copy).
  static constexpr std::size_t kWindow = 64;

  explicit PullLink(Forward forward) : forward_(std::move(forward)) {}

  bool is_open() const override { return open_; }
  bool open(Clock::time_point) override {
    // Unique in the process: an answer for a session of a link since replaced never
    // matches a new one.
    static std::atomic<std::uint64_t> sessions{0};
    open_ = true;
    session_ = ++sessions;
    return true;
  }
  void close() override {
    open_ = false;
    in_flight_.clear();  // each comes back as done or returned, by the session rule above
  }
  std::optional<zmq::pollitem_t> poll_item(bool) const override { return std::nullopt; }
  bool ready(Clock::time_point) override { return open_ && in_flight_.size() < kWindow; }
  bool send(const Frame& frame) override {
    if (!ready(Clock::time_point{})) return false;
    in_flight_.push_back(frame);
    forward_(session_, frame.text);
    return true;
  }
  Event receive(Clock::time_point) override { return {}; }
  std::optional<Clock::time_point> deadline() const override { return std::nullopt; }
  const std::deque<Frame>& in_flight() const override { return in_flight_; }

  std::uint64_t session() const { return session_; }
  // The hooks handed the oldest frame of `session` to the node's connection.
  void done(std::uint64_t session) {
    if (open_ && session == session_ && !in_flight_.empty()) in_flight_.pop_front();
  }

 private:
  Forward forward_;
  bool open_ = false;
  std::uint64_t session_ = 0;
  std::deque<Frame> in_flight_;
};

}  // namespace gorgone::proxy
