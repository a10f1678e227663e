// The action example module's PROCESSCOPY side, without loading the module. Replays the
// PROCESSCOPY series recorded from Gorgone, then the error and hostile cases.
#include <archive.h>
#include <archive_entry.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vector>

#include "command_request.hpp"
#include "gorgone/json.hpp"
#include "process_copy.hpp"

namespace gorgone::action {
namespace {
namespace fs = std::filesystem;

constexpr const char* kToken = "bf549127eb5d9d36";

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string base64(const std::string& bytes) {
  static const char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                 static_cast<unsigned char>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(k[(v >> s) & 63]);
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(k[(v >> 18) & 63]);
    out.push_back(k[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? k[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out + "\n";
}

struct Entry {
  std::string name;
  std::string body;       // regular files
  std::string link;       // symlink target when set
  bool hard = false;      // hard link to `link`
  mode_t type = 0;        // another file type (AE_IFIFO, AE_IFCHR, AE_IFDIR ...) when set
  mode_t perm = 0644;
  bool ours = false;      // owned by the user running the test (set-id bits survive then)
};

// A tar.gz built with libarchive, to exercise hostile member names.
std::string make_targz(const std::vector<Entry>& entries) {
  std::vector<char> buf(1 << 20);
  size_t used = 0;
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  for (const auto& e : entries) {
    struct archive_entry* ent = archive_entry_new();
    archive_entry_set_pathname(ent, e.name.c_str());
    archive_entry_set_perm(ent, e.perm);
    if (e.ours) {
      archive_entry_set_uid(ent, ::geteuid());
      archive_entry_set_gid(ent, ::getegid());
    }
    if (e.type != 0) {
      archive_entry_set_filetype(ent, e.type);
      if (e.type == AE_IFCHR || e.type == AE_IFBLK) archive_entry_set_rdev(ent, makedev(1, 3));  // like /dev/null
    } else if (e.hard) {
      archive_entry_set_filetype(ent, AE_IFREG);
      archive_entry_set_hardlink(ent, e.link.c_str());
    } else if (!e.link.empty()) {
      archive_entry_set_filetype(ent, AE_IFLNK);
      archive_entry_set_symlink(ent, e.link.c_str());
    } else {
      archive_entry_set_filetype(ent, AE_IFREG);
      archive_entry_set_size(ent, static_cast<la_int64_t>(e.body.size()));
    }
    archive_write_header(a, ent);
    if (e.type == 0 && !e.hard && e.link.empty()) archive_write_data(a, e.body.data(), e.body.size());
    archive_entry_free(ent);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

std::string md5_hex_of(const fs::path& p) {
  std::string data = read_all(p);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

class ProcessCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "gorgone-copy-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    cache_ = root_ / "cache";
    fs::create_directories(cache_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  Output output() {
    Output out;
    out.history = [this](int code, const std::string& text, int) {
      json::Document d;
      ASSERT_TRUE(json::parse(d, text)) << text;
      codes_.push_back(code);
      messages_.push_back(d.HasMember("message") ? d["message"].GetString() : text);
    };
    return out;
  }

  void send(const std::string& data, const std::string& token = kToken) { copier_.handle(token, data, output()); }

  std::string chunk_msg(const std::string& bytes, const std::string& destination) {
    return R"({"parameters":{"no_fork":1},"content":{"status":"inprogress","type":"regular","md5":null,"chunk":{"size":)" +
           std::to_string(bytes.size()) + R"(,"data":)" + json::quote(base64(bytes)) + R"(},"cache_dir":)" +
           json::quote(cache_.string()) + R"(,"destination":)" + json::quote(destination) + "}}";
  }
  std::string end_msg(const std::string& type, const std::string& md5, const std::string& destination,
                      const std::string& extra = "") {
    return R"({"content":{"status":"end","type":")" + type + R"(","chunk":null,"md5":")" + md5 +
           R"(","cache_dir":)" + json::quote(cache_.string()) + R"(,"destination":)" + json::quote(destination) +
           extra + "}}";
  }
  // Sends `bytes` in chunks, then the end message with the right md5.
  void transfer(const std::string& bytes, const std::string& type, const std::string& destination,
                const std::string& extra = "") {
    for (std::size_t i = 0; i < bytes.size(); i += 100) send(chunk_msg(bytes.substr(i, 100), destination));
    fs::path staged = root_ / "staged";
    std::ofstream(staged, std::ios::binary) << bytes;
    send(end_msg(type, md5_hex_of(staged), destination, extra));
  }

  fs::path root_, cache_;
  ProcessCopy copier_;
  std::vector<int> codes_;
  std::vector<std::string> messages_;
};

// Rewrites the recorded paths into the test directory.
std::string relocate(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at; (at = text.find(from)) != std::string::npos;) text.replace(at, from.size(), to);
  return text;
}

TEST_F(ProcessCopyTest, ReplaysRecordedGorgoneSeries) {
  const char* dir = std::getenv("GORGONE_VECTORS_DIR");
  if (!dir) GTEST_SKIP() << "GORGONE_VECTORS_DIR not set";
  json::Document vectors;
  ASSERT_TRUE(json::parse(vectors, read_all(fs::path(dir) / "proxy_frames.json")));
  const auto& series = vectors["PROCESSCOPY_series_buffer_size_64"]["series"];
  ASSERT_EQ(series.Size(), 2u);
  for (const auto& s : series.GetArray()) {
    codes_.clear();
    for (const auto& m : s["messages"].GetArray()) {
      std::string text = relocate(json::dump(m), "/tmp/gw/rc", root_.string());
      send(text, s["token"].GetString());
    }
    std::size_t chunks = s["chunks"].Size();
    ASSERT_EQ(codes_.size(), chunks + 1) << messages_.back();
    for (std::size_t i = 0; i < chunks; ++i) EXPECT_EQ(codes_[i], 101);
    EXPECT_EQ(codes_.back(), 2) << messages_.back();
    EXPECT_EQ(messages_.back(), "process copy finished successfully");
    EXPECT_FALSE(fs::exists(cache_ / ("copy_" + std::string(s["token"].GetString()))));
  }
  fs::path file = root_ / "dst" / "file.txt";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(read_all(file), from_hex(series[0]["reassembled_hex"].GetString()));
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::mask, static_cast<fs::perms>(0640));
  EXPECT_EQ(read_all(root_ / "dstdir" / "a.cfg"), "a\n");
  EXPECT_EQ(read_all(root_ / "dstdir" / "sub" / "b.cfg"), "bb\n");
  EXPECT_EQ(messages_[0], "process copy inprogress");
}

TEST_F(ProcessCopyTest, RegularIntoDirectoryUsesSourceName) {
  fs::create_directories(root_ / "dst");
  std::string dest = (root_ / "dst").string() + "/";
  transfer("hello\n", "regular", dest, R"(,"source":"/somewhere/centengine.cfg","mode":"0600")");
  EXPECT_EQ(codes_.back(), 2) << messages_.back();
  EXPECT_EQ(read_all(root_ / "dst" / "centengine.cfg"), "hello\n");
  EXPECT_EQ(fs::status(root_ / "dst" / "centengine.cfg").permissions() & fs::perms::mask, static_cast<fs::perms>(0600));

  codes_.clear();
  transfer("x", "regular", dest);  // no source name to use
  EXPECT_EQ(codes_.back(), 1);
  EXPECT_EQ(messages_.back(), "Can't copy file to " + dest + ", Is a directory");
}

TEST_F(ProcessCopyTest, ReplacesExistingFileKeepingItsMode) {
  fs::create_directories(root_ / "dst");
  fs::path target = root_ / "dst" / "f.cfg";
  std::ofstream(target) << "old contents that are longer";
  fs::permissions(target, static_cast<fs::perms>(0604));
  transfer("new", "regular", target.string());
  EXPECT_EQ(codes_.back(), 2) << messages_.back();
  EXPECT_EQ(read_all(target), "new");
  EXPECT_EQ(fs::status(target).permissions() & fs::perms::mask, static_cast<fs::perms>(0604));
  // No temporary file left next to it.
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ / "dst"), fs::directory_iterator()), 1);
}

TEST_F(ProcessCopyTest, EmptyFileIsOnlyAnEndMessage) {
  fs::create_directories(root_ / "dst");
  send(end_msg("regular", "d41d8cd98f00b204e9800998ecf8427e", (root_ / "dst" / "empty").string()));
  ASSERT_EQ(codes_.size(), 1u);
  EXPECT_EQ(codes_[0], 2) << messages_[0];
  EXPECT_TRUE(fs::exists(root_ / "dst" / "empty"));
  EXPECT_EQ(fs::file_size(root_ / "dst" / "empty"), 0u);
}

TEST_F(ProcessCopyTest, Md5MismatchFailsAndCleansUp) {
  fs::path target = root_ / "dst.txt";
  send(chunk_msg("payload", target.string()));
  send(end_msg("regular", "00000000000000000000000000000000", target.string()));
  ASSERT_EQ(codes_.size(), 2u);
  EXPECT_EQ(codes_[1], 1);
  EXPECT_EQ(messages_[1], "md5 does not match");
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(cache_ / ("copy_" + std::string(kToken))));
}

TEST_F(ProcessCopyTest, RefusesUnsafeTokenAndPaths) {
  std::string ok_dest = (root_ / "d").string();
  send(chunk_msg("x", ok_dest), "../../etc/passwd");
  EXPECT_EQ(messages_.back(), "invalid token");
  send(chunk_msg("x", ok_dest), "");
  EXPECT_EQ(messages_.back(), "invalid token");

  send(R"({"content":{"status":"inprogress","cache_dir":"relative/dir","chunk":{"data":"eA==","size":1}}})");
  EXPECT_EQ(messages_.back(), "invalid cache_dir 'relative/dir': must be an absolute path without '..'");
  send(R"({"content":{"status":"inprogress","cache_dir":"/tmp/../etc","chunk":{"data":"eA==","size":1}}})");
  EXPECT_EQ(codes_.back(), 1);
  EXPECT_NE(messages_.back().find("invalid cache_dir"), std::string::npos);

  send(chunk_msg("x", "/x/../../etc/passwd"));  // chunks do not look at the destination
  send(end_msg("regular", "9dd4e461268c8034f5c8564e155c67a6", "/x/../../etc/passwd"));
  EXPECT_EQ(messages_.back(), "invalid destination '/x/../../etc/passwd': must be an absolute path without '..'");
  EXPECT_TRUE(std::all_of(codes_.begin(), codes_.end(), [](int c) { return c == 1 || c == 101; }));
}

TEST_F(ProcessCopyTest, BadMessages) {
  send("{oops");
  EXPECT_EQ(messages_.back(), "cannot decode json");
  send(R"({"content":""})");
  EXPECT_EQ(messages_.back(), "no content");
  send(R"({"content":{"cache_dir":"/tmp"}})");
  EXPECT_EQ(messages_.back(), "please set status");
  send(R"({"content":{"status":"inprogress","cache_dir":")" + cache_.string() + R"("}})");
  EXPECT_EQ(messages_.back(), "missing chunk data");
  send(R"({"content":{"status":"inprogress","cache_dir":")" + cache_.string() + R"(","chunk":{"data":"!!!!"}}})");
  EXPECT_EQ(messages_.back(), "invalid base64 in chunk data");
  send(R"({"content":{"status":"end","cache_dir":")" + cache_.string() + R"(","type":"regular","destination":"/tmp/x"}})");
  EXPECT_EQ(messages_.back(), "please set md5");
  send(R"({"content":{"status":"paused","cache_dir":")" + cache_.string() + R"("}})");
  EXPECT_EQ(messages_.back(), "unknown status 'paused'");
  EXPECT_TRUE(std::all_of(codes_.begin(), codes_.end(), [](int c) { return c == 1; }));
}

TEST_F(ProcessCopyTest, OpenFailureIsReportedOncePerFile) {
  std::string missing_dir = (root_ / "no-such-dir").string();
  std::string msg = R"({"content":{"status":"inprogress","cache_dir":")" + missing_dir +
                    R"(","chunk":{"data":"eA==","size":1}}})";
  send(msg);
  send(msg);
  send(msg);
  ASSERT_EQ(codes_.size(), 1u);
  EXPECT_EQ(codes_[0], 1);
  EXPECT_EQ(messages_[0], "file '" + missing_dir + "/copy_" + kToken + "' open failed: No such file or directory");
}

TEST_F(ProcessCopyTest, ChunkSizeLimitsTheBytesWritten) {
  fs::path target = root_ / "sized";
  std::string msg = R"({"content":{"status":"inprogress","cache_dir":")" + cache_.string() +
                    R"(","chunk":{"data":"YWJjZGVm\n","size":3}}})";  // "abcdef", size 3
  send(msg);
  EXPECT_EQ(read_all(cache_ / ("copy_" + std::string(kToken))), "abc");
}

TEST_F(ProcessCopyTest, ArchiveExtractsNestedEntries) {
  std::string tgz = make_targz({{"./top.cfg", "t", "", false}, {"dir/inner.cfg", "i", "", false},
                                {"dir/link", "", "inner.cfg", false}, {"hard", "", "top.cfg", true}});
  fs::path dest = root_ / "new" / "engine";  // created on the way
  transfer(tgz, "archive", dest.string());
  EXPECT_EQ(codes_.back(), 2) << messages_.back();
  EXPECT_EQ(read_all(dest / "top.cfg"), "t");
  EXPECT_EQ(read_all(dest / "dir" / "inner.cfg"), "i");
  EXPECT_EQ(read_all(dest / "dir" / "link"), "i");
  EXPECT_EQ(read_all(dest / "hard"), "t");
}

TEST_F(ProcessCopyTest, ArchiveRefusesEscapes) {
  struct Case {
    Entry entry;
    const char* why;
  };
  const Case cases[] = {
      {{"../escape.txt", "x", "", false}, "refusing entry '../escape.txt'"},
      {{"a/../../escape.txt", "x", "", false}, "refusing entry"},
      {{"/abs/escape.txt", "x", "", false}, "refusing entry"},
      {{"evil", "", "/etc", false}, "refusing symlink 'evil'"},
      {{"evil", "", "../..", false}, "refusing symlink 'evil'"},
      {{"hl", "", "../outside", true}, "refusing hard link 'hl'"},
  };
  fs::path dest = root_ / "dst";
  for (const auto& c : cases) {
    codes_.clear();
    transfer(make_targz({{"good.cfg", "g", "", false}, c.entry}), "archive", dest.string());
    ASSERT_FALSE(codes_.empty());
    EXPECT_EQ(codes_.back(), 1) << c.entry.name;
    EXPECT_EQ(messages_.back().rfind("untar failed: ", 0), 0u) << messages_.back();
    EXPECT_NE(messages_.back().find(c.why), std::string::npos) << messages_.back();
  }
  EXPECT_FALSE(fs::exists(root_ / "escape.txt"));
  EXPECT_FALSE(fs::exists(root_ / "abs"));
  EXPECT_FALSE(fs::exists(dest / "evil"));
}

// Only files, directories and links come out of an archive; the first other entry stops
// the extraction and the copy's final row names it.
TEST_F(ProcessCopyTest, ArchiveRefusesDevicesAndFifos) {
  struct Case {
    Entry entry;
    const char* why;
  };
  const Case cases[] = {
      {{"pipe", "", "", false, AE_IFIFO}, "refusing FIFO 'pipe'"},
      {{"dev/null0", "", "", false, AE_IFCHR}, "refusing character device 'dev/null0'"},
      {{"disk0", "", "", false, AE_IFBLK}, "refusing block device 'disk0'"},
  };
  for (const auto& c : cases) {
    codes_.clear();
    fs::path dest = root_ / ("dst-" + fs::path(c.entry.name).filename().string());
    transfer(make_targz({{"good.cfg", "g", "", false}, c.entry, {"after.cfg", "a", "", false}}), "archive",
             dest.string());
    ASSERT_FALSE(codes_.empty());
    EXPECT_EQ(codes_.back(), 1) << c.entry.name;
    EXPECT_EQ(messages_.back(), std::string("untar failed: ") + c.why +
                                    " (only files, directories and links are extracted)");
    EXPECT_TRUE(fs::exists(dest / "good.cfg"));
    EXPECT_FALSE(fs::exists(fs::symlink_status(dest / c.entry.name))) << c.entry.name;
    EXPECT_FALSE(fs::exists(dest / "after.cfg")) << "nothing is extracted after a refused entry";
  }
}

// A hard link to a path that goes through a symlink already in the destination would link
// (and with data, overwrite) a file outside it.
TEST_F(ProcessCopyTest, ArchiveRefusesAHardLinkThroughASymlink) {
  fs::create_directories(root_ / "outside");
  std::ofstream(root_ / "outside" / "secret") << "top secret";
  fs::path dest = root_ / "dst";
  fs::create_directories(dest);
  fs::create_directory_symlink(root_ / "outside", dest / "out");
  transfer(make_targz({{"h", "", "out/secret", true}}), "archive", dest.string());
  ASSERT_FALSE(codes_.empty());
  EXPECT_EQ(codes_.back(), 1) << messages_.back();
  EXPECT_EQ(messages_.back().rfind("untar failed: refusing hard link 'h' to 'out/secret' (it goes through the symlink", 0),
            0u)
      << messages_.back();
  EXPECT_FALSE(fs::exists(fs::symlink_status(dest / "h")));
  EXPECT_EQ(fs::hard_link_count(root_ / "outside" / "secret"), 1u);
  EXPECT_EQ(read_all(root_ / "outside" / "secret"), "top secret");

  // Writing a file through that symlink is refused too (ARCHIVE_EXTRACT_SECURE_SYMLINKS).
  codes_.clear();
  transfer(make_targz({{"out/planted", "x", "", false}}), "archive", dest.string());
  EXPECT_EQ(codes_.back(), 1) << messages_.back();
  EXPECT_FALSE(fs::exists(root_ / "outside" / "planted"));
}

TEST_F(ProcessCopyTest, SetIdAndStickyBitsAreClearedUnlessKeepSetid) {
  auto archive = make_targz({{"suid", "s", "", false, 0, 04755, true},
                             {"sgid", "g", "", false, 0, 02755, true},
                             {"sticky", "", "", false, AE_IFDIR, 01777, true}});
  auto perms = [](const fs::path& p) { return static_cast<unsigned>(fs::status(p).permissions() & fs::perms::mask); };
  fs::path dest = root_ / "dst";
  transfer(archive, "archive", dest.string());
  ASSERT_EQ(codes_.back(), 2) << messages_.back();
  EXPECT_EQ(perms(dest / "suid"), 0755u);
  EXPECT_EQ(perms(dest / "sgid"), 0755u);
  EXPECT_EQ(perms(dest / "sticky"), 0777u);
  // A regular file's requested mode too.
  transfer("x", "regular", (root_ / "plain").string(), R"(,"mode":"4755")");
  ASSERT_EQ(codes_.back(), 2) << messages_.back();
  EXPECT_EQ(perms(root_ / "plain"), 0755u);

  // keep_setid: true keeps them.
  copier_ = ProcessCopy(CopyOptions{true, nullptr});
  fs::path kept = root_ / "kept";
  transfer(archive, "archive", kept.string());
  ASSERT_EQ(codes_.back(), 2) << messages_.back();
  EXPECT_EQ(perms(kept / "suid"), 04755u);
  EXPECT_EQ(perms(kept / "sticky"), 01777u);
  transfer("x", "regular", (root_ / "plain-kept").string(), R"(,"mode":"4755")");
  EXPECT_EQ(perms(root_ / "plain-kept"), 04755u);
}

TEST_F(ProcessCopyTest, AbortStopsAnExtractionBeforeItsNextEntry) {
  std::atomic<bool> abort{true};
  copier_ = ProcessCopy(CopyOptions{false, &abort});
  fs::path dest = root_ / "dst";
  transfer(make_targz({{"a.cfg", "a", "", false}, {"b.cfg", "b", "", false}}), "archive", dest.string());
  EXPECT_EQ(codes_.back(), 1);
  EXPECT_EQ(messages_.back(), "untar failed: the action module is stopping");
  EXPECT_FALSE(fs::exists(dest / "a.cfg"));
  abort = false;
  transfer(make_targz({{"a.cfg", "a", "", false}}), "archive", dest.string());
  EXPECT_EQ(codes_.back(), 2) << messages_.back();
}

TEST(ActionSettings, KeepSetidIsAStrictBoolean) {
  EXPECT_FALSE(parse_settings(YAML::Node())->keep_setid);
  EXPECT_FALSE(parse_settings(YAML::Load("command_timeout: 10"))->keep_setid);
  EXPECT_TRUE(parse_settings(YAML::Load("keep_setid: true"))->keep_setid);
  EXPECT_FALSE(parse_settings(YAML::Load("keep_setid: no"))->keep_setid);
  auto bad = parse_settings(YAML::Load("keep_setid: sometimes"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "keep_setid must be true or false, got 'sometimes'");
}

TEST_F(ProcessCopyTest, CorruptArchive) {
  transfer(std::string("this is not a tar.gz at all, just text padding padding padding"), "archive",
           (root_ / "dst").string());
  EXPECT_EQ(codes_.back(), 1);
  EXPECT_EQ(messages_.back().rfind("untar failed: ", 0), 0u) << messages_.back();
}

TEST(Base64, Decode) {
  std::string out;
  ASSERT_TRUE(decode_base64("bGluZSBvbmUg\nb2Y=\n", out));
  EXPECT_EQ(out, "line one of");
  ASSERT_TRUE(decode_base64("", out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(decode_base64("YWI", out));  // unpadded
  EXPECT_EQ(out, "ab");
  EXPECT_FALSE(decode_base64("YW=I", out));
  EXPECT_FALSE(decode_base64("Y", out));
  EXPECT_FALSE(decode_base64("Y*==", out));
}

TEST(ConfinedPath, Rules) {
  EXPECT_TRUE(is_confined_path("/var/cache/centreon"));
  EXPECT_TRUE(is_confined_path("/etc/centreon-engine/"));
  EXPECT_FALSE(is_confined_path("var/cache"));
  EXPECT_FALSE(is_confined_path(""));
  EXPECT_FALSE(is_confined_path("/var/../etc"));
  EXPECT_FALSE(is_confined_path("/var/.."));
  EXPECT_FALSE(is_confined_path(std::string("/var\0/x", 7)));
  EXPECT_TRUE(is_confined_path("/var/..hidden/x"));
}

}  // namespace
}  // namespace gorgone::action
