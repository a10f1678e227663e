#include "module_loader.hpp"

#include <boost/dll/import.hpp>
#include <dlfcn.h>
#include <filesystem>
#include <regex>

namespace gorgone {
namespace fs = std::filesystem;

Result<std::string> resolve_package(const std::string& package, const std::vector<std::string>& search_path) {
  if (package.empty()) return make_error("empty package name");
  if (package.find('/') != std::string::npos || (package.size() > 3 && package.compare(package.size() - 3, 3, ".so") == 0)) {
    std::error_code ec;
    if (!fs::is_regular_file(package, ec)) return make_error("no such module file '" + package + "'");
    return fs::absolute(package).string();
  }
  std::string base = package;
  static const std::regex perl(R"(^gorgone::modules::([A-Za-z0-9_]+)::([A-Za-z0-9_]+)::hooks$)");
  std::smatch m;
  if (std::regex_match(package, m, perl)) base = m[2].str();
  if (!std::regex_match(base, std::regex("^[A-Za-z0-9_.-]+$")))
    return make_error("invalid package name '" + package + "'");
  std::vector<std::string> candidates = {"gorgone-" + base + ".so", base + ".so"};
  std::string tried;
  for (const auto& dir : search_path) {
    if (dir.empty()) continue;
    for (const auto& c : candidates) {
      fs::path p = fs::path(dir) / c;
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
    tried += (tried.empty() ? "" : ", ") + dir;
  }
  return make_error("package '" + package + "': no gorgone-" + base + ".so in the module path (" +
                    (tried.empty() ? std::string("empty") : tried) + ")");
}

namespace {

template <typename Sig>
Sig* get_hook(boost::dll::shared_library& lib, const char* name) {
  if (!lib.has(name)) return nullptr;
  return &lib.get_alias<Sig>(name);
}

}  // namespace

Result<std::unique_ptr<LoadedModule>> load_module(const std::string& name, const std::string& path) {
  auto mod = std::make_unique<LoadedModule>();
  mod->name = name;
  mod->path = path;
  boost::dll::fs::error_code ec;
  mod->library.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec || !mod->library.is_loaded()) {
    const char* reason = dlerror();
    return make_error("module '" + name + "': cannot load '" + path + "': " +
                      (reason ? std::string(reason) : ec.message()));
  }
  AbiHook* abi = get_hook<AbiHook>(mod->library, hook_name::kAbi);
  if (!abi) return make_error("module '" + name + "': no function '" + hook_name::kAbi + "' (not a Gorgone module?)");
  mod->abi = abi();
  AbiVersion host{kAbiMajor, kAbiMinor};
  if (!abi_compatible(host, mod->abi))
    return make_error("module '" + name + "': ABI version " + std::to_string(mod->abi.major) + "." +
                      std::to_string(mod->abi.minor) + " is incompatible with the host's " +
                      std::to_string(host.major) + "." + std::to_string(host.minor));

  // From ABI 1.3 a module says what it was built against; it must be what the host was.
  if (mod->abi.minor >= 3) {
    FingerprintHook* fingerprint = get_hook<FingerprintHook>(mod->library, hook_name::kFingerprint);
    const std::string host_fingerprint = build_fingerprint();
    const char* theirs = fingerprint ? fingerprint() : nullptr;
    if (!theirs)
      return make_error("module '" + name + "': no function '" + hook_name::kFingerprint +
                        "' (a module of ABI 1.3 or later exports it through GORGONE_MODULE_ABI())");
    if (host_fingerprint != theirs)
      return make_error("module '" + name + "': built against " + std::string(theirs).substr(0, 200) +
                        ", the host against " + host_fingerprint + ": rebuild it against the host's libraries");
  }

  // Every hook of the table; a missing required one refuses the module, naming it.
  ModuleHooks& h = mod->hooks;
#define GORGONE_HOOK_LOAD_(name, member, symbol, required, ...)                       \
  h.member = get_hook<name##Hook>(mod->library, hook_name::k##name);                 \
  if ((required) && !h.member)                                                         \
    return make_error("module '" + name_of_module + "': no function '" + #symbol + "'");
  const std::string& name_of_module = name;
  GORGONE_HOOK_TABLE(GORGONE_HOOK_LOAD_)
#undef GORGONE_HOOK_LOAD_
  return mod;
}

}  // namespace gorgone
