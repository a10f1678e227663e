// Base64/hex, AES-CBC (aes.json) and RSA keys/thumbprints (rsa_keys.json).

#include "gorgone/protocol/crypto.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/pem.h>

#include "vectors.hpp"

namespace gorgone::protocol {
namespace {

using test::has;
using test::str;
using test::unhex;

// ---------------------------------------------------------------------------------------------
// base64 / hex

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> cases[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                       {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                                       {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : cases) {
    EXPECT_EQ(base64_encode(plain), encoded);
    auto back = base64_decode(encoded);
    ASSERT_TRUE(back.ok()) << encoded;
    EXPECT_EQ(back.value(), plain);
    EXPECT_EQ(base64_decode_lenient(encoded), plain);
  }
}

TEST(Base64, BinaryRoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t len = 0; len <= all.size(); len += 7) {
    std::string part = all.substr(0, len);
    auto back = base64_decode(base64_encode(part));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back.value(), part);
  }
  EXPECT_EQ(base64_encode(std::string("\xfb\xff", 2)), "+/8=");
}

TEST(Base64, StrictDecoderRefusesMalformedText) {
  for (const char* bad : {"Zm9", "Zm9v\n", " Zm9v", "Zm=v", "Z===", "====", "!!!!", "Zm9vYg=", "Zm9v-_==",
                          "Zm9vYg==Zm9v"}) {
    EXPECT_FALSE(base64_decode(bad).ok()) << bad;
  }
  EXPECT_FALSE(base64_decode(std::string("Zm\0v", 4)).ok());
}

TEST(Base64, LenientDecoderSkipsForeignCharactersLikePerl) {
  // MIME base64 of file chunks: newline every 76 characters and at the end.
  EXPECT_EQ(base64_decode_lenient("Zm9v\nYmFy\n"), "foobar");
  EXPECT_EQ(base64_decode_lenient("Zm9v YmE=\nignored"), "fooba");
  EXPECT_EQ(base64_decode_lenient("!!"), "");
  EXPECT_EQ(base64_decode_lenient("Zm9vY"), "foo");  // a lone trailing sextet carries no byte
}

TEST(Base64, MimeDecoderSkipsLineBreaksAndRefusesTheRest) {
  // Lines of 76 as Perl's encode_base64 writes a chunk, long enough for the 4-at-a-time path.
  std::string raw(1000, '\0');
  for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<char>(i * 7 + 3);
  std::string text = base64_encode(raw), mime;
  for (std::size_t i = 0; i < text.size(); i += 76) mime += text.substr(i, 76) + "\r\n";
  ASSERT_TRUE(base64_decode_mime(mime).ok());
  EXPECT_EQ(base64_decode_mime(mime).value(), raw);
  EXPECT_EQ(base64_decode_mime("Zm9v YmE=\n").value(), "fooba");
  EXPECT_EQ(base64_decode_mime("YWI").value(), "ab");  // unpadded
  EXPECT_EQ(base64_decode_mime("").value(), "");
  for (const char* bad : {"Zm9v!mFy", "YW=I", "Y", "Y*==", "Zm9vYmE=Zm9v"}) EXPECT_FALSE(base64_decode_mime(bad).ok()) << bad;
  // A bad character deep inside a long text is found, and where.
  std::string late = text;
  late[800] = '#';
  auto r = base64_decode_mime(late);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "invalid base64: unexpected character at offset 800");
}

TEST(Base64, UrlAlphabetWithoutPadding) {
  EXPECT_EQ(base64url_encode(std::string("\xfb\xff", 2)), "-_8");
  EXPECT_EQ(base64url_encode(std::string("\x01\x00\x01", 3)), "AQAB");
  EXPECT_EQ(base64url_encode("f"), "Zg");
}

TEST(Hex, RoundTripAndErrors) {
  EXPECT_EQ(to_hex(std::string("\x00\x9f\xff", 3)), "009fff");
  auto back = from_hex("009FfF");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), std::string("\x00\x9f\xff", 3));
  EXPECT_TRUE(from_hex("").ok());
  EXPECT_FALSE(from_hex("abc").ok());
  EXPECT_FALSE(from_hex("zz").ok());
  EXPECT_FALSE(from_hex("0x").ok());
}

TEST(Random, BytesHaveTheRequestedLengthAndDiffer) {
  EXPECT_EQ(random_bytes(0).size(), 0u);
  EXPECT_EQ(random_bytes(32).size(), 32u);
  EXPECT_NE(random_bytes(32), random_bytes(32));
}

// ---------------------------------------------------------------------------------------------
// AES (aes.json)

class AesVectors : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(test::load_vectors("aes.json", &doc_)); }
  rapidjson::Document doc_;
};

TEST_F(AesVectors, EncryptIsByteExactAndDecryptsBack) {
  const auto& vectors = doc_["vectors"];
  ASSERT_TRUE(vectors.IsArray());
  ASSERT_GE(vectors.Size(), 8u);
  for (const auto& v : vectors.GetArray()) {
    SCOPED_TRACE(str(v, "name"));
    EXPECT_EQ(str(v, "cipher"), "AES");
    EXPECT_EQ(v["padding"].GetInt(), 1);
    auto cipher = SymmetricCipher::create(unhex(str(v, "key_hex")), unhex(str(v, "iv_hex")));
    ASSERT_TRUE(cipher.ok()) << cipher.error();
    std::string plaintext = unhex(str(v, "plaintext_hex"));
    EXPECT_EQ(plaintext, str(v, "plaintext"));
    EXPECT_EQ(plaintext.size(), static_cast<std::size_t>(v["plaintext_len"].GetInt()));

    std::string wire = cipher->encrypt_to_base64(plaintext);
    EXPECT_EQ(wire, str(v, "ciphertext_b64"));
    EXPECT_EQ(cipher->encrypt(plaintext).size(), static_cast<std::size_t>(v["ciphertext_len"].GetInt()));

    auto back = cipher->decrypt_from_base64(str(v, "ciphertext_b64"));
    ASSERT_TRUE(back.ok()) << back.error();
    EXPECT_EQ(back.value(), plaintext);
  }
}

TEST_F(AesVectors, WrongKeyBehavesLikeCryptX) {
  std::map<std::string, const rapidjson::Value*> by_name;
  for (const auto& v : doc_["vectors"].GetArray()) by_name[str(v, "name")] = &v;
  const auto& wrong = doc_["wrong_key_decrypt"];
  auto cipher = SymmetricCipher::create(unhex(str(wrong, "key_hex")), unhex("f0e1d2c3b4a5968778695a4b3c2d1e0f"));
  ASSERT_TRUE(cipher.ok());
  ASSERT_GE(wrong["cases"].Size(), 1u);
  for (const auto& c : wrong["cases"].GetArray()) {
    SCOPED_TRACE(str(c, "name"));
    const rapidjson::Value* v = by_name[str(c, "name")];
    ASSERT_NE(v, nullptr);
    // The recorded cases use the vector's IV with the all-ones key.
    auto same_iv = SymmetricCipher::create(unhex(str(wrong, "key_hex")), unhex(str(*v, "iv_hex")));
    ASSERT_TRUE(same_iv.ok());
    auto result = same_iv->decrypt_from_base64(str(*v, "ciphertext_b64"));
    if (c["croaked"].GetBool()) {
      ASSERT_FALSE(result.ok());
      EXPECT_NE(result.error().find("padding_depad failed"), std::string::npos) << result.error();
    } else {
      ASSERT_TRUE(result.ok());
      EXPECT_EQ(to_hex(result.value()), str(c, "result_hex"));
    }
  }
}

TEST(Aes, KeySizeSelectsTheVariant) {
  std::string iv(16, '\x01');
  for (std::size_t size : {16u, 24u, 32u}) {
    auto cipher = SymmetricCipher::create(std::string(size, '\x02'), iv);
    ASSERT_TRUE(cipher.ok());
    auto back = cipher->decrypt_from_base64(cipher->encrypt_to_base64("[PING] [] [] {}"));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back.value(), "[PING] [] [] {}");
  }
  // AES-128 and AES-256 with the same leading bytes give different ciphertexts.
  auto a128 = SymmetricCipher::create(std::string(16, '\x02'), iv);
  auto a256 = SymmetricCipher::create(std::string(32, '\x02'), iv);
  EXPECT_NE(a128->encrypt("x"), a256->encrypt("x"));
}

TEST(Aes, RefusesBadKeysAndIvs) {
  EXPECT_FALSE(SymmetricCipher::create("", std::string(16, 'i')).ok());
  EXPECT_FALSE(SymmetricCipher::create(std::string(31, 'k'), std::string(16, 'i')).ok());
  EXPECT_FALSE(SymmetricCipher::create(std::string(64, 'k'), std::string(16, 'i')).ok());
  EXPECT_FALSE(SymmetricCipher::create(std::string(32, 'k'), std::string(15, 'i')).ok());
  EXPECT_FALSE(SymmetricCipher::create(std::string(32, 'k'), "").ok());
}

TEST(Aes, DecryptErrorsAreReportedNotThrown) {
  auto cipher = SymmetricCipher::create(std::string(32, 'k'), std::string(16, 'i'));
  ASSERT_TRUE(cipher.ok());
  std::string ct = cipher->encrypt("[PING] [] [] {}");
  ASSERT_EQ(ct.size(), 16u);

  auto empty = cipher->decrypt("");
  ASSERT_FALSE(empty.ok());
  auto truncated = cipher->decrypt(ct.substr(0, 15));
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().find("multiple of 16 (15)"), std::string::npos) << truncated.error();
  EXPECT_FALSE(cipher->decrypt_from_base64("not base64!").ok());
  EXPECT_FALSE(cipher->decrypt_from_base64(base64_encode(ct).substr(0, 20)).ok());

  // Same ciphertext under an IV differing in the last byte: the pad byte 0x01 becomes 0x04,
  // which is invalid PKCS#7 for this block.
  std::string iv = std::string(16, 'i');
  iv[15] = static_cast<char>(iv[15] ^ 0x05);
  auto other_iv = SymmetricCipher::create(std::string(32, 'k'), iv);
  auto bad_pad = other_iv->decrypt(ct);
  ASSERT_FALSE(bad_pad.ok());
  EXPECT_NE(bad_pad.error().find("padding"), std::string::npos);
}

TEST(Aes, LargeMessagesRoundTrip) {
  auto cipher = SymmetricCipher::create(std::string(32, 'k'), std::string(16, 'i'));
  std::string big(3 * 1024 * 1024 + 5, 'x');
  auto back = cipher->decrypt_from_base64(cipher->encrypt_to_base64(big));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), big);
}

// ---------------------------------------------------------------------------------------------
// RSA keys (rsa_keys.json)

class RsaVectors : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(test::load_vectors("rsa_keys.json", &doc_)); }
  rapidjson::Document doc_;
};

TEST_F(RsaVectors, ThumbprintFromEveryForm) {
  ASSERT_GE(doc_["keys"].Size(), 4u);
  for (const auto& k : doc_["keys"].GetArray()) {
    SCOPED_TRACE(str(k, "name"));
    const std::string tp = str(k, "jwk_thumbprint_sha256");
    ASSERT_EQ(tp.size(), 43u);

    auto x509 = RsaKey::load_public(str(k, "public_pem_x509"));
    ASSERT_TRUE(x509.ok()) << x509.error();
    EXPECT_FALSE(x509->has_private());
    EXPECT_EQ(x509->bits(), k["bits"].GetInt());
    EXPECT_EQ(x509->jwk_thumbprint(), tp);

    auto priv = RsaKey::load_private_pem(str(k, "private_pem"));
    ASSERT_TRUE(priv.ok()) << priv.error();
    EXPECT_TRUE(priv->has_private());
    EXPECT_EQ(priv->jwk_thumbprint(), tp);

    if (has(k, "public_pem_wire")) {
      auto wire = RsaKey::load_public(str(k, "public_pem_wire"));
      ASSERT_TRUE(wire.ok()) << wire.error();
      EXPECT_EQ(wire->jwk_thumbprint(), tp);
    }
  }
}

TEST_F(RsaVectors, WirePemIsByteIdenticalToCryptX) {
  for (const auto& k : doc_["keys"].GetArray()) {
    if (!has(k, "public_pem_wire")) continue;
    SCOPED_TRACE(str(k, "name"));
    auto priv = RsaKey::load_private_pem(str(k, "private_pem"));
    auto pub = RsaKey::load_public(str(k, "public_pem_x509"));
    ASSERT_TRUE(priv.ok() && pub.ok());
    EXPECT_EQ(priv->public_pem_wire(), str(k, "public_pem_wire"));
    EXPECT_EQ(pub->public_pem_wire(), str(k, "public_pem_wire"));
    EXPECT_EQ(base64_encode(pub->public_pem_wire()), str(k, "public_pem_wire_b64"));
  }
}

TEST_F(RsaVectors, FilesAreWrittenAsGorgoneWritesThem) {
  for (const auto& k : doc_["keys"].GetArray()) {
    SCOPED_TRACE(str(k, "name"));
    auto priv = RsaKey::load_private_pem(str(k, "private_pem"));
    ASSERT_TRUE(priv.ok());
    EXPECT_EQ(priv->private_pem(), str(k, "private_pem"));
    EXPECT_EQ(priv->public_pem(), str(k, "public_pem_x509"));
  }
}

TEST_F(RsaVectors, RepositorySampleKeyThumbprint) {
  const auto& sample = doc_["repository_sample_key"];
  auto key = RsaKey::load_public(str(sample, "public_pem_x509"));
  ASSERT_TRUE(key.ok()) << key.error();
  EXPECT_EQ(key->jwk_thumbprint(), "pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4");
  EXPECT_EQ(key->jwk_thumbprint(), str(sample, "jwk_thumbprint_sha256"));
  EXPECT_EQ(key->bits(), 4096);
}

// Re-armours the DER body of `pem` under `label`, optionally dropping `skip` leading DER bytes.
std::string rewrap(const std::string& pem, const std::string& label, std::size_t skip) {
  std::string body;
  std::size_t start = pem.find('\n') + 1;
  std::size_t end = pem.find("-----END");
  for (char c : pem.substr(start, end - start))
    if (c != '\n') body.push_back(c);
  std::string der = base64_decode(body).value().substr(skip);
  std::string b64 = base64_encode(der);
  std::string out = "-----BEGIN " + label + "-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  return out + "-----END " + label + "-----\n";
}

TEST_F(RsaVectors, LoaderAcceptsSpkiOrPkcs1UnderAnyLabelAndDer) {
  const auto& k = doc_["keys"][0];
  const std::string x509 = str(k, "public_pem_x509");
  const std::string tp = str(k, "jwk_thumbprint_sha256");
  // A 2048-bit SPKI is a 24-byte AlgorithmIdentifier/BIT STRING header around the PKCS#1 body.
  const std::string pkcs1_rsa_label = rewrap(x509, "RSA PUBLIC KEY", 24);
  const std::string pkcs1_public_label = rewrap(x509, "PUBLIC KEY", 24);
  const std::string spki_odd_label = rewrap(x509, "SOMETHING ELSE", 0);
  for (const std::string& pem : {pkcs1_rsa_label, pkcs1_public_label, spki_odd_label}) {
    auto key = RsaKey::load_public(pem);
    ASSERT_TRUE(key.ok()) << pem << key.error();
    EXPECT_EQ(key->jwk_thumbprint(), tp);
  }
  // CRLF line ends and text around the armour.
  std::string crlf = "comment\r\n";
  for (char c : x509) {
    if (c == '\n') crlf += "\r\n";
    else crlf.push_back(c);
  }
  auto from_crlf = RsaKey::load_public(crlf + "trailer");
  ASSERT_TRUE(from_crlf.ok()) << from_crlf.error();
  EXPECT_EQ(from_crlf->jwk_thumbprint(), tp);

  // Raw DER, both structures.
  std::string body;
  for (char c : x509.substr(x509.find('\n') + 1, x509.find("-----END") - x509.find('\n') - 1))
    if (c != '\n') body.push_back(c);
  std::string spki_der = base64_decode(body).value();
  for (const std::string& der : {spki_der, spki_der.substr(24)}) {
    auto key = RsaKey::load_public(der);
    ASSERT_TRUE(key.ok()) << key.error();
    EXPECT_EQ(key->jwk_thumbprint(), tp);
  }
  // Trailing bytes after the DER are refused.
  EXPECT_FALSE(RsaKey::load_public(spki_der + "x").ok());
}

TEST_F(RsaVectors, PublicAndPrivateLoadersRefuseTheOtherKind) {
  const auto& k = doc_["keys"][1];
  EXPECT_FALSE(RsaKey::load_public(str(k, "private_pem")).ok());
  EXPECT_FALSE(RsaKey::load_private_pem(str(k, "public_pem_x509")).ok());
  EXPECT_FALSE(RsaKey::load_private_pem(str(k, "public_pem_wire")).ok());
  // The private key as PKCS#8 "PRIVATE KEY" is accepted by the private loader only.
  auto priv = RsaKey::load_private_pem(str(k, "private_pem"));
  ASSERT_TRUE(priv.ok());
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio, priv->native(), nullptr, nullptr, 0, nullptr, nullptr), 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pkcs8(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  ASSERT_NE(pkcs8.find("BEGIN PRIVATE KEY"), std::string::npos);
  auto from_pkcs8 = RsaKey::load_private_pem(pkcs8);
  ASSERT_TRUE(from_pkcs8.ok()) << from_pkcs8.error();
  EXPECT_EQ(from_pkcs8->jwk_thumbprint(), str(k, "jwk_thumbprint_sha256"));
  EXPECT_FALSE(RsaKey::load_public(pkcs8).ok());
}

TEST(Rsa, LoadersRefuseGarbage) {
  for (const std::string& bad :
       {std::string(), std::string("hello"), std::string("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"),
        std::string("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlPVNPsQcsbQbkOU9kybD\n"),
        std::string("-----BEGIN PUBLIC KEY-----\nQUJD\n-----END PUBLIC KEY-----\n"), std::string(4096, '\0'),
        std::string(2 << 20, 'A')}) {
    EXPECT_FALSE(RsaKey::load_public(bad).ok());
    EXPECT_FALSE(RsaKey::load_private_pem(bad).ok());
  }
}

TEST(Rsa, NonRsaKeysAreRefused) {
  EVP_PKEY* ec = EVP_EC_gen("P-256");
  ASSERT_NE(ec, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio, ec), 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(ec);
  auto key = RsaKey::load_public(pem);
  ASSERT_FALSE(key.ok());
}

// What OpenSSL's own decoders make of a public key DER, as RsaKey::load_public read it before
// it built RSA keys by hand: SubjectPublicKeyInfo, else PKCS#1, each only when it takes every
// byte. The DER of the key read, or "" when neither reads it as an RSA key.
std::string openssl_reading(const std::string& der) {
  const auto* begin = reinterpret_cast<const unsigned char*>(der.data());
  const long len = static_cast<long>(der.size());
  const unsigned char* p = begin;
  EVP_PKEY* pkey = d2i_PUBKEY(nullptr, &p, len);
  if (pkey == nullptr || p != begin + len) {
    EVP_PKEY_free(pkey);
    p = begin;
    pkey = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, len);
    if (pkey != nullptr && p != begin + len) {
      EVP_PKEY_free(pkey);
      pkey = nullptr;
    }
  }
  ERR_clear_error();
  std::string out;
  if (pkey != nullptr && EVP_PKEY_is_a(pkey, "RSA") == 1) {
    unsigned char* bytes = nullptr;
    const int n = i2d_PUBKEY(pkey, &bytes);
    if (n > 0) out.assign(reinterpret_cast<char*>(bytes), static_cast<std::size_t>(n));
    OPENSSL_free(bytes);
  }
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  return out;
}

std::string der_of(const RsaKey& key) {
  unsigned char* bytes = nullptr;
  const int n = i2d_PUBKEY(key.native(), &bytes);
  std::string out(reinterpret_cast<char*>(bytes), static_cast<std::size_t>(n > 0 ? n : 0));
  OPENSSL_free(bytes);
  return out;
}

std::string wire_der(const std::string& wire) {
  std::string b64;
  for (std::size_t at = wire.find('\n') + 1; at < wire.find("-----END"); ++at)
    if (wire[at] != '\n') b64.push_back(wire[at]);
  return base64_decode(b64).value();
}

// Keys are read and written without OpenSSL's encoder and decoder lookups (slow in OpenSSL 3.0):
// what is written must be OpenSSL's DER byte for byte, and what is read must be the key
// OpenSSL reads, for every size of key and exponent.
TEST(RsaDer, WrittenAsOpenSslWritesItAndReadBackTheSame) {
  for (int bits : {1024, 2048, 3072, 4096}) {
    for (unsigned long e : {3ul, 65537ul, 4294967297ul}) {
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
      ASSERT_NE(ctx, nullptr);
      BIGNUM* exponent = BN_new();
      ASSERT_EQ(BN_set_word(exponent, e), 1);
      EVP_PKEY* raw = nullptr;
      ASSERT_EQ(EVP_PKEY_keygen_init(ctx), 1);
      ASSERT_EQ(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits), 1);
      ASSERT_EQ(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, exponent), 1);
      ASSERT_EQ(EVP_PKEY_generate(ctx, &raw), 1);
      BN_free(exponent);
      EVP_PKEY_CTX_free(ctx);
      unsigned char* bytes = nullptr;
      const int n = i2d_PUBKEY(raw, &bytes);
      ASSERT_GT(n, 0);
      const std::string der(reinterpret_cast<char*>(bytes), static_cast<std::size_t>(n));
      OPENSSL_free(bytes);
      EVP_PKEY_free(raw);

      auto key = RsaKey::load_public(der);
      ASSERT_TRUE(key.ok()) << bits << " bits, e=" << e << ": " << key.error();
      EXPECT_EQ(der_of(*key), der) << bits << " bits, e=" << e;
      EXPECT_EQ(key->bits(), bits);
      EXPECT_EQ(wire_der(key->public_pem_wire()), der) << bits << " bits, e=" << e;
      auto ct = key->encrypt_pkcs1("HELO");
      ASSERT_TRUE(ct.ok()) << ct.error();
      EXPECT_EQ(ct->size(), static_cast<std::size_t>(bits / 8));
    }
  }
}

// Whatever bytes change in a key's DER (a length, a tag, a padding byte, the modulus, trailing
// or missing bytes), load_public accepts exactly what OpenSSL's decoders accept, as that key.
TEST(RsaDer, AnyAlteredDerIsReadAsOpenSslReadsIt) {
  auto key = RsaKey::generate(1024);
  ASSERT_TRUE(key.ok());
  const std::string der = der_of(*key);
  std::vector<std::string> variants;
  for (std::size_t i = 0; i < der.size(); ++i) {
    for (unsigned char delta : {1, 0x7f, 0x80, 0xff}) {
      std::string v = der;
      v[i] = static_cast<char>(static_cast<unsigned char>(v[i]) + delta);
      variants.push_back(v);
    }
    if (i < 40) {
      variants.push_back(der.substr(0, i) + der.substr(i + 1));
      variants.push_back(der.substr(0, i) + '\0' + der.substr(i));
    }
  }
  variants.push_back(der + '\0');
  variants.push_back(der.substr(0, der.size() - 1));
  // A non-minimal length (0x82 0x00 0x8d for 0x81 0x8d) around the modulus.
  const std::size_t modulus = der.find(std::string("\x02\x81\x81", 3));
  ASSERT_NE(modulus, std::string::npos);
  variants.push_back(der.substr(0, modulus + 1) + std::string("\x82\x00", 2) + der.substr(modulus + 2));
  int accepted = 0;
  for (const std::string& v : variants) {
    const std::string expected = openssl_reading(v);
    auto got = RsaKey::load_public(v);
    ASSERT_EQ(got.ok(), !expected.empty()) << protocol::to_hex(v);
    if (got.ok()) {
      ++accepted;
      EXPECT_EQ(der_of(*got), expected) << protocol::to_hex(v);
    }
  }
  EXPECT_GT(accepted, 100);  // changed modulus bytes still make keys
}

class RsaGenerated : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto key = RsaKey::generate(2048);
    ASSERT_TRUE(key.ok()) << key.error();
    key_ = new RsaKey(std::move(key.value()));
  }
  static void TearDownTestSuite() {
    delete key_;
    key_ = nullptr;
  }
  static RsaKey* key_;
};
RsaKey* RsaGenerated::key_ = nullptr;

TEST_F(RsaGenerated, GeneratedKeyIsComplete) {
  EXPECT_TRUE(key_->has_private());
  EXPECT_EQ(key_->bits(), 2048);
  EXPECT_EQ(key_->jwk_thumbprint().size(), 43u);
  EXPECT_NE(key_->private_pem().find("-----BEGIN RSA PRIVATE KEY-----\n"), std::string::npos);
  EXPECT_EQ(key_->public_pem().rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u);
  std::string wire = key_->public_pem_wire();
  EXPECT_EQ(wire.rfind("-----BEGIN RSA PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEF", 0), 0u);
  EXPECT_EQ(wire.substr(wire.size() - 29), "-----END RSA PUBLIC KEY-----\n");
  auto reloaded = RsaKey::load_public(wire);
  ASSERT_TRUE(reloaded.ok());
  EXPECT_EQ(reloaded->jwk_thumbprint(), key_->jwk_thumbprint());
  EXPECT_FALSE(RsaKey::generate(512).ok());
}

TEST_F(RsaGenerated, Pkcs1RoundTripAndLimits) {
  auto pub = RsaKey::load_public(key_->public_pem());
  ASSERT_TRUE(pub.ok());
  auto ct = pub->encrypt_pkcs1("HELO");
  ASSERT_TRUE(ct.ok()) << ct.error();
  EXPECT_EQ(ct->size(), 256u);
  auto ct2 = pub->encrypt_pkcs1("HELO");
  EXPECT_NE(ct.value(), ct2.value());  // random padding
  auto pt = key_->decrypt_pkcs1(ct.value());
  ASSERT_TRUE(pt.ok()) << pt.error();
  EXPECT_EQ(pt.value(), "HELO");

  EXPECT_TRUE(pub->encrypt_pkcs1(std::string(245, 'x')).ok());
  EXPECT_FALSE(pub->encrypt_pkcs1(std::string(246, 'x')).ok());
  EXPECT_FALSE(pub->decrypt_pkcs1(ct.value()).ok());  // public only
  EXPECT_FALSE(key_->decrypt_pkcs1(ct->substr(1)).ok());
  EXPECT_FALSE(key_->decrypt_pkcs1("").ok());
  EXPECT_FALSE(key_->decrypt_pkcs1(std::string(1000, 'x')).ok());
  auto garbage = key_->decrypt_pkcs1(std::string(256, '\x01'));
  EXPECT_TRUE(!garbage.ok() || garbage.value() != "HELO");
}

TEST_F(RsaGenerated, CopiesShareAndMovesEmpty) {
  RsaKey copy = *key_;
  EXPECT_EQ(copy.native(), key_->native());
  EXPECT_EQ(copy.jwk_thumbprint(), key_->jwk_thumbprint());
  RsaKey moved = std::move(copy);
  EXPECT_EQ(copy.native(), nullptr);  // NOLINT: checking the moved-from state on purpose
  EXPECT_EQ(moved.jwk_thumbprint(), key_->jwk_thumbprint());
  RsaKey empty;
  EXPECT_FALSE(empty.has_private());
  EXPECT_EQ(empty.bits(), 0);
  EXPECT_EQ(empty.jwk_thumbprint(), "");
  EXPECT_EQ(empty.public_pem_wire(), "");
  EXPECT_FALSE(empty.encrypt_pkcs1("x").ok());
  EXPECT_FALSE(empty.decrypt_pkcs1("x").ok());
  empty = moved;
  EXPECT_EQ(empty.jwk_thumbprint(), key_->jwk_thumbprint());
}

// ---------------------------------------------------------------------------------------------
// Key files

class KeyFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gorgone-keys-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static unsigned mode_of(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
  }
  std::string dir_;
};

TEST_F(KeyFiles, GeneratesLoadableFilesWithGorgoneModes) {
  std::string priv = dir_ + "/a/b/rsakey.priv.pem", pub = dir_ + "/a/b/rsakey.pub.pem";
  Status s = generate_key_files(priv, pub);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(mode_of(priv), 0600u);
  EXPECT_EQ(mode_of(pub), 0640u);
  EXPECT_EQ(mode_of(dir_ + "/a"), 0700u);
  EXPECT_EQ(mode_of(dir_ + "/a/b"), 0700u);

  auto private_key = RsaKey::load_private_file(priv);
  auto public_key = RsaKey::load_public_file(pub);
  ASSERT_TRUE(private_key.ok()) << private_key.error();
  ASSERT_TRUE(public_key.ok()) << public_key.error();
  EXPECT_EQ(private_key->jwk_thumbprint(), public_key->jwk_thumbprint());
  EXPECT_FALSE(RsaKey::load_public_file(priv).ok());
  EXPECT_FALSE(RsaKey::load_private_file(pub).ok());

  std::ifstream in(priv);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "-----BEGIN RSA PRIVATE KEY-----");

  // Existing files are never replaced.
  std::string before = private_key->jwk_thumbprint();
  EXPECT_FALSE(generate_key_files(priv, dir_ + "/other.pub").ok());
  EXPECT_FALSE(generate_key_files(dir_ + "/other.priv", pub).ok());
  auto again = RsaKey::load_private_file(priv);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->jwk_thumbprint(), before);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/other.priv"));
}

TEST_F(KeyFiles, MissingFilesAreErrors) {
  EXPECT_FALSE(RsaKey::load_private_file(dir_ + "/missing").ok());
  EXPECT_FALSE(RsaKey::load_public_file(dir_ + "/missing").ok());
}

}  // namespace
}  // namespace gorgone::protocol
