// gorgone-pullwss.so: the poller side of a wss node (Gorgone's modules/core/pullwss), written
// only against the public host API. The exported hooks are thin noexcept glue: register reads
// the directives, init starts the connection thread (client.hpp), check reports it and starts
// it again if it ended on an error (Gorgone re-forks a dead pullwss child), gently asks it to
// unregister and stop, kill also waits for it. No hook blocks on the network.
#include <memory>

#include "client.hpp"
#include "gorgone/module.hpp"
#include "settings.hpp"

namespace {

using gorgone::CheckResult;
using gorgone::Host;
using gorgone::Registration;
using gorgone::RouteContext;
using gorgone::Severity;
using gorgone::Status;
using gorgone::protocol::Frame;
namespace pullwss = gorgone::pullwss;

struct Module {
  Host* host = nullptr;
  std::unique_ptr<pullwss::PullWssClient> client;
  bool stopping = false;  // gently/kill was called: check() does not restart the thread
};

Module& module() {
  static Module instance;
  return instance;
}

template <typename F>
Status guarded(const char* hook, F&& f) noexcept {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::failure(std::string("[pullwss] ") + hook + ": " + e.what());
  } catch (...) {
    return Status::failure(std::string("[pullwss] ") + hook + ": unknown error");
  }
}

Status pullwss_register(const YAML::Node& module_config, const YAML::Node& /*core_config*/, Host& host,
                        Registration& out) noexcept {
  return guarded("register", [&]() -> Status {
    auto settings = pullwss::parse_settings(module_config);
    if (!settings) return Status::failure(settings.error());
    for (const auto& w : settings->warnings) host.log(Severity::kWarning, "[pullwss] " + w);
    if (settings->ssl && settings->ssl_insecure)
      host.log(Severity::kWarning, "[pullwss] ssl_insecure: the certificate of central " + settings->url() +
                                       " is not verified (anyone on the path can pose as it)");
    Module& m = module();
    if (m.client) m.client->stop();
    m.host = &host;
    m.client = std::make_unique<pullwss::PullWssClient>(host, std::move(settings.value()));
    m.stopping = false;
    out.loaded = true;
    out.ns = "core";
    out.name = "pullwss";
    out.events = {{"PULLWSSREADY", "", ""}};
    return Status::success();
  });
}

Status pullwss_init(const std::string& /*core_id*/) noexcept {
  return guarded("init", [&]() -> Status {
    Module& m = module();
    if (!m.client) return Status::failure("[pullwss] init called before register");
    m.stopping = false;
    m.client->start();
    return Status::success();
  });
}

Status pullwss_routing(const Frame& frame, const RouteContext& /*context*/) noexcept {
  return guarded("routing", [&]() -> Status {
    // PULLWSSREADY is the thread saying it is up; broadcasts have nothing to do here.
    if (frame.action == "PULLWSSREADY" || frame.action.rfind("BCAST", 0) == 0) return Status::success();
    return Status::failure("unknown event '" + frame.action + "'");
  });
}

Status pullwss_check(CheckResult& out) noexcept {
  return guarded("check", [&]() -> Status {
    Module& m = module();
    out.keepalive = true;
    out.count = m.client ? m.client->live_threads() : 0;
    if (m.client && out.count == 0 && !m.stopping && m.host && !m.host->stopping()) {
      m.host->log(Severity::kError, "[pullwss] the connection thread had stopped: starting it again");
      m.client->start();
      out.count = 1;
    }
    return Status::success();
  });
}

Status pullwss_broadcast(const Frame& /*frame*/) noexcept { return Status::success(); }

Status pullwss_gently() noexcept {
  return guarded("gently", [&]() -> Status {
    Module& m = module();
    m.stopping = true;
    if (m.client) m.client->request_stop();
    return Status::success();
  });
}

Status pullwss_kill() noexcept {
  return guarded("kill", [&]() -> Status {
    Module& m = module();
    m.stopping = true;
    if (m.client) m.client->stop();
    return Status::success();
  });
}

}  // namespace

GORGONE_MODULE_ABI()
GORGONE_EXPORT_HOOK(pullwss_register, gorgone_register)
GORGONE_EXPORT_HOOK(pullwss_init, gorgone_init)
GORGONE_EXPORT_HOOK(pullwss_routing, gorgone_routing)
GORGONE_EXPORT_HOOK(pullwss_check, gorgone_check)
GORGONE_EXPORT_HOOK(pullwss_broadcast, gorgone_broadcast)
GORGONE_EXPORT_HOOK(pullwss_gently, gorgone_gently)
GORGONE_EXPORT_HOOK(pullwss_kill, gorgone_kill)
GORGONE_EXPORT_HOOK(pullwss_kill, gorgone_kill_internal)
