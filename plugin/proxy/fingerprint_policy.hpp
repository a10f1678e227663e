// Whether a push_zmq node's server key is trusted (doc/protocol.md, "Server-key trust"): the
// node's pinned `server_pubkey` when it has one, else the host's `fingerprint_mode` against
// the fingerprints stored in the history (gorgone_target_fingerprint).
// Thread-compatible: a const check of values; the History it is given is thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "gorgone/history.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/result.hpp"

namespace gorgone::proxy {

enum class FingerprintMode {
  kAlways,  // any key
  kFirst,   // trust on first use: an unknown key is stored, a changed one refused
  kStrict,  // only a stored key
};

// CoreInfo::fingerprint_mode: "always", "first" or "strict" (the host's configuration has
// normalised it); anything else is "first", the default.
FingerprintMode fingerprint_mode(std::string_view name);

struct FingerprintPolicy {
  FingerprintMode mode = FingerprintMode::kFirst;
  std::string node;         // the node's id, for messages
  std::string target;       // "<target_type>://<target_path>": what fingerprints are stored under
  std::string pinned_path;  // the node's server_pubkey, "" when it has none

  // The received key is trusted, or the refusal with Gorgone's text. A pinned key is
  // stronger than any mode: a match needs no stored fingerprint and stores none, a mismatch
  // is refused even in "always" mode, and the file is read at each call so that replacing
  // it takes effect on the next handshake. In "first" mode an unknown key is stored.
  Status check(const protocol::RsaKey& server, History& history) const;

 private:
  Status changed(const std::string& old_fp, const std::string& new_fp) const;
};

}  // namespace gorgone::proxy
