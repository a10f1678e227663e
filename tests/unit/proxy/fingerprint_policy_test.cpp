// The server-key trust of doc/protocol.md: fingerprint_mode against the stored fingerprints,
// and a node's pinned server_pubkey, with Gorgone's refusal texts.
#include "fingerprint_policy.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "memory_history.hpp"

namespace gorgone::proxy {
namespace {
namespace fs = std::filesystem;
using test::MemoryHistory;

constexpr const char* kTarget = "tcp://10.0.0.2:5556";

class FingerprintPolicyTest : public ::testing::Test {
 protected:
  // Two key pairs for the whole suite: generating RSA keys is slow under the sanitizers.
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "gorgone-fingerprint-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = new std::string(tmpl);
    ASSERT_TRUE(protocol::generate_key_files(*dir_ + "/node.pem", *dir_ + "/node.pub.pem"));
    ASSERT_TRUE(protocol::generate_key_files(*dir_ + "/other.pem", *dir_ + "/other.pub.pem"));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    auto node = protocol::RsaKey::load_public_file(*dir_ + "/node.pub.pem");
    auto other = protocol::RsaKey::load_public_file(*dir_ + "/other.pub.pem");
    ASSERT_TRUE(node && other);
    node_ = std::move(node.value());
    other_ = std::move(other.value());
  }
  FingerprintPolicy policy(FingerprintMode mode, std::string pinned = "") const {
    return FingerprintPolicy{mode, "2", kTarget, std::move(pinned)};
  }
  std::string changed_text() const {
    return "fingerprint changed for target 'tcp://10.0.0.2:5556' [old fingerprint: " + other_.jwk_thumbprint() +
           "] [new fingerprint: " + node_.jwk_thumbprint() + "]";
  }

  static std::string* dir_;
  protocol::RsaKey node_, other_;
  MemoryHistory history_;
};
std::string* FingerprintPolicyTest::dir_ = nullptr;

TEST(FingerprintModeName, TheHostsNamesAndFirstForAnythingElse) {
  EXPECT_EQ(fingerprint_mode("always"), FingerprintMode::kAlways);
  EXPECT_EQ(fingerprint_mode("first"), FingerprintMode::kFirst);
  EXPECT_EQ(fingerprint_mode("strict"), FingerprintMode::kStrict);
  EXPECT_EQ(fingerprint_mode(""), FingerprintMode::kFirst);
  EXPECT_EQ(fingerprint_mode("STRICT"), FingerprintMode::kFirst);
}

// always: any key, and the table is neither read nor written.
TEST_F(FingerprintPolicyTest, AlwaysAcceptsAnyKeyWithoutTheTable) {
  history_.refuse_fingerprint = true;
  EXPECT_TRUE(policy(FingerprintMode::kAlways).check(node_, history_));
  history_.refuse_fingerprint = false;
  EXPECT_TRUE(policy(FingerprintMode::kAlways).check(node_, history_));
  EXPECT_EQ(history_.stored_count(), 0u);
  ASSERT_TRUE(history_.add_target_fingerprint(kTarget, node_.jwk_thumbprint()));
  EXPECT_TRUE(policy(FingerprintMode::kAlways).check(node_, history_));
  ASSERT_TRUE(history_.add_target_fingerprint(kTarget, other_.jwk_thumbprint()));
  EXPECT_TRUE(policy(FingerprintMode::kAlways).check(node_, history_));
}

TEST_F(FingerprintPolicyTest, FirstStoresAnUnknownKey) {
  EXPECT_TRUE(policy(FingerprintMode::kFirst).check(node_, history_));
  EXPECT_EQ(history_.stored(kTarget), node_.jwk_thumbprint());
}

TEST_F(FingerprintPolicyTest, FirstAcceptsTheStoredKey) {
  ASSERT_TRUE(history_.add_target_fingerprint(kTarget, node_.jwk_thumbprint()));
  EXPECT_TRUE(policy(FingerprintMode::kFirst).check(node_, history_));
  EXPECT_EQ(history_.stored(kTarget), node_.jwk_thumbprint());
}

TEST_F(FingerprintPolicyTest, FirstRefusesAKeyThatChangedAndKeepsTheStoredOne) {
  ASSERT_TRUE(history_.add_target_fingerprint(kTarget, other_.jwk_thumbprint()));
  Status s = policy(FingerprintMode::kFirst).check(node_, history_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), changed_text());
  EXPECT_EQ(history_.stored(kTarget), other_.jwk_thumbprint());
}

TEST_F(FingerprintPolicyTest, StrictRefusesAnUnknownKeyAndStoresNothing) {
  Status s = policy(FingerprintMode::kStrict).check(node_, history_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), "no fingerprint found for target 'tcp://10.0.0.2:5556' [strict mode] [fingerprint: " +
                             node_.jwk_thumbprint() + "]");
  EXPECT_EQ(history_.stored_count(), 0u);
}

TEST_F(FingerprintPolicyTest, StrictAcceptsTheStoredKey) {
  ASSERT_TRUE(history_.add_target_fingerprint(kTarget, node_.jwk_thumbprint()));
  EXPECT_TRUE(policy(FingerprintMode::kStrict).check(node_, history_));
}

TEST_F(FingerprintPolicyTest, StrictRefusesAKeyThatChanged) {
  ASSERT_TRUE(history_.add_target_fingerprint(kTarget, other_.jwk_thumbprint()));
  Status s = policy(FingerprintMode::kStrict).check(node_, history_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), changed_text());
}

TEST_F(FingerprintPolicyTest, FingerprintsAreKeptPerTarget) {
  ASSERT_TRUE(history_.add_target_fingerprint("tcp://10.0.0.3:5556", other_.jwk_thumbprint()));
  EXPECT_FALSE(policy(FingerprintMode::kStrict).check(node_, history_));
  EXPECT_TRUE(policy(FingerprintMode::kFirst).check(node_, history_));
  EXPECT_EQ(history_.stored(kTarget), node_.jwk_thumbprint());
  EXPECT_EQ(history_.stored("tcp://10.0.0.3:5556"), other_.jwk_thumbprint());
}

// A table that cannot be read or written refuses the key: trust is never assumed.
TEST_F(FingerprintPolicyTest, ATableThatFailsRefusesTheKey) {
  history_.refuse_fingerprint = true;
  for (FingerprintMode mode : {FingerprintMode::kFirst, FingerprintMode::kStrict}) {
    Status s = policy(mode).check(node_, history_);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.message(), "cannot get fingerprint for target 'tcp://10.0.0.2:5556'");
  }
  history_.refuse_fingerprint = false;
  history_.refuse_add = true;
  Status s = policy(FingerprintMode::kFirst).check(node_, history_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), "cannot insert target 'tcp://10.0.0.2:5556' fingerprint");
}

// A pinned key: a match is trusted in every mode, with no stored row needed nor written.
TEST_F(FingerprintPolicyTest, APinnedKeyThatMatchesIsTrustedInEveryMode) {
  ASSERT_TRUE(history_.add_target_fingerprint("tcp://unrelated:1", other_.jwk_thumbprint()));
  history_.refuse_add = true;
  for (FingerprintMode mode : {FingerprintMode::kAlways, FingerprintMode::kFirst, FingerprintMode::kStrict})
    EXPECT_TRUE(policy(mode, *dir_ + "/node.pub.pem").check(node_, history_));
  // Even when another key is stored for the target: the pin is what this host was told.
  history_.refuse_add = false;
  ASSERT_TRUE(history_.add_target_fingerprint(kTarget, other_.jwk_thumbprint()));
  EXPECT_TRUE(policy(FingerprintMode::kStrict, *dir_ + "/node.pub.pem").check(node_, history_));
  EXPECT_EQ(history_.stored(kTarget), other_.jwk_thumbprint());
}

TEST_F(FingerprintPolicyTest, APinnedKeyRefusesAnyOtherKeyInEveryMode) {
  ASSERT_TRUE(history_.add_target_fingerprint(kTarget, node_.jwk_thumbprint()));  // stored: still refused
  std::string pinned = *dir_ + "/other.pub.pem";
  for (FingerprintMode mode : {FingerprintMode::kAlways, FingerprintMode::kFirst, FingerprintMode::kStrict}) {
    Status s = policy(mode, pinned).check(node_, history_);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.message(), "server key of target 'tcp://10.0.0.2:5556' does not match server_pubkey '" + pinned +
                               "' [expected fingerprint: " + other_.jwk_thumbprint() + "] [received fingerprint: " +
                               node_.jwk_thumbprint() + "]");
  }
}

TEST_F(FingerprintPolicyTest, AnUnreadablePinnedKeyRefusesNamingTheNode) {
  for (std::string pinned : {*dir_ + "/missing.pub.pem", *dir_ + "/garbage.pub.pem"}) {
    if (pinned.find("garbage") != std::string::npos) std::ofstream(pinned) << "not a key\n";
    for (FingerprintMode mode : {FingerprintMode::kAlways, FingerprintMode::kFirst}) {
      Status s = policy(mode, pinned).check(node_, history_);
      ASSERT_FALSE(s) << pinned;
      EXPECT_EQ(s.message().rfind("cannot load server_pubkey of node '2': ", 0), 0u) << s.message();
    }
  }
  EXPECT_EQ(history_.stored_count(), 0u);
}

// The file is read at each check: replacing it takes effect on the next handshake.
TEST_F(FingerprintPolicyTest, APinnedKeyFileIsReadAtEachCheck) {
  std::string pinned = *dir_ + "/pinned.pub.pem";
  fs::copy_file(*dir_ + "/other.pub.pem", pinned, fs::copy_options::overwrite_existing);
  FingerprintPolicy p = policy(FingerprintMode::kStrict, pinned);
  EXPECT_FALSE(p.check(node_, history_));
  fs::copy_file(*dir_ + "/node.pub.pem", pinned, fs::copy_options::overwrite_existing);
  EXPECT_TRUE(p.check(node_, history_));
}

}  // namespace
}  // namespace gorgone::proxy
