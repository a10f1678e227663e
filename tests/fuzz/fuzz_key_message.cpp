// parse_key_message on arbitrary plaintext: what it accepts survives build_key_message and a
// second parse unchanged (the server sends what the client will read).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.hpp"
#include "gorgone/protocol/handshake.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gorgone::protocol;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = parse_key_message(text);
  if (!m) {
    FUZZ_CHECK(!m.error().empty());
    return 0;
  }
  FUZZ_CHECK(m->key.size() == 16 || m->key.size() == 24 || m->key.size() == 32);
  FUZZ_CHECK(m->iv.size() == 16);
  FUZZ_CHECK(SymmetricCipher::create(m->key, m->iv).ok());
  auto again = parse_key_message(build_key_message(*m));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->hostname == m->hostname);
  FUZZ_CHECK(again->cipher == m->cipher);
  FUZZ_CHECK(again->padding == m->padding);
  FUZZ_CHECK(again->key == m->key);
  FUZZ_CHECK(again->iv == m->iv);
  return 0;
}
