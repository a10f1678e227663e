// Shared helpers of the fuzz targets: fixed keys made once per process (RSA generation is far
// too slow to repeat per input) and a check that aborts, so that a broken invariant is reported
// by libFuzzer like a crash, with the input that caused it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gorgone/protocol/crypto.hpp"

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

namespace gorgone::fuzz {

inline const protocol::RsaKey& server_key() {
  static const protocol::RsaKey key = protocol::RsaKey::generate(2048).value();
  return key;
}

inline const protocol::RsaKey& client_key() {
  static const protocol::RsaKey key = protocol::RsaKey::generate(2048).value();
  return key;
}

// Fixed session material: the fuzzer cannot forge AES, so the targets encrypt its bytes
// themselves with a key the state machines are told about.
inline std::string fixed_bytes(std::size_t n, unsigned char seed) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>(seed + 7 * i);
  return out;
}

// Reads the record format of the stateful targets: one header byte, then records of
// [op byte][length, 2 bytes big-endian][body]. A short last record takes what is left. Plain
// enough that seeds can be written by hand from recorded messages.
class Records {
 public:
  Records(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  std::uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  bool next(std::uint8_t* op, std::string* body) {
    if (p_ >= end_) return false;
    *op = byte();
    std::size_t len = static_cast<std::size_t>(byte()) << 8;
    len |= byte();
    std::size_t n = std::min<std::size_t>(len, static_cast<std::size_t>(end_ - p_));
    body->assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

}  // namespace gorgone::fuzz
