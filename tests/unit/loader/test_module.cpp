// A test module whose defects are chosen at compile time, one per shared object:
//   BROKEN_MISSING_CHECK  - exports no gorgone_check
//   BROKEN_ABI_MAJOR      - claims ABI major + 1
//   BROKEN_ABI_MINOR      - claims a minor newer than the host's
//   BROKEN_NO_ABI         - exports no ABI function at all
//   BROKEN_REGISTER_THROWS - register throws (the guard must turn it into a Status)
//   BROKEN_FINGERPRINT    - says it was built against another libzmq major version
#include <stdexcept>

#include "gorgone/module.hpp"

namespace {
using gorgone::Status;

Status reg(const YAML::Node& config, const YAML::Node&, gorgone::Host&, gorgone::Registration& out) noexcept {
  try {
#ifdef BROKEN_REGISTER_THROWS
    throw std::runtime_error("register exploded");
#endif
    out.loaded = config["refuse"] ? false : true;
    out.ns = "test";
    out.name = "sample";
    out.events.push_back({"SAMPLEEVENT", "/sample", "POST"});
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(e.what());
  }
}
Status init(const std::string&) noexcept { return Status::success(); }
Status routing(const gorgone::protocol::Frame&, const gorgone::RouteContext&) noexcept { return Status::success(); }
#ifndef BROKEN_MISSING_CHECK
Status check(gorgone::CheckResult& out) noexcept {
  out.count = 0;
  return Status::success();
}
#endif
Status broadcast(const gorgone::protocol::Frame&) noexcept { return Status::success(); }
Status stop() noexcept { return Status::success(); }

#if defined(BROKEN_ABI_MAJOR) || defined(BROKEN_ABI_MINOR)
gorgone::AbiVersion abi() noexcept {
#ifdef BROKEN_ABI_MAJOR
  return {gorgone::kAbiMajor + 1, 0};
#else
  return {gorgone::kAbiMajor, gorgone::kAbiMinor + 1};
#endif
}
#endif
}  // namespace

#ifdef BROKEN_FINGERPRINT
namespace {
gorgone::AbiVersion abi13() noexcept { return {gorgone::kAbiMajor, gorgone::kAbiMinor}; }
const char* other_build() noexcept {
  static const std::string f = "libzmq 5.0" + gorgone::build_fingerprint().substr(gorgone::build_fingerprint().find(','));
  return f.c_str();
}
}  // namespace
BOOST_DLL_ALIAS(abi13, gorgone_abi)
BOOST_DLL_ALIAS(other_build, gorgone_build_fingerprint)
#elif defined(BROKEN_ABI_MAJOR) || defined(BROKEN_ABI_MINOR)
BOOST_DLL_ALIAS(abi, gorgone_abi)
#elif !defined(BROKEN_NO_ABI)
GORGONE_MODULE_ABI();
#endif
GORGONE_EXPORT_HOOK(reg, gorgone_register)
GORGONE_EXPORT_HOOK(init, gorgone_init)
GORGONE_EXPORT_HOOK(routing, gorgone_routing)
#ifndef BROKEN_MISSING_CHECK
GORGONE_EXPORT_HOOK(check, gorgone_check)
#endif
GORGONE_EXPORT_HOOK(broadcast, gorgone_broadcast)
GORGONE_EXPORT_HOOK(stop, gorgone_gently)
GORGONE_EXPORT_HOOK(stop, gorgone_kill)
GORGONE_EXPORT_HOOK(stop, gorgone_kill_internal)
