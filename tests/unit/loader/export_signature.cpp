// Compiled at configure time, twice (tests/unit/loader/meson.build): with RIGHT_SIGNATURE it
// must compile, without it it must not — GORGONE_EXPORT_HOOK refuses a function whose type is
// not the hook's, so a module cannot export a gorgone_check the host would call wrongly.
#include "gorgone/module.hpp"

namespace {
#ifdef RIGHT_SIGNATURE
gorgone::Status check(gorgone::CheckResult&) noexcept { return gorgone::Status::success(); }
#else
gorgone::Status check(int&) noexcept { return gorgone::Status::success(); }
#endif
}  // namespace

GORGONE_EXPORT_HOOK(check, gorgone_check)
