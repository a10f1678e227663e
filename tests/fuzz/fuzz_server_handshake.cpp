// HandshakeServer::on_message with an arbitrary peer identity and a sequence of arbitrary
// messages: raw bytes, bytes encrypted with the peer's current or previous session key (the
// fuzzer cannot forge AES), HELOs with a fuzzed first field, and key rotations in between.
// Input: flags byte (bit 0: a session exists, bit 1: it has a previous key), identity length
// byte, identity, then records: op % 5 = 0 raw, 1 current key, 2 previous key, 3 HELO whose
// first field is the body, 4 rotation (body: 3 bytes of clock advance, 3 bytes of period). A
// handshake answered is pending: op 1 encrypts with its key (flag bit 2: even when a session lives).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fuzz_support.hpp"
#include "gorgone/protocol/handshake.hpp"

namespace {

using namespace gorgone::protocol;
using gorgone::fuzz::client_key;
using gorgone::fuzz::fixed_bytes;
using gorgone::fuzz::server_key;

const HandshakeServer& prototype() {
  static const HandshakeServer server(
      HandshakeServer::Config{server_key(), {client_key().jwk_thumbprint()}, "fuzz-poller", 32});
  return server;
}

const std::string& helo_tail() {
  static const std::string tail = "] [" + base64_encode(client_key().public_pem_wire()) + "] [" +
                                  base64_encode(server_key().encrypt_pkcs1("HELO").value()) + "]";
  return tail;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  gorgone::fuzz::Records in(data, size);
  HandshakeServer server = prototype();
  std::uint8_t flags = in.byte();
  std::string identity;
  for (std::uint8_t n = in.byte() % 65; n > 0; --n) identity.push_back(static_cast<char>(in.byte()));
  if (flags & 1) {
    HandshakeServer::Session s;
    s.key = fixed_bytes(32, 3);
    s.iv = fixed_bytes(16, 5);
    if (flags & 2) {
      s.oldkey = fixed_bytes(16, 11);
      s.oldiv = fixed_bytes(16, 13);
    }
    server.restore(identity, s);
  }
  auto number = [](const std::string& b, std::size_t at) {
    std::int64_t v = 0;
    for (std::size_t i = at; i < at + 3; ++i) v = (v << 8) | (i < b.size() ? static_cast<std::uint8_t>(b[i]) : 0);
    return v;
  };
  std::int64_t now = 1000000;
  std::optional<KeyMessage> offered;  // the key of the last handshake answered (pending)
  std::uint8_t op = 0;
  std::string body;
  for (int steps = 0; steps < 16 && in.next(&op, &body); ++steps) {
    op %= 5;
    if (op == 4) {
      now += number(body, 0);
      std::int64_t rotation = number(body, 3) - 1;  // -1 and 0 disable rotation
      for (const auto& rot : server.rotate(now, rotation)) {
        FUZZ_CHECK(server.session(rot.identity) != nullptr);
        FUZZ_CHECK(!rot.wire.empty());
      }
      continue;
    }
    std::string wire;
    const HandshakeServer::Session* s = server.session(identity);
    if (op == 1 && s != nullptr && !(offered && (flags & 4))) {
      wire = SymmetricCipher::create(s->key, s->iv).value().encrypt_to_base64(body);
    } else if (op == 1 && offered) {
      wire = SymmetricCipher::create(offered->key, offered->iv).value().encrypt_to_base64(body);
    } else if (op == 2 && s != nullptr && !s->oldkey.empty()) {
      wire = SymmetricCipher::create(s->oldkey, s->oldiv).value().encrypt_to_base64(body);
    } else if (op == 3) {
      wire = "[" + body + helo_tail();
    } else {
      wire = body;
    }
    auto out = server.on_message(identity, wire, now);
    FUZZ_CHECK(out.log.size() <= 1024);
    switch (out.kind) {
      case HandshakeServer::Outcome::Kind::kReply:
        FUZZ_CHECK(!out.reply.empty());
        break;
      case HandshakeServer::Outcome::Kind::kNewSession: {
        // The sealed KEY is readable by the client; the session stays pending (a live one is
        // not replaced) until a frame under that key arrives.
        auto sealed = base64_decode(out.reply);
        FUZZ_CHECK(sealed.ok());
        auto plain = client_key().decrypt_pkcs1(sealed.value());
        FUZZ_CHECK(plain.ok());
        auto m = parse_key_message(plain.value());
        FUZZ_CHECK(m.ok());
        const auto* live = server.session(identity);
        FUZZ_CHECK(live == nullptr || live->key != m->key);
        offered = std::move(m.value());
        break;
      }
      case HandshakeServer::Outcome::Kind::kMessage:
        FUZZ_CHECK(!out.plaintext.empty() && out.plaintext[0] == '[');
        FUZZ_CHECK(server.session(identity) != nullptr);
        if (out.persist) FUZZ_CHECK(offered && server.session(identity)->key == offered->key);
        break;
      case HandshakeServer::Outcome::Kind::kDropped:
        FUZZ_CHECK(!out.log.empty() && out.reply.empty() && out.plaintext.empty());
        break;
    }
  }
  return 0;
}
