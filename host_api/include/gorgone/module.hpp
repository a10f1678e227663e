// The contract between a Gorgone-compatible core (the host) and a module (a shared object).
//
// A module exports, with Boost.DLL aliases, one ABI function and eight hooks -- the same
// eight functions the Perl core requires of a package -- plus optional named hooks that the
// core looks up on the proxy. Use GORGONE_MODULE_ABI() and GORGONE_EXPORT_HOOK() below.
//
// Boundary rules:
//  * Every hook is noexcept: it catches everything and reports failure as a Status whose
//    message the host logs. No exception crosses the boundary.
//  * Hooks are called on the host's loop thread, one at a time, and must not block it:
//    network, disk and database work belongs on the module's own threads.
//  * The host keeps the library loaded until kill()/kill_internal() returned and the
//    module said (through check()) that none of its threads run any more.
//  * ABI: the host accepts a module whose major equals the host's and whose minor is at
//    most the host's. Additive changes bump the minor. From 1.3 a module also exports its
//    build fingerprint (GORGONE_MODULE_ABI() does both), which must equal the host's: the
//    third-party types that cross the boundary (YAML::Node, zmq::context_t) must be the ones
//    the host was built with.
#pragma once

#include <boost/dll/alias.hpp>
#include <boost/version.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>
#include <yaml-cpp/yaml.h>
#include <zmq.hpp>

#include "gorgone/history.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/result.hpp"

namespace gorgone {

inline constexpr unsigned kAbiMajor = 1;
inline constexpr unsigned kAbiMinor = 4;  // 1: History::store_synced_reporting; 2: History::sync_positions;
                                          // 3: Host::history_job, Host::post; 4: the optional reload hook

struct AbiVersion {
  unsigned major;
  unsigned minor;
};

constexpr bool abi_compatible(AbiVersion host, AbiVersion module) {
  return host.major == module.major && host.minor >= module.minor;
}

enum class Severity { kDebug = 0, kInfo = 1, kNotice = 2, kWarning = 3, kError = 4 };

// One event a module handles. With `uri` and `method`, the host also serves
// <METHOD> /api/<namespace>/<name><uri> (and under /api/nodes/<id>/).
struct EventDecl {
  std::string event;
  std::string uri;
  std::string method;
};

struct Registration {
  bool loaded = false;
  std::string ns;    // e.g. "core"
  std::string name;  // e.g. "proxy"
  std::vector<EventDecl> events;
};

// What a module may know of the core.
struct CoreInfo {
  std::string id;                 // gorgonecore.id; empty until known (SETCOREID)
  std::string hostname;
  std::string privkey_path;       // the core's RSA key pair
  std::string pubkey_path;
  std::string internal_endpoint;  // module threads connect DEALERs here (inproc)
  std::string fingerprint_mode;   // always | first | strict
};

// Where a frame came from.
struct RouteContext {
  std::string router_type;  // "internal" or "external"
  std::string identity;     // routing id of the sender (raw bytes)
};

struct CheckResult {
  int count = 0;           // live threads/workers of the module
  bool keepalive = true;   // false with count 0: the host unloads the module
};

// Services the host offers to a module. The host outlives every module.
class Host {
 public:
  virtual ~Host() = default;

  // --- thread-safe: any module thread may call these.
  virtual void log(Severity severity, std::string_view message) = 0;
  virtual History& history() = 0;
  // The context the internal router lives in (inproc endpoints need it).
  virtual zmq::context_t& zmq_context() = 0;
  virtual CoreInfo core_info() const = 0;
  virtual bool stopping() const = 0;
  // Writes a history row now (ctime = now) and notifies listeners.
  virtual void add_history(const std::string* token, int code, std::string_view data_json,
                           int instant = 0) = 0;

  // --- loop thread only (from hooks).
  // Sends a frame to a module thread's DEALER on the internal router.
  virtual void send_internal(std::string_view identity, const protocol::Frame& frame) = 0;
  // Sends a frame, encrypted with the session key, to a peer of the external router
  // (pull nodes). Fails when the peer has no session.
  virtual Status send_external(const std::string& routing_id, const protocol::Frame& frame) = 0;
  // Runs a frame through the core's dispatch as if a module had sent it (no reply).
  virtual void dispatch(const protocol::Frame& frame) = 0;
  // Sends a frame to every peer that pinged this core within 30 min (SYNCLOGS to parents).
  // SYNCLOGS is coalesced: the parents get at most one every 250 ms, carrying this core's id.
  virtual void send_to_parents(const protocol::Frame& frame) = 0;

  // --- ABI 1.3, thread-safe.
  // Runs `work` on the host's history thread, after every history write asked for before it
  // (add_history rows included), then `done`, if not empty, on the loop thread. A hook that
  // needs the database goes this way: the loop never waits for it. `work` must not touch the
  // module's loop-thread state; `done` may. At exit, `done`s not run yet are dropped before
  // the module's library is unloaded.
  virtual void history_job(std::function<void(History&)> work, std::function<void()> done) = 0;
  // Runs `job` on the loop thread soon (after the hook in progress, if any): a module
  // thread's way to hand its loop-thread side something without a frame on the internal
  // router. Jobs run in the order they were posted.
  virtual void post(std::function<void()> job) = 0;
};

// The build fingerprint: what the compiler of a module (or of the host) saw of the
// third-party types that cross the boundary: libzmq's and cppzmq's versions
// (zmq::context_t), Boost's (the DLL aliases), yaml-cpp's YAML::Node layout (yaml-cpp has
// no version macro) and the C++ library's string ABI. A module that agrees on the ABI
// number but was built against another major version of one of them would crash at its
// first call; the host refuses it with both fingerprints (as Kea checks its hooks).
inline std::string build_fingerprint() {
  std::string f = "libzmq " + std::to_string(ZMQ_VERSION_MAJOR) + "." + std::to_string(ZMQ_VERSION_MINOR);
  f += ", cppzmq " + std::to_string(CPPZMQ_VERSION_MAJOR);
  f += ", boost " + std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000);
  f += ", yaml-cpp Node " + std::to_string(sizeof(YAML::Node)) + " bytes";
#if defined(_GLIBCXX_USE_CXX11_ABI)
  f += ", libstdc++ cxx11 ABI " + std::to_string(_GLIBCXX_USE_CXX11_ABI);
#endif
  return f;
}

// ---- the hooks: one table, read by the type aliases, the exported names, the compile-time
// check of GORGONE_EXPORT_HOOK and the host's loader.
// X(Name, member of ModuleHooks, exported symbol, required, signature). Required hooks are the
// eight functions the Perl core requires of a package; the others the core looks up on the proxy.
#define GORGONE_HOOK_TABLE(X)                                                                          \
  X(Register, register_, gorgone_register, true,                                                       \
    Status(const YAML::Node& module_config, const YAML::Node& core_config, Host& host,                \
           Registration& out) noexcept)                                                                \
  X(Init, init, gorgone_init, true, Status(const std::string& core_id) noexcept)                      \
  X(Routing, routing, gorgone_routing, true,                                                           \
    Status(const protocol::Frame& frame, const RouteContext& context) noexcept)                        \
  X(Check, check, gorgone_check, true, Status(CheckResult& out) noexcept)                              \
  X(Broadcast, broadcast, gorgone_broadcast, true, Status(const protocol::Frame& frame) noexcept)     \
  X(Gently, gently, gorgone_gently, true, Status() noexcept)                                           \
  X(Kill, kill, gorgone_kill, true, Status() noexcept)                                                 \
  X(KillInternal, kill_internal, gorgone_kill_internal, true, Status() noexcept)                      \
  /* optional: percent of ready workers */                                                             \
  X(IsAllProxyReady, is_all_proxy_ready, gorgone_is_all_proxy_ready, false, int() noexcept)           \
  /* optional: the constatus object as JSON */                                                         \
  X(GetConstatus, get_constatus_result, gorgone_get_constatus_result, false,                          \
    Status(std::string& json_out) noexcept)                                                            \
  /* optional: a full log sync now */                                                                  \
  X(Synclog, synclog, gorgone_synclog, false, Status() noexcept)                                       \
  X(SetCoreId, setcoreid, gorgone_setcoreid, false, Status(const std::string& core_id) noexcept)      \
  X(AddParentPing, add_parent_ping, gorgone_add_parent_ping, false,                                    \
    Status(const std::string& router_type, const std::string& identity) noexcept)                     \
  /* optional, ABI 1.3: the module's metrics in the Prometheus text format (appended to the host's) */ \
  X(GetMetrics, get_metrics, gorgone_get_metrics, false, Status(std::string& text_out) noexcept)          \
  /* optional, ABI 1.4: the module's entry of the configuration read again (SIGHUP, POST          */ \
  /* /api/internal/reload). The module applies what can change while it runs, says in `summary`  */ \
  /* what it applied and what needs a restart; a failure (a directive it refuses) changes nothing. */ \
  X(Reload, reload, gorgone_reload, false, Status(const YAML::Node& module_config, std::string& summary) noexcept)

// The two functions GORGONE_MODULE_ABI() exports, checked before any hook.
using AbiHook = AbiVersion() noexcept;
using FingerprintHook = const char*() noexcept;  // ABI 1.3: build_fingerprint() of the module

#define GORGONE_HOOK_ALIAS_(name, member, symbol, required, ...) using name##Hook = __VA_ARGS__;
GORGONE_HOOK_TABLE(GORGONE_HOOK_ALIAS_)
#undef GORGONE_HOOK_ALIAS_

// Exported names.
namespace hook_name {
inline constexpr const char* kAbi = "gorgone_abi";
inline constexpr const char* kFingerprint = "gorgone_build_fingerprint";
#define GORGONE_HOOK_NAME_(name, member, symbol, required, ...) inline constexpr const char* k##name = #symbol;
GORGONE_HOOK_TABLE(GORGONE_HOOK_NAME_)
#undef GORGONE_HOOK_NAME_
}  // namespace hook_name

// The signature each exported symbol must have (GORGONE_EXPORT_HOOK checks it at compile time).
namespace hook_type {
#define GORGONE_HOOK_TYPE_(name, member, symbol, required, ...) using symbol = name##Hook;
GORGONE_HOOK_TABLE(GORGONE_HOOK_TYPE_)
#undef GORGONE_HOOK_TYPE_
}  // namespace hook_type

}  // namespace gorgone

// In a module: GORGONE_MODULE_ABI(); then GORGONE_EXPORT_HOOK(my_register, gorgone_register); ...
#define GORGONE_MODULE_ABI()                                                     \
  namespace {                                                                     \
  ::gorgone::AbiVersion gorgone_module_abi_() noexcept {                          \
    return ::gorgone::AbiVersion{::gorgone::kAbiMajor, ::gorgone::kAbiMinor};     \
  }                                                                               \
  const char* gorgone_module_fingerprint_() noexcept {                            \
    static const std::string fingerprint = ::gorgone::build_fingerprint();        \
    return fingerprint.c_str();                                                   \
  }                                                                               \
  }                                                                               \
  BOOST_DLL_ALIAS(gorgone_module_abi_, gorgone_abi)                               \
  BOOST_DLL_ALIAS(gorgone_module_fingerprint_, gorgone_build_fingerprint)

// Exports `function` as the hook `exported_name` (a symbol of GORGONE_HOOK_TABLE); a function
// whose type is not the hook's, or a name that is not a hook, does not compile.
#define GORGONE_EXPORT_HOOK(function, exported_name)                                                  \
  static_assert(std::is_same_v<decltype(function), ::gorgone::hook_type::exported_name>,             \
                "GORGONE_EXPORT_HOOK: " #function " does not have the signature of " #exported_name); \
  BOOST_DLL_ALIAS(function, exported_name)
