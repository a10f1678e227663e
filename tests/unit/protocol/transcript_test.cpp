// Replays of handshake_transcripts.json: conversations between real Perl daemons, checked
// message by message against our cryptography and state machines.

#include <map>
#include <memory>

#include <gtest/gtest.h>

#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/handshake.hpp"
#include "vectors.hpp"

namespace gorgone::protocol {
namespace {

using test::str;
using test::unhex;
using ClientKind = HandshakeClient::Step::Kind;
using ServerKind = HandshakeServer::Outcome::Kind;

struct HeloParts {
  std::string identity, pubkey_b64, ciphertext_b64;
};

// Well-formed HELOs only: "[id] [b64] [b64]".
HeloParts split_helo(const std::string& wire) {
  HeloParts p;
  std::size_t a = wire.find("] [");
  std::size_t b = wire.find("] [", a + 3);
  EXPECT_TRUE(wire.size() > 2 && wire[0] == '[' && wire.back() == ']' && a != std::string::npos &&
              b != std::string::npos)
      << wire;
  if (b == std::string::npos) return p;
  p.identity = wire.substr(1, a - 1);
  p.pubkey_b64 = wire.substr(a + 3, b - a - 3);
  p.ciphertext_b64 = wire.substr(b + 3, wire.size() - b - 4);
  return p;
}

std::string decode(const std::string& b64) {
  auto r = base64_decode(b64);
  EXPECT_TRUE(r.ok()) << b64.substr(0, 60);
  return r.ok() ? r.value() : std::string();
}

std::string kind_of(const rapidjson::Value& m) { return str(m, "kind"); }
bool is_aes(const rapidjson::Value& m) { return str(m, "encryption") == "aes-cbc"; }
bool to_client(const rapidjson::Value& m) { return str(m, "dir") == "server->client"; }

class Transcripts : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    transcripts_ = new rapidjson::Document;
    ASSERT_TRUE(test::load_vectors("handshake_transcripts.json", transcripts_));
    rapidjson::Document keys;
    ASSERT_TRUE(test::load_vectors("rsa_keys.json", &keys));
    keys_ = new std::map<std::string, RsaKey>;
    for (const auto& k : keys["keys"].GetArray()) {
      auto key = RsaKey::load_private_pem(str(k, "private_pem"));
      ASSERT_TRUE(key.ok()) << key.error();
      keys_->emplace(str(k, "name"), std::move(key.value()));
    }
  }
  static void TearDownTestSuite() {
    delete transcripts_;
    delete keys_;
    transcripts_ = nullptr;
    keys_ = nullptr;
  }

  // Calls fn(link, connection) for every recorded connection.
  template <typename Fn>
  static void for_each_connection(Fn fn) {
    const auto& links = (*transcripts_)["links"];
    ASSERT_GE(links.Size(), 4u);
    for (const auto& link : links.GetArray()) {
      for (const auto& conn : link["connections"].GetArray()) {
        SCOPED_TRACE(str(link, "link") + " connection " + std::to_string(conn["tcp_connection"].GetInt()));
        fn(link, conn);
      }
    }
  }

  static const RsaKey& key(const std::string& name) { return keys_->at(name); }
  static std::string routing_id(const rapidjson::Value& conn) {
    return str(conn["zmtp"]["c2s"]["commands"][0]["properties"], "Identity");
  }
  static std::int64_t now_of(const rapidjson::Value& m) {
    return static_cast<std::int64_t>((*transcripts_)["t0_epoch"].GetDouble() + m["t_rel"].GetDouble());
  }
  // The handshake KEY of a connection, decrypted from the recorded plaintext.
  static std::optional<KeyMessage> handshake_key(const rapidjson::Value& conn) {
    for (const auto& m : conn["messages"].GetArray()) {
      if (kind_of(m) != "KEY (handshake)") continue;
      auto parsed = parse_key_message(str(m, "plaintext"));
      if (parsed.ok()) return parsed.value();
    }
    return std::nullopt;
  }

  static rapidjson::Document* transcripts_;
  static std::map<std::string, RsaKey>* keys_;
};
rapidjson::Document* Transcripts::transcripts_ = nullptr;
std::map<std::string, RsaKey>* Transcripts::keys_ = nullptr;

// Steps (1) to (4): every message against the raw primitives.
TEST_F(Transcripts, EveryMessageMatchesOurCryptography) {
  std::map<std::string, int> counts;
  for_each_connection([&](const rapidjson::Value& link, const rapidjson::Value& conn) {
    const RsaKey& server_key = key(str(link, "server_key"));
    const RsaKey& client_key = key(str(conn, "client_key"));
    std::string current_key_hex;
    for (const auto& m : conn["messages"].GetArray()) {
      SCOPED_TRACE("seq " + std::to_string(m["seq"].GetInt()));
      const std::string wire = str(m, "wire"), kind = kind_of(m);
      if (kind == "GETPUBKEY") {
        EXPECT_EQ(wire, "[GETPUBKEY]");
        ++counts["getpubkey"];
      } else if (kind == "PUBKEY") {
        EXPECT_EQ(wire, "[PUBKEY] [" + base64_encode(server_key.public_pem_wire()) + "]");
        EXPECT_EQ(server_key.public_pem_wire(), str(m, "server_pubkey_pem"));
        ++counts["pubkey"];
      } else if (kind == "HELO") {
        HeloParts p = split_helo(wire);
        EXPECT_EQ(p.identity, str(m, "helo_identity"));
        EXPECT_EQ(decode(p.pubkey_b64), str(m, "client_pubkey_pem"));
        EXPECT_EQ(client_key.public_pem_wire(), str(m, "client_pubkey_pem"));
        std::string ct = decode(p.ciphertext_b64);
        EXPECT_EQ(ct.size(), static_cast<std::size_t>(m["rsa_ciphertext_len"].GetInt()));
        auto helo = server_key.decrypt_pkcs1(ct);  // (1)
        ASSERT_TRUE(helo.ok()) << helo.error();
        EXPECT_EQ(helo.value(), "HELO");
        EXPECT_EQ(helo.value(), str(m, "plaintext_third_field"));
        ++counts["helo"];
      } else if (kind == "KEY (handshake)") {
        auto plain = client_key.decrypt_pkcs1(decode(wire));  // (2)
        ASSERT_TRUE(plain.ok()) << plain.error();
        EXPECT_EQ(plain.value(), str(m, "plaintext"));
        auto parsed = parse_key_message(plain.value());
        ASSERT_TRUE(parsed.ok()) << parsed.error();
        EXPECT_EQ(parsed->key.size(), 32u);
        current_key_hex = to_hex(parsed->key);
        ++counts["key"];
      } else if (kind == "plaintext error reply") {
        EXPECT_EQ(wire, str(m, "plaintext"));
        ASSERT_EQ(wire.rfind("[ACK] [] ", 0), 0u);
        EXPECT_TRUE(test::same_json(wire.substr(9), std::string(kHandshakeIssueReply).substr(9)));
        ++counts["refusal"];
      }
      if (!is_aes(m)) continue;

      EXPECT_EQ(str(m, "key_hex"), current_key_hex);
      auto cipher = SymmetricCipher::create(unhex(str(m, "key_hex")), unhex(str(m, "iv_hex")));
      ASSERT_TRUE(cipher.ok());
      auto plain = cipher->decrypt_from_base64(wire);  // (3)
      ASSERT_TRUE(plain.ok()) << plain.error();
      EXPECT_EQ(plain.value(), str(m, "plaintext"));
      EXPECT_EQ(cipher->encrypt_to_base64(plain.value()), wire);  // (4), and deterministic both ways
      ++counts[to_client(m) ? "aes_to_client" : "aes_to_server"];
      if (kind == "KEY (rotation)") {
        auto parsed = parse_key_message(plain.value());
        ASSERT_TRUE(parsed.ok()) << parsed.error();
        current_key_hex = to_hex(parsed->key);
        ++counts["rotation"];
      }
    }
  });
  EXPECT_EQ(counts["getpubkey"], 5);
  EXPECT_EQ(counts["pubkey"], 5);
  EXPECT_EQ(counts["helo"], 5);
  EXPECT_EQ(counts["key"], 4);
  EXPECT_EQ(counts["refusal"], 2);
  EXPECT_EQ(counts["rotation"], 6);
  EXPECT_GT(counts["aes_to_client"], 80);
  EXPECT_GT(counts["aes_to_server"], 60);
}

// Step (5), client side: our client, holding the recorded client key, fed the recorded server
// messages.
TEST_F(Transcripts, ClientReplay) {
  int established = 0, delivered = 0, rotated = 0, encrypted = 0, refused = 0;
  for_each_connection([&](const rapidjson::Value& link, const rapidjson::Value& conn) {
    const RsaKey& server_key = key(str(link, "server_key"));
    const RsaKey& client_key = key(str(conn, "client_key"));
    std::string identity;
    for (const auto& m : conn["messages"].GetArray())
      if (kind_of(m) == "HELO") identity = str(m, "helo_identity");
    ASSERT_FALSE(identity.empty());
    HandshakeClient client(identity, client_key);
    std::string our_helo;
    std::string current_key_hex;

    for (const auto& m : conn["messages"].GetArray()) {
      SCOPED_TRACE("seq " + std::to_string(m["seq"].GetInt()));
      const std::string wire = str(m, "wire"), kind = kind_of(m);
      if (kind == "GETPUBKEY") {
        EXPECT_EQ(client.start(), wire);
      } else if (kind == "PUBKEY") {
        auto step = client.on_message(wire);
        ASSERT_EQ(step.kind, ClientKind::kSend) << step.text;
        our_helo = step.text;
      } else if (kind == "HELO") {
        // RSA padding is random: the first two fields are byte-identical, the third decrypts.
        HeloParts ours = split_helo(our_helo), theirs = split_helo(wire);
        EXPECT_EQ(ours.identity, theirs.identity);
        EXPECT_EQ(ours.pubkey_b64, theirs.pubkey_b64);
        auto helo = server_key.decrypt_pkcs1(decode(ours.ciphertext_b64));
        ASSERT_TRUE(helo.ok());
        EXPECT_EQ(helo.value(), "HELO");
      } else if (kind == "KEY (handshake)") {
        auto step = client.on_message(wire);
        ASSERT_EQ(step.kind, ClientKind::kEstablished) << step.text;
        current_key_hex = to_hex(parse_key_message(str(m, "plaintext"))->key);
        ++established;
      } else if (kind == "plaintext error reply") {
        bool was_established = client.state() == HandshakeClient::State::kEstablished;
        auto step = client.on_message(wire);
        EXPECT_EQ(step.kind, ClientKind::kFailed);
        EXPECT_EQ(step.text, (was_established ? "decrypt issue: " : "issue: ") + wire);
        ++refused;
      } else if (is_aes(m) && to_client(m)) {
        auto step = client.on_message(wire);
        if (kind == "KEY (rotation)") {
          EXPECT_EQ(step.kind, ClientKind::kRotated) << step.text;
          current_key_hex = to_hex(parse_key_message(str(m, "plaintext"))->key);
          ++rotated;
        } else {
          EXPECT_EQ(step.kind, ClientKind::kMessage) << step.text;
          EXPECT_EQ(step.text, str(m, "plaintext"));
          ++delivered;
        }
      } else if (is_aes(m)) {
        ASSERT_EQ(str(m, "key_hex"), current_key_hex);
        EXPECT_EQ(client.encrypt(str(m, "plaintext")), wire);
        ++encrypted;
      }
    }
  });
  EXPECT_EQ(established, 4);
  EXPECT_EQ(rotated, 6);
  EXPECT_EQ(refused, 2);
  EXPECT_GT(delivered, 80);
  EXPECT_GT(encrypted, 60);
}

// Step (5), server side: our server, holding the recorded server key, fed the recorded client
// messages; sessions are restored with the recorded keys since ours are random.
TEST_F(Transcripts, ServerReplay) {
  int dispatched = 0, replies = 0, rotations = 0;
  for_each_connection([&](const rapidjson::Value& link, const rapidjson::Value& conn) {
    const std::string client_name = str(conn, "client_key");
    const bool unauthorized = client_name == "unauthorized";
    std::vector<std::string> authorized;
    if (unauthorized) {
      authorized = {key("central").jwk_thumbprint(), key("remote").jwk_thumbprint()};
    } else {
      authorized = {key(client_name).jwk_thumbprint()};
    }
    auto recorded_key = handshake_key(conn);
    ASSERT_EQ(recorded_key.has_value(), !unauthorized);
    HandshakeServer server(HandshakeServer::Config{key(str(link, "server_key")), authorized,
                                                   recorded_key ? recorded_key->hostname : "poller-2", 32});
    const std::string id = routing_id(conn);
    ASSERT_EQ(id.rfind("gorgone-", 0), 0u);
    HandshakeServer::Session session;

    const auto& messages = conn["messages"];
    for (rapidjson::SizeType i = 0; i < messages.Size(); ++i) {
      const auto& m = messages[i];
      SCOPED_TRACE("seq " + std::to_string(m["seq"].GetInt()));
      const std::string wire = str(m, "wire"), kind = kind_of(m);
      const std::int64_t now = now_of(m);
      const rapidjson::Value* next = i + 1 < messages.Size() ? &messages[i + 1] : nullptr;

      if (kind == "GETPUBKEY") {
        auto out = server.on_message(id, wire, now);
        ASSERT_EQ(out.kind, ServerKind::kReply);
        ASSERT_NE(next, nullptr);
        EXPECT_EQ(out.reply, str(*next, "wire"));  // byte-identical PUBKEY
      } else if (kind == "HELO") {
        auto out = server.on_message(id, wire, now);
        if (unauthorized) {
          ASSERT_EQ(out.kind, ServerKind::kReply);
          EXPECT_EQ(out.reply, kHandshakeIssueReply);
          EXPECT_EQ(out.log, "Client pubkey is not authorized. Thumbprint is '" +
                                 key("unauthorized").jwk_thumbprint() + "'");
          EXPECT_EQ(server.session(id), nullptr);
          continue;
        }
        ASSERT_EQ(out.kind, ServerKind::kNewSession) << out.log;
        EXPECT_EQ(out.log, "Connection from " + str(m, "helo_identity"));
        auto plain = key(client_name).decrypt_pkcs1(decode(out.reply));
        ASSERT_TRUE(plain.ok());
        auto ours = parse_key_message(plain.value());
        ASSERT_TRUE(ours.ok()) << ours.error();
        EXPECT_EQ(ours->hostname, recorded_key->hostname);
        EXPECT_EQ(ours->key.size(), recorded_key->key.size());
        // Continue with the key the Perl server drew.
        session = HandshakeServer::Session{};
        session.key = recorded_key->key;
        session.iv = recorded_key->iv;
        session.ctime = session.mtime = now;
        server.restore(id, session);
      } else if (kind == "KEY (rotation)") {
        auto rotated = server.rotate(now, 1);
        ASSERT_EQ(rotated.size(), 1u);
        EXPECT_EQ(rotated[0].identity, id);
        auto old_cipher = SymmetricCipher::create(session.key, session.iv);
        auto plain = old_cipher->decrypt_from_base64(rotated[0].wire);
        ASSERT_TRUE(plain.ok());
        auto ours = parse_key_message(plain.value());
        ASSERT_TRUE(ours.ok());
        EXPECT_EQ(ours->hostname, recorded_key->hostname);
        EXPECT_EQ(server.session(id)->oldkey, session.key);
        EXPECT_EQ(server.session(id)->key, ours->key);
        // Continue with the Perl server's new key, the old one kept for decryption.
        auto theirs = parse_key_message(str(m, "plaintext"));
        ASSERT_TRUE(theirs.ok());
        HandshakeServer::Session next;
        next.key = theirs->key;
        next.iv = theirs->iv;
        next.oldkey = session.key;
        next.oldiv = session.iv;
        next.ctime = next.mtime = now;
        session = std::move(next);
        server.restore(id, session);
        ++rotations;
      } else if (is_aes(m) && to_client(m)) {
        auto ours = server.encrypt_for(id, str(m, "plaintext"));
        ASSERT_TRUE(ours.has_value());
        EXPECT_EQ(*ours, wire);
        ++replies;
      } else if (is_aes(m)) {
        auto out = server.on_message(id, wire, now);
        // The Perl server refused "[PING2] ..." (digit in the action) with a plaintext ACK.
        if (next != nullptr && kind_of(*next) == "plaintext error reply") {
          EXPECT_EQ(out.kind, ServerKind::kReply);
          EXPECT_EQ(out.reply, kHandshakeIssueReply);
          EXPECT_TRUE(test::same_json(out.reply.substr(9), str(*next, "wire").substr(9)));
          continue;
        }
        ASSERT_EQ(out.kind, ServerKind::kMessage) << out.log;
        EXPECT_EQ(out.plaintext, str(m, "plaintext"));
        EXPECT_EQ(server.session(id)->mtime, now);
        ++dispatched;
      }
    }
  });
  EXPECT_GT(dispatched, 60);
  EXPECT_GT(replies, 80);
  EXPECT_EQ(rotations, 6);
}

}  // namespace
}  // namespace gorgone::protocol
