// Gorgone's cryptography over OpenSSL EVP: base64, AES-CBC with PKCS#7 padding and a fixed
// session IV, RSA PKCS#1 v1.5, RSA key files and the wire PEM, RFC 7638 JWK thumbprints.
// Thread-safety: every function is reentrant; RsaKey and SymmetricCipher objects are
// thread-compatible (const methods may be called concurrently).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "gorgone/result.hpp"

typedef struct evp_pkey_st EVP_PKEY;

namespace gorgone::protocol {

// Standard alphabet, '=' padding, no line breaks.
std::string base64_encode(std::string_view bytes);
// Strict: only the standard alphabet and correct padding; no whitespace.
Result<std::string> base64_decode(std::string_view text);
// Like Perl's decode_base64: skips every character outside the alphabet (newlines in
// MIME base64 of file chunks), stops at the first '='.
std::string base64_decode_lenient(std::string_view text);
// MIME base64 as Perl's encode_base64 writes a file chunk (lines of 76): spaces, tabs and line
// breaks are skipped; any other character outside the alphabet, data after a '=', or a lone
// last character is an error.
Result<std::string> base64_decode_mime(std::string_view text);
// base64url without padding (JWK members and thumbprints).
std::string base64url_encode(std::string_view bytes);

std::string to_hex(std::string_view bytes);
Result<std::string> from_hex(std::string_view hex);
std::string random_bytes(std::size_t n);

// AES-CBC, PKCS#7 padding; AES-128/192/256 chosen by the key length (16/24/32 bytes).
class SymmetricCipher {
 public:
  // key: raw bytes (16, 24 or 32); iv: raw 16 bytes. Fails with a clear message otherwise.
  static Result<SymmetricCipher> create(std::string key, std::string iv);
  const std::string& key() const { return key_; }
  const std::string& iv() const { return iv_; }
  // plaintext -> base64(ciphertext), as sent on the wire.
  std::string encrypt_to_base64(std::string_view plaintext) const;
  // base64 wire text -> plaintext. Errors: bad base64, length not a multiple of 16, bad padding.
  Result<std::string> decrypt_from_base64(std::string_view wire) const;
  // Raw variants (bytes in, bytes out).
  std::string encrypt(std::string_view plaintext) const;
  Result<std::string> decrypt(std::string_view ciphertext) const;

 private:
  SymmetricCipher(std::string key, std::string iv) : key_(std::move(key)), iv_(std::move(iv)) {}
  std::string key_;
  std::string iv_;
};

// An RSA key (public, or private with its public part).
class RsaKey {
 public:
  RsaKey();
  ~RsaKey();
  RsaKey(RsaKey&&) noexcept;
  RsaKey& operator=(RsaKey&&) noexcept;
  RsaKey(const RsaKey&);
  RsaKey& operator=(const RsaKey&);

  static Result<RsaKey> generate(int bits = 2048);
  // Private key PEM (PKCS#1 or PKCS#8). Refuses a public-only key.
  static Result<RsaKey> load_private_pem(std::string_view pem);
  // Public key in any PEM armour whatever its label ("PUBLIC KEY", "RSA PUBLIC KEY"), body SPKI or
  // PKCS#1; also accepts DER. Refuses a private key (as Gorgone does for a public key file).
  static Result<RsaKey> load_public(std::string_view pem_or_der);
  static Result<RsaKey> load_private_file(const std::string& path);
  static Result<RsaKey> load_public_file(const std::string& path);

  bool has_private() const;
  int bits() const;
  // "-----BEGIN RSA PRIVATE KEY-----" (PKCS#1), as Gorgone writes rsakey.priv.pem.
  std::string private_pem() const;
  // "-----BEGIN PUBLIC KEY-----" (SPKI), as Gorgone writes rsakey.pub.pem.
  std::string public_pem() const;
  // What travels in [PUBKEY] and HELO before base64: label "RSA PUBLIC KEY", SPKI body,
  // 64-character lines, trailing newline (CryptX 0.077 output).
  std::string public_pem_wire() const;
  // RFC 7638 SHA-256 thumbprint, base64url without padding (43 chars).
  std::string jwk_thumbprint() const;

  Result<std::string> encrypt_pkcs1(std::string_view plaintext) const;   // needs public part
  Result<std::string> decrypt_pkcs1(std::string_view ciphertext) const;  // needs private part

  EVP_PKEY* native() const { return pkey_; }

 private:
  explicit RsaKey(EVP_PKEY* pkey) : pkey_(pkey) {}
  EVP_PKEY* pkey_ = nullptr;
};

// Writes a new 2048-bit pair at the given paths (private 0600, public 0640), creating parent
// directories (0700). Fails without touching existing files.
Status generate_key_files(const std::string& private_path, const std::string& public_path);

}  // namespace gorgone::protocol
