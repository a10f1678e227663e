#include "request_pool.hpp"

#include <exception>

namespace gorgone::action {

RequestPool::RequestPool(PoolLimits limits, Handler command, Handler copy, Reject reject)
    : limits_(limits), command_(std::move(command)), copy_(std::move(copy)), reject_(std::move(reject)) {}

RequestPool::~RequestPool() { stop(/*kill_running=*/true); }

Status RequestPool::start() {
  std::lock_guard<std::mutex> threads_lock(threads_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (accepting_) return Status::success();
  }
  // Stopped earlier and never reaped by live_threads(): they were asked to stop.
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
    accepting_ = true;
  }
  abort_ = false;
  try {
    for (std::size_t i = 0; i < limits_.runners; ++i) {
      ++live_;
      threads_.emplace_back([this] { run_lane(commands_, command_); });
    }
    ++live_;
    threads_.emplace_back([this] { run_lane(copies_, copy_); });
  } catch (const std::exception& e) {
    --live_;  // the thread that could not be created
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      accepting_ = false;
    }
    commands_.cv.notify_all();
    copies_.cv.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    return Status::failure(std::string("cannot start the request threads: ") + e.what());
  }
  return Status::success();
}

Status RequestPool::push(Request request) {
  const bool copy = request.action == "PROCESSCOPY";
  const bool engine = request.action == "ACTIONENGINE";
  Lane& lane = copy ? copies_ : commands_;
  std::string refusal;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_) {
      refusal = "action module is not running";
    } else if (lane.bytes + request.data.size() > limits_.max_queued_bytes) {
      refusal = "action module queue is full";
    } else if (!copy && lane.queue.size() >= limits_.max_waiting) {
      refusal = "action module is busy: " + std::to_string(lane.queue.size()) +
                " requests already wait for a command runner (command_queue)";
    } else if (engine && engines_ >= limits_.max_engines) {
      // Gorgone's text.
      refusal = "max_concurrent_engine limit reached (" + std::to_string(engines_) + "/" +
                std::to_string(limits_.max_engines) + ")";
    } else {
      if (engine) ++engines_;
      lane.bytes += request.data.size();
      lane.queue.push_back(std::move(request));
    }
  }
  if (refusal.empty()) {
    lane.cv.notify_one();
    return Status::success();
  }
  reject_(request, refusal);
  return Status::failure("[action] request " + request.action + " refused: " + refusal);
}

void RequestPool::run_lane(Lane& lane, const Handler& handler) {
  for (;;) {
    Request request;
    {
      std::unique_lock<std::mutex> lock(mu_);
      lane.cv.wait(lock, [&] { return stopping_ || !lane.queue.empty(); });
      if (stopping_) break;
      request = std::move(lane.queue.front());
      lane.queue.pop_front();
      lane.bytes -= request.data.size();
    }
    handle(request, handler);
    if (request.action == "ACTIONENGINE") {
      std::lock_guard<std::mutex> lock(mu_);
      --engines_;
    }
  }
  drop(lane);
  --live_;
}

void RequestPool::handle(const Request& request, const Handler& handler) {
  try {
    handler(request, &abort_);
  } catch (const std::exception& e) {
    reject_(request, std::string("internal error: ") + e.what());
  } catch (...) {
    reject_(request, "internal error");
  }
}

// Requests still waiting at shutdown get a terminal row so that nobody waits for them.
// The first thread of the lane to end takes them all.
void RequestPool::drop(Lane& lane) {
  std::deque<Request> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(lane.queue);
    lane.bytes = 0;
    for (const auto& r : left)
      if (r.action == "ACTIONENGINE") --engines_;
  }
  for (const auto& r : left) {
    try {
      reject_(r, "action module is stopping: request not processed");
    } catch (...) {
      // the row is lost with the host; nothing else to do on the way out
    }
  }
}

void RequestPool::request_stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    accepting_ = false;
    stopping_ = true;
  }
  commands_.cv.notify_all();
  copies_.cv.notify_all();
}

void RequestPool::stop(bool kill_running) {
  if (kill_running) abort_ = true;
  request_stop();
  join_all();
}

int RequestPool::live_threads() {
  int n = live_.load();
  if (n == 0) join_all();  // every thread has left run_lane(): returns at once
  return n;
}

void RequestPool::join_all() {
  std::lock_guard<std::mutex> threads_lock(threads_mu_);
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

}  // namespace gorgone::action
