// gorgone-action.so: the poller-side "action" module (events COMMAND and PROCESSCOPY),
// written only against the public host API. It is meant as the model for third-party
// modules:
//
//  * the eight hooks are plain noexcept functions exported with GORGONE_EXPORT_HOOK;
//    each catches everything and turns it into a Status;
//  * hooks run on the host's loop thread and never block it: routing() only queues
//    the frame, one worker thread of the module does the work;
//  * results go to the history through Host::add_history, which any thread may call;
//  * shutdown: gently() asks the worker to finish the request in hand and stop; check()
//    reports the worker until it has stopped; kill() also kills the running command (or
//    stops an archive extraction before its next entry) and joins the worker.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "command_request.hpp"
#include "gorgone/json.hpp"
#include "gorgone/module.hpp"
#include "gorgone/status_codes.hpp"
#include "output.hpp"
#include "process_copy.hpp"

namespace {

using gorgone::CheckResult;
using gorgone::Host;
using gorgone::Registration;
using gorgone::RouteContext;
using gorgone::Severity;
using gorgone::Status;
using gorgone::protocol::Frame;
namespace action = gorgone::action;

// Queued request bytes beyond which new requests are refused, so that a flood of
// PROCESSCOPY chunks behind a slow command cannot exhaust memory.
constexpr std::size_t kMaxQueuedBytes = 256u << 20;

struct Job {
  std::string action;
  std::string token;
  std::string data;
};

class ActionModule {
 public:
  // Reached when the library is unloaded or the process exits. A host that followed the
  // contract already called kill(); otherwise the host may be gone, so the last rows are
  // not written, but the thread must still end before its code is unmapped.
  ~ActionModule() {
    host_gone_ = true;
    stop(/*kill_running=*/true);
  }

  Status configure(const YAML::Node& config, Host& host) {
    auto settings = action::parse_settings(config);
    if (!settings) return Status::failure("[action] " + settings.error());
    std::lock_guard<std::mutex> lock(mu_);
    settings_ = std::move(*settings);
    // abort_ also stops an archive extraction between entries (kill does not wait for it).
    copier_ = action::ProcessCopy(action::CopyOptions{settings_.keep_setid, &abort_});
    host_ = &host;
    return Status::success();
  }

  Status start() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!host_) return Status::failure("[action] init called before register");
    if (running_) return Status::success();
    if (worker_.joinable()) worker_.join();  // stopped earlier, never reaped by check()
    stopping_ = false;
    abort_ = false;
    running_ = true;
    worker_ = std::thread([this] { run(); });
    return Status::success();
  }

  // Queues a request; never blocks on the work itself.
  Status push(const Frame& frame) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!running_ || stopping_) {
      lock.unlock();
      reject(frame.token, "action module is not running");
      return Status::failure("[action] not running: request " + frame.action + " dropped");
    }
    if (queued_bytes_ + frame.data.size() > kMaxQueuedBytes) {
      lock.unlock();
      reject(frame.token, "action module queue is full");
      return Status::failure("[action] queue full: request " + frame.action + " dropped");
    }
    queued_bytes_ += frame.data.size();
    queue_.push_back(Job{frame.action, frame.token, frame.data});
    lock.unlock();
    cv_.notify_one();
    return Status::success();
  }

  // Count of live threads for check(); joins a worker that has finished.
  int live_threads() {
    if (running_) return 1;
    if (worker_.joinable()) worker_.join();  // it has left run(): returns at once
    return 0;
  }

  void request_stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
  }

  // Stops the worker and waits for it; with kill_running, the running command is killed.
  void stop(bool kill_running) {
    if (kill_running) abort_ = true;
    request_stop();
    if (worker_.joinable()) worker_.join();
  }

 private:
  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) break;
        job = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= job.data.size();
      }
      process(job);
    }
    drop_queue();
    running_ = false;
  }

  void process(const Job& job) {
    action::Output out = output_for(job.token);
    try {
      if (job.action == "COMMAND")
        action::run_command_request(job.data, settings_, out, &abort_);
      else
        copier_.handle(job.token, job.data, out);
    } catch (const std::exception& e) {
      out.write_log(Severity::kError, std::string("[action] ") + job.action + " failed: " + e.what());
      out.row(gorgone::code::kActionFinishKo, gorgone::json::message(std::string("internal error: ") + e.what()));
    } catch (...) {
      out.write_log(Severity::kError, "[action] " + job.action + " failed");
      out.row(gorgone::code::kActionFinishKo, gorgone::json::message("internal error"));
    }
  }

  // Requests still queued at shutdown get a terminal row so that nobody waits for them.
  void drop_queue() {
    std::deque<Job> left;
    {
      std::lock_guard<std::mutex> lock(mu_);
      left.swap(queue_);
      queued_bytes_ = 0;
    }
    for (const auto& job : left) reject(job.token, "action module is stopping: request not processed");
  }

  void reject(const std::string& token, const std::string& message) {
    output_for(token).row(gorgone::code::kActionFinishKo, gorgone::json::message(message));
  }

  action::Output output_for(const std::string& token) {
    action::Output out;
    out.history = [this, token](int code, const std::string& data, int instant) {
      if (host_ && !host_gone_) host_->add_history(&token, code, data, instant);
    };
    out.log = [this](Severity severity, std::string_view message) {
      if (host_ && !host_gone_) host_->log(severity, message);
    };
    return out;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;           // guarded by mu_
  std::size_t queued_bytes_ = 0;    // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  std::atomic<bool> running_{false};
  std::atomic<bool> abort_{false};  // kills the running command
  std::atomic<bool> host_gone_{false};
  std::thread worker_;
  Host* host_ = nullptr;            // set by register, before the worker exists
  action::ActionSettings settings_; // read-only once the worker runs
  action::ProcessCopy copier_;      // worker thread only
};

ActionModule& module() {
  static ActionModule instance;
  return instance;
}

// ---- hooks

Status action_register(const YAML::Node& module_config, const YAML::Node& /*core_config*/, Host& host,
                       Registration& out) noexcept {
  try {
    Status s = module().configure(module_config, host);
    if (!s) return s;
    out.loaded = true;
    out.ns = "core";
    out.name = "action";
    out.events = {{"COMMAND", "/command", "POST"}, {"PROCESSCOPY", "", ""}};
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(std::string("[action] register: ") + e.what());
  } catch (...) {
    return Status::failure("[action] register: unknown error");
  }
}

Status action_init(const std::string& /*core_id*/) noexcept {
  try {
    return module().start();
  } catch (const std::exception& e) {
    return Status::failure(std::string("[action] init: ") + e.what());
  } catch (...) {
    return Status::failure("[action] init: unknown error");
  }
}

Status action_routing(const Frame& frame, const RouteContext& /*context*/) noexcept {
  try {
    if (frame.action != "COMMAND" && frame.action != "PROCESSCOPY")
      return Status::failure("unknown event '" + frame.action + "'");
    return module().push(frame);
  } catch (const std::exception& e) {
    return Status::failure(std::string("[action] routing: ") + e.what());
  } catch (...) {
    return Status::failure("[action] routing: unknown error");
  }
}

Status action_check(CheckResult& out) noexcept {
  try {
    out.count = module().live_threads();
    out.keepalive = true;
    return Status::success();
  } catch (...) {
    return Status::failure("[action] check: unknown error");
  }
}

Status action_broadcast(const Frame& /*frame*/) noexcept { return Status::success(); }

Status action_gently() noexcept {
  try {
    module().request_stop();
    return Status::success();
  } catch (...) {
    return Status::failure("[action] gently: unknown error");
  }
}

Status action_kill() noexcept {
  try {
    module().stop(/*kill_running=*/true);
    return Status::success();
  } catch (...) {
    return Status::failure("[action] kill: unknown error");
  }
}

Status action_kill_internal() noexcept { return action_kill(); }

}  // namespace

GORGONE_MODULE_ABI()
GORGONE_EXPORT_HOOK(action_register, gorgone_register)
GORGONE_EXPORT_HOOK(action_init, gorgone_init)
GORGONE_EXPORT_HOOK(action_routing, gorgone_routing)
GORGONE_EXPORT_HOOK(action_check, gorgone_check)
GORGONE_EXPORT_HOOK(action_broadcast, gorgone_broadcast)
GORGONE_EXPORT_HOOK(action_gently, gorgone_gently)
GORGONE_EXPORT_HOOK(action_kill, gorgone_kill)
GORGONE_EXPORT_HOOK(action_kill_internal, gorgone_kill_internal)
