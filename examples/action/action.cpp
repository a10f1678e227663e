// gorgone-action.so: the poller-side "action" module (events COMMAND, ACTIONENGINE and
// PROCESSCOPY), written only against the public host API. It is meant as the model for
// third-party modules:
//
//  * the eight hooks are plain noexcept functions exported with GORGONE_EXPORT_HOOK;
//    each catches everything and turns it into a Status;
//  * hooks run on the host's loop thread and never block it: routing() only queues
//    the frame; the module's threads do the work (request_pool.hpp): command runners
//    for COMMAND and ACTIONENGINE, side by side, and a lane of its own for PROCESSCOPY;
//  * results go to the history through Host::add_history, which any thread may call;
//  * shutdown: gently() asks every thread to finish the request in hand and stop; check()
//    reports the threads until they have stopped; kill() also kills the running commands
//    (or stops an archive extraction before its next entry) and joins the threads.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "command_request.hpp"
#include "gorgone/json.hpp"
#include "gorgone/module.hpp"
#include "gorgone/status_codes.hpp"
#include "output.hpp"
#include "process_copy.hpp"
#include "request_pool.hpp"

namespace {

using gorgone::CheckResult;
using gorgone::Host;
using gorgone::Registration;
using gorgone::RouteContext;
using gorgone::Severity;
using gorgone::Status;
using gorgone::protocol::Frame;
namespace action = gorgone::action;

class ActionModule {
 public:
  // Reached when the library is unloaded or the process exits. A host that followed the
  // contract already called kill(); otherwise the host may be gone, so the last rows are
  // not written, but the threads must still end before their code is unmapped.
  ~ActionModule() {
    host_gone_ = true;
    stop(/*kill_running=*/true);
  }

  Status configure(const YAML::Node& config, Host& host) {
    auto settings = action::parse_settings(config);
    if (!settings) return Status::failure("[action] " + settings.error());
    std::lock_guard<std::mutex> lock(mu_);
    if (pool_) pool_->stop(/*kill_running=*/true);  // registered again: the old threads end first
    settings_ = std::move(*settings);
    host_ = &host;
    action::PoolLimits limits;
    limits.runners = settings_.command_concurrency;
    limits.max_waiting = settings_.command_queue;
    limits.max_engines = settings_.max_concurrent_engine;
    pool_ = std::make_unique<action::RequestPool>(
        limits, [this](const action::Request& r, const std::atomic<bool>* abort) { run_command_lane(r, abort); },
        [this](const action::Request& r, const std::atomic<bool>*) { run_copy_lane(r); },
        [this](const action::Request& r, const std::string& message) { reject(r.token, message); });
    // The pool's abort flag also stops an archive extraction between entries (kill does
    // not wait for it).
    copier_ = action::ProcessCopy(action::CopyOptions{settings_.keep_setid, pool_->abort_flag()});
    host.log(Severity::kInfo, "[action] " + std::to_string(limits.runners) + " command runners, up to " +
                                  std::to_string(limits.max_waiting) + " requests waiting");
    return Status::success();
  }

  Status start() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!host_ || !pool_) return Status::failure("[action] init called before register");
    Status s = pool_->start();
    return s ? s : Status::failure("[action] " + s.message());
  }

  // Queues a request; never blocks on the work itself. A refused request has its KO row.
  Status push(const Frame& frame) {
    action::RequestPool* pool = current_pool();
    if (!pool) {
      reject(frame.token, "action module is not running");
      return Status::failure("[action] not running: request " + frame.action + " dropped");
    }
    return pool->push(action::Request{frame.action, frame.token, frame.data});
  }

  // Count of live threads for check(); joins them once all have finished.
  int live_threads() {
    action::RequestPool* pool = current_pool();
    return pool ? pool->live_threads() : 0;
  }

  void request_stop() {
    if (action::RequestPool* pool = current_pool()) pool->request_stop();
  }

  // Stops the threads and waits for them; with kill_running, running commands are killed.
  void stop(bool kill_running) {
    if (action::RequestPool* pool = current_pool()) pool->stop(kill_running);
  }

 private:
  // The pool changes only in configure (register), on the loop thread, before init.
  action::RequestPool* current_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    return pool_.get();
  }

  // Several runners at a time: settings_ is read-only once the threads run.
  void run_command_lane(const action::Request& r, const std::atomic<bool>* abort) {
    action::Output out = output_for(r.token);
    guarded(r, out, [&] {
      if (r.action == "ACTIONENGINE")
        action::run_engine_request(r.data, settings_, out, abort);
      else
        action::run_command_request(r.data, settings_, out, abort);
    });
  }

  // The copy lane's one thread is the only user of copier_.
  void run_copy_lane(const action::Request& r) {
    action::Output out = output_for(r.token);
    guarded(r, out, [&] { copier_.handle(r.token, r.data, out); });
  }

  template <typename F>
  void guarded(const action::Request& r, const action::Output& out, F work) {
    try {
      work();
    } catch (const std::exception& e) {
      out.write_log(Severity::kError, std::string("[action] ") + r.action + " failed: " + e.what());
      out.row(gorgone::code::kActionFinishKo, gorgone::json::message(std::string("internal error: ") + e.what()));
    } catch (...) {
      out.write_log(Severity::kError, "[action] " + r.action + " failed");
      out.row(gorgone::code::kActionFinishKo, gorgone::json::message("internal error"));
    }
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

  std::mutex mu_;                      // guards pool_ (the pointer) and configure/start
  std::atomic<bool> host_gone_{false};
  Host* host_ = nullptr;               // set by register, before the threads exist
  action::ActionSettings settings_;    // read-only once the threads run
  action::ProcessCopy copier_;         // copy lane thread only
  std::unique_ptr<action::RequestPool> pool_;
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
    out.events = {{"COMMAND", "/command", "POST"}, {"ACTIONENGINE", "/engine", "POST"}, {"PROCESSCOPY", "", ""}};
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
    if (frame.action != "COMMAND" && frame.action != "ACTIONENGINE" && frame.action != "PROCESSCOPY")
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
