// A local module that registers and unregisters nodes on request, as Centreon's nodes module
// does from its database: the trusted path (a module of this host, not a node's frame).
// POST /api/test/registrar/send {"action":"REGISTERNODES"|"UNREGISTERNODES","nodes":[...]}
// It also routes a frame of any action to a node, for events no module of the test hosts
// serves over REST (ENGINECOMMAND is the engine module's, which pollers load):
// POST /api/test/registrar/route {"action":"...","target":"<node>","data":{...},"token"?:"..."}
// (without "token", the request's token is the frame's).
#include "gorgone/json.hpp"
#include "gorgone/module.hpp"

namespace {
using gorgone::Status;
gorgone::Host* g_host = nullptr;

Status reg(const YAML::Node&, const YAML::Node&, gorgone::Host& host, gorgone::Registration& out) noexcept {
  g_host = &host;
  out.loaded = true;
  out.ns = "test";
  out.name = "registrar";
  out.events.push_back({"REGISTRARSEND", "/send", "POST"});
  out.events.push_back({"REGISTRARROUTE", "/route", "POST"});
  return Status::success();
}
Status init(const std::string&) noexcept { return Status::success(); }
Status routing(const gorgone::protocol::Frame& frame, const gorgone::RouteContext&) noexcept {
  try {
    gorgone::json::Document d;
    if (!gorgone::json::parse(d, frame.data) || !d.IsObject() || !d.HasMember("content") || !d["content"].IsObject())
      return Status::failure("registrar: bad request");
    const auto& c = d["content"];
    if (frame.action == "REGISTRARROUTE") {
      auto action = gorgone::json::member_text(c, "action");
      auto target = gorgone::json::member_text(c, "target");
      if (!action || !target || !c.HasMember("data")) return Status::failure("registrar: need action, target and data");
      auto token = gorgone::json::member_text(c, "token");
      g_host->dispatch(
          gorgone::protocol::Frame{*action, token.value_or(frame.token), *target, gorgone::json::dump(c["data"])});
      return Status::success();
    }
    auto action = gorgone::json::member_text(c, "action");
    if (!action || !c.HasMember("nodes")) return Status::failure("registrar: need action and nodes");
    g_host->dispatch(gorgone::protocol::Frame{*action, "", "", "{\"nodes\":" + gorgone::json::dump(c["nodes"]) + "}"});
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(e.what());
  }
}
Status check(gorgone::CheckResult& out) noexcept {
  out.count = 0;
  return Status::success();
}
Status broadcast(const gorgone::protocol::Frame&) noexcept { return Status::success(); }
Status stop() noexcept { return Status::success(); }
}  // namespace

GORGONE_MODULE_ABI();
GORGONE_EXPORT_HOOK(reg, gorgone_register)
GORGONE_EXPORT_HOOK(init, gorgone_init)
GORGONE_EXPORT_HOOK(routing, gorgone_routing)
GORGONE_EXPORT_HOOK(check, gorgone_check)
GORGONE_EXPORT_HOOK(broadcast, gorgone_broadcast)
GORGONE_EXPORT_HOOK(stop, gorgone_gently)
GORGONE_EXPORT_HOOK(stop, gorgone_kill)
GORGONE_EXPORT_HOOK(stop, gorgone_kill_internal)
