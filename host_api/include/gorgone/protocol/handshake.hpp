// Gorgone's external handshake (GETPUBKEY / PUBKEY / HELO / KEY) and the AES sessions that
// follow it, as pure state machines: no sockets, no clock, no database. The owner feeds
// received messages in and sends what they return, so a handshake never blocks a thread.
// Thread-safety: thread-compatible (one owner thread per object).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gorgone/protocol/crypto.hpp"
#include "gorgone/result.hpp"

namespace gorgone::protocol {

// The JSON carried by "[KEY] {...}" (handshake answer and rotations).
struct KeyMessage {
  std::string hostname;
  std::string cipher = "AES";
  std::string padding = "1";  // Gorgone sends the number 1; kept as text
  std::string key;            // raw bytes (hex on the wire)
  std::string iv;             // raw bytes (hex on the wire)
};
// "[KEY] {json}" -> KeyMessage. Strict: hostname present, key/iv valid hex of a usable size,
// cipher "AES", padding 1. Error texts say which field is wrong.
Result<KeyMessage> parse_key_message(std::string_view plaintext);
std::string build_key_message(const KeyMessage& m);

// Client side (proxy worker towards a push_zmq node; pull module towards a central).
class HandshakeClient {
 public:
  enum class State { kIdle, kWaitPubkey, kWaitKey, kEstablished, kFailed };

  struct Step {
    enum class Kind {
      kSend,         // send `text` to the server
      kEstablished,  // KEY accepted: the session is usable (nothing to send)
      kMessage,      // `text` is a decrypted frame from the server
      kRotated,      // the server rotated the key; nothing to do
      kFailed,       // handshake or decrypt failure: `text` says why (Gorgone's wording)
      kIgnored,      // message dropped (e.g. received while failed)
    };
    Kind kind;
    std::string text;
  };

  // Called with the server key received in [PUBKEY]; a failure refuses the server
  // (fingerprint manager, pinned server_pubkey). May be empty (always accept).
  using ServerKeyCheck = std::function<Status(const RsaKey& server_key)>;

  // handshake_identity: the name written in HELO, without the random suffix
  // (e.g. "gorgone-proxy-1-4"). client_key must hold a private key.
  HandshakeClient(std::string handshake_identity, RsaKey client_key, ServerKeyCheck check = {});

  State state() const { return state_; }
  // Begins a (new) handshake: returns "[GETPUBKEY]". Any previous session is forgotten.
  std::string start();
  // Feeds one message received from the server.
  Step on_message(std::string_view wire);
  // REQUIRES: state() == kEstablished. Encrypts a frame for the wire.
  std::string encrypt(std::string_view plaintext) const;
  // Marks the session failed (e.g. timeout); the next start() redoes everything.
  void fail() { state_ = State::kFailed; }
  // The key the server sent in [PUBKEY], while the handshake waits for [KEY]; forgotten once
  // the session is established.
  const std::optional<RsaKey>& server_key() const { return server_key_; }

 private:
  std::string identity_;
  RsaKey client_key_;
  ServerKeyCheck check_;
  State state_ = State::kIdle;
  std::optional<RsaKey> server_key_;
  std::optional<SymmetricCipher> cipher_;
};

// The frames received under one session key: a frame seen once is refused when it comes again
// (a replayed ciphertext). An open-addressing set of 64-bit hashes, about 16 bytes per frame.
// Thread-compatible.
class ReplayMemory {
 public:
  // True when `hash` was not there (it is then remembered).
  bool insert(std::uint64_t hash);
  bool contains(std::uint64_t hash) const;
  std::size_t size() const { return size_; }
  void clear();

 private:
  std::vector<std::uint64_t> slots_;  // 0 = empty
  std::size_t size_ = 0;
};

// Server side (the external ROUTER of a poller, remote, or central in pull mode).
//
// Beyond Gorgone's protocol, which it keeps byte for byte, it refuses what a hostile peer on
// the network can do with it (doc/security.md):
//  * a HELO is checked against authorized_clients (a hash of the public key it carries) before
//    any RSA work, and HELOs are rate-limited per peer address;
//  * a handshake creates a *pending* session; it becomes the peer's session (replacing a live
//    one, and persisted by the owner) only when the first frame encrypted with its key arrives:
//    anyone can build a HELO from public keys, only the key's owner can use the answer;
//  * every frame received is remembered per session key (a hash of its text), and the same
//    frame again is refused: a replay repeats bytes (see admit() in handshake.cpp for the frames
//    that legitimately repeat); when the memory of a key is full the key is rotated, and frames
//    under a key older than the previous one do not decrypt at all, so the memory is bounded
//    and no replay slips through.
class HandshakeServer {
 public:
  struct Config {
    RsaKey server_key;                            // private
    std::vector<std::string> authorized_clients;  // JWK thumbprints
    std::string hostname;
    std::size_t keysize = 32;                     // AES key bytes: 16, 24 or 32 (else 32)
    std::size_t max_sessions = 10000;             // sessions and pending handshakes, in all
    std::size_t max_pending = 1000;               // handshakes answered but not yet used
    std::int64_t pending_seconds = 60;            // a pending handshake is forgotten after this
    int helo_per_minute = 600;                    // per peer address (0: no limit)
    std::size_t replay_capacity = 16384;          // frames per key before it is rotated
  };

  struct Session {
    std::string key, iv;        // raw bytes
    std::string oldkey, oldiv;  // raw bytes, empty when none
    std::int64_t ctime = 0;     // key creation (rotation clock)
    std::int64_t mtime = 0;     // last valid message
    ReplayMemory seen;          // frames received under `key`
    ReplayMemory seen_old;      // frames received under `oldkey`
    bool rekey = false;         // `seen` is full: rotate at the next rotate()
  };

  struct Outcome {
    enum class Kind {
      kReply,       // send `reply` (plaintext PUBKEY or handshake-issue ACK) to the peer
      kNewSession,  // send `reply` (RSA-encrypted KEY); the session is pending until used
      kMessage,     // `plaintext` is a decrypted frame to dispatch; session mtime updated
      kDropped,     // nothing to send or dispatch (a replayed frame); `log` says why
    };
    Kind kind;
    std::string reply;
    std::string plaintext;
    std::string log;       // what happened, for the log (never contains key material)
    bool persist = false;  // kMessage: this frame made a pending session live; store it
  };

  explicit HandshakeServer(Config config);

  // identity: the peer's routing id (raw bytes). now: epoch seconds. peer: the peer's network
  // address when known (HELO rate limit; empty: one shared bucket).
  Outcome on_message(const std::string& identity, std::string_view wire, std::int64_t now,
                     const std::string& peer = std::string());
  // Encrypts a frame for an established peer; nullopt when there is no session.
  std::optional<std::string> encrypt_for(const std::string& identity, std::string_view plaintext) const;

  struct Rotation {
    std::string identity;
    std::string wire;  // "[KEY] ..." encrypted with the previous key
    Session before;    // the session as it was: restore() it when the [KEY] cannot be sent
  };
  // Forgets sessions idle for more than idle_seconds and expired pending handshakes; rotates
  // keys older than rotation_seconds (<= 0 disables age rotation) and keys whose replay memory
  // is full. Returns the [KEY] messages to send.
  std::vector<Rotation> rotate(std::int64_t now, std::int64_t rotation_seconds,
                               std::int64_t idle_seconds = 86400);

  void restore(const std::string& identity, Session session);
  const Session* session(const std::string& identity) const;
  void forget(const std::string& identity);
  const std::map<std::string, Session>& sessions() const { return sessions_; }
  std::size_t pending() const { return pending_.size(); }
  // "[PUBKEY] [base64(wire pem)]"
  const std::string& pubkey_reply() const { return pubkey_reply_; }
  std::string thumbprint() const { return config_.server_key.jwk_thumbprint(); }

 private:
  struct Pending {
    Session session;
    std::int64_t since = 0;
  };
  struct Bucket {
    std::int64_t window = 0;  // minute the count is for
    int count = 0;
    bool reported = false;    // the refusal was logged for this window
  };
  Outcome accept_frame(Session& s, bool old_key, std::string plaintext, std::int64_t now, bool promoted);
  std::optional<Outcome> over_limits(const std::string& identity, const std::string& peer, std::int64_t now);

  Config config_;
  std::string pubkey_reply_;
  std::map<std::string, Session> sessions_;
  std::map<std::string, Pending> pending_;
  std::map<std::string, Bucket> helo_buckets_;
};

// Plaintext handshake refusal, as the Perl core sends it.
inline constexpr std::string_view kHandshakeIssueReply =
    R"([ACK] [] {"code":1,"data":{"message":"handshake issue"}})";

}  // namespace gorgone::protocol
