// Gorgone's cryptography over OpenSSL 3 EVP interfaces (no deprecated RSA_* calls).

#include "gorgone/protocol/crypto.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

namespace gorgone::protocol {

namespace {

constexpr char kB64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64UrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Key files and PEM texts are small; anything larger is not a key.
constexpr std::size_t kMaxKeyText = 1 << 20;

// Value of each byte as a standard base64 character; 0x80 (sign bit of an int8) otherwise, so
// that four values ORed together say at once whether a group is clean.
struct B64Table {
  std::int8_t v[256];
  constexpr B64Table() : v() {
    for (int i = 0; i < 256; ++i) v[i] = static_cast<std::int8_t>(-128);
    for (int i = 0; i < 64; ++i) v[static_cast<unsigned char>(kB64Alphabet[i])] = static_cast<std::int8_t>(i);
  }
};
constexpr B64Table kB64Values{};

int b64_value(unsigned char c) { return kB64Values.v[c] < 0 ? -1 : kB64Values.v[c]; }

// Decodes whole groups of 4 clean characters from text[*i] on into out[*o] and advances both;
// stops before `end` or at the first group holding anything else.
void decode_groups(const unsigned char* text, std::size_t end, std::size_t* i, char* out, std::size_t* o) {
  std::size_t a = *i, b = *o;
  for (; a + 4 <= end; a += 4, b += 3) {
    const int c0 = kB64Values.v[text[a]], c1 = kB64Values.v[text[a + 1]], c2 = kB64Values.v[text[a + 2]],
              c3 = kB64Values.v[text[a + 3]];
    if ((c0 | c1 | c2 | c3) < 0) break;
    const std::uint32_t v = (static_cast<std::uint32_t>(c0) << 18) | (static_cast<std::uint32_t>(c1) << 12) |
                            (static_cast<std::uint32_t>(c2) << 6) | static_cast<std::uint32_t>(c3);
    out[b] = static_cast<char>(v >> 16);
    out[b + 1] = static_cast<char>(v >> 8);
    out[b + 2] = static_cast<char>(v);
  }
  *i = a;
  *o = b;
}

std::string encode_with(std::string_view bytes, const char* alphabet, bool pad) {
  const std::size_t groups = bytes.size() / 3, rest = bytes.size() % 3;
  std::string out(groups * 4 + (rest == 0 ? 0 : pad ? 4 : rest + 1), '\0');
  const auto* in = reinterpret_cast<const unsigned char*>(bytes.data());
  char* o = out.data();
  for (std::size_t g = 0; g < groups; ++g, in += 3, o += 4) {
    const std::uint32_t v = (static_cast<std::uint32_t>(in[0]) << 16) | (static_cast<std::uint32_t>(in[1]) << 8) | in[2];
    o[0] = alphabet[(v >> 18) & 63];
    o[1] = alphabet[(v >> 12) & 63];
    o[2] = alphabet[(v >> 6) & 63];
    o[3] = alphabet[v & 63];
  }
  if (rest > 0) {
    std::uint32_t v = static_cast<std::uint32_t>(in[0]) << 16;
    if (rest == 2) v |= static_cast<std::uint32_t>(in[1]) << 8;
    *o++ = alphabet[(v >> 18) & 63];
    *o++ = alphabet[(v >> 12) & 63];
    if (rest == 2) *o++ = alphabet[(v >> 6) & 63];
    if (pad) {
      *o++ = '=';
      if (rest == 1) *o++ = '=';
    }
  }
  return out;
}

// Appends the bytes of 2..4 sextets held in `quad` (count `n`); a single sextet carries no byte.
void flush_quad(const int* quad, int n, std::string* out) {
  if (n >= 2) out->push_back(static_cast<char>((quad[0] << 2) | (quad[1] >> 4)));
  if (n >= 3) out->push_back(static_cast<char>(((quad[1] & 15) << 4) | (quad[2] >> 2)));
  if (n >= 4) out->push_back(static_cast<char>(((quad[2] & 3) << 6) | quad[3]));
}

std::string openssl_error(const char* what) {
  std::string msg = what;
  unsigned long code = ERR_get_error();
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    msg += ": ";
    msg += buf;
  }
  ERR_clear_error();
  return msg;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;

struct EncoderCtxDeleter {
  void operator()(OSSL_ENCODER_CTX* c) const { OSSL_ENCODER_CTX_free(c); }
};

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

// Refuses to prompt on a terminal for an encrypted PEM.
int no_password(char*, int, int, void*) { return -1; }

bool is_rsa(const EVP_PKEY* pkey) { return EVP_PKEY_is_a(pkey, "RSA") == 1; }

std::string bn_bytes(const EVP_PKEY* pkey, const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) return std::string();
  BnPtr bn(raw);
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn.get())), '\0');
  BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

// Splits "-----BEGIN <label>-----\n<base64>\n-----END <label>-----" into label and DER body.
// Any label is accepted because CryptX writes an SPKI body under "RSA PUBLIC KEY".
Result<std::pair<std::string, std::string>> unarmour(std::string_view pem) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  constexpr std::string_view kDashes = "-----";
  std::size_t b = pem.find(kBegin);
  if (b == std::string_view::npos) return make_error("no PEM header");
  std::size_t label_start = b + kBegin.size();
  std::size_t label_end = pem.find(kDashes, label_start);
  if (label_end == std::string_view::npos) return make_error("bad PEM header");
  std::string label(pem.substr(label_start, label_end - label_start));
  std::size_t body_start = label_end + kDashes.size();
  std::size_t end = pem.find("-----END ", body_start);
  if (end == std::string_view::npos) return make_error("no PEM footer");

  std::string b64;
  for (char c : pem.substr(body_start, end - body_start)) {
    if (c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
    b64.push_back(c);
  }
  auto der = base64_decode(b64);
  if (!der) return make_error("bad PEM body: " + der.error());
  return std::make_pair(std::move(label), std::move(der.value()));
}

// DER of an RSA SubjectPublicKeyInfo, by hand. OpenSSL 3.0's i2d_PUBKEY and d2i_PUBKEY go
// through its encoder and decoder lookups, about 70 and 100 us a call on our machines (the
// RSA operation of a HELO costs 20 us): every push_zmq handshake parses the node's key and
// sends ours, so a central that connects thousands of nodes spent a third of its handshake
// CPU there. What is built here is the one DER encoding of the key (tests compare it with
// i2d_PUBKEY), and it is read back only where it is exactly that (see rsa_spki_key()).
void der_length(std::string& out, std::size_t n) {
  if (n < 0x80) {
    out.push_back(static_cast<char>(n));
    return;
  }
  char bytes[sizeof(std::size_t)];
  int count = 0;
  for (; n != 0; n >>= 8) bytes[count++] = static_cast<char>(n & 0xff);
  out.push_back(static_cast<char>(0x80 | count));
  while (count > 0) out.push_back(bytes[--count]);
}

void der_tlv(std::string& out, unsigned char tag, std::string_view content) {
  out.push_back(static_cast<char>(tag));
  der_length(out, content.size());
  out.append(content);
}

// A non-negative INTEGER from its big-endian magnitude (no leading zero byte).
void der_unsigned(std::string& out, std::string_view magnitude) {
  std::string content;
  if (magnitude.empty() || static_cast<unsigned char>(magnitude[0]) & 0x80) content.push_back('\0');
  content.append(magnitude);
  der_tlv(out, 0x02, content);
}

// SEQUENCE { AlgorithmIdentifier { rsaEncryption, NULL }, BIT STRING { RSAPublicKey { n, e } } }
std::string rsa_spki_der(std::string_view n, std::string_view e) {
  static constexpr unsigned char kRsaAlgorithm[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                                    0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};
  std::string integers;
  der_unsigned(integers, n);
  der_unsigned(integers, e);
  std::string rsa_key;
  der_tlv(rsa_key, 0x30, integers);
  std::string bits(1, '\0');  // no unused bits
  bits += rsa_key;
  std::string body(reinterpret_cast<const char*>(kRsaAlgorithm), sizeof kRsaAlgorithm);
  der_tlv(body, 0x03, bits);
  std::string out;
  der_tlv(out, 0x30, body);
  return out;
}

// Reads the tag `tag` at der[*pos] and returns its content, moving *pos past it; nullopt when
// it is not there or does not fit. Lengths are read as given: the caller accepts only what
// re-encodes to the same bytes, which refuses non-minimal forms.
std::optional<std::string_view> der_read(std::string_view der, std::size_t* pos, unsigned char tag) {
  std::size_t p = *pos;
  if (p + 2 > der.size() || static_cast<unsigned char>(der[p]) != tag) return std::nullopt;
  std::size_t len = static_cast<unsigned char>(der[p + 1]);
  p += 2;
  if (len & 0x80) {
    const std::size_t count = len & 0x7f;
    if (count == 0 || count > 4 || p + count > der.size()) return std::nullopt;
    len = 0;
    for (std::size_t i = 0; i < count; ++i) len = (len << 8) | static_cast<unsigned char>(der[p + i]);
    p += count;
  }
  if (len > der.size() - p) return std::nullopt;
  *pos = p + len;
  return der.substr(p, len);
}

// A non-negative INTEGER's magnitude without its leading zero bytes.
std::string_view der_magnitude(std::string_view content) {
  while (!content.empty() && content[0] == '\0') content.remove_prefix(1);
  return content;
}

EVP_PKEY* rsa_public_from(std::string_view n, std::string_view e) {
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
  if (!bn_n || !bn_e) return nullptr;
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY* pkey = nullptr;
  if (bld != nullptr && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e.get()) == 1 &&
      (params = OSSL_PARAM_BLD_to_param(bld)) != nullptr) {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
      pkey = nullptr;
  }
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  if (pkey == nullptr) ERR_clear_error();
  return pkey;
}

// The key of an RSA SubjectPublicKeyInfo in its one DER encoding (what Gorgone, CryptX and
// OpenSSL write), without OpenSSL's decoder lookup; nullptr for anything else (another
// algorithm, a non-minimal length or integer, a zero modulus or exponent, trailing bytes),
// which the caller hands to d2i_PUBKEY as before.
EVP_PKEY* rsa_spki_key(std::string_view der) {
  std::size_t pos = 0;
  auto outer = der_read(der, &pos, 0x30);
  if (!outer || pos != der.size()) return nullptr;
  std::size_t in = 0;
  if (!der_read(*outer, &in, 0x30)) return nullptr;  // the algorithm: checked by re-encoding
  auto bits = der_read(*outer, &in, 0x03);
  if (!bits || bits->empty() || (*bits)[0] != '\0') return nullptr;
  std::size_t k = 1;
  auto rsa_key = der_read(*bits, &k, 0x30);
  if (!rsa_key) return nullptr;
  std::size_t i = 0;
  auto n = der_read(*rsa_key, &i, 0x02);
  auto e = n ? der_read(*rsa_key, &i, 0x02) : std::nullopt;
  if (!e) return nullptr;
  const std::string_view n_mag = der_magnitude(*n), e_mag = der_magnitude(*e);
  if (n_mag.empty() || e_mag.empty() || n_mag.size() > 2048 || e_mag.size() > 2048) return nullptr;
  if (rsa_spki_der(n_mag, e_mag) != der) return nullptr;
  return rsa_public_from(n_mag, e_mag);
}

// SubjectPublicKeyInfo first (what CryptX sends), then PKCS#1 RSAPublicKey. Trailing bytes
// are refused so that one text cannot be read two ways.
EVP_PKEY* decode_public_der(const std::string& der) {
  if (der.size() > LONG_MAX) return nullptr;
  if (EVP_PKEY* fast = rsa_spki_key(der)) return fast;
  const auto* begin = reinterpret_cast<const unsigned char*>(der.data());
  const long len = static_cast<long>(der.size());

  const unsigned char* p = begin;
  EVP_PKEY* pkey = d2i_PUBKEY(nullptr, &p, len);
  if (pkey != nullptr && p == begin + len) return pkey;
  EVP_PKEY_free(pkey);

  p = begin;
  pkey = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, len);
  if (pkey != nullptr && p == begin + len) return pkey;
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  return nullptr;
}

Result<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open '" + path + "': " + std::strerror(errno));
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxKeyText) return make_error("'" + path + "' is too large for a key file");
  }
  return text;
}

const EVP_CIPHER* aes_cbc_for(std::size_t key_size) {
  switch (key_size) {
    case 16: return EVP_aes_128_cbc();
    case 24: return EVP_aes_192_cbc();
    case 32: return EVP_aes_256_cbc();
    default: return nullptr;
  }
}

// EVP update calls take an int length: feed large buffers in slices.
constexpr std::size_t kSlice = 1 << 30;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Encodings

std::string base64_encode(std::string_view bytes) { return encode_with(bytes, kB64Alphabet, true); }

std::string base64url_encode(std::string_view bytes) { return encode_with(bytes, kB64UrlAlphabet, false); }

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return make_error("invalid base64: length is not a multiple of 4");
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = (text.size() >= 2 && text[text.size() - 2] == '=') ? 2 : 1;
  const auto* in = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t end = text.size() - pad;
  std::string out(text.size() / 4 * 3, '\0');
  std::size_t i = 0, o = 0;
  decode_groups(in, end, &i, out.data(), &o);
  // What is left: the last group (2 or 3 sextets before its padding), or a bad character.
  int quad[4];
  int n = 0;
  out.resize(o);
  for (; i < end; ++i) {
    int v = b64_value(in[i]);
    if (v < 0) return make_error("invalid base64: unexpected character at offset " + std::to_string(i));
    quad[n++] = v;
    if (n == 4) {
      flush_quad(quad, 4, &out);
      n = 0;
    }
  }
  // With 1 or 2 '=' the last group holds 3 or 2 sextets.
  if (n != 0 && n != 4 - static_cast<int>(pad)) return make_error("invalid base64: bad padding");
  flush_quad(quad, n, &out);
  return out;
}

namespace {

// The decoders that skip characters. Lenient (Perl's decode_base64): anything outside the
// alphabet is skipped, the first '=' ends the text. Checked (MIME chunks): only spaces, tabs
// and line breaks are skipped; another character, data after a '=' or a lone last character
// is an error. Clean runs of whole groups go through the four-at-a-time path.
Result<std::string> decode_skipping(std::string_view text, bool checked) {
  const auto* in = reinterpret_cast<const unsigned char*>(text.data());
  std::string out(text.size() / 4 * 3 + 3, '\0');
  std::size_t i = 0, o = 0;
  std::uint32_t acc = 0;
  int n = 0;
  bool padding = false;
  while (i < text.size()) {
    if (n == 0 && !padding) {
      decode_groups(in, text.size(), &i, out.data(), &o);
      if (i >= text.size()) break;
    }
    const unsigned char c = in[i++];
    if (c == '=') {
      if (!checked) break;
      padding = true;
      continue;
    }
    const int v = kB64Values.v[c];
    if (v < 0 && (!checked || c == '\n' || c == '\r' || c == ' ' || c == '\t')) continue;
    if (v < 0 || padding)
      return make_error("invalid base64: unexpected character at offset " + std::to_string(i - 1));
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    if (++n == 4) {
      out[o++] = static_cast<char>(acc >> 16);
      out[o++] = static_cast<char>(acc >> 8);
      out[o++] = static_cast<char>(acc);
      acc = 0;
      n = 0;
    }
  }
  // A partial group of 2 or 3 sextets carries 1 or 2 bytes; a single sextet carries none.
  if (n == 1 && checked) return make_error("invalid base64: a lone character at the end");
  if (n >= 2) out[o++] = static_cast<char>(acc >> (6 * n - 8));
  if (n >= 3) out[o++] = static_cast<char>(acc >> (6 * n - 16));
  out.resize(o);
  return out;
}

}  // namespace

std::string base64_decode_lenient(std::string_view text) { return std::move(decode_skipping(text, false).value()); }

Result<std::string> base64_decode_mime(std::string_view text) { return decode_skipping(text, true); }

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

Result<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return make_error("invalid hex: odd length");
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return make_error("invalid hex: unexpected character at offset " + std::to_string(i));
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  std::size_t done = 0;
  while (done < n) {
    int chunk = static_cast<int>(std::min<std::size_t>(n - done, INT_MAX));
    // Keys and tokens must never be predictable: fail loudly rather than return weak bytes.
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data() + done), chunk) != 1)
      throw std::runtime_error(openssl_error("RAND_bytes failed"));
    done += static_cast<std::size_t>(chunk);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// SymmetricCipher

Result<SymmetricCipher> SymmetricCipher::create(std::string key, std::string iv) {
  if (aes_cbc_for(key.size()) == nullptr)
    return make_error("invalid AES key length " + std::to_string(key.size()) + " (expected 16, 24 or 32 bytes)");
  if (iv.size() != 16) return make_error("invalid IV length " + std::to_string(iv.size()) + " (expected 16 bytes)");
  return SymmetricCipher(std::move(key), std::move(iv));
}

std::string SymmetricCipher::encrypt(std::string_view plaintext) const {
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  const auto* key = reinterpret_cast<const unsigned char*>(key_.data());
  const auto* iv = reinterpret_cast<const unsigned char*>(iv_.data());
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), aes_cbc_for(key_.size()), nullptr, key, iv) != 1)
    throw std::runtime_error(openssl_error("AES encrypt init failed"));
  std::string out(plaintext.size() + 16, '\0');
  std::size_t written = 0;
  for (std::size_t off = 0; off < plaintext.size(); off += kSlice) {
    int in_len = static_cast<int>(std::min(kSlice, plaintext.size() - off));
    int len = 0;
    if (EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data() + written), &len,
                          reinterpret_cast<const unsigned char*>(plaintext.data() + off), in_len) != 1)
      throw std::runtime_error(openssl_error("AES encrypt failed"));
    written += static_cast<std::size_t>(len);
  }
  int len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data() + written), &len) != 1)
    throw std::runtime_error(openssl_error("AES encrypt failed"));
  out.resize(written + static_cast<std::size_t>(len));
  return out;
}

Result<std::string> SymmetricCipher::decrypt(std::string_view ciphertext) const {
  if (ciphertext.empty() || ciphertext.size() % 16 != 0)
    return make_error("cipher text length has to be multiple of 16 (" + std::to_string(ciphertext.size()) + ")");
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  const auto* key = reinterpret_cast<const unsigned char*>(key_.data());
  const auto* iv = reinterpret_cast<const unsigned char*>(iv_.data());
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), aes_cbc_for(key_.size()), nullptr, key, iv) != 1)
    return make_error(openssl_error("AES decrypt init failed"));
  std::string out(ciphertext.size() + 16, '\0');
  std::size_t written = 0;
  for (std::size_t off = 0; off < ciphertext.size(); off += kSlice) {
    int in_len = static_cast<int>(std::min(kSlice, ciphertext.size() - off));
    int len = 0;
    if (EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data() + written), &len,
                          reinterpret_cast<const unsigned char*>(ciphertext.data() + off), in_len) != 1)
      return make_error(openssl_error("AES decrypt failed"));
    written += static_cast<std::size_t>(len);
  }
  int len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data() + written), &len) != 1) {
    ERR_clear_error();
    return make_error("padding_depad failed: bad PKCS#7 padding");
  }
  out.resize(written + static_cast<std::size_t>(len));
  return out;
}

std::string SymmetricCipher::encrypt_to_base64(std::string_view plaintext) const {
  return base64_encode(encrypt(plaintext));
}

Result<std::string> SymmetricCipher::decrypt_from_base64(std::string_view wire) const {
  auto raw = base64_decode(wire);
  if (!raw) return make_error(raw.error());
  return decrypt(raw.value());
}

// ---------------------------------------------------------------------------------------------
// RsaKey

RsaKey::RsaKey() = default;

RsaKey::~RsaKey() { EVP_PKEY_free(pkey_); }

RsaKey::RsaKey(RsaKey&& other) noexcept : pkey_(other.pkey_) { other.pkey_ = nullptr; }

RsaKey& RsaKey::operator=(RsaKey&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(pkey_);
    pkey_ = other.pkey_;
    other.pkey_ = nullptr;
  }
  return *this;
}

// Keys are never modified after loading, so copies share the same EVP_PKEY.
RsaKey::RsaKey(const RsaKey& other) : pkey_(other.pkey_) {
  if (pkey_ != nullptr) EVP_PKEY_up_ref(pkey_);
}

RsaKey& RsaKey::operator=(const RsaKey& other) {
  if (this != &other) {
    if (other.pkey_ != nullptr) EVP_PKEY_up_ref(other.pkey_);
    EVP_PKEY_free(pkey_);
    pkey_ = other.pkey_;
  }
  return *this;
}

Result<RsaKey> RsaKey::generate(int bits) {
  if (bits < 1024 || bits > 16384) return make_error("unsupported RSA key size " + std::to_string(bits));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) != 1 ||
      EVP_PKEY_generate(ctx.get(), &pkey) != 1)
    return make_error(openssl_error("RSA key generation failed"));
  return RsaKey(pkey);
}

Result<RsaKey> RsaKey::load_private_pem(std::string_view pem) {
  if (pem.size() > kMaxKeyText) return make_error("private key text too large");
  if (pem.size() > INT_MAX) return make_error("private key text too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return make_error(openssl_error("cannot read private key"));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr);
  if (pkey == nullptr) return make_error(openssl_error("cannot load private key"));
  RsaKey key(pkey);
  if (!is_rsa(pkey)) return make_error("private key is not an RSA key");
  if (!key.has_private()) return make_error("not a private key");
  return key;
}

Result<RsaKey> RsaKey::load_public(std::string_view pem_or_der) {
  if (pem_or_der.size() > kMaxKeyText) return make_error("public key text too large");
  std::string der;
  if (pem_or_der.find("-----BEGIN ") != std::string_view::npos) {
    auto parts = unarmour(pem_or_der);
    if (!parts) return make_error("cannot load public key: " + parts.error());
    if (parts->first.find("PRIVATE") != std::string::npos)
      return make_error("cannot load public key: the text holds a private key");
    der = std::move(parts->second);
  } else {
    der.assign(pem_or_der);
  }
  EVP_PKEY* pkey = decode_public_der(der);
  if (pkey == nullptr) return make_error("cannot load public key: not an RSA SubjectPublicKeyInfo or PKCS#1 key");
  RsaKey key(pkey);
  if (!is_rsa(pkey)) return make_error("cannot load public key: not an RSA key");
  return key;
}

Result<RsaKey> RsaKey::load_private_file(const std::string& path) {
  auto text = read_small_file(path);
  if (!text) return make_error(text.error());
  auto key = load_private_pem(text.value());
  if (!key) return make_error("'" + path + "': " + key.error());
  return key;
}

Result<RsaKey> RsaKey::load_public_file(const std::string& path) {
  auto text = read_small_file(path);
  if (!text) return make_error(text.error());
  auto key = load_public(text.value());
  if (!key) return make_error("'" + path + "': " + key.error());
  return key;
}

bool RsaKey::has_private() const {
  if (pkey_ == nullptr) return false;
  BIGNUM* d = nullptr;
  if (EVP_PKEY_get_bn_param(pkey_, OSSL_PKEY_PARAM_RSA_D, &d) != 1) {
    ERR_clear_error();
    return false;
  }
  BN_clear_free(d);
  return true;
}

int RsaKey::bits() const { return pkey_ != nullptr ? EVP_PKEY_get_bits(pkey_) : 0; }

std::string RsaKey::private_pem() const {
  if (!has_private()) return std::string();
  // "type-specific" is PKCS#1 RSAPrivateKey: the "RSA PRIVATE KEY" armour Gorgone writes.
  std::unique_ptr<OSSL_ENCODER_CTX, EncoderCtxDeleter> ctx(
      OSSL_ENCODER_CTX_new_for_pkey(pkey_, EVP_PKEY_KEYPAIR, "PEM", "type-specific", nullptr));
  if (!ctx || OSSL_ENCODER_CTX_get_num_encoders(ctx.get()) == 0) {
    ERR_clear_error();
    return std::string();
  }
  unsigned char* data = nullptr;
  std::size_t len = 0;
  if (OSSL_ENCODER_to_data(ctx.get(), &data, &len) != 1) {
    ERR_clear_error();
    return std::string();
  }
  std::string out(reinterpret_cast<char*>(data), len);
  OPENSSL_clear_free(data, len);
  return out;
}

std::string RsaKey::public_pem() const {
  if (pkey_ == nullptr) return std::string();
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey_) != 1) {
    ERR_clear_error();
    return std::string();
  }
  return bio_contents(bio.get());
}

std::string RsaKey::public_pem_wire() const {
  if (pkey_ == nullptr || !is_rsa(pkey_)) return std::string();
  // Built by hand (see rsa_spki_der()): sent in every HELO.
  const std::string n = bn_bytes(pkey_, OSSL_PKEY_PARAM_RSA_N), e = bn_bytes(pkey_, OSSL_PKEY_PARAM_RSA_E);
  if (n.empty() || e.empty()) return std::string();
  std::string b64 = base64_encode(rsa_spki_der(n, e));
  std::string out = "-----BEGIN RSA PUBLIC KEY-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) out.append(b64, i, 64).push_back('\n');
  out += "-----END RSA PUBLIC KEY-----\n";
  return out;
}

std::string RsaKey::jwk_thumbprint() const {
  if (pkey_ == nullptr) return std::string();
  // RFC 7638: members in lexicographic order, no whitespace, big-endian integers without
  // leading zeros in base64url without padding.
  std::string canonical = "{\"e\":\"" + base64url_encode(bn_bytes(pkey_, OSSL_PKEY_PARAM_RSA_E)) +
                          "\",\"kty\":\"RSA\",\"n\":\"" + base64url_encode(bn_bytes(pkey_, OSSL_PKEY_PARAM_RSA_N)) +
                          "\"}";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_Digest(canonical.data(), canonical.size(), digest, &digest_len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return std::string();
  }
  return base64url_encode(std::string_view(reinterpret_cast<char*>(digest), digest_len));
}

Result<std::string> RsaKey::encrypt_pkcs1(std::string_view plaintext) const {
  if (pkey_ == nullptr) return make_error("no RSA key");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
  if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1)
    return make_error(openssl_error("RSA encrypt init failed"));
  const auto* in = reinterpret_cast<const unsigned char*>(plaintext.data());
  std::size_t out_len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &out_len, in, plaintext.size()) != 1)
    return make_error(openssl_error("RSA encrypt failed"));
  std::string out(out_len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &out_len, in, plaintext.size()) != 1)
    return make_error(openssl_error("RSA encrypt failed"));
  out.resize(out_len);
  return out;
}

Result<std::string> RsaKey::decrypt_pkcs1(std::string_view ciphertext) const {
  if (!has_private()) return make_error("RSA decrypt needs a private key");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
  if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1)
    return make_error(openssl_error("RSA decrypt init failed"));
  const auto* in = reinterpret_cast<const unsigned char*>(ciphertext.data());
  std::size_t out_len = 0;
  if (EVP_PKEY_decrypt(ctx.get(), nullptr, &out_len, in, ciphertext.size()) != 1)
    return make_error(openssl_error("RSA decrypt failed"));
  std::string out(out_len, '\0');
  if (EVP_PKEY_decrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &out_len, in, ciphertext.size()) != 1)
    return make_error(openssl_error("RSA decrypt failed"));
  out.resize(out_len);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Key files

namespace {

// mkdir -p with 0700 for the folders it creates.
Status make_parent_dirs(const std::string& path) {
  std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return Status::success();
  std::string dir = path.substr(0, slash);
  for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::failure("cannot create '" + part + "': " + std::strerror(errno));
  }
  return Status::success();
}

// Creates `path` exclusively with exactly `mode` (the umask must not widen or narrow it).
Status write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Status::failure("cannot create '" + path + "': " + std::strerror(errno));
  Status status;
  if (::fchmod(fd, mode) != 0) status = Status::failure("cannot chmod '" + path + "': " + std::strerror(errno));
  std::size_t done = 0;
  while (status.ok() && done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) status = Status::failure("cannot write '" + path + "': " + std::strerror(errno));
    else done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0 && status.ok())
    status = Status::failure("cannot write '" + path + "': " + std::strerror(errno));
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

Status generate_key_files(const std::string& private_path, const std::string& public_path) {
  if (path_exists(private_path)) return Status::failure("'" + private_path + "' already exists");
  if (path_exists(public_path)) return Status::failure("'" + public_path + "' already exists");
  auto key = RsaKey::generate(2048);
  if (!key) return Status::failure(key.error());
  std::string priv = key->private_pem();
  std::string pub = key->public_pem();
  if (priv.empty() || pub.empty()) return Status::failure("cannot encode the generated key");
  Status s = make_parent_dirs(private_path);
  if (s.ok()) s = make_parent_dirs(public_path);
  if (s.ok()) s = write_new_file(private_path, priv, 0600);
  if (!s.ok()) return s;
  s = write_new_file(public_path, pub, 0640);
  if (!s.ok()) ::unlink(private_path.c_str());
  return s;
}

}  // namespace gorgone::protocol
