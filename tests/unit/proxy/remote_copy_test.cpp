// REMOTECOPY -> PROCESSCOPY series, checked against the series recorded from Gorgone.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <chrono>
#include <random>
#include <thread>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "remote_copy.hpp"

namespace gorgone::proxy {
namespace {
namespace fs = std::filesystem;

json::Document load_vectors() {
  std::ifstream in(std::string(std::getenv("GORGONE_VECTORS_DIR")) + "/proxy_frames.json");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  json::Document d;
  EXPECT_TRUE(json::parse(d, text));
  return d;
}

std::string temp_dir() {
  std::string t = (fs::temp_directory_path() / "gorgone-rc.XXXXXX").string();
  EXPECT_NE(::mkdtemp(t.data()), nullptr);
  return t;
}

TEST(RemoteCopy, ARegularFileMakesGorgonesSeriesByteForByte) {
  auto v = load_vectors();
  const auto& series = v["PROCESSCOPY_series_buffer_size_64"]["series"][0];
  std::string dir = temp_dir();
  auto bytes = protocol::from_hex(series["reassembled_hex"].GetString());
  ASSERT_TRUE(bytes);
  std::ofstream(dir + "/file.txt", std::ios::binary) << *bytes;
  std::string request = R"({"content":{"source":")" + dir + R"(/file.txt","destination":"/tmp/gw/rc/dst/",)"
                        R"("cache_dir":"/tmp/gw/rc/cache","owner":"root","group":"root","mode":"0640"}})";
  auto job = RemoteCopy::start(request, "4", series["token"].GetString(), 64);
  ASSERT_TRUE(job) << job.error();
  const auto& expected = series["messages"];
  for (rapidjson::SizeType i = 0; i < expected.Size(); ++i) {
    ASSERT_FALSE((*job)->done()) << "series ended early at " << i;
    auto data = (*job)->next();
    ASSERT_TRUE(data) << data.error();
    json::Document got;
    ASSERT_TRUE(json::parse(got, *data));
    EXPECT_TRUE(got["content"] == expected[i]["content"]) << "message " << i << ": " << *data;
    EXPECT_TRUE(got["parameters"] == expected[i]["parameters"]);
  }
  EXPECT_TRUE((*job)->done());
  fs::remove_all(dir);
}

TEST(RemoteCopy, ADirectoryTravelsAsAGzipTarWithItsMd5) {
  std::string dir = temp_dir(), cache = temp_dir();
  fs::create_directories(dir + "/src/sub");
  std::ofstream(dir + "/src/a.cfg") << "alpha\n";
  std::ofstream(dir + "/src/sub/b.cfg") << "beta\n";
  std::string request = R"({"content":{"source":")" + dir + R"(/src","destination":"/tmp/dst","cache_dir":")" + cache +
                        R"(","type":"engine"}})";
  auto job = RemoteCopy::start(request, "4", "tok", 64);
  ASSERT_TRUE(job) << job.error();
  std::string archive;
  std::string md5;
  while (!(*job)->done()) {
    ASSERT_TRUE((*job)->wait_available(std::chrono::seconds(30)));
    auto data = (*job)->next();
    ASSERT_TRUE(data) << data.error();
    json::Document d;
    ASSERT_TRUE(json::parse(d, *data));
    EXPECT_STREQ(d["content"]["type"].GetString(), "archive");
    if (d["content"]["chunk"].IsObject()) archive += protocol::base64_decode_lenient(d["content"]["chunk"]["data"].GetString());
    else md5 = d["content"]["md5"].GetString();
  }
  ASSERT_GT(archive.size(), 20u);
  EXPECT_EQ(static_cast<unsigned char>(archive[0]), 0x1f);  // gzip magic
  EXPECT_EQ(md5.size(), 32u);
  // The archive streams from the archiver: nothing is ever written to cache_dir here.
  job.value().reset();
  EXPECT_TRUE(fs::is_empty(cache));
  fs::remove_all(dir);
  fs::remove_all(cache);
}

TEST(RemoteCopy, BadRequestsGetGorgonesTexts) {
  EXPECT_EQ(RemoteCopy::start(R"({"content":{"destination":"/tmp/x"}})", "4", "t", 64).error(), "remote copy failed");
  EXPECT_EQ(RemoteCopy::start(R"({"content":{"source":"/nonexistent/x","destination":"/tmp/x"}})", "4", "t", 64).error(),
            "unknown source");
  EXPECT_NE(RemoteCopy::start(R"({"content":{"source":"/etc/../etc/hostname","destination":"/tmp/x"}})", "4", "t", 64)
                .error()
                .find("without '..'"),
            std::string::npos);
  EXPECT_EQ(RemoteCopy::start("not json", "4", "t", 64).error(), "remote copy failed");
}

// A directory source with one file, so that a bad mode would reach the archive writer.
struct DirSource {
  DirSource() : dir(temp_dir()), cache(temp_dir()) {
    fs::create_directories(dir + "/src");
    std::ofstream(dir + "/src/a.cfg") << "alpha\n";
  }
  ~DirSource() {
    fs::remove_all(dir);
    fs::remove_all(cache);
  }
  // `extra`: more members of content, e.g. R"(,"mode":"0640")".
  Result<std::unique_ptr<RemoteCopy>> start(const std::string& extra, const std::atomic<bool>* stop = nullptr,
                                            std::size_t buffer_size = 64, RemoteCopy::Options options = {}) {
    std::string request = R"({"content":{"source":")" + dir + R"(/src","destination":"/tmp/dst","cache_dir":")" +
                          cache + "\"" + extra + "}}";
    return RemoteCopy::start(request, "4", "tok", buffer_size, stop, options);
  }
  std::string dir, cache;
};

TEST(RemoteCopy, ModeMustBeOneToFourOctalDigits) {
  DirSource src;
  // A long octal mode used to pass the digit check and throw out of std::stoul, which
  // ended the proxy worker thread.
  for (const char* bad : {"0777777777777777777777", "07777777777777777777", "17777", "00640"}) {
    auto job = src.start(std::string(R"(,"mode":")") + bad + "\"");
    ASSERT_FALSE(job) << bad;
    EXPECT_EQ(job.error(), std::string("remote copy failed: mode must be 1 to 4 octal digits, got '") + bad + "'");
  }
  for (const char* bad : {"0648", "rwx", "-1", "0x1ff", " 640"}) {
    auto job = src.start(std::string(R"(,"mode":")") + bad + "\"");
    ASSERT_FALSE(job) << bad;
    EXPECT_EQ(job.error().rfind("remote copy failed: mode must be 1 to 4 octal digits", 0), 0u) << job.error();
  }
  // A huge value is quoted shortened, not copied whole into the history row.
  auto huge = src.start(R"(,"mode":")" + std::string(5000, '7') + "\"");
  ASSERT_FALSE(huge);
  EXPECT_LT(huge.error().size(), 200u);
  for (const char* good : {"0640", "755", "4755", "0"}) {
    auto job = src.start(std::string(R"(,"mode":")") + good + "\"");
    EXPECT_TRUE(job) << good << ": " << job.error();
  }
  EXPECT_TRUE(src.start(R"(,"mode":640)")) << "a JSON number is read as its digits";
}

TEST(RemoteCopy, OwnerAndGroupMustBePortableNames) {
  DirSource src;
  for (const char* member : {"owner", "group"}) {
    for (const char* bad : {"-rf", ".hidden", "root:root", "a b", "../x", "centreon/engine", "ab\u00e9",
                            "0123456789012345678901234567890123"}) {
      auto job = src.start(std::string(",\"") + member + "\":\"" + bad + "\"");
      ASSERT_FALSE(job) << member << " " << bad;
      EXPECT_EQ(job.error().rfind(std::string("remote copy failed: ") + member + " must be a", 0), 0u) << job.error();
    }
    for (const char* good : {"centreon-engine", "root", "_apt", "www.data", "user42", "0day"}) {
      auto job = src.start(std::string(",\"") + member + "\":\"" + good + "\"");
      EXPECT_TRUE(job) << member << " " << good << ": " << job.error();
    }
  }
}

// start() archives nothing (the worker calling it never waits for an archive): the
// archiver reads `stop` between entries and blocks, and a stop ends the series with an error
// instead of an `end` message.
TEST(RemoteCopy, AStopRequestAbandonsTheArchive) {
  DirSource src;
  std::atomic<bool> stop{true};
  auto job = src.start("", &stop);
  ASSERT_TRUE(job) << job.error();
  ASSERT_TRUE((*job)->wait_available(std::chrono::seconds(30)));
  auto data = (*job)->next();
  ASSERT_FALSE(data);
  EXPECT_EQ(data.error(), "remote copy failed: the proxy is stopping; archive of '" + src.dir + "/src' abandoned");
  EXPECT_TRUE((*job)->done());
  EXPECT_TRUE(fs::is_empty(src.cache)) << "nothing is written to cache_dir";
  stop = false;
  auto again = src.start("", &stop);
  ASSERT_TRUE(again);
  ASSERT_TRUE((*again)->wait_available(std::chrono::seconds(30)));
  EXPECT_TRUE((*again)->next());
}

// A stop while the archiver runs (here: waiting on its full buffer) ends it before its next
// entry or block: the series ends with the error, never with an `end` message.
TEST(RemoteCopy, AStopWhileArchivingEndsTheSeriesWithAnError) {
  DirSource src;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20; ++i) {
    std::string data(256 << 10, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    std::ofstream(src.dir + "/src/f" + std::to_string(i) + ".bin", std::ios::binary) << data;
  }
  std::atomic<bool> stop{false};
  RemoteCopy::Options options;
  options.pipe_bytes = 64 << 10;
  auto job = src.start("", &stop, 16 << 10, options);
  ASSERT_TRUE(job) << job.error();
  ASSERT_TRUE((*job)->wait_available(std::chrono::seconds(30)));
  ASSERT_TRUE((*job)->next()) << "the first chunk is made before the stop";
  stop = true;
  std::optional<std::string> error;
  for (int i = 0; i < 1000 && !error; ++i) {
    ASSERT_FALSE((*job)->done());
    ASSERT_TRUE((*job)->wait_available(std::chrono::seconds(30)));
    auto data = (*job)->next();
    if (!data) error = data.error();
    else ASSERT_EQ(data->find("\"status\":\"end\""), std::string::npos) << "a stopped archive was completed";
  }
  ASSERT_TRUE(error) << "the archive went on after the stop";
  EXPECT_EQ(*error, "remote copy failed: the proxy is stopping; archive of '" + src.dir + "/src' abandoned");
  EXPECT_TRUE((*job)->done());
}

// Back-pressure between the archiver and the series: the archiver holds at most about
// pipe_bytes ahead of next() and waits there; taking chunks lets it go on, and the series
// still ends with the archive's MD5.
TEST(RemoteCopy, TheArchiverWaitsWhileItsBufferIsFull) {
  DirSource src;
  std::mt19937_64 rng(3);
  std::string big(4 << 20, '\0');
  for (auto& c : big) c = static_cast<char>(rng());
  std::ofstream(src.dir + "/src/big.bin", std::ios::binary) << big;
  RemoteCopy::Options options;
  options.pipe_bytes = 256 << 10;
  auto job = src.start("", nullptr, 64 << 10, options);
  ASSERT_TRUE(job) << job.error();
  ASSERT_TRUE((*job)->wait_available(std::chrono::seconds(30)));
  // Wait until the archiver stopped producing (the buffer is full), then look at what it holds.
  std::size_t held = 0;
  for (int still = 0; still < 20;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::size_t now = (*job)->held();
    still = now == held ? still + 1 : 0;
    held = now;
  }
  EXPECT_GE(held, std::size_t{256} << 10);
  EXPECT_LE(held, (std::size_t{256} << 10) + (std::size_t{128} << 10)) << "the archiver did not wait";
  std::string archive, md5;
  while (!(*job)->done()) {
    ASSERT_TRUE((*job)->wait_available(std::chrono::seconds(30)));
    EXPECT_LE((*job)->held(), (std::size_t{256} << 10) + (std::size_t{128} << 10));
    auto data = (*job)->next();
    ASSERT_TRUE(data) << data.error();
    json::Document d;
    ASSERT_TRUE(json::parse(d, *data));
    if (d["content"]["chunk"].IsObject()) archive += protocol::base64_decode_lenient(d["content"]["chunk"]["data"].GetString());
    else md5 = d["content"]["md5"].GetString();
  }
  EXPECT_GT(archive.size(), big.size()) << "random data does not compress";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(archive.data(), archive.size(), digest, &len, EVP_md5(), nullptr);
  EXPECT_EQ(md5, protocol::to_hex(std::string(reinterpret_cast<char*>(digest), len)));
}

// The archiver stores data that does not compress (deflate would cost it most of its time
// for nothing) and compresses the rest: decided from the heads of the first files.
TEST(RemoteCopy, OnlyDataThatCompressesIsCompressed) {
  std::string random = temp_dir(), text = temp_dir(), tiny = temp_dir();
  std::mt19937_64 rng(11);
  for (int i = 0; i < 4; ++i) {
    std::string bytes(64 << 10, '\0'), lines;
    for (auto& c : bytes) c = static_cast<char>(rng());
    std::ofstream(random + "/f" + std::to_string(i) + ".bin", std::ios::binary) << bytes;
    while (lines.size() < (64u << 10)) lines += "check_interval " + std::to_string(rng() % 10) + "\n";
    std::ofstream(text + "/f" + std::to_string(i) + ".cfg") << lines;
  }
  std::ofstream(tiny + "/a.bin", std::ios::binary) << std::string("\x8f\x01\xc3", 3);
  EXPECT_FALSE(copy_rules::compresses(random));
  EXPECT_TRUE(copy_rules::compresses(text));
  EXPECT_TRUE(copy_rules::compresses(tiny)) << "too little to tell";
  for (const auto& d : {random, text, tiny}) fs::remove_all(d);
}

// Dropping a copy whose archiver waits on a full buffer ends the archiver (no thread left).
TEST(RemoteCopy, DroppingACopyStopsItsArchiver) {
  DirSource src;
  std::ofstream(src.dir + "/src/big.bin", std::ios::binary) << std::string(8 << 20, 'x');
  RemoteCopy::Options options;
  options.pipe_bytes = 64 << 10;
  options.gzip_level = 0;
  auto job = src.start("", nullptr, 16 << 10, options);
  ASSERT_TRUE(job);
  ASSERT_TRUE((*job)->wait_available(std::chrono::seconds(30)));
  job.value().reset();  // joins the archiver: the test would hang (and time out) otherwise
  SUCCEED();
}

}  // namespace
}  // namespace gorgone::proxy
