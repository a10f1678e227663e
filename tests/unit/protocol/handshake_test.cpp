// Live HandshakeClient <-> HandshakeServer exchanges with generated keys, KEY messages,
// rotation, session expiry and hostile inputs.

#include "gorgone/protocol/handshake.hpp"

#include <gtest/gtest.h>

#include "gorgone/protocol/frame.hpp"
#include "vectors.hpp"

namespace gorgone::protocol {
namespace {

using ClientKind = HandshakeClient::Step::Kind;
using ServerKind = HandshakeServer::Outcome::Kind;
using State = HandshakeClient::State;

// ---------------------------------------------------------------------------------------------
// KEY message

std::string key_json(const std::string& members) { return "[KEY] {" + members + "}"; }

const char kKeyHex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const char kIvHex[] = "f0e1d2c3b4a5968778695a4b3c2d1e0f";

TEST(KeyMessage, BuildIsWhatGorgoneSends) {
  KeyMessage m;
  m.hostname = "poller-2";
  m.key = test::unhex(kKeyHex);
  m.iv = test::unhex(kIvHex);
  EXPECT_EQ(build_key_message(m), std::string("[KEY] {\"hostname\":\"poller-2\",\"cipher\":\"AES\",\"padding\":1,\"key\":\"") +
                                      kKeyHex + "\",\"iv\":\"" + kIvHex + "\"}");
  auto back = parse_key_message(build_key_message(m));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->hostname, "poller-2");
  EXPECT_EQ(back->cipher, "AES");
  EXPECT_EQ(back->padding, "1");
  EXPECT_EQ(back->key, m.key);
  EXPECT_EQ(back->iv, m.iv);

  m.padding = "pkcs7";  // a YAML string is sent as a string
  EXPECT_NE(build_key_message(m).find("\"padding\":\"pkcs7\""), std::string::npos);
}

TEST(KeyMessage, ParseAcceptsGorgoneVariants) {
  const std::string key = std::string("\"key\":\"") + kKeyHex + "\"", iv = std::string("\"iv\":\"") + kIvHex + "\"";
  for (const std::string& text :
       {key_json("\"padding\":1,\"cipher\":\"AES\",\"hostname\":\"h\"," + key + "," + iv),
        key_json("\"padding\":\"1\",\"cipher\":\"aes\",\"hostname\":\"\"," + key + "," + iv),
        "[KEY]\t {\"hostname\":4,\"cipher\":\"AES\",\"padding\":1," + key + "," + iv + "}\n",
        key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":1,\"key\":\"000102030405060708090A0B0C0D0E0F\"," + iv),
        key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":1,\"extra\":[1,2]," + key + "," + iv),
        key_json("\"hostname\":\"poll\xe9r\",\"cipher\":\"AES\",\"padding\":1," + key + "," + iv)}) {
    auto m = parse_key_message(text);
    EXPECT_TRUE(m.ok()) << text << ": " << (m.ok() ? "" : m.error());
  }
}

TEST(KeyMessage, ParseIsStrict) {
  const std::string key = std::string("\"key\":\"") + kKeyHex + "\"", iv = std::string("\"iv\":\"") + kIvHex + "\"";
  const std::string good_rest = "\"cipher\":\"AES\",\"padding\":1," + key + "," + iv;
  for (const std::string& text : {
           std::string(""),
           std::string("[KEY]"),
           std::string("[KEY]{}"),
           "[KEY] {\"hostname\":\"h\"," + good_rest + "} trailing",
           "[KEY] {\"hostname\":\"h\",\n" + good_rest + "}",
           "[KEYS] {\"hostname\":\"h\"," + good_rest + "}",
           " [KEY] {\"hostname\":\"h\"," + good_rest + "}",
           key_json(good_rest),                                  // no hostname
           key_json("\"hostname\":null," + good_rest),           // undefined in Perl
           key_json("\"hostname\":{}," + good_rest),
           key_json("\"hostname\":\"h\",\"cipher\":\"DES\",\"padding\":1," + key + "," + iv),
           key_json("\"hostname\":\"h\",\"cipher\":\"\",\"padding\":1," + key + "," + iv),
           key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":2," + key + "," + iv),
           key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":\"\"," + key + "," + iv),
           key_json("\"hostname\":\"h\",\"cipher\":\"AES\"," + key + "," + iv),
           key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":1,\"key\":\"\"," + iv),
           key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":1,\"key\":\"zz\"," + iv),
           key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":1,\"key\":\"0001020\"," + iv),
           key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":1,\"key\":\"00010203\"," + iv),
           key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":1," + key + ",\"iv\":\"00\""),
           key_json("\"hostname\":\"h\",\"cipher\":\"AES\",\"padding\":1," + key),
           std::string("[KEY] [1,2,3]"),
           std::string("[KEY] \"text\""),
           std::string("[KEY] {\"hostname\":\"\xff\"}"),
       }) {
    auto m = parse_key_message(text);
    EXPECT_FALSE(m.ok()) << text;
    if (!m.ok()) {
      EXPECT_FALSE(m.error().empty());
    }
  }
  // Deep nesting must not recurse.
  std::string deep = "[KEY] " + std::string(200000, '[') + std::string(200000, ']');
  EXPECT_FALSE(parse_key_message(deep).ok());
  std::string deep_obj = "[KEY] {\"hostname\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
  EXPECT_FALSE(parse_key_message(deep_obj).ok());
}

// ---------------------------------------------------------------------------------------------
// Live exchanges

class Handshake : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_key_ = generate(2048);
    client_key_ = generate(2048);
    stranger_key_ = generate(2048);
    small_key_ = generate(1024);
  }
  static void TearDownTestSuite() {
    for (RsaKey** k : {&server_key_, &client_key_, &stranger_key_, &small_key_}) {
      delete *k;
      *k = nullptr;
    }
  }
  static RsaKey* generate(int bits) {
    auto key = RsaKey::generate(bits);
    EXPECT_TRUE(key.ok());
    return new RsaKey(std::move(key.value()));
  }

  HandshakeServer make_server(std::vector<std::string> authorized, std::size_t keysize = 32) {
    return HandshakeServer(HandshakeServer::Config{*server_key_, std::move(authorized), "poller-2", keysize});
  }
  HandshakeServer make_server() { return make_server({client_key_->jwk_thumbprint()}); }

  // Runs GETPUBKEY/PUBKEY/HELO/KEY; returns the server's outcome for the HELO.
  static HandshakeServer::Outcome handshake(HandshakeClient& client, HandshakeServer& server, const std::string& id,
                                            std::int64_t now) {
    EXPECT_EQ(client.start(), "[GETPUBKEY]");
    EXPECT_EQ(client.state(), State::kWaitPubkey);
    auto pubkey = server.on_message(id, "[GETPUBKEY]", now);
    EXPECT_EQ(pubkey.kind, ServerKind::kReply);
    EXPECT_EQ(pubkey.reply, server.pubkey_reply());
    auto helo = client.on_message(pubkey.reply);
    EXPECT_EQ(helo.kind, ClientKind::kSend) << helo.text;
    EXPECT_EQ(client.state(), State::kWaitKey);
    return server.on_message(id, helo.text, now);
  }

  static void establish(HandshakeClient& client, HandshakeServer& server, const std::string& id, std::int64_t now) {
    auto out = handshake(client, server, id, now);
    ASSERT_EQ(out.kind, ServerKind::kNewSession) << out.log;
    auto step = client.on_message(out.reply);
    ASSERT_EQ(step.kind, ClientKind::kEstablished) << step.text;
    ASSERT_EQ(client.state(), State::kEstablished);
    // The session becomes live with the client's first frame.
    auto first = server.on_message(id, client.encrypt("[PING] [] [] {}"), now);
    ASSERT_EQ(first.kind, ServerKind::kMessage) << first.log;
    ASSERT_TRUE(first.persist);
  }

  // Client frame -> server plaintext.
  static void expect_delivered(HandshakeServer& server, const std::string& id, const std::string& wire,
                               const std::string& plaintext, std::int64_t now) {
    auto out = server.on_message(id, wire, now);
    ASSERT_EQ(out.kind, ServerKind::kMessage) << out.log << " " << out.reply;
    EXPECT_EQ(out.plaintext, plaintext);
  }

  static RsaKey* server_key_;
  static RsaKey* client_key_;
  static RsaKey* stranger_key_;
  static RsaKey* small_key_;
};
RsaKey* Handshake::server_key_ = nullptr;
RsaKey* Handshake::client_key_ = nullptr;
RsaKey* Handshake::stranger_key_ = nullptr;
RsaKey* Handshake::small_key_ = nullptr;

const std::string kId = "gorgone-proxy-1-4-0123456789abcdef01234567";

TEST_F(Handshake, FullExchange) {
  HandshakeServer server = make_server();
  EXPECT_EQ(server.pubkey_reply(), "[PUBKEY] [" + base64_encode(server_key_->public_pem_wire()) + "]");
  EXPECT_EQ(server.thumbprint(), server_key_->jwk_thumbprint());

  std::string seen_thumbprint;
  HandshakeClient client("gorgone-proxy-1-4", *client_key_, [&](const RsaKey& k) {
    seen_thumbprint = k.jwk_thumbprint();
    return Status::success();
  });
  EXPECT_EQ(client.state(), State::kIdle);
  EXPECT_EQ(client.encrypt("[PING] [] [] {}"), "");

  auto out = handshake(client, server, kId, 1000);
  ASSERT_EQ(out.kind, ServerKind::kNewSession) << out.log;
  EXPECT_EQ(out.log, "Connection from gorgone-proxy-1-4");
  EXPECT_EQ(seen_thumbprint, server_key_->jwk_thumbprint());
  ASSERT_NE(client.server_key(), std::nullopt);
  EXPECT_EQ(client.server_key()->jwk_thumbprint(), server_key_->jwk_thumbprint());

  // The KEY reply is RSA for the client and carries the session key.
  auto key_plain = client_key_->decrypt_pkcs1(base64_decode(out.reply).value());
  ASSERT_TRUE(key_plain.ok());
  auto key = parse_key_message(key_plain.value());
  ASSERT_TRUE(key.ok()) << key.error();
  EXPECT_EQ(key->hostname, "poller-2");
  // Pending until the client uses the key: anyone can build a HELO from public keys.
  EXPECT_EQ(server.session(kId), nullptr);
  EXPECT_EQ(server.pending(), 1u);

  ASSERT_EQ(client.on_message(out.reply).kind, ClientKind::kEstablished);
  // The server's key served the handshake only: a central holding thousands of sessions does
  // not keep one parsed key per node.
  EXPECT_EQ(client.server_key(), std::nullopt);
  auto first = server.on_message(kId, client.encrypt("[PING] [] [] {}"), 1005);
  ASSERT_EQ(first.kind, ServerKind::kMessage) << first.log;
  EXPECT_EQ(first.plaintext, "[PING] [] [] {}");
  EXPECT_TRUE(first.persist);
  EXPECT_EQ(server.pending(), 0u);
  const HandshakeServer::Session* s = server.session(kId);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->key, key->key);
  EXPECT_EQ(s->iv, key->iv);
  EXPECT_EQ(s->key.size(), 32u);
  EXPECT_TRUE(s->oldkey.empty());
  EXPECT_EQ(s->ctime, 1000);
  EXPECT_EQ(s->mtime, 1005);
  expect_delivered(server, kId, client.encrypt("[PING] [] [] {}"), "[PING] [] [] {}", 1006);
  EXPECT_EQ(server.session(kId)->mtime, 1006);

  auto pong = server.encrypt_for(kId, "[PONG] [t] [] {\"code\":0,\"data\":{}}");
  ASSERT_TRUE(pong.has_value());
  auto step = client.on_message(*pong);
  EXPECT_EQ(step.kind, ClientKind::kMessage);
  EXPECT_EQ(step.text, "[PONG] [t] [] {\"code\":0,\"data\":{}}");
  EXPECT_EQ(server.encrypt_for("gorgone-unknown", "x"), std::nullopt);
  EXPECT_EQ(server.sessions().size(), 1u);
}

TEST_F(Handshake, UnauthorizedClientIsRefusedWithItsThumbprint) {
  HandshakeServer server = make_server({client_key_->jwk_thumbprint()});
  HandshakeClient client("gorgone-stranger", *stranger_key_);
  auto out = handshake(client, server, kId, 1000);
  ASSERT_EQ(out.kind, ServerKind::kReply);
  EXPECT_EQ(out.reply, kHandshakeIssueReply);
  EXPECT_EQ(out.log, "Client pubkey is not authorized. Thumbprint is '" + stranger_key_->jwk_thumbprint() + "'");
  EXPECT_EQ(server.session(kId), nullptr);

  auto step = client.on_message(out.reply);
  EXPECT_EQ(step.kind, ClientKind::kFailed);
  EXPECT_EQ(step.text, "issue: " + std::string(kHandshakeIssueReply));
  EXPECT_EQ(client.state(), State::kFailed);
  EXPECT_EQ(client.on_message("anything").kind, ClientKind::kIgnored);
  EXPECT_EQ(client.start(), "[GETPUBKEY]");  // a new attempt starts over
  EXPECT_EQ(client.state(), State::kWaitPubkey);

  HandshakeServer nobody = make_server({});
  HandshakeClient legit("gorgone-legit", *client_key_);
  EXPECT_EQ(handshake(legit, nobody, kId, 1000).kind, ServerKind::kReply);
}

TEST_F(Handshake, ServerKeyCheckCanRefuse) {
  HandshakeServer server = make_server();
  HandshakeClient client("gorgone-pull", *client_key_, [](const RsaKey& k) {
    return Status::failure("fingerprint changed for target 'tcp://127.0.0.1:5556' [new fingerprint: " +
                           k.jwk_thumbprint() + "]");
  });
  client.start();
  auto step = client.on_message(server.pubkey_reply());
  EXPECT_EQ(step.kind, ClientKind::kFailed);
  EXPECT_EQ(step.text.rfind("fingerprint changed for target", 0), 0u);
  EXPECT_EQ(client.state(), State::kFailed);
}

TEST_F(Handshake, ClientKeyTooSmallForTheKeyMessage) {
  HandshakeServer server = make_server({small_key_->jwk_thumbprint()});
  HandshakeClient client("gorgone-small", *small_key_);
  auto out = handshake(client, server, kId, 1000);
  ASSERT_EQ(out.kind, ServerKind::kReply);
  EXPECT_EQ(out.reply, kHandshakeIssueReply);
  EXPECT_EQ(out.log.rfind("core key response encrypt issue", 0), 0u) << out.log;
  EXPECT_EQ(server.session(kId), nullptr);
}

TEST_F(Handshake, Aes128Sessions) {
  HandshakeServer server = make_server({client_key_->jwk_thumbprint()}, 16);
  HandshakeClient client("gorgone-128", *client_key_);
  establish(client, server, kId, 1000);
  EXPECT_EQ(server.session(kId)->key.size(), 16u);
  expect_delivered(server, kId, client.encrypt("[GETLOG] [] [] {}"), "[GETLOG] [] [] {}", 1001);
  // An impossible key size falls back to AES-256.
  HandshakeServer odd = make_server({client_key_->jwk_thumbprint()}, 20);
  HandshakeClient other("gorgone-odd", *client_key_);
  establish(other, odd, kId, 1000);
  EXPECT_EQ(odd.session(kId)->key.size(), 32u);
}

TEST_F(Handshake, RotationKeepsBothSidesWorking) {
  HandshakeServer server = make_server();
  HandshakeClient client("gorgone-rot", *client_key_);
  establish(client, server, kId, 1000);
  const std::string first_key = server.session(kId)->key;

  EXPECT_TRUE(server.rotate(1059, 60).empty());
  std::string before_rotation = client.encrypt("[PING] [] [] {}");  // in flight during the rotation
  auto rotations = server.rotate(1060, 60);
  ASSERT_EQ(rotations.size(), 1u);
  EXPECT_EQ(rotations[0].identity, kId);
  const HandshakeServer::Session* s = server.session(kId);
  EXPECT_EQ(s->oldkey, first_key);
  EXPECT_NE(s->key, first_key);
  EXPECT_EQ(s->ctime, 1060);

  // The [KEY] travels under the old key.
  auto old_cipher = SymmetricCipher::create(s->oldkey, s->oldiv);
  auto rotation_plain = old_cipher->decrypt_from_base64(rotations[0].wire);
  ASSERT_TRUE(rotation_plain.ok());
  auto announced = parse_key_message(rotation_plain.value());
  ASSERT_TRUE(announced.ok());
  EXPECT_EQ(announced->key, s->key);
  EXPECT_EQ(announced->iv, s->iv);

  // The server still reads the frame the client sent under the old key.
  expect_delivered(server, kId, before_rotation, "[PING] [] [] {}", 1061);

  auto step = client.on_message(rotations[0].wire);
  EXPECT_EQ(step.kind, ClientKind::kRotated) << step.text;
  std::string after = client.encrypt("[PING] [] [] {}");
  EXPECT_NE(after, before_rotation);
  expect_delivered(server, kId, after, "[PING] [] [] {}", 1062);
  auto reply = server.encrypt_for(kId, "[PONG] [] [] {}");
  EXPECT_EQ(client.on_message(*reply).text, "[PONG] [] [] {}");

  // A second rotation drops the first key: an old frame now looks like a failed HELO.
  ASSERT_EQ(server.rotate(1120, 60).size(), 1u);
  auto stale = server.on_message(kId, before_rotation, 1121);
  EXPECT_EQ(stale.kind, ServerKind::kReply);
  EXPECT_EQ(stale.reply, kHandshakeIssueReply);
  EXPECT_NE(server.session(kId), nullptr);  // a failed HELO does not end the session
  EXPECT_EQ(server.session(kId)->mtime, 1062);

  // Rotation can be disabled.
  EXPECT_TRUE(server.rotate(100000, 0, 1000000).empty());
}

TEST_F(Handshake, IdleSessionsAreForgottenAndClientsRedoTheHandshake) {
  HandshakeServer server = make_server();
  HandshakeClient client("gorgone-idle", *client_key_);
  establish(client, server, kId, 1000);
  expect_delivered(server, kId, client.encrypt("[PING] [] [] {}"), "[PING] [] [] {}", 2000);
  EXPECT_TRUE(server.rotate(2000 + 86400, 1000000).empty());
  EXPECT_NE(server.session(kId), nullptr);
  EXPECT_TRUE(server.rotate(2000 + 86401, 1000000).empty());
  EXPECT_EQ(server.session(kId), nullptr);

  auto out = server.on_message(kId, client.encrypt("[PING] [] [] {}"), 90000);
  EXPECT_EQ(out.kind, ServerKind::kReply);
  EXPECT_EQ(out.reply, kHandshakeIssueReply);
  auto step = client.on_message(out.reply);
  EXPECT_EQ(step.kind, ClientKind::kFailed);
  EXPECT_EQ(step.text, "decrypt issue: " + std::string(kHandshakeIssueReply));

  establish(client, server, kId, 90001);
  expect_delivered(server, kId, client.encrypt("[PING] [] [] {}"), "[PING] [] [] {}", 90002);
}

TEST_F(Handshake, NewHeloReplacesAnEstablishedSession) {
  HandshakeServer server = make_server();
  HandshakeClient client("gorgone-again", *client_key_);
  establish(client, server, kId, 1000);
  std::string old_key = server.session(kId)->key;
  std::string old_frame = client.encrypt("[PING] [] [] {}");
  establish(client, server, kId, 1010);
  EXPECT_NE(server.session(kId)->key, old_key);
  EXPECT_TRUE(server.session(kId)->oldkey.empty());
  EXPECT_EQ(server.on_message(kId, old_frame, 1011).kind, ServerKind::kReply);
  expect_delivered(server, kId, client.encrypt("[PING] [] [] {}"), "[PING] [] [] {}", 1012);
  server.forget(kId);
  EXPECT_EQ(server.session(kId), nullptr);
}

TEST_F(Handshake, SessionRegexesAreTheReferenceOnes) {
  HandshakeServer server = make_server();
  HandshakeClient client("gorgone-edge", *client_key_);
  establish(client, server, kId, 1000);
  // Dispatched (the core then answers "request not well formatted" where it applies).
  for (const char* frame : {"[PING] [tok-nodata] []", "[PING]", "[PING]  \n", "[PING]   [tok-spaces]\t[]\n{}",
                            "[SET-LOGS_x] [t] [] {}"}) {
    SCOPED_TRACE(frame);
    expect_delivered(server, kId, client.encrypt(frame), frame, 1001);
  }
  // Refused like a failed HELO: digits (second regex), text after "]", no frame at all.
  for (const char* frame : {"[PING2] [] [] {}", "[PING] x", "[PING]x", "PING [] [] {}", "[] [] [] {}",
                            "[PING] [\nx] {}", "", "[P:NG] [] [] {}", "[[PING] [] [] {}"}) {
    SCOPED_TRACE(frame);
    auto out = server.on_message(kId, client.encrypt(frame), 1002);
    EXPECT_EQ(out.kind, ServerKind::kReply);
    EXPECT_EQ(out.reply, kHandshakeIssueReply);
  }
}

TEST_F(Handshake, ClientChecksDecryptedFrames) {
  HandshakeServer server = make_server();
  HandshakeClient client("gorgone-c", *client_key_);
  establish(client, server, kId, 1000);
  auto ok = client.on_message(*server.encrypt_for(kId, "[SETLOGS:x] [t] [] {}"));
  EXPECT_EQ(ok.kind, ClientKind::kMessage);
  auto bad = client.on_message(*server.encrypt_for(kId, "[ACK]{}"));
  EXPECT_EQ(bad.kind, ClientKind::kFailed);
  EXPECT_EQ(bad.text, "decrypt issue: [ACK]{}");
  EXPECT_EQ(client.on_message(*server.encrypt_for(kId, "[PONG] [] [] {}")).kind, ClientKind::kIgnored);

  // A broken rotation message fails the session instead of silently keeping the old key.
  establish(client, server, kId, 1001);
  auto broken = client.on_message(*server.encrypt_for(kId, "[KEY] {\"hostname\":\"h\"}"));
  EXPECT_EQ(broken.kind, ClientKind::kFailed);
  EXPECT_EQ(broken.text, "Wrong protocol");
}

TEST_F(Handshake, ServerRefusesBrokenHelos) {
  HandshakeServer server = make_server();
  auto helo_with = [&](const std::string& pem_b64, const std::string& ct_b64) {
    return "[gorgone-x] [" + pem_b64 + "] [" + ct_b64 + "]";
  };
  const std::string pem_b64 = base64_encode(client_key_->public_pem_wire());
  const std::string helo_ct = base64_encode(server_key_->encrypt_pkcs1("HELO").value());
  struct Case {
    std::string wire;
    std::string log_prefix;
  };
  std::vector<Case> cases = {
      {"", "Decoding issue. Protocol not good"},
      {"HELO", "Decoding issue. Protocol not good"},
      {"[a] [b]", "Decoding issue. Protocol not good"},
      {"[a] [b] [c] trailing", "Decoding issue. Protocol not good"},
      {"[] [b] [c]", "Decoding issue"},
      {helo_with(pem_b64, "!!!!"), "Decoding issue"},
      {helo_with(pem_b64, helo_ct.substr(0, 40)), "Decoding issue"},
      {helo_with(pem_b64, base64_encode(server_key_->encrypt_pkcs1("HELLO").value())), "Encrypted issue for HELO"},
      {helo_with(pem_b64, base64_encode(client_key_->encrypt_pkcs1("HELO").value())), "Decoding issue"},
      {helo_with("!!!", helo_ct), "Cannot load client pubkey"},
      {helo_with(base64_encode("not a key"), helo_ct), "Cannot load client pubkey"},
      {helo_with(base64_encode(client_key_->private_pem()), helo_ct), "Cannot load client pubkey"},
      {helo_with(pem_b64, helo_ct) + std::string(70000, ' '), "Decoding issue. Protocol not good"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.wire.substr(0, 80));
    auto out = server.on_message(kId, c.wire, 1000);
    EXPECT_EQ(out.kind, ServerKind::kReply);
    EXPECT_EQ(out.reply, kHandshakeIssueReply);
    EXPECT_EQ(out.log.rfind(c.log_prefix, 0), 0u) << out.log;
    EXPECT_LE(out.log.size(), 400u);
  }
  EXPECT_TRUE(server.sessions().empty());

  // The reference regex is greedy and ends at a line end: these still work.
  for (const std::string& wire :
       {helo_with(pem_b64, helo_ct), "  [gorgone-x] \t[" + pem_b64 + "]\n[" + helo_ct + "]",
        "[gorgone-x] [" + pem_b64 + "] [" + helo_ct + "]\nextra line", "[gorgone] [x] [" + pem_b64 + "] [" + helo_ct + "]"}) {
    SCOPED_TRACE(wire.substr(0, 40));
    auto out = server.on_message(kId, wire, 1000);
    EXPECT_EQ(out.kind, ServerKind::kNewSession) << out.log;
  }
  EXPECT_EQ(server.on_message(kId, "[gorgone] [x] [" + pem_b64 + "] [" + helo_ct + "]", 1000).log,
            "Connection from gorgone] [x");
}

TEST_F(Handshake, HostileInputsNeverCrashTheServer) {
  HandshakeServer server = make_server();
  HandshakeClient client("gorgone-h", *client_key_);
  establish(client, server, kId, 1000);
  std::string valid = client.encrypt("[PING] [] [] {}");
  std::vector<std::string> inputs = {
      std::string(10 << 20, 'A'),
      std::string(1 << 20, '['),
      std::string(1 << 20, ']'),
      std::string(4096, '\0'),
      valid.substr(0, valid.size() - 2),
      valid.substr(1),
      valid + "AAAA",
      valid + "\n",
      "[" + std::string(1 << 20, 'x') + "] [" + std::string(1 << 20, 'y') + "] [" + std::string(1 << 20, 'z') + "]",
      "[GETPUBKE]",
  };
  std::string repeated;
  for (int i = 0; i < 100000; ++i) repeated += "] [";
  inputs.push_back("[" + repeated + "]");
  for (const auto& input : inputs) {
    auto out = server.on_message(kId, input, 1001);
    EXPECT_EQ(out.kind, ServerKind::kReply);
    EXPECT_EQ(out.reply, kHandshakeIssueReply);
    auto other = server.on_message("gorgone-other", input, 1001);
    EXPECT_EQ(other.reply, kHandshakeIssueReply);
  }
  EXPECT_EQ(server.on_message(kId, "  [GETPUBKEY] trailing", 1001).reply, server.pubkey_reply());
  // The session survived all of it.
  expect_delivered(server, kId, valid, "[PING] [] [] {}", 1002);
  EXPECT_EQ(server.sessions().size(), 1u);
}

TEST_F(Handshake, HostileInputsNeverCrashTheClient) {
  HandshakeServer server = make_server();
  const std::string huge(8 << 20, 'A');
  std::vector<std::pair<std::string, std::string>> pubkey_cases = {
      {"", "cannot read pubkey response from server"},
      {"[PUBKEY]", "cannot read pubkey response from server"},
      {"[PUBKEY] [abc", "cannot read pubkey response from server"},
      {"[PUBKEY] [ab\nc]", "cannot read pubkey response from server"},
      {"[ACK] [] {\"code\":1}", "cannot read pubkey response from server"},
      {huge, "cannot read pubkey response from server"},
      {"[PUBKEY] [!!!]", "cannot load pubkey"},
      {"[PUBKEY] []", "cannot load pubkey"},
      {"[PUBKEY] [" + base64_encode("not a key") + "]", "cannot load pubkey"},
      {"[PUBKEY] [" + huge + "]", "cannot load pubkey"},
      {"[PUBKEY] [" + base64_encode(server_key_->private_pem()) + "]", "cannot load pubkey"},
  };
  for (const auto& [wire, expected] : pubkey_cases) {
    HandshakeClient client("gorgone-h", *client_key_);
    client.start();
    auto step = client.on_message(wire);
    EXPECT_EQ(step.kind, ClientKind::kFailed);
    EXPECT_EQ(step.text, expected) << wire.substr(0, 60);
  }

  // Broken KEY replies.
  KeyMessage m;
  m.hostname = "h";
  m.key = std::string(32, 'k');
  m.iv = std::string(16, 'i');
  std::string for_stranger = base64_encode(stranger_key_->encrypt_pkcs1(build_key_message(m)).value());
  std::string not_a_key = base64_encode(client_key_->encrypt_pkcs1("[KEY] {}").value());
  std::string good = base64_encode(client_key_->encrypt_pkcs1(build_key_message(m)).value());
  std::vector<std::pair<std::string, std::string>> key_cases = {
      {"", "Decoding issue"},
      {"!!!!", "Decoding issue"},
      {good.substr(0, good.size() - 4), "Decoding issue"},
      {huge, "Decoding issue"},
      {for_stranger, "Decoding issue"},
      {not_a_key, "Wrong protocol"},
      {"[ACK] [] {\"code\":1,\"data\":{\"message\":\"handshake issue\"}}", "issue: [ACK]"},
  };
  for (const auto& [wire, expected] : key_cases) {
    HandshakeClient client("gorgone-h", *client_key_);
    client.start();
    ASSERT_EQ(client.on_message(server.pubkey_reply()).kind, ClientKind::kSend);
    auto step = client.on_message(wire);
    EXPECT_EQ(step.kind, ClientKind::kFailed);
    EXPECT_EQ(step.text.rfind(expected, 0), 0u) << step.text;
    EXPECT_EQ(client.state(), State::kFailed);
  }
  {
    HandshakeClient client("gorgone-h", *client_key_);
    client.start();
    client.on_message(server.pubkey_reply());
    EXPECT_EQ(client.on_message(good).kind, ClientKind::kEstablished);
  }

  // Established: garbage ends the session with "decrypt issue".
  std::vector<std::string> session_cases = {"", "!!!!", huge, huge + "=", base64_encode(std::string(17, 'x')),
                                            base64_encode(std::string(32, 'x'))};
  for (const auto& wire : session_cases) {
    HandshakeClient client("gorgone-h", *client_key_);
    establish(client, server, kId, 1000);
    auto step = client.on_message(wire);
    EXPECT_EQ(step.kind, ClientKind::kFailed);
    EXPECT_EQ(step.text.rfind("decrypt issue: ", 0), 0u) << step.text;
    EXPECT_LE(step.text.size(), 400u);
    EXPECT_EQ(client.encrypt("x"), "");
  }

  // Nothing happens before start().
  HandshakeClient idle("gorgone-h", *client_key_);
  EXPECT_EQ(idle.on_message(server.pubkey_reply()).kind, ClientKind::kIgnored);
  idle.start();
  idle.fail();
  EXPECT_EQ(idle.state(), State::kFailed);
  EXPECT_EQ(idle.on_message(server.pubkey_reply()).kind, ClientKind::kIgnored);
}

TEST_F(Handshake, RestoredSessionsDecryptWithTheOldKeyToo) {
  HandshakeServer server = make_server();
  HandshakeServer::Session s;
  s.key = std::string(32, 'n');
  s.iv = std::string(16, 'v');
  s.oldkey = std::string(32, 'o');
  s.oldiv = std::string(16, 'w');
  s.ctime = 10;
  s.mtime = 20;
  server.restore(kId, s);
  auto old_cipher = SymmetricCipher::create(s.oldkey, s.oldiv);
  auto new_cipher = SymmetricCipher::create(s.key, s.iv);
  expect_delivered(server, kId, old_cipher->encrypt_to_base64("[PING] [] [] {}"), "[PING] [] [] {}", 30);
  expect_delivered(server, kId, new_cipher->encrypt_to_base64("[PING] [] [] {}"), "[PING] [] [] {}", 31);
  EXPECT_EQ(*server.encrypt_for(kId, "[PONG] [] [] {}"), new_cipher->encrypt_to_base64("[PONG] [] [] {}"));

  // A restored session with an unusable key only answers like a failed HELO.
  HandshakeServer::Session broken;
  broken.key = "short";
  broken.iv = "iv";
  server.restore("gorgone-broken", broken);
  EXPECT_EQ(server.on_message("gorgone-broken", new_cipher->encrypt_to_base64("[PING] [] [] {}"), 40).reply,
            kHandshakeIssueReply);
  EXPECT_EQ(server.encrypt_for("gorgone-broken", "x"), std::nullopt);
}

}  // namespace
}  // namespace gorgone::protocol

namespace gorgone::protocol {
namespace {

// What anyone can send without a private key: a HELO made of public keys only.
std::string forged_helo(const RsaKey& server_pub, const RsaKey& victim_pub, const std::string& name) {
  return "[" + name + "] [" + base64_encode(victim_pub.public_pem_wire()) + "] [" +
         base64_encode(server_pub.encrypt_pkcs1("HELO").value()) + "]";
}

class HandshakeHostile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_key_ = new RsaKey(RsaKey::generate(2048).value());
    client_key_ = new RsaKey(RsaKey::generate(2048).value());
    stranger_key_ = new RsaKey(RsaKey::generate(2048).value());
  }
  static void TearDownTestSuite() {
    delete server_key_;
    delete client_key_;
    delete stranger_key_;
  }
  HandshakeServer::Config config() {
    return HandshakeServer::Config{*server_key_, {client_key_->jwk_thumbprint()}, "poller-2", 32};
  }
  // A client with a live session on `server` under routing id `id`.
  static HandshakeClient connect(HandshakeServer& server, const std::string& id, std::int64_t now,
                                 const std::string& peer = "127.0.0.1") {
    HandshakeClient client("gorgone-" + id, *client_key_);
    auto helo = client.on_message(server.on_message(id, client.start(), now, peer).reply);
    auto key = server.on_message(id, helo.text, now, peer);
    EXPECT_EQ(key.kind, ServerKind::kNewSession) << key.log;
    EXPECT_EQ(client.on_message(key.reply).kind, ClientKind::kEstablished);
    auto first = server.on_message(id, client.encrypt("[PING] [] [] {}"), now, peer);
    EXPECT_EQ(first.kind, ServerKind::kMessage) << first.log;
    return client;
  }
  static RsaKey* server_key_;
  static RsaKey* client_key_;
  static RsaKey* stranger_key_;
};
RsaKey* HandshakeHostile::server_key_ = nullptr;
RsaKey* HandshakeHostile::client_key_ = nullptr;
RsaKey* HandshakeHostile::stranger_key_ = nullptr;

TEST_F(HandshakeHostile, AnUnauthorizedKeyIsRefusedBeforeAnyPrivateKeyWork) {
  HandshakeServer server(config());
  // The ciphertext is garbage: decrypting it first would answer "Decoding issue".
  std::string helo = "[gorgone-x] [" + base64_encode(stranger_key_->public_pem_wire()) + "] [" +
                     base64_encode(std::string(256, 'x')) + "]";
  auto out = server.on_message("gorgone-x", helo, 1000);
  EXPECT_EQ(out.kind, ServerKind::kReply);
  EXPECT_EQ(out.log, "Client pubkey is not authorized. Thumbprint is '" + stranger_key_->jwk_thumbprint() + "'");
}

TEST_F(HandshakeHostile, HelosBuiltFromPublicKeysCreateNoSessionAndReplaceNone) {
  auto cfg = config();
  cfg.max_pending = 50;
  cfg.helo_per_minute = 0;
  HandshakeServer server(cfg);
  HandshakeClient victim = connect(server, "gorgone-2-victim", 1000);
  RsaKey server_pub = RsaKey::load_public(server_key_->public_pem_wire()).value();
  RsaKey victim_pub = RsaKey::load_public(client_key_->public_pem_wire()).value();
  int answered = 0, refused = 0;
  for (int i = 0; i < 300; ++i) {
    std::string id = i == 0 ? "gorgone-2-victim" : "gorgone-flood-" + std::to_string(i);
    auto out = server.on_message(id, forged_helo(server_pub, victim_pub, "flood"), 1001);
    (out.kind == ServerKind::kNewSession ? answered : refused) += 1;
  }
  EXPECT_EQ(answered, 50);  // bounded by max_pending
  EXPECT_EQ(refused, 250);
  EXPECT_EQ(server.pending(), 50u);
  EXPECT_EQ(server.sessions().size(), 1u);  // only the victim's, still live
  auto out = server.on_message("gorgone-2-victim", victim.encrypt("[COMMAND] [t1] [] {}"), 1002);
  EXPECT_EQ(out.kind, ServerKind::kMessage) << out.log;
  EXPECT_FALSE(out.persist);
  // Pending handshakes nobody used are forgotten.
  (void)server.rotate(1001 + 61, 0);
  EXPECT_EQ(server.pending(), 0u);
}

TEST_F(HandshakeHostile, HelosAreRateLimitedPerPeerAndTheRefusalIsLoggedOnce) {
  auto cfg = config();
  cfg.helo_per_minute = 5;
  HandshakeServer server(cfg);
  RsaKey server_pub = RsaKey::load_public(server_key_->public_pem_wire()).value();
  RsaKey pub = RsaKey::load_public(client_key_->public_pem_wire()).value();
  int answered = 0, logged = 0;
  for (int i = 0; i < 20; ++i) {
    auto out = server.on_message("gorgone-f" + std::to_string(i), forged_helo(server_pub, pub, "f"), 1020, "10.1.2.3");
    if (out.kind == ServerKind::kNewSession) ++answered;
    else if (!out.log.empty()) ++logged;
  }
  EXPECT_EQ(answered, 5);
  EXPECT_EQ(logged, 1);
  // Another peer is not affected, and the next minute the first one may try again.
  EXPECT_EQ(server.on_message("gorgone-g", forged_helo(server_pub, pub, "g"), 1020, "10.9.9.9").kind,
            ServerKind::kNewSession);
  EXPECT_EQ(server.on_message("gorgone-h", forged_helo(server_pub, pub, "h"), 1080, "10.1.2.3").kind,
            ServerKind::kNewSession);
}

TEST_F(HandshakeHostile, SessionCountIsCapped) {
  auto cfg = config();
  cfg.max_sessions = 3;
  HandshakeServer server(cfg);
  for (int i = 0; i < 3; ++i) connect(server, "gorgone-s" + std::to_string(i), 1000);
  HandshakeClient extra("gorgone-extra", *client_key_);
  auto helo = extra.on_message(server.on_message("gorgone-s9", extra.start(), 1000).reply);
  auto out = server.on_message("gorgone-s9", helo.text, 1000);
  EXPECT_EQ(out.kind, ServerKind::kReply);
  EXPECT_EQ(out.log, "handshake refused: 3 sessions already (max_sessions)");
}

TEST_F(HandshakeHostile, AReplayedFrameRunsOnce) {
  HandshakeServer server(config());
  HandshakeClient client = connect(server, "gorgone-r", 1000);
  std::string wire = client.encrypt("[COMMAND] [tok-1] [] {\"content\":[{\"command\":\"touch /tmp/x\"}]}");
  EXPECT_EQ(server.on_message("gorgone-r", wire, 1001).kind, ServerKind::kMessage);
  auto again = server.on_message("gorgone-r", wire, 1002);
  EXPECT_EQ(again.kind, ServerKind::kDropped);
  EXPECT_NE(again.log.find("replayed frame refused"), std::string::npos);
  // Centreon sends several frames under one token (the commands of one request): each runs.
  EXPECT_EQ(server.on_message("gorgone-r", client.encrypt("[COMMAND] [tok-1] [] {}"), 1003).kind, ServerKind::kMessage);
  EXPECT_EQ(server.on_message("gorgone-r", client.encrypt("[COMMAND] [tok-2] [] {}"), 1003).kind, ServerKind::kMessage);
  // Periodic polls repeat byte for byte, and must.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(server.on_message("gorgone-r", client.encrypt("[PING] [] [] {}"), 1004).kind, ServerKind::kMessage);
    EXPECT_EQ(server.on_message("gorgone-r", client.encrypt("[GETLOG] [] [] {\"ctime\":5}"), 1004).kind,
              ServerKind::kMessage);
  }
  // A request without a token runs once for the same text.
  std::string tokenless = client.encrypt("[COMMAND] [] [] {\"content\":[]}");
  EXPECT_EQ(server.on_message("gorgone-r", tokenless, 1005).kind, ServerKind::kMessage);
  EXPECT_EQ(server.on_message("gorgone-r", tokenless, 1005).kind, ServerKind::kDropped);
}

TEST_F(HandshakeHostile, CopySeriesRepeatChunksAndShareTokensButEndOnce) {
  HandshakeServer server(config());
  HandshakeClient client = connect(server, "gorgone-c", 1000);
  // Two identical chunks (a file of zeros) are both delivered.
  std::string chunk = "[PROCESSCOPY] [copy-1] [] {\"content\":{\"status\":\"inprogress\",\"chunk\":{\"data\":\"AAAA\\n\",\"size\":3}}}";
  std::string end = "[PROCESSCOPY] [copy-1] [] {\"content\":{\"status\":\"end\",\"md5\":\"x\"}}";
  EXPECT_EQ(server.on_message("gorgone-c", client.encrypt(chunk), 1001).kind, ServerKind::kMessage);
  EXPECT_EQ(server.on_message("gorgone-c", client.encrypt(chunk), 1001).kind, ServerKind::kMessage);
  EXPECT_EQ(server.on_message("gorgone-c", client.encrypt(end), 1001).kind, ServerKind::kMessage);
  // Replayed, the series ends on a refused "end": nothing is installed (a chunk is not
  // remembered, since a file may repeat one).
  EXPECT_EQ(server.on_message("gorgone-c", client.encrypt(end), 1002).kind, ServerKind::kDropped);
  // A configuration export sends several series under one token: the next one goes through.
  std::string other = "[PROCESSCOPY] [copy-1] [] {\"content\":{\"status\":\"inprogress\",\"chunk\":{\"data\":\"QkJC\\n\",\"size\":3},\"destination\":\"/b\"}}";
  std::string other_end = "[PROCESSCOPY] [copy-1] [] {\"content\":{\"status\":\"end\",\"md5\":\"y\",\"destination\":\"/b\"}}";
  EXPECT_EQ(server.on_message("gorgone-c", client.encrypt(other), 1003).kind, ServerKind::kMessage);
  EXPECT_EQ(server.on_message("gorgone-c", client.encrypt(other_end), 1003).kind, ServerKind::kMessage);
}

TEST_F(HandshakeHostile, ARotationTheClientNeverGotIsUndone) {
  HandshakeServer server(config());
  HandshakeClient client = connect(server, "gorgone-u", 1000);
  auto rotations = server.rotate(1100, 60);
  ASSERT_EQ(rotations.size(), 1u);
  // The [KEY] could not be sent (the peer is not connected): the owner puts the session back.
  server.restore("gorgone-u", std::move(rotations[0].before));
  EXPECT_TRUE(server.session("gorgone-u")->oldkey.empty());
  auto out = server.on_message("gorgone-u", client.encrypt("[COMMAND] [u1] [] {}"), 1101);
  EXPECT_EQ(out.kind, ServerKind::kMessage);
  auto reply = server.encrypt_for("gorgone-u", "[ACK] [u1] {\"code\":0,\"data\":null}");
  ASSERT_TRUE(reply);
  EXPECT_EQ(client.on_message(*reply).kind, ClientKind::kMessage);
  // And it is tried again at the next check.
  EXPECT_EQ(server.rotate(1105, 60).size(), 1u);
}

TEST_F(HandshakeHostile, AFullReplayMemoryRotatesTheKeyAndOldFramesStayRefused) {
  auto cfg = config();
  cfg.replay_capacity = 16;
  HandshakeServer server(cfg);
  HandshakeClient client = connect(server, "gorgone-m", 1000);
  std::vector<std::string> first_key_frames;
  for (int i = 0; i < 16; ++i) {
    first_key_frames.push_back(client.encrypt("[COMMAND] [a" + std::to_string(i) + "] [] {}"));
    EXPECT_EQ(server.on_message("gorgone-m", first_key_frames.back(), 1001).kind, ServerKind::kMessage);
  }
  EXPECT_TRUE(server.session("gorgone-m")->rekey);
  auto rotations = server.rotate(1002, 0);  // no age rotation: the memory asks for it
  ASSERT_EQ(rotations.size(), 1u);
  ASSERT_EQ(client.on_message(rotations[0].wire).kind, ClientKind::kRotated);
  // Frames under the previous key are still accepted once, and their replays still refused.
  EXPECT_EQ(server.on_message("gorgone-m", first_key_frames[0], 1003).kind, ServerKind::kDropped);
  EXPECT_EQ(server.on_message("gorgone-m", client.encrypt("[COMMAND] [a0] [] {}"), 1003).kind, ServerKind::kMessage);
  // Two rotations later the first key no longer decrypts at all: a replay is not a frame.
  for (int i = 0; i < 16; ++i) (void)server.on_message("gorgone-m", client.encrypt("[COMMAND] [b" + std::to_string(i) + "] [] {}"), 1004);
  auto second = server.rotate(1005, 0);
  ASSERT_EQ(second.size(), 1u);
  auto stale = server.on_message("gorgone-m", first_key_frames[1], 1006);
  EXPECT_NE(stale.kind, ServerKind::kMessage);
  EXPECT_EQ(server.session("gorgone-m")->seen.size() + server.session("gorgone-m")->seen_old.size(), 17u);
}

TEST(ReplayMemory, RemembersManyHashesAndForgetsOnClear) {
  ReplayMemory m;
  for (std::uint64_t i = 0; i < 10000; ++i) EXPECT_TRUE(m.insert(i * 0x9e3779b97f4a7c15ULL));
  EXPECT_EQ(m.size(), 10000u);
  for (std::uint64_t i = 0; i < 10000; ++i) EXPECT_FALSE(m.insert(i * 0x9e3779b97f4a7c15ULL));
  EXPECT_TRUE(m.contains(0));  // 0 is stored as 1, and 0 went in first
  m.clear();
  EXPECT_EQ(m.size(), 0u);
  EXPECT_FALSE(m.contains(12345));
}

}  // namespace
}  // namespace gorgone::protocol
