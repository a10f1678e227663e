// Base64, which every frame crosses twice on the wire (the AES envelope) and a PROCESSCOPY
// chunk once more (its MIME payload): our encoder and decoders against OpenSSL's
// EVP_EncodeBlock/EVP_DecodeBlock on the same 4 MiB, in one run. Prints MiB/s.
// Run: ./build/tests/bench/base64_bench
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "gorgone/protocol/crypto.hpp"

using Clock = std::chrono::steady_clock;

namespace {

template <typename F>
double mib_per_s(std::size_t bytes, int rounds, F&& f) {
  auto start = Clock::now();
  std::size_t sink = 0;
  for (int r = 0; r < rounds; ++r) sink += f();
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (sink == 0) std::printf("(nothing produced)\n");
  return static_cast<double>(bytes) * rounds / (1 << 20) / s;
}

}  // namespace

int main() {
  using namespace gorgone::protocol;
  std::mt19937_64 rng(7);
  std::string raw(4 << 20, '\0');
  for (auto& c : raw) c = static_cast<char>(rng());
  const std::string text = base64_encode(raw);
  // MIME style, as Perl's encode_base64 writes a PROCESSCOPY chunk: 76 characters a line.
  std::string mime;
  for (std::size_t i = 0; i < text.size(); i += 76) mime += text.substr(i, 76) + "\n";
  const int rounds = 20;
  std::string buf(text.size() + 4, '\0');

  double ours_enc = mib_per_s(raw.size(), rounds, [&] { return base64_encode(raw).size(); });
  double ssl_enc = mib_per_s(raw.size(), rounds, [&] {
    return static_cast<std::size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(buf.data()),
                                                    reinterpret_cast<const unsigned char*>(raw.data()),
                                                    static_cast<int>(raw.size())));
  });
  double ours_dec = mib_per_s(raw.size(), rounds, [&] { return base64_decode(text).value().size(); });
  double ours_lenient = mib_per_s(raw.size(), rounds, [&] { return base64_decode_lenient(mime).size(); });
  double ours_mime = mib_per_s(raw.size(), rounds, [&] { return base64_decode_mime(mime).value().size(); });
  double ssl_dec = mib_per_s(raw.size(), rounds, [&] {
    return static_cast<std::size_t>(EVP_DecodeBlock(reinterpret_cast<unsigned char*>(buf.data()),
                                                    reinterpret_cast<const unsigned char*>(text.data()),
                                                    static_cast<int>(text.size())));
  });
  std::printf("base64 of 4 MiB, %d rounds (MiB of raw bytes per second)\n", rounds);
  std::printf("  encode           ours %7.0f   OpenSSL EVP_EncodeBlock %7.0f   ratio %.2f\n", ours_enc, ssl_enc,
              ours_enc / ssl_enc);
  std::printf("  decode strict    ours %7.0f   OpenSSL EVP_DecodeBlock %7.0f   ratio %.2f\n", ours_dec, ssl_dec,
              ours_dec / ssl_dec);
  std::printf("  decode lenient   ours %7.0f   (lines of 76, as Perl's decode_base64: the SSH link's copies)\n",
              ours_lenient);
  std::printf("  decode MIME      ours %7.0f   (lines of 76, checked: the action module's PROCESSCOPY chunks)\n",
              ours_mime);
  return 0;
}
