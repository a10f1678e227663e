#include "fingerprint_policy.hpp"

namespace gorgone::proxy {

FingerprintMode fingerprint_mode(std::string_view name) {
  if (name == "always") return FingerprintMode::kAlways;
  if (name == "strict") return FingerprintMode::kStrict;
  return FingerprintMode::kFirst;
}

Status FingerprintPolicy::check(const protocol::RsaKey& server, History& history) const {
  std::string fp = server.jwk_thumbprint();
  if (!pinned_path.empty()) {
    auto pinned = protocol::RsaKey::load_public_file(pinned_path);
    if (!pinned) return Status::failure("cannot load server_pubkey of node '" + node + "': " + pinned.error());
    if (pinned->jwk_thumbprint() != fp)
      return Status::failure("server key of target '" + target + "' does not match server_pubkey '" + pinned_path +
                             "' [expected fingerprint: " + pinned->jwk_thumbprint() + "] [received fingerprint: " +
                             fp + "]");
    return Status::success();
  }
  if (mode == FingerprintMode::kAlways) return Status::success();
  if (mode == FingerprintMode::kStrict) {
    auto known = history.target_fingerprint(target);
    if (!known) return Status::failure("cannot get fingerprint for target '" + target + "'");
    if (!known->has_value())
      return Status::failure("no fingerprint found for target '" + target + "' [strict mode] [fingerprint: " + fp + "]");
    if (**known != fp) return changed(**known, fp);
    return Status::success();
  }
  // First use: the stored fingerprint, or this one stored now.
  auto stored = history.target_fingerprint_or_add(target, fp);
  if (stored) return *stored == fp ? Status::success() : changed(*stored, fp);
  // It failed: the two steps again, so that the refusal says which one fails (Gorgone's texts).
  auto known = history.target_fingerprint(target);
  if (!known) return Status::failure("cannot get fingerprint for target '" + target + "'");
  if (known->has_value()) return **known == fp ? Status::success() : changed(**known, fp);
  if (!history.add_target_fingerprint(target, fp))
    return Status::failure("cannot insert target '" + target + "' fingerprint");
  return Status::success();
}

Status FingerprintPolicy::changed(const std::string& old_fp, const std::string& new_fp) const {
  return Status::failure("fingerprint changed for target '" + target + "' [old fingerprint: " + old_fp +
                         "] [new fingerprint: " + new_fp + "]");
}

}  // namespace gorgone::proxy
