// push_ssh nodes against a real OpenSSH server started by the suite (tests/support/sshd.hpp):
// authentication, host keys, commands, copies, failures of the server, and an SSH node
// beside ZMQ nodes and behind a remote. The "node" is this machine seen through sshd, so
// the test reads what a copy wrote directly.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <pwd.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "fleet.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "sshd.hpp"

namespace gorgone::testing {
namespace {
namespace fs = std::filesystem;

mode_t mode_of(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return st.st_mode & 07777;
}

bool has_temporary_files(const std::string& dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
    if (it->path().filename().string().find(".gorgone-") != std::string::npos) return true;
  return false;
}

// A gzip tar held in memory whose entries are given as (name, content).
std::string tar_gz(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::vector<char> buf(1 << 20);
  size_t used = 0;
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  for (const auto& [name, content] : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    archive_write_header(a, e);
    archive_write_data(a, content.data(), content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

std::string md5_hex(const std::string& bytes) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), d, &n, EVP_md5(), nullptr);
  return protocol::to_hex(std::string_view(reinterpret_cast<const char*>(d), n));
}

class Ssh : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = gorgone_test::Sshd::unavailable(); !why.empty()) GTEST_SKIP() << why;
    sshd_ = std::make_unique<gorgone_test::Sshd>();
    dir_ = make_temp_dir("gorgone-ssh");
    fs::create_directories(dir_ + "/empty-ssh-dir");
    // The node's account writes under it; and known_hosts files the tests make are learnt into.
    fs::permissions(dir_, fs::perms::all);
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << fleet_.logs();
      if (sshd_) std::cerr << "---- sshd\n" << sshd_->log();
    }
    fleet_stop_all();
    sshd_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void fleet_stop_all() {
    for (const char* id : {"1", "2", "3"}) fleet_.stop(id);
  }

  // A push_ssh node entry of a nodes file. `extra`: more attribute lines (4-space indent).
  std::string ssh_node(const std::string& id, const std::string& extra, int port = 0) {
    return "  - id: " + id + "\n    type: push_ssh\n    address: 127.0.0.1\n    ssh_port: " +
           std::to_string(port ? port : sshd_->port()) + "\n    ssh_connect_timeout: 3\n" + extra;
  }
  // Key authentication as the fixture's plain /bin/sh account (commands then run without
  // root's shell start-up files), or as root where a test needs it (owner changes, system
  // directories).
  std::string key_auth(bool as_root = false) {
    return "    ssh_username: " + (as_root ? sshd_->user() : sshd_->password_user()) + "\n    ssh_identity: " +
           sshd_->client_key() + "\n    ssh_directory: " + dir_ + "/empty-ssh-dir\n    ssh_known_hosts: " +
           sshd_->known_hosts() + "\n    strict_serverkey_check: true\n";
  }
  // A path the SSH account may write (the "node" is this machine): made here, given to it.
  void give_to_node(const std::string& path) {
    struct passwd* pw = ::getpwnam(sshd_->password_user().c_str());
    ASSERT_NE(pw, nullptr);
    ASSERT_EQ(::chown(path.c_str(), pw->pw_uid, pw->pw_gid), 0) << path;
  }

  // The central ("1", REST on) with the proxy and the given nodes file.
  void start_central(const std::string& nodes, const std::string& directives = HostSpec::kProxyDirectives) {
    fleet_.declare({"1", false, {}, true, directives, nodes, true});
    fleet_.start("1");
  }
  std::string post_command(const std::string& node, const std::string& body) {
    auto [status, answer] = fleet_.post("1", "/api/nodes/" + node + "/core/action/command", body);
    json::Document d;
    EXPECT_EQ(status, 200) << answer;
    return json::parse(d, answer) && d.HasMember("token") ? std::string(d["token"].GetString()) : std::string();
  }
  std::string remote_copy(const std::string& node, const std::string& content) {
    auto [status, answer] = fleet_.post("1", "/api/nodes/" + node + "/core/proxy/remotecopy", content);
    json::Document d;
    EXPECT_EQ(status, 200) << answer;
    return json::parse(d, answer) && d.HasMember("token") ? std::string(d["token"].GetString()) : std::string();
  }
  // The rows of `token` on `via` once one is final (code 1 or 2, and not the result of one
  // command of a list); empty after 60 s.
  std::vector<std::pair<int, std::string>> final_rows(const std::string& token, const std::string& via = "1",
                                                     const std::string& sync_node = "") {
    std::vector<std::pair<int, std::string>> rows;
    bool done = eventually(
        [&] {
          rows = fleet_.rows(via, token, sync_node);
          for (const auto& r : rows)
            if ((r.first == 1 || r.first == 2) && r.second.rfind(R"({"message":"command has)", 0) != 0) return true;
          return false;
        },
        std::chrono::seconds(60));
    if (!done) rows.clear();
    return rows;
  }
  static int last_code(const std::vector<std::pair<int, std::string>>& rows) {
    return rows.empty() ? -1 : rows.back().first;
  }
  static std::string joined(const std::vector<std::pair<int, std::string>>& rows) {
    std::string out;
    for (const auto& [code, data] : rows) out += std::to_string(code) + " " + data + "\n";
    return out;
  }
  static const std::pair<int, std::string>* row_with(const std::vector<std::pair<int, std::string>>& rows, int code) {
    for (const auto& r : rows)
      if (r.first == code) return &r;
    return nullptr;
  }
  bool central_logged(const std::string& text) {
    return read_file(fleet_.log_path("1")).find(text) != std::string::npos;
  }

  // The central with the registrar test module, which routes frames of any action.
  void start_central_with_router(const std::string& nodes) {
    HostSpec spec{"1", false, {}, true, HostSpec::kProxyDirectives, nodes, true};
    spec.extra_modules = "    - name: registrar\n      package: registrar\n      enable: true\n";
    fleet_.declare(spec);
    fleet_.start("1");
  }
  // Routes one frame to `target` through the registrar; returns the token the rows carry.
  std::string route(const std::string& action, const std::string& target, const std::string& data,
                    const std::string& token = "") {
    auto [status, answer] = fleet_.post("1", "/api/test/registrar/route",
                                        R"({"action":")" + action + R"(","target":")" + target + R"(","data":)" + data +
                                            (token.empty() ? "" : R"(,"token":")" + token + "\"") + "}");
    json::Document d;
    EXPECT_EQ(status, 200) << answer;
    if (!token.empty()) return token;
    return json::parse(d, answer) && d.HasMember("token") ? std::string(d["token"].GetString()) : std::string();
  }

  std::unique_ptr<gorgone_test::Sshd> sshd_;
  std::string dir_;
  Fleet fleet_;
};

// Key authentication; a command's stdout, stderr and exit code reach the central's history
// in Gorgone's rows; a non-zero exit code is still a finished command (code 100).
TEST_F(Ssh, KeyAuthRunsACommandWithItsOutputAndExitCode) {
  start_central(ssh_node("5", key_auth()));
  std::string token = post_command("5", R"([{"command":"echo out; echo err >&2; exit 3"}])");
  auto rows = final_rows(token);
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  const auto* result = row_with(rows, 100);
  ASSERT_NE(result, nullptr) << joined(rows);
  json::Document d;
  ASSERT_TRUE(json::parse(d, result->second));
  EXPECT_STREQ(d["message"].GetString(), "command has finished successfully");
  EXPECT_EQ(d["result"]["exit_code"].GetInt(), 3);
  EXPECT_STREQ(d["result"]["stdout"].GetString(), "out");
  EXPECT_STREQ(d["result"]["stderr"].GetString(), "err");
  EXPECT_EQ(rows.back().second, R"({"message":"commands processing has finished successfully"})");
  EXPECT_TRUE(central_logged("[proxy] node '5': SSH session open (ssh://127.0.0.1:" + std::to_string(sshd_->port())));
}

// Password authentication (no key offered), and a wrong password: a KO row and a log line
// naming the node and the method; the password itself appears nowhere in the log.
TEST_F(Ssh, PasswordAuthAndAWrongPassword) {
  auto node = [&](const std::string& id, const std::string& password) {
    return ssh_node(id, "    ssh_username: " + sshd_->password_user() + "\n    ssh_password: " + password +
                            "\n    ssh_directory: " + dir_ + "/empty-ssh-dir\n    ssh_known_hosts: " +
                            sshd_->known_hosts() + "\n    strict_serverkey_check: true\n");
  };
  const std::string wrong = "Wr0ng" + sshd_->password();
  start_central(node("5", sshd_->password()) + node("6", wrong));
  std::string ok = post_command("5", R"([{"command":"id -un"}])");
  std::string ko = post_command("6", R"([{"command":"id -un"}])");
  auto rows = final_rows(ok);
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  json::Document d;
  ASSERT_TRUE(json::parse(d, row_with(rows, 100)->second));
  EXPECT_EQ(std::string(d["result"]["stdout"].GetString()), sshd_->password_user());
  rows = final_rows(ko);
  ASSERT_EQ(rows.size(), 1u) << joined(rows);
  EXPECT_EQ(rows[0].first, 1);
  EXPECT_NE(rows[0].second.find("cannot connect on target node '6'"), std::string::npos) << rows[0].second;
  EXPECT_NE(rows[0].second.find("the password was refused"), std::string::npos) << rows[0].second;
  EXPECT_TRUE(central_logged("[proxy] node '6': cannot connect over SSH: authentication on ssh://127.0.0.1:"));
  std::string log = read_file(fleet_.log_path("1"));
  EXPECT_EQ(log.find(wrong), std::string::npos) << "a password was logged";
  EXPECT_EQ(log.find(sshd_->password()), std::string::npos) << "a password was logged";
}

// Unknown host key: refused with strict_serverkey_check on; accepted and recorded with it
// off. A changed host key: refused even with it off.
TEST_F(Ssh, HostKeyPolicy) {
  const std::string empty_known = dir_ + "/known_strict";
  const std::string learned = dir_ + "/known_learned";
  write_file(empty_known, "");
  auto node = [&](const std::string& id, const std::string& known, bool strict) {
    return ssh_node(id, "    ssh_username: " + sshd_->password_user() + "\n    ssh_identity: " + sshd_->client_key() +
                            "\n    ssh_directory: " +
                            dir_ + "/empty-ssh-dir\n    ssh_known_hosts: " + known +
                            "\n    strict_serverkey_check: " + (strict ? "true" : "false") + "\n");
  };
  start_central(node("5", empty_known, true) + node("6", learned, false));
  std::string strict = post_command("5", R"([{"command":"true"}])");
  std::string learn = post_command("6", R"([{"command":"true"}])");
  auto rows = final_rows(strict);
  ASSERT_EQ(rows.size(), 1u) << joined(rows);
  EXPECT_NE(rows[0].second.find("not in known_hosts and strict_serverkey_check is on"), std::string::npos)
      << rows[0].second;
  rows = final_rows(learn);
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  std::string recorded = read_file(learned);
  EXPECT_NE(recorded.find("[127.0.0.1]:" + std::to_string(sshd_->port())), std::string::npos) << recorded;

  // The server now shows another key: node 6 (strict off, its key recorded) refuses it.
  sshd_->change_host_key();
  std::string changed = post_command("6", R"([{"command":"true"}])");
  rows = final_rows(changed);
  ASSERT_EQ(rows.size(), 1u) << joined(rows);
  EXPECT_NE(rows[0].second.find("differs from the one known_hosts records"), std::string::npos) << rows[0].second;
}

// A command that outlives its timeout: code 1 "command has timed out"; the next command of
// the same request still runs when continue_on_error allows it.
TEST_F(Ssh, CommandTimeout) {
  start_central(ssh_node("5", key_auth()));
  std::string token = post_command("5", R"([{"command":"sleep 30","timeout":1},{"command":"echo after"}])");
  auto rows = final_rows(token);
  ASSERT_EQ(last_code(rows), 1) << joined(rows);
  bool timed_out = false, after = false;
  for (const auto& [code, data] : rows) {
    if (code == 1 && data.find("command has timed out") != std::string::npos) timed_out = true;
    if (code == 100 && data.find(R"("stdout":"after")") != std::string::npos) after = true;
  }
  EXPECT_TRUE(timed_out) << joined(rows);
  EXPECT_TRUE(after) << joined(rows);
  EXPECT_EQ(rows.back().second, R"({"message":"commands processing has finished with errors"})");
}

// REMOTECOPY of a file and of a directory, byte for byte, modes kept; hostile paths get a KO.
TEST_F(Ssh, RemoteCopyFileAndDirectoryAndHostilePaths) {
  start_central(ssh_node("5", key_auth(true)));  // root: the copy gives an owner
  const std::string src = dir_ + "/src";
  std::string one = random_bytes_file(src + "/one.bin", 300000, 1);
  std::string a = random_bytes_file(src + "/tree/a.cfg", 1000, 2);
  std::string b = random_bytes_file(src + "/tree/sub/b.cfg", 200000, 3);
  std::string empty = random_bytes_file(src + "/tree/sub/empty", 0, 4);
  ::chmod((src + "/tree/a.cfg").c_str(), 0640);
  ::chmod((src + "/tree/sub/b.cfg").c_str(), 0755);
  std::string c = random_bytes_file(src + "/tree/sub/c.cfg", 10, 11);
  ::chmod((src + "/tree/sub/c.cfg").c_str(), 0664);  // a mode the server's umask (022) would cut
  const std::string dst = dir_ + "/dst";
  write_file(dst + "/tree/a.cfg", "old content");  // replaced, not appended to

  std::string file = remote_copy("5", R"({"source":")" + src + R"(/one.bin","destination":")" + dst + R"(/files/"})");
  std::string tree = remote_copy("5", R"({"source":")" + src + R"(/tree","destination":")" + dst + R"(/tree"})");
  auto rows = final_rows(file);
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_EQ(rows.back().second, R"({"message":"send remotecopy succeeded"})");
  EXPECT_EQ(read_file(dst + "/files/one.bin"), one);
  rows = final_rows(tree);
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_EQ(read_file(dst + "/tree/a.cfg"), a);
  EXPECT_EQ(read_file(dst + "/tree/sub/b.cfg"), b);
  EXPECT_TRUE(fs::exists(dst + "/tree/sub/empty"));
  EXPECT_EQ(mode_of(dst + "/tree/a.cfg"), 0640u);
  EXPECT_EQ(mode_of(dst + "/tree/sub/b.cfg"), 0755u);
  EXPECT_EQ(mode_of(dst + "/tree/sub/c.cfg"), 0664u);
  EXPECT_EQ(read_file(dst + "/tree/sub/c.cfg"), c);

  // Copied again: every file is replaced (not appended to), and an owner asked for is given.
  std::string again = remote_copy("5", R"({"source":")" + src + R"(/tree","destination":")" + dst +
                                           R"(/tree","owner":")" + sshd_->password_user() + R"("})");
  rows = final_rows(again);
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_EQ(read_file(dst + "/tree/sub/b.cfg"), b);
  struct stat st {};
  ASSERT_EQ(::stat((dst + "/tree/a.cfg").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::getpwnam(sshd_->password_user().c_str())->pw_uid);
  EXPECT_EQ(st.st_gid, 0u) << "the group was not asked for: it stays";
  EXPECT_FALSE(has_temporary_files(dst));

  for (const std::string& bad : {dst + "/../escaped", std::string("relative/path")}) {
    std::string t = remote_copy("5", R"({"source":")" + src + R"(/one.bin","destination":")" + bad + R"("})");
    rows = final_rows(t);
    ASSERT_EQ(rows.size(), 1u) << joined(rows);
    EXPECT_EQ(rows[0].first, 1);
    EXPECT_EQ(rows[0].second, R"({"message":"source and destination must be absolute paths without '..'"})");
  }
  EXPECT_FALSE(fs::exists(dir_ + "/escaped"));
}

// sshd killed in the middle of a copy: a KO row, nothing half-written under the destination
// name; once sshd is back, the next copy works and the temporary file of the cut one is gone.
TEST_F(Ssh, SshdKilledDuringACopyLeavesNothingHalfWritten) {
  start_central(ssh_node("5", key_auth()));
  const std::string src = dir_ + "/big.bin";
  std::string big = random_bytes_file(src, 400u << 20, 5);
  const std::string dst = dir_ + "/dst";
  fs::create_directories(dst);
  give_to_node(dst);
  std::string token = remote_copy("5", R"({"source":")" + src + R"(","destination":")" + dst + R"(/big.bin"})");
  ASSERT_TRUE(eventually([&] { return has_temporary_files(dst); }, std::chrono::seconds(60)));
  sshd_->kill();
  auto rows = final_rows(token);
  ASSERT_EQ(last_code(rows), 1) << joined(rows);
  EXPECT_NE(rows.back().second.find("cannot sftp copy file"), std::string::npos) << rows.back().second;
  EXPECT_FALSE(fs::exists(dst + "/big.bin")) << "a half-written file under the destination name";

  sshd_->start();
  std::string small = random_bytes_file(dir_ + "/small.bin", 5000, 6);
  std::string again = remote_copy("5", R"({"source":")" + dir_ + R"(/small.bin","destination":")" + dst + R"(/"})");
  rows = final_rows(again);
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_EQ(read_file(dst + "/small.bin"), small);
  EXPECT_FALSE(fs::exists(dst + "/big.bin"));
  EXPECT_TRUE(eventually([&] { return !has_temporary_files(dst); })) << "the cut copy's temporary file stayed";
}

// sshd restarted between two commands: the node recovers on a fresh session.
TEST_F(Ssh, TheNodeRecoversAfterSshdRestarts) {
  start_central(ssh_node("5", key_auth()));
  auto rows = final_rows(post_command("5", R"([{"command":"echo first"}])"));
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  sshd_->kill();
  sshd_->start();
  rows = final_rows(post_command("5", R"([{"command":"echo second"}])"));
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_NE(joined(rows).find(R"("stdout":"second")"), std::string::npos) << joined(rows);
}

// ENGINECOMMAND writes each command as one line into the engine's command pipe, over SFTP.
TEST_F(Ssh, EngineCommandWritesTheCommandPipe) {
  const std::string pipe = dir_ + "/centengine.cmd";
  ASSERT_EQ(::mkfifo(pipe.c_str(), 0660), 0);
  give_to_node(pipe);
  std::string got;
  std::thread reader([&] {
    std::ifstream in(pipe);  // blocks until the writer opens it
    std::string line;
    while (std::getline(in, line)) got += line + "\n";
  });
  start_central_with_router(ssh_node("5", key_auth()));
  // A command spanning two lines would smuggle a second one into the engine: refused whole.
  std::string two = route("ENGINECOMMAND", "5",
                          R"({"content":{"command_file":")" + pipe + R"(","commands":["[1] A\n[2] B"]}})");
  std::string token = route("ENGINECOMMAND", "5",
                            R"({"content":{"command_file":")" + pipe + R"(","commands":["[123] RESTART_PROGRAM"]}})");
  auto rows = final_rows(token);
  if (rows.empty()) std::ofstream(pipe) << "";  // releases the reader
  reader.join();
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_EQ(got, "[123] RESTART_PROGRAM\n");
  rows = final_rows(two);
  ASSERT_EQ(last_code(rows), 1) << joined(rows);
  EXPECT_NE(rows.back().second.find("command refused: it spans several lines"), std::string::npos) << joined(rows);
}

// Request fields never reach a shell: a destination full of shell syntax is a file name.
TEST_F(Ssh, ShellSyntaxInAPathIsAFileName) {
  start_central(ssh_node("5", key_auth()));
  std::string content = random_bytes_file(dir_ + "/src.cfg", 100, 10);
  const std::string name = "a'$(touch " + dir_ + "/pwned)';touch " + dir_ + "/pwned2;'b";
  std::string token = remote_copy("5", R"({"source":")" + dir_ + R"(/src.cfg","destination":)" +
                                           json::quote(dir_ + "/dst/" + name) + "}");
  auto rows = final_rows(token);
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_EQ(read_file(dir_ + "/dst/" + name), content);
  EXPECT_FALSE(fs::exists(dir_ + "/pwned"));
  EXPECT_FALSE(fs::exists(dir_ + "/pwned2"));
}

// PROCESSCOPY for an SSH node (what a remote receives from its central): the chunks are
// checked against the MD5 before anything reaches the node, and an archive entry that would
// land outside the destination stops the copy.
TEST_F(Ssh, ProcessCopyChecksTheMd5AndRefusesEntriesOutsideTheDestination) {
  start_central_with_router(ssh_node("5", key_auth()));
  const std::string dst = dir_ + "/dst";
  auto copy = [&](const std::string& token, const std::string& type, const std::string& bytes,
                  const std::string& md5, const std::string& destination) {
    std::string chunk = R"({"content":{"status":"inprogress","type":")" + type + R"(","chunk":{"data":")" +
                        protocol::base64_encode(bytes) + R"(","size":)" + std::to_string(bytes.size()) +
                        R"(},"md5":null,"destination":")" + destination + R"(","cache_dir":"/nonexistent"}})";
    route("PROCESSCOPY", "5", chunk, token);
    route("PROCESSCOPY", "5",
          R"({"content":{"status":"end","type":")" + type + R"(","chunk":null,"md5":")" + md5 +
              R"(","destination":")" + destination + R"(","cache_dir":"/nonexistent","owner":null,"group":null}})",
          token);
    return final_rows(token);
  };
  std::string good = tar_gz({{"./ok.cfg", "fine\n"}});
  auto rows = copy("copy-good", "archive", good, md5_hex(good), dst);
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_EQ(rows.back().second, R"({"message":"process copy finished successfully"})");
  EXPECT_EQ(read_file(dst + "/ok.cfg"), "fine\n");

  rows = copy("copy-bad-md5", "regular", "payload", md5_hex("other"), dst + "/file.cfg");
  ASSERT_EQ(last_code(rows), 1) << joined(rows);
  EXPECT_EQ(rows.back().second, R"({"message":"md5 does not match"})");
  EXPECT_FALSE(fs::exists(dst + "/file.cfg"));

  std::string evil = tar_gz({{"../escaped.cfg", "evil\n"}});
  rows = copy("copy-evil", "archive", evil, md5_hex(evil), dst);
  ASSERT_EQ(last_code(rows), 1) << joined(rows);
  EXPECT_NE(rows.back().second.find("leaves the destination"), std::string::npos) << joined(rows);
  EXPECT_FALSE(fs::exists(dir_ + "/escaped.cfg"));
}

// A node whose sshd accepts TCP and never answers sits on the same worker as a live ZMQ
// poller: the poller's commands complete while the SSH node's frame is still waiting.
TEST_F(Ssh, ADeadSshNodeDoesNotDelayZmqNodesOnTheSameWorker) {
  int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(silent, 16), 0);
  socklen_t len = sizeof a;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&a), &len);
  const int silent_port = ntohs(a.sin_port);

  fleet_.declare({"2", true, {"1"}});
  fleet_.start("2");
  const std::string poller = "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                             std::to_string(fleet_.port("2")) + "\n";
  std::string dead = ssh_node("5", key_auth(), silent_port);
  dead.replace(dead.find("ssh_connect_timeout: 3"), 22, "ssh_connect_timeout: 60");
  start_central(dead + poller, "      pool: 1\n      ping: 1\n      synchistory_time: 1\n");
  std::string stuck = post_command("5", R"([{"command":"true"}])");
  for (int i = 0; i < 5; ++i) {
    std::string token = fleet_.command("1", "2", "echo live-" + std::to_string(i));
    ASSERT_FALSE(token.empty());
    std::string out;
    ASSERT_TRUE(eventually([&] { return !(out = fleet_.result("1", token, "2")).empty(); }));
    EXPECT_EQ(out, "live-" + std::to_string(i));
  }
  EXPECT_TRUE(fleet_.rows("1", stuck).empty()) << "the silent SSH node answered?";
  ::close(silent);
}

// central -> our remote (push_zmq) -> SSH node: a command and a REMOTECOPY (which reaches the
// remote as PROCESSCOPY chunks) run on the SSH node; their rows reach the central by the
// remote's log sync.
TEST_F(Ssh, AnSshNodeBehindARemote) {
  fleet_.declare({"3", true, {"1"}, true, HostSpec::kProxyDirectives, ssh_node("5", key_auth())});
  fleet_.start("3");
  start_central("  - id: 3\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(fleet_.port("3")) +
                "\n    nodes:\n      - id: 5\n");
  std::string token = post_command("5", R"([{"command":"echo via-remote"}])");
  auto rows = final_rows(token, "1", "3");
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_NE(joined(rows).find(R"("stdout":"via-remote")"), std::string::npos) << joined(rows);

  const std::string src = dir_ + "/src";
  std::string a = random_bytes_file(src + "/tree/a.cfg", 70000, 7);
  std::string b = random_bytes_file(src + "/tree/sub/b.cfg", 1000, 8);
  std::string f = random_bytes_file(src + "/single.cfg", 123457, 9);
  fs::create_directories(dir_ + "/cache");
  const std::string dst = dir_ + "/dst";
  std::string tree = remote_copy("5", R"({"source":")" + src + R"(/tree","destination":")" + dst +
                                          R"(/tree","cache_dir":")" + dir_ + R"(/cache"})");
  rows = final_rows(tree, "1", "3");
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_EQ(read_file(dst + "/tree/a.cfg"), a);
  EXPECT_EQ(read_file(dst + "/tree/sub/b.cfg"), b);
  std::string single = remote_copy("5", R"({"source":")" + src + R"(/single.cfg","destination":")" + dst +
                                            R"(/single.cfg","cache_dir":")" + dir_ + R"(/cache","mode":"0600"})");
  rows = final_rows(single, "1", "3");
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_EQ(read_file(dst + "/single.cfg"), f);
  EXPECT_EQ(mode_of(dst + "/single.cfg"), 0600u);
  EXPECT_FALSE(has_temporary_files(dst));
}

// Pings go over SSH: the central's constatus shows the node answering.
TEST_F(Ssh, PingsMarkTheNodeUp) {
  start_central(ssh_node("5", key_auth()));
  EXPECT_TRUE(eventually([&] {
    json::Document d = fleet_.constatus("1");
    if (!d.HasMember("data") || !d["data"].HasMember("5")) return false;
    const auto& n = d["data"]["5"];
    return n.HasMember("ping_ok") && n["ping_ok"].IsNumber() && n["ping_ok"].GetDouble() > 0;
  })) << json::dump(fleet_.constatus("1"));
}

// Unregistering an SSH node while it runs a command: that command is aborted (KO), and the
// frames handed to its link that never ran get a KO row each; nothing waits forever.
TEST_F(Ssh, UnregisteringTheNodeKosWhatItHadNotRun) {
  start_central_with_router(ssh_node("5", key_auth()));
  std::string running = post_command("5", R"([{"command":"sleep 20"}])");
  std::string waiting = post_command("5", R"([{"command":"echo never"}])");
  ASSERT_TRUE(eventually([&] { return joined(fleet_.rows("1", running)).find("command has started") != std::string::npos; }));
  auto [status, answer] = fleet_.post("1", "/api/test/registrar/send", R"({"action":"UNREGISTERNODES","nodes":[{"id":"5"}]})");
  ASSERT_EQ(status, 200) << answer;
  auto rows = final_rows(running);
  ASSERT_EQ(last_code(rows), 1) << joined(rows);
  EXPECT_NE(joined(rows).find("command aborted: the SSH link to the node was closed"), std::string::npos) << joined(rows);
  rows = final_rows(waiting);
  ASSERT_EQ(rows.size(), 1u) << joined(rows);
  EXPECT_EQ(rows[0].first, 1);
  EXPECT_NE(rows[0].second.find("node '5'"), std::string::npos) << rows[0].second;
}

// A node behind an SSH node (a legacy poller reached through centcore on it): a command with
// `metadata.centcore_proxy` and an engine command for it become centcore command files on the
// SSH node, one line each.
TEST_F(Ssh, ANodeBehindItIsReachedThroughCentcoreFiles) {
  const std::string dir = "/var/lib/centreon/centcore";  // the SSH node is this machine
  const std::string top = fs::exists("/var/lib/centreon") ? dir : "/var/lib/centreon";  // what to remove after
  bool made = !fs::exists(dir);
  fs::create_directories(dir);
  auto before = [&] {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().string());
    return names;
  }();
  start_central_with_router(ssh_node("5", key_auth(true) + "    nodes:\n      - id: 9\n"));
  std::string cmd = post_command("9", R"([{"command":"ignored","metadata":{"centcore_proxy":1,"centcore_cmd":"SENDCFGFILE"}}])");
  auto rows = final_rows(cmd);
  std::string engine = route("ENGINECOMMAND", "9", R"({"content":{"commands":["[1] RESTART_PROGRAM"]}})");
  auto engine_rows = final_rows(engine);
  std::vector<std::string> lines;
  for (const auto& e : fs::directory_iterator(dir))
    if (!before.count(e.path().string())) lines.push_back(read_file(e.path().string()));
  std::sort(lines.begin(), lines.end());
  if (made) fs::remove_all(top);
  else
    for (const auto& e : fs::directory_iterator(dir))
      if (!before.count(e.path().string())) fs::remove(e.path());
  ASSERT_EQ(last_code(rows), 2) << joined(rows);
  EXPECT_NE(joined(rows).find("send action_centcore succeeded"), std::string::npos) << joined(rows);
  ASSERT_EQ(last_code(engine_rows), 2) << joined(engine_rows);
  EXPECT_EQ(lines, (std::vector<std::string>{"EXTERNALCMD:9:[1] RESTART_PROGRAM\n", "SENDCFGFILE:9\n"}));
}

}  // namespace
}  // namespace gorgone::testing
