// gorgone-pull.so: the poller side of a pull node (Gorgone's modules/core/pull), written only
// against the public host API: register reads the directives and the key pair and makes the
// connection thread (client.hpp); the other hooks are dialer_hooks.hpp's.
#include <memory>

#include "client.hpp"
#include "dialer_hooks.hpp"
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
namespace pull = gorgone::pull;
using Hooks = pull::DialerHooks<pull::PullClient>;

Status pull_register(const YAML::Node& module_config, const YAML::Node& /*core_config*/, Host& host,
                     Registration& out) noexcept {
  Hooks::describe("pull", "PULLREADY");
  return Hooks::guarded("register", [&]() -> Status {
    auto settings = pull::parse_settings(module_config, host.core_info());
    if (!settings) return Status::failure(settings.error());
    for (const auto& w : settings->warnings) host.log(Severity::kWarning, "[pull] " + w);
    auto key = pull::load_client_key(*settings);
    if (!key) return Status::failure(key.error());
    Hooks::install(host, std::make_unique<pull::PullClient>(host, std::move(settings.value()), std::move(key.value())),
                   out);
    return Status::success();
  });
}

Status pull_init(const std::string& /*core_id*/) noexcept { return Hooks::init(); }
Status pull_routing(const Frame& frame, const RouteContext& /*context*/) noexcept { return Hooks::routing(frame); }
Status pull_check(CheckResult& out) noexcept { return Hooks::check(out); }
Status pull_broadcast(const Frame& /*frame*/) noexcept { return Status::success(); }
Status pull_gently() noexcept { return Hooks::gently(); }
Status pull_kill() noexcept { return Hooks::kill(); }

}  // namespace

GORGONE_MODULE_ABI()
GORGONE_EXPORT_HOOK(pull_register, gorgone_register)
GORGONE_EXPORT_HOOK(pull_init, gorgone_init)
GORGONE_EXPORT_HOOK(pull_routing, gorgone_routing)
GORGONE_EXPORT_HOOK(pull_check, gorgone_check)
GORGONE_EXPORT_HOOK(pull_broadcast, gorgone_broadcast)
GORGONE_EXPORT_HOOK(pull_gently, gorgone_gently)
GORGONE_EXPORT_HOOK(pull_kill, gorgone_kill)
GORGONE_EXPORT_HOOK(pull_kill, gorgone_kill_internal)
