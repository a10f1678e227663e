// SymmetricCipher on arbitrary wire text (what a peer can send) and arbitrary plaintext.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gorgone::protocol;
  using gorgone::fuzz::fixed_bytes;
  if (size == 0) return 0;
  static const std::size_t kSizes[] = {16, 24, 32};
  std::size_t key_size = kSizes[data[0] % 3];
  auto cipher = SymmetricCipher::create(fixed_bytes(key_size, 1), fixed_bytes(16, 99));
  FUZZ_CHECK(cipher.ok());
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  auto plain = cipher->decrypt_from_base64(text);
  // Checked against the decoded bytes: strict base64 still accepts non-zero padding bits.
  if (plain) FUZZ_CHECK(cipher->encrypt(plain.value()) == base64_decode(text).value());
  auto raw = cipher->decrypt(text);
  if (raw) FUZZ_CHECK(cipher->encrypt(raw.value()) == text);

  std::string wire = cipher->encrypt_to_base64(text);
  auto back = cipher->decrypt_from_base64(wire);
  FUZZ_CHECK(back.ok() && back.value() == text);
  return 0;
}
