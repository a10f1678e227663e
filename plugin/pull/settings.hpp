// The pull module's directives (Gorgone's modules/core/pull: target_type, target_path, ping,
// ping_timeout, client_pubkey, client_privkey; cipher and vector are accepted and unused, as
// there), plus server_pubkey, a pin of the central's key that Gorgone's pull module lacks.
// Thread-safety: reentrant functions on values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "gorgone/module.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/result.hpp"

namespace gorgone::pull {

struct Settings {
  std::string target_type = "tcp";  // tcp or ipc
  std::string target_path;          // tcp: <host>:<port> of the central's external router; ipc: a path
  std::int64_t ping = 0;            // s without any message before a keep-alive; 0: none (Perl: unset)
  std::int64_t ping_timeout = 30;   // s a keep-alive waits for anything before the connection is dropped
  std::string client_pubkey;        // "" until resolved: the core's pubkey
  std::string client_privkey;       // "" until resolved: the core's privkey
  std::string server_pubkey;        // "" when no pin
  std::vector<std::string> warnings;  // unknown directives, for the log ("unknown directive 'x' ignored")

  // "<target_type>://<target_path>": the ZMQ endpoint, and what a central's fingerprint is
  // stored under (as Gorgone's clientzmq does).
  std::string endpoint() const { return target_type + "://" + target_path; }
};

// Reads the directives. Errors name the directive and the value:
// "pull: directive 'ping' must be an integer between 0 and 86400, got 'x'".
// An empty client_pubkey/client_privkey means the core's (Gorgone's rule); `core` gives them.
Result<Settings> parse_settings(const YAML::Node& module_config, const CoreInfo& core);

// The key pair the module presents: client_privkey must hold a private key, client_pubkey a
// public one, and both must be the same key (else the central's KEY, encrypted for the public
// key sent in HELO, could never be read). server_pubkey, when set, must be a readable public
// key (it is read again at each handshake, so that replacing the file takes effect).
Result<protocol::RsaKey> load_client_key(const Settings& settings);

}  // namespace gorgone::pull
