// The link to a wss/pullwss node (a poller connected to the proxy's WebSocket listener,
// wss_server.hpp). As for a pull node, the worker keeps the node's bounded queue; the link
// hands each frame to the listener, at most kWindow at a time, and the listener answers per
// frame (written, or not: the node is not connected). The answers come back through an
// eventfd the worker polls. The first frame of a session that cannot go makes the node
// "away": every frame still unanswered goes back to the queue, in order (the listener fails
// the later frames of that session untried), and the node is retried after the back-off,
// or at once when it registers again.
// Thread-safety: thread-bound to the worker's thread; the listener's callbacks only touch
// the shared answer queue.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "node_link.hpp"
#include "wss_server.hpp"

namespace gorgone::proxy {

class WssLink : public NodeLink {
 public:
  static constexpr std::size_t kWindow = 64;

  WssLink(std::shared_ptr<WssServer> server, std::string node)
      : server_(std::move(server)), node_(std::move(node)), answers_(std::make_shared<Answers>()) {}

  bool is_open() const override { return open_; }
  bool open(Clock::time_point) override {
    if (!server_ || !server_->running() || answers_->fd < 0) return false;
    static std::atomic<std::uint64_t> sessions{0};
    session_ = ++sessions;
    open_ = true;
    return true;
  }
  void close() override {
    open_ = false;
    in_flight_.clear();
  }
  std::optional<zmq::pollitem_t> poll_item(bool) const override {
    if (!open_) return std::nullopt;
    return zmq::pollitem_t{nullptr, answers_->fd, ZMQ_POLLIN, 0};
  }
  bool ready(Clock::time_point) override { return open_ && in_flight_.size() < kWindow; }
  bool send(const Frame& frame) override {
    if (!ready(Clock::time_point{})) return false;
    in_flight_.push_back(frame);
    std::shared_ptr<Answers> answers = answers_;
    std::uint64_t session = session_;
    server_->send(node_, session, frame.text, [answers, session](bool written) { answers->push(session, written); });
    return true;
  }
  Event receive(Clock::time_point) override {
    for (;;) {
      auto answer = answers_->pop();
      if (!answer) return {};
      if (!open_ || answer->first != session_) continue;  // a closed session's
      if (answer->second) {
        if (!in_flight_.empty()) in_flight_.pop_front();
        Event ev;
        ev.kind = Event::Kind::kIgnored;
        return ev;
      }
      Event ev;
      ev.kind = Event::Kind::kAway;
      ev.reason = "not connected to the wss listener (frames are held until it connects again)";
      ev.unanswered = std::move(in_flight_);
      in_flight_.clear();
      open_ = false;
      return ev;
    }
  }
  std::optional<Clock::time_point> deadline() const override { return std::nullopt; }
  const std::deque<Frame>& in_flight() const override { return in_flight_; }

 private:
  // Written by the listener's thread, read by the worker's.
  struct Answers {
    std::mutex mu;
    std::deque<std::pair<std::uint64_t, bool>> queue;
    int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ~Answers() {
      if (fd >= 0) ::close(fd);
    }
    void push(std::uint64_t session, bool written) {
      {
        std::lock_guard<std::mutex> lock(mu);
        queue.emplace_back(session, written);
      }
      std::uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
    }
    std::optional<std::pair<std::uint64_t, bool>> pop() {
      for (int pass = 0; pass < 2; ++pass) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!queue.empty()) {
            auto a = queue.front();
            queue.pop_front();
            return a;
          }
        }
        if (pass == 0) {  // empty: reset the descriptor, then look once more
          std::uint64_t count;
          while (::read(fd, &count, sizeof count) > 0) {
          }
        }
      }
      return std::nullopt;
    }
  };

  std::shared_ptr<WssServer> server_;
  std::string node_;
  std::shared_ptr<Answers> answers_;
  bool open_ = false;
  std::uint64_t session_ = 0;
  std::deque<Frame> in_flight_;
};

}  // namespace gorgone::proxy
