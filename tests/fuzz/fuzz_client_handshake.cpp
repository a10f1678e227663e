// HandshakeClient::on_message in each state: waiting for PUBKEY (raw bytes, or a fuzzed key
// inside a well-formed [PUBKEY]), waiting for KEY (raw bytes, or bytes RSA-encrypted for the
// client so that parse_key_message sees them), and established (bytes encrypted with the
// session key, following rotations the fuzzer sends).
// Input: mode byte (0 wait PUBKEY, 1 wait KEY, 2 established, 3 never started), then records
// whose op bit 0 asks for the wrapping described above.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "gorgone/protocol/handshake.hpp"

namespace {

using namespace gorgone::protocol;
using gorgone::fuzz::client_key;
using gorgone::fuzz::server_key;
using State = HandshakeClient::State;
using Kind = HandshakeClient::Step::Kind;

const std::string kIdentity = "gorgone-proxy-1-2-0123456789abcdef01234567";

struct Prototypes {
  HandshakeClient idle{"gorgone-proxy-1-2", client_key()};
  HandshakeClient wait_pubkey{"gorgone-proxy-1-2", client_key()};
  HandshakeClient wait_key{"gorgone-proxy-1-2", client_key()};
  HandshakeClient established{"gorgone-proxy-1-2", client_key()};
  std::string key, iv;

  Prototypes() {
    HandshakeServer server(HandshakeServer::Config{server_key(), {client_key().jwk_thumbprint()}, "fuzz", 32});
    (void)wait_pubkey.start();
    wait_key = wait_pubkey;
    auto pub = server.on_message(kIdentity, wait_key.start(), 1);
    auto helo = wait_key.on_message(pub.reply);
    FUZZ_CHECK(helo.kind == Kind::kSend && wait_key.state() == State::kWaitKey);
    established = wait_key;
    auto sealed = server.on_message(kIdentity, helo.text, 1);
    FUZZ_CHECK(sealed.kind == HandshakeServer::Outcome::Kind::kNewSession);
    FUZZ_CHECK(established.on_message(sealed.reply).kind == Kind::kEstablished);
    // The server's session starts with the client's first frame.
    FUZZ_CHECK(server.on_message(kIdentity, established.encrypt("[PING] [] [] {}"), 1).kind ==
               HandshakeServer::Outcome::Kind::kMessage);
    key = server.session(kIdentity)->key;
    iv = server.session(kIdentity)->iv;
  }
};

const Prototypes& prototypes() {
  static const Prototypes p;
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  gorgone::fuzz::Records in(data, size);
  const Prototypes& p = prototypes();
  int mode = in.byte() % 4;
  HandshakeClient client = mode == 0 ? p.wait_pubkey : mode == 1 ? p.wait_key : mode == 2 ? p.established : p.idle;
  std::string key = p.key, iv = p.iv;

  std::uint8_t op = 0;
  std::string body;
  for (int steps = 0; steps < 8 && in.next(&op, &body); ++steps) {
    State before = client.state();
    bool wrap = op & 1;
    std::string wire = body;
    if (wrap && before == State::kWaitPubkey) {
      wire = "[PUBKEY] [" + base64_encode(body) + "]";
    } else if (wrap && before == State::kWaitKey) {
      // PKCS#1 v1.5 with a 2048-bit key holds at most 245 bytes.
      auto ct = client_key().encrypt_pkcs1(body.substr(0, 245));
      FUZZ_CHECK(ct.ok());
      wire = base64_encode(ct.value());
      body = body.substr(0, 245);
    } else if (wrap && before == State::kEstablished) {
      wire = SymmetricCipher::create(key, iv).value().encrypt_to_base64(body);
    }
    auto step = client.on_message(wire);
    switch (step.kind) {
      case Kind::kSend:
        FUZZ_CHECK(before == State::kWaitPubkey && client.state() == State::kWaitKey);
        FUZZ_CHECK(client.server_key().has_value());
        break;
      case Kind::kEstablished:
        FUZZ_CHECK(before == State::kWaitKey && client.state() == State::kEstablished);
        break;
      case Kind::kMessage:
        FUZZ_CHECK(before == State::kEstablished && client.state() == State::kEstablished);
        FUZZ_CHECK(!step.text.empty() && step.text[0] == '[');
        break;
      case Kind::kRotated: {
        FUZZ_CHECK(before == State::kEstablished && client.state() == State::kEstablished);
        // Follow the rotation the way the server would.
        auto m = parse_key_message(body);
        FUZZ_CHECK(m.ok());
        key = m->key;
        iv = m->iv;
        break;
      }
      case Kind::kFailed:
        FUZZ_CHECK(client.state() == State::kFailed);
        FUZZ_CHECK(!step.text.empty() && step.text.size() <= 1024);
        break;
      case Kind::kIgnored:
        FUZZ_CHECK(before == State::kIdle || before == State::kFailed);
        break;
    }
    if (client.state() == State::kEstablished) FUZZ_CHECK(!client.encrypt("[PING] [] []").empty());
  }
  return 0;
}
