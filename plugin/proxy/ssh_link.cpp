#include "ssh_link.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "gorgone/protocol/frame.hpp"
#include "gorgone/status_codes.hpp"
#include "ssh_actions.hpp"
#include "ssh_session.hpp"

namespace gorgone::proxy {
namespace {

// Frames handed to the SSH thread at once; the rest wait in the worker's bounded queue,
// where they are counted, kept across sessions and given KO rows by the usual rules.
constexpr std::size_t kMaxHandedOver = 4;
// Before a frame runs, a connection the node closed is replaced (seen on the socket without
// a round trip); a session idle for longer than this is also checked with one round trip.
constexpr auto kProbeAfterIdle = std::chrono::seconds(1);

// Gorgone's rule: a request with `logging` false or 0 writes no history rows.
bool logging_off(const std::string& frame_data) {
  json::Document d;
  if (!json::parse(d, frame_data) || !d.IsObject()) return false;
  auto it = d.FindMember("logging");
  if (it == d.MemberEnd()) return false;
  const json::Value& v = it->value;
  if (v.IsBool()) return !v.GetBool();
  if (v.IsNumber()) return v.GetDouble() == 0;
  if (v.IsString()) {
    std::string s = v.GetString();
    return s == "0" || s == "false";
  }
  return false;
}

class SshLink : public NodeLink {
 public:
  SshLink(Host& host, std::string id, SshOptions options)
      : host_(host), id_(std::move(id)), options_(std::move(options)) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  ~SshLink() override {
    close();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  bool is_open() const override { return thread_.joinable(); }

  bool open(Clock::time_point) override {
    if (wake_fd_ < 0) {
      host_.log(Severity::kError, "[proxy] node '" + id_ + "': cannot create an event descriptor for its SSH link");
      return false;
    }
    close();
    stop_ = false;
    established_ = false;
    host_.log(Severity::kInfo, "[proxy] connect for " + id_ + " (ssh://" + options_.host + ":" +
                                   std::to_string(options_.port) + ")");
    thread_ = std::thread([this] { run(); });
    return true;
  }

  void close() override {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    session_.shutdown();
    cv_.notify_all();
    thread_.join();
    session_.disconnect();
    // Frames handed over and not run never will be (the node was unregistered or changed,
    // or the proxy stops): each gets its KO row here.
    for (const auto& job : jobs_)
      if (!job.token.empty())
        host_.add_history(&job.token, code::kActionFinishKo,
                          json::message("Send message problem for '" + job.target + "': the SSH link to node '" + id_ +
                                        "' closed before this " + job.action + " ran"));
    jobs_.clear();
    events_.clear();
    in_flight_.clear();
    established_ = false;
    drain();
  }

  std::optional<zmq::pollitem_t> poll_item(bool) const override {
    if (!thread_.joinable()) return std::nullopt;
    return zmq::pollitem_t{nullptr, wake_fd_, ZMQ_POLLIN, 0};
  }

  bool ready(Clock::time_point) override { return established_ && in_flight_.size() < kMaxHandedOver; }

  bool send(const Frame& frame) override {
    if (!established_ || in_flight_.size() >= kMaxHandedOver) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(frame);
    }
    cv_.notify_one();
    in_flight_.push_back(frame);
    return true;
  }

  Event receive(Clock::time_point) override {
    Event ev;
    std::optional<Internal> next = pop();
    if (!next) {
      drain();  // then look again: an event pushed in between has written the descriptor anew
      next = pop();
      if (!next) return ev;
    }
    ev = std::move(next->event);
    if (next->retire && !in_flight_.empty()) in_flight_.pop_front();
    switch (ev.kind) {
      case Event::Kind::kEstablished:
        established_ = true;
        break;
      case Event::Kind::kAway:
      case Event::Kind::kRefused:
      case Event::Kind::kLost:
        // The thread has ended; what it had not run is in ev.unanswered.
        if (thread_.joinable()) thread_.join();
        in_flight_.clear();
        jobs_.clear();
        events_.clear();
        established_ = false;
        drain();
        break;
      default:
        break;
    }
    return ev;
  }

  // The thread enforces every timeout itself (connect, commands, SFTP calls).
  std::optional<Clock::time_point> deadline() const override { return std::nullopt; }

  const std::deque<Frame>& in_flight() const override { return in_flight_; }

 private:
  struct Internal {
    Event event;
    bool retire = false;  // the oldest frame handed over is done
  };

  void drain() {
    std::uint64_t count;
    while (::read(wake_fd_, &count, sizeof count) > 0) {
    }
  }

  std::optional<Internal> pop() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (events_.empty()) return std::nullopt;
    Internal e = std::move(events_.front());
    events_.pop_front();
    return e;
  }

  void push(Internal e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.push_back(std::move(e));
    }
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  // Ends the thread's session: the frames not run go back to the worker.
  void give_up(Event::Kind kind, const std::string& reason) {
    Internal e;
    e.event.kind = kind;
    e.event.reason = reason;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      e.event.unanswered = std::move(jobs_);
      jobs_.clear();
    }
    session_.disconnect();
    push(std::move(e));
  }

  bool connect() {
    bool refused = false;
    Status s = session_.connect(options_, &refused, &stop_);
    if (stop_) return false;
    if (!s) {
      host_.log(Severity::kError, "[proxy] node '" + id_ + "': cannot connect over SSH: " + s.message());
      give_up(refused ? Event::Kind::kRefused : Event::Kind::kAway,
              "cannot connect on target node '" + id_ + "': " + s.message());
      return false;
    }
    host_.log(Severity::kInfo, "[proxy] node '" + id_ + "': SSH session open (ssh://" + options_.host + ":" +
                                   std::to_string(options_.port) + ")");
    std::size_t left = session_.leftovers();
    session_.remove_leftovers();
    if (left)
      host_.log(Severity::kInfo, "[proxy] node '" + id_ + "': removed " + std::to_string(left - session_.leftovers()) +
                                     " temporary file(s) of a copy cut by the previous session");
    return true;
  }

  void run() {
    try {
      if (!connect()) return;
      push({Event{Event::Kind::kEstablished, "", {}, {}}, false});
      auto last_used = Clock::now();
      for (;;) {
        Frame job;
        {
          std::unique_lock<std::mutex> lock(mutex_);
          cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
          if (stop_) return;
          job = jobs_.front();  // stays queued until it runs: give_up() hands it back
        }
        if (session_.peer_closed() || (Clock::now() - last_used > kProbeAfterIdle && !session_.probe())) {
          host_.log(Severity::kInfo, "[proxy] node '" + id_ + "': SSH session found closed; opening a new one");
          if (!connect()) return;
        }
        {
          std::lock_guard<std::mutex> lock(mutex_);
          if (stop_) return;
          jobs_.pop_front();
        }
        Internal done;
        done.retire = true;
        done.event.kind = Event::Kind::kIgnored;
        auto frame = protocol::parse_frame(job.text);
        std::string data = frame ? frame->data : std::string("{}");
        const bool quiet = logging_off(data);
        const std::string token = job.token;
        auto row = [&](int code, const std::string& json, int instant) {
          if (!quiet) host_.add_history(&token, code, json, instant);
        };
        SshActions::Outcome out = actions_.run(session_, job.action, job.token, job.target, data, row, &stop_);
        if (out.pong) {
          done.event.kind = Event::Kind::kResponse;
          done.event.response = protocol::Response{"PONG", job.token, "{\"data\":{}}"};
        }
        push(std::move(done));
        last_used = Clock::now();
        if (stop_) return;
        if (out.session_lost) {
          give_up(Event::Kind::kAway, "the SSH session was cut");
          return;
        }
      }
    } catch (const std::exception& e) {
      host_.log(Severity::kError, "[proxy] node '" + id_ + "': SSH link stopped on an internal error: " + e.what());
      give_up(Event::Kind::kAway, std::string("internal error: ") + e.what());
    }
  }

  Host& host_;
  const std::string id_;
  const SshOptions options_;
  int wake_fd_ = -1;
  // Shared with the thread (under mutex_): frames to run, events for the worker, stop.
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Frame> jobs_;
  std::deque<Internal> events_;
  std::atomic<bool> stop_{false};
  // The thread's own (and shutdown() from close()).
  SshSession session_;
  SshActions actions_{host_, id_};
  std::thread thread_;
  // The worker's own.
  bool established_ = false;
  std::deque<Frame> in_flight_;
};

}  // namespace

std::unique_ptr<NodeLink> make_ssh_link(Host& host, const Settings&, const std::string& node_id,
                                        const json::Value& node) {
  auto options = ssh_options_of(node_id, node);
  if (!options) {
    host.log(Severity::kError, "[proxy] " + options.error());
    return nullptr;
  }
  return std::make_unique<SshLink>(host, node_id, std::move(options.value()));
}

}  // namespace gorgone::proxy
