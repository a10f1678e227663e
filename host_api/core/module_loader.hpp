// Loads a module shared object with Boost.DLL and checks it against the contract.
// Thread-bound: modules are loaded, called and unloaded on the host's loop thread.
#pragma once

#include <boost/dll/shared_library.hpp>
#include <memory>
#include <string>
#include <vector>

#include "gorgone/module.hpp"
#include "gorgone/result.hpp"

namespace gorgone {

// The module's hooks, one member per row of GORGONE_HOOK_TABLE; optional ones may be null.
struct ModuleHooks {
#define GORGONE_HOOK_MEMBER_(name, member, symbol, required, ...) name##Hook* member = nullptr;
  GORGONE_HOOK_TABLE(GORGONE_HOOK_MEMBER_)
#undef GORGONE_HOOK_MEMBER_
};

// A loaded module. Owns the library: destroy it only after the module stopped its threads.
struct LoadedModule {
  std::string name;  // from the configuration
  std::string path;  // resolved shared object
  AbiVersion abi{0, 0};
  ModuleHooks hooks;
  Registration registration;
  boost::dll::shared_library library;  // last member: unloaded after everything else
};

// Resolves `package` to a shared object: a path (contains '/' or ends in ".so"), a bare name
// ("proxy" -> gorgone-proxy.so), or a Perl package name
// ("gorgone::modules::core::proxy::hooks" -> gorgone-proxy.so), searched in `search_path`.
Result<std::string> resolve_package(const std::string& package, const std::vector<std::string>& search_path);

// Loads and checks ABI and hooks. Errors name the module and what is wrong:
// the loader's reason, a missing hook, or both ABI versions.
Result<std::unique_ptr<LoadedModule>> load_module(const std::string& name, const std::string& path);

}  // namespace gorgone
