// The proxy module's exported hooks: thin, noexcept glue over Proxy.
#include <memory>

#include "gorgone/module.hpp"
#include "proxy.hpp"

namespace {

using gorgone::Status;
std::unique_ptr<gorgone::proxy::Proxy> g_proxy;

template <typename F>
Status guarded(const char* hook, F&& f) noexcept {
  try {
    if (!g_proxy && std::string(hook) != "register") return Status::failure(std::string(hook) + ": proxy is not registered");
    return f();
  } catch (const std::exception& e) {
    return Status::failure(std::string(hook) + ": " + e.what());
  } catch (...) {
    return Status::failure(std::string(hook) + ": unknown exception");
  }
}

Status proxy_register(const YAML::Node& module_config, const YAML::Node& core_config, gorgone::Host& host,
                      gorgone::Registration& out) noexcept {
  (void)core_config;
  return guarded("register", [&]() -> Status {
    auto settings = gorgone::proxy::parse_settings(module_config);
    if (!settings) return Status::failure(settings.error());
    g_proxy = std::make_unique<gorgone::proxy::Proxy>(host, *settings);
    out.loaded = true;
    out.ns = "core";
    out.name = "proxy";
    for (const char* e : {"PROXYREADY", "SETLOGS", "PONG", "REGISTERNODES", "UNREGISTERNODES", "PROXYADDNODE",
                          "PROXYDELNODE", "PROXYADDSUBNODE", "PONGRESET", "PROXYCLOSECONNECTION", "PROXYPULLSEND",
                          "SYNCLOGS"})
      out.events.push_back({e, "", ""});
    out.events.push_back({"REMOTECOPY", "/remotecopy", "POST"});
    return Status::success();
  });
}

Status proxy_init(const std::string& core_id) noexcept {
  return guarded("init", [&] {
    g_proxy->init(core_id);
    return Status::success();
  });
}

Status proxy_routing(const gorgone::protocol::Frame& frame, const gorgone::RouteContext& ctx) noexcept {
  return guarded("routing", [&] {
    g_proxy->routing(frame, ctx);
    return Status::success();
  });
}

Status proxy_check(gorgone::CheckResult& out) noexcept {
  return guarded("check", [&] {
    out = g_proxy->check();
    return Status::success();
  });
}

Status proxy_broadcast(const gorgone::protocol::Frame& frame) noexcept {
  return guarded("broadcast", [&] {
    g_proxy->broadcast(frame);
    return Status::success();
  });
}

Status proxy_stop() noexcept {
  return guarded("stop", [&] {
    g_proxy->stop();
    return Status::success();
  });
}

int proxy_is_all_proxy_ready() noexcept {
  try {
    return g_proxy ? g_proxy->ready_percent() : 0;
  } catch (...) {
    return 0;
  }
}

Status proxy_get_constatus(std::string& out) noexcept {
  return guarded("get_constatus_result", [&] {
    out = g_proxy->constatus();
    return Status::success();
  });
}

Status proxy_reload(const YAML::Node& module_config, std::string& summary) noexcept {
  return guarded("reload", [&] { return g_proxy->reload(module_config, summary); });
}

Status proxy_get_metrics(std::string& out) noexcept {
  return guarded("get_metrics", [&] {
    out = g_proxy->metrics();
    return Status::success();
  });
}

Status proxy_synclog() noexcept {
  return guarded("synclog", [&] {
    g_proxy->full_sync();
    return Status::success();
  });
}

Status proxy_setcoreid(const std::string& id) noexcept {
  return guarded("setcoreid", [&] {
    g_proxy->set_core_id(id);
    return Status::success();
  });
}

Status proxy_add_parent_ping(const std::string& router_type, const std::string& identity) noexcept {
  (void)router_type;
  (void)identity;  // the host keeps the parents (Host::send_to_parents)
  return Status::success();
}

}  // namespace

GORGONE_MODULE_ABI();
GORGONE_EXPORT_HOOK(proxy_register, gorgone_register)
GORGONE_EXPORT_HOOK(proxy_init, gorgone_init)
GORGONE_EXPORT_HOOK(proxy_routing, gorgone_routing)
GORGONE_EXPORT_HOOK(proxy_check, gorgone_check)
GORGONE_EXPORT_HOOK(proxy_broadcast, gorgone_broadcast)
GORGONE_EXPORT_HOOK(proxy_stop, gorgone_gently)
GORGONE_EXPORT_HOOK(proxy_stop, gorgone_kill)
GORGONE_EXPORT_HOOK(proxy_stop, gorgone_kill_internal)
GORGONE_EXPORT_HOOK(proxy_is_all_proxy_ready, gorgone_is_all_proxy_ready)
GORGONE_EXPORT_HOOK(proxy_get_constatus, gorgone_get_constatus_result)
GORGONE_EXPORT_HOOK(proxy_get_metrics, gorgone_get_metrics)
GORGONE_EXPORT_HOOK(proxy_synclog, gorgone_synclog)
GORGONE_EXPORT_HOOK(proxy_setcoreid, gorgone_setcoreid)
GORGONE_EXPORT_HOOK(proxy_add_parent_ping, gorgone_add_parent_ping)
GORGONE_EXPORT_HOOK(proxy_reload, gorgone_reload)
