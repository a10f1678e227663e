// The host refuses every broken module with a message naming the defect, and loads the
// real proxy plugin from any of the three package spellings.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "module_loader.hpp"
#include "recording_host.hpp"

namespace {
namespace fs = std::filesystem;
std::string dir() { return std::getenv("GORGONE_TEST_MODULES"); }
std::string proxy_dir() { return std::getenv("GORGONE_PROXY_DIR"); }

// register() of the test module never touches the host.
using NullHost = gorgone::testing::RecordingHost;

std::string load_error(const std::string& file) {
  auto r = gorgone::load_module("t", dir() + "/" + file);
  return r ? std::string() : r.error();
}

TEST(Loader, LoadsAGoodModuleAndItsHooks) {
  auto r = gorgone::load_module("sample", dir() + "/module-good.so");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ((*r)->abi.major, gorgone::kAbiMajor);
  EXPECT_NE((*r)->hooks.check, nullptr);
  EXPECT_EQ((*r)->hooks.synclog, nullptr);  // optional hook absent
}

TEST(Loader, RefusesAMissingHookNamingIt) {
  EXPECT_NE(load_error("module-missing-check.so").find("no function 'gorgone_check'"), std::string::npos)
      << load_error("module-missing-check.so");
}

TEST(Loader, RefusesAnotherAbiNamingBothVersions) {
  // The test modules claim the host's version plus one (major or minor).
  const std::string host = std::to_string(gorgone::kAbiMajor) + "." + std::to_string(gorgone::kAbiMinor);
  std::string e = load_error("module-abi-major.so");
  EXPECT_NE(e.find("ABI version " + std::to_string(gorgone::kAbiMajor + 1) + ".0"), std::string::npos) << e;
  EXPECT_NE(e.find("host's " + host), std::string::npos) << e;
  e = load_error("module-abi-minor.so");
  EXPECT_NE(e.find("ABI version " + std::to_string(gorgone::kAbiMajor) + "." + std::to_string(gorgone::kAbiMinor + 1)),
            std::string::npos)
      << e;
}

// Same ABI number, another libzmq underneath: refused, both builds named.
TEST(Loader, RefusesAModuleBuiltAgainstOtherLibraries) {
  std::string e = load_error("module-fingerprint.so");
  EXPECT_NE(e.find("module 't': built against libzmq 5.0, cppzmq "), std::string::npos) << e;
  EXPECT_NE(e.find(", the host against " + gorgone::build_fingerprint()), std::string::npos) << e;
  EXPECT_NE(e.find("rebuild it against the host's libraries"), std::string::npos) << e;
  // The good module, built with the host's headers, says the same as the host.
  EXPECT_EQ(load_error("module-good.so"), "");
}

TEST(Loader, RefusesASharedObjectWithoutAbi) {
  EXPECT_NE(load_error("module-no-abi.so").find("gorgone_abi"), std::string::npos);
}

TEST(Loader, ReportsTheLoadersReason) {
  fs::path bogus = fs::temp_directory_path() / "gorgone-not-an-elf.so";
  std::ofstream(bogus) << "not a shared object";
  auto r = gorgone::load_module("bogus", bogus.string());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("cannot load"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("gorgone-not-an-elf.so"), std::string::npos) << r.error();
  // dlopen's own words (e.g. "invalid ELF header", "file too short") are kept.
  EXPECT_TRUE(r.error().find("ELF") != std::string::npos || r.error().find("too short") != std::string::npos)
      << r.error();
  fs::remove(bogus);
}

TEST(Loader, ThrowingRegisterBecomesAFailureStatus) {
  auto r = gorgone::load_module("t", dir() + "/module-register-throws.so");
  ASSERT_TRUE(r) << r.error();
  // The hook's own guard catches; no exception crosses the boundary.
  YAML::Node cfg;
  gorgone::Registration reg;
  NullHost host;
  gorgone::Status s = (*r)->hooks.register_(cfg, cfg, host, reg);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "register exploded");
}

TEST(Loader, ResolvesPathBareNameAndPerlPackage) {
  std::vector<std::string> path = {"/nonexistent", proxy_dir()};
  auto perl = gorgone::resolve_package("gorgone::modules::core::proxy::hooks", path);
  ASSERT_TRUE(perl) << perl.error();
  auto bare = gorgone::resolve_package("proxy", path);
  ASSERT_TRUE(bare);
  EXPECT_EQ(*perl, *bare);
  auto direct = gorgone::resolve_package(*bare, {});
  ASSERT_TRUE(direct);
  auto missing = gorgone::resolve_package("gorgone::modules::core::nothere::hooks", path);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("gorgone-nothere.so"), std::string::npos) << missing.error();
  EXPECT_FALSE(gorgone::resolve_package("../../etc/passwd", path));
}

TEST(Loader, TheRealProxyPluginHasEveryHook) {
  auto file = gorgone::resolve_package("proxy", {proxy_dir()});
  ASSERT_TRUE(file);
  auto r = gorgone::load_module("proxy", *file);
  ASSERT_TRUE(r) << r.error();
  const auto& h = (*r)->hooks;
  EXPECT_TRUE(h.is_all_proxy_ready && h.get_constatus_result && h.synclog && h.setcoreid && h.add_parent_ping);
}

}  // namespace
