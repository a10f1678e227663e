// gorgone-pullwss.so: the poller side of a wss node (Gorgone's modules/core/pullwss), written
// only against the public host API: register reads the directives and makes the connection
// thread (client.hpp); the other hooks are those of the pull module (pull/dialer_hooks.hpp).
#include <memory>

#include "../pull/dialer_hooks.hpp"
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
using Hooks = gorgone::pull::DialerHooks<pullwss::PullWssClient>;

Status pullwss_register(const YAML::Node& module_config, const YAML::Node& /*core_config*/, Host& host,
                        Registration& out) noexcept {
  Hooks::describe("pullwss", "PULLWSSREADY");
  return Hooks::guarded("register", [&]() -> Status {
    auto settings = pullwss::parse_settings(module_config);
    if (!settings) return Status::failure(settings.error());
    for (const auto& w : settings->warnings) host.log(Severity::kWarning, "[pullwss] " + w);
    if (settings->ssl && settings->ssl_insecure)
      host.log(Severity::kWarning, "[pullwss] ssl_insecure: the certificate of central " + settings->url() +
                                       " is not verified (anyone on the path can pose as it)");
    Hooks::install(host, std::make_unique<pullwss::PullWssClient>(host, std::move(settings.value())), out);
    return Status::success();
  });
}

Status pullwss_init(const std::string& /*core_id*/) noexcept { return Hooks::init(); }
Status pullwss_routing(const Frame& frame, const RouteContext& /*context*/) noexcept { return Hooks::routing(frame); }
Status pullwss_check(CheckResult& out) noexcept { return Hooks::check(out); }
Status pullwss_broadcast(const Frame& /*frame*/) noexcept { return Status::success(); }
Status pullwss_gently() noexcept { return Hooks::gently(); }
Status pullwss_kill() noexcept { return Hooks::kill(); }

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
