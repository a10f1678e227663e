// The external handshake and session on real processes: oversized messages, key rotation
// under load, and how a central decides to trust a poller's key (fingerprint_mode and a
// pinned server_pubkey). Each test runs a poller and a central (two gorgone-host processes)
// on loopback with their own databases in a private PostgreSQL.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>
#include <zmq.hpp>

#include "daemon.hpp"
#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "pg_fixture.hpp"

namespace gorgone::testing {
namespace {

using gorgone_test::PgCluster;
using json::Document;

// Occurrences of `needle` in `text`.
int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + needle.size())) ++n;
  return n;
}

class Handshake : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("gorgone-hs");
    central_priv_ = dir_ + "/central/rsakey.priv.pem";
    central_pub_ = dir_ + "/central/rsakey.pub.pem";
    poller_priv_ = dir_ + "/poller/rsakey.priv.pem";
    poller_pub_ = dir_ + "/poller/rsakey.pub.pem";
    ASSERT_TRUE(protocol::generate_key_files(central_priv_, central_pub_));
    ASSERT_TRUE(protocol::generate_key_files(poller_priv_, poller_pub_));
    central_thumbprint_ = protocol::RsaKey::load_public_file(central_pub_)->jwk_thumbprint();
    poller_port_ = free_port();
    http_port_ = free_port();
  }
  void TearDown() override {
    // A daemon that died (a crash, or a sanitizer report) fails the test even if the
    // assertions were already satisfied.
    if (central_) {
      EXPECT_TRUE(central_->alive()) << "the central process died";
    }
    if (poller_) {
      EXPECT_TRUE(poller_->alive()) << "the poller process died";
    }
    if (HasFailure()) {
      if (central_) std::cerr << "---- central log\n" << central_->log();
      if (poller_) std::cerr << "---- poller log\n" << poller_->log();
    }
    central_.reset();
    poller_.reset();
    std::filesystem::remove_all(dir_);
  }

  // `core_extra`: more gorgonecore lines (4-space indent). A new database each time, as on a
  // reinstalled poller.
  void start_poller(const std::string& core_extra = "") {
    std::string db = PgCluster::shared().create_database();
    std::string cfg = dir_ + "/poller.yaml";
    write_file(cfg, "gorgone:\n  gorgonecore:\n    id: 2\n    hostname: poller-2\n"
                    "    external_com_type: tcp\n"
                    "    external_com_path: 127.0.0.1:" + std::to_string(poller_port_) + "\n"
                    "    authorized_clients:\n      - key: " + central_thumbprint_ + "\n"
                    "    privkey: " + poller_priv_ + "\n    pubkey: " + poller_pub_ + "\n"
                    "    gorgone_db_type: Pg\n    gorgone_db_name: \"" + db + "\"\n" + core_extra +
                    "  modules:\n"
                    "    - name: action\n      package: gorgone::modules::core::action::hooks\n      enable: true\n");
    poller_ = std::make_unique<Daemon>(cfg, dir_ + "/poller-" + std::to_string(++poller_runs_) + ".log");
    poller_->start();
  }

  // `node_extra`: more attributes of node 2 (4-space indent); `more_nodes`: more list items.
  void start_central(const std::string& core_extra = "", const std::string& node_extra = "",
                     const std::string& proxy_extra = "", const std::string& more_nodes = "") {
    std::string db = PgCluster::shared().create_database();
    write_file(dir_ + "/nodes.yaml", "nodes:\n  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                                         std::to_string(poller_port_) + "\n" + node_extra + more_nodes);
    std::string cfg = dir_ + "/central.yaml";
    write_file(cfg, "gorgone:\n  gorgonecore:\n    id: 1\n    hostname: central\n"
                    "    privkey: " + central_priv_ + "\n    pubkey: " + central_pub_ + "\n"
                    "    gorgone_db_type: Pg\n    gorgone_db_name: \"" + db + "\"\n" + core_extra +
                    "  modules:\n"
                    "    - name: httpserver\n      package: gorgone::modules::core::httpserver::hooks\n"
                    "      enable: true\n"
                    "      address: 127.0.0.1\n      port: " + std::to_string(http_port_) + "\n"
                    "    - name: proxy\n      package: gorgone::modules::core::proxy::hooks\n      enable: true\n"
                    "      pool: 2\n      ping: 1\n      synchistory_time: 2\n" + proxy_extra +
                    "    - name: register\n      package: gorgone::modules::core::register::hooks\n      enable: true\n"
                    "      config_file: " + dir_ + "/nodes.yaml\n"
                    "    - name: action\n      package: gorgone::modules::core::action::hooks\n      enable: true\n");
    central_ = std::make_unique<Daemon>(cfg, dir_ + "/central.log");
    central_->start();
    ASSERT_TRUE(eventually([&] { return get("/api/internal/constatus").first == 200; }))
        << "central REST API never answered";
  }

  std::pair<int, std::string> get(const std::string& path) {
    httplib::Client c("127.0.0.1", http_port_);
    c.set_read_timeout(15, 0);
    auto r = c.Get(path.c_str());
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  }
  std::string command(const std::string& cmd) {
    httplib::Client c("127.0.0.1", http_port_);
    c.set_read_timeout(15, 0);
    auto r = c.Post("/api/nodes/2/core/action/command", "[{\"command\":" + json::quote(cmd) + "}]",
                    "application/json");
    Document d;
    if (!r || r->status != 200 || !json::parse(d, r->body) || !d.HasMember("token")) {
      std::cerr << "command refused: " << (r ? std::to_string(r->status) + " " + r->body : "no answer") << "\n";
      return "";
    }
    return d["token"].GetString();
  }
  long ping_ok() {
    auto [status, body] = get("/api/internal/constatus");
    Document d;
    if (status != 200 || !json::parse(d, body) || !d.HasMember("data") || !d["data"].HasMember("2")) return -1;
    return d["data"]["2"]["ping_ok"].GetInt64();
  }
  // (code, data) rows of a token; synced from node 2 first when via_node.
  std::vector<std::pair<int, std::string>> rows(const std::string& token, bool via_node) {
    auto [status, body] = get((via_node ? "/api/nodes/2/log/" : "/api/log/") + token + "?sync_wait=200000");
    std::vector<std::pair<int, std::string>> out;
    Document d;
    if (status != 200 || !json::parse(d, body) || !d.HasMember("data") || !d["data"].IsArray()) return out;
    for (const auto& r : d["data"].GetArray()) out.emplace_back(r["code"].GetInt(), r["data"].GetString());
    return out;
  }
  // True once the command printed `word` on the poller and its final row reached the central.
  bool runs(const std::string& word) {
    std::string token = command("echo " + word);
    if (token.empty()) return false;
    return eventually([&] {
      bool printed = false, done = false;
      for (const auto& [code, data] : rows(token, true)) {
        Document d;
        if (!json::parse(d, data)) continue;
        if (code == 100 && d.HasMember("result")) printed = std::string(d["result"]["stdout"].GetString()) == word;
        if (code == 2) done = true;
      }
      return printed && done;
    });
  }
  // The message of the first KO row the central holds for a command sent to node 2.
  std::string refusal() {
    std::string token = command("echo refused");
    if (token.empty()) return "no token";
    std::string message;
    eventually([&] {
      for (const auto& [code, data] : rows(token, false)) {
        Document d;
        if (code == 1 && json::parse(d, data) && d.HasMember("message")) {
          message = d["message"].GetString();
          return true;
        }
      }
      return false;
    });
    return message;
  }
  std::string target() const { return "tcp://127.0.0.1:" + std::to_string(poller_port_); }

  std::string dir_, central_priv_, central_pub_, poller_priv_, poller_pub_, central_thumbprint_;
  int poller_port_ = 0, http_port_ = 0, poller_runs_ = 0;
  std::unique_ptr<Daemon> central_, poller_;
};

TEST_F(Handshake, AnOversizedFrameDoesNotStopThePoller) {
  start_poller("    max_frame_size: 65536\n");
  start_central();
  ASSERT_TRUE(eventually([&] { return ping_ok() >= 1; }));

  zmq::context_t ctx;
  zmq::socket_t peer(ctx, zmq::socket_type::dealer);
  peer.set(zmq::sockopt::routing_id, "gorgone-intruder-1");
  peer.set(zmq::sockopt::linger, 0);
  peer.connect(target());
  std::string huge(4 << 20, 'A');
  huge.replace(0, 12, "[GETPUBKEY] ");
  peer.send(zmq::buffer(huge), zmq::send_flags::none);
  // Under the limit but not a handshake: refused in plaintext, the poller goes on.
  std::string junk(60000, 'B');
  zmq::socket_t second(ctx, zmq::socket_type::dealer);
  second.set(zmq::sockopt::routing_id, "gorgone-intruder-2");
  second.set(zmq::sockopt::linger, 0);
  second.connect(target());
  second.send(zmq::buffer(junk), zmq::send_flags::none);
  zmq::pollitem_t item{static_cast<void*>(second), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, std::chrono::seconds(10));
  zmq::message_t answer;
  ASSERT_TRUE((item.revents & ZMQ_POLLIN) && second.recv(answer, zmq::recv_flags::dontwait));
  EXPECT_NE(answer.to_string().find("handshake issue"), std::string::npos) << answer.to_string();

  long before = ping_ok();
  EXPECT_TRUE(eventually([&] { return ping_ok() >= before + 2; })) << "the central stopped getting pongs";
  EXPECT_TRUE(runs("still-serving"));
  EXPECT_TRUE(poller_->alive());
  // The oversized GETPUBKEY was dropped by ZMQ, unread: it got no PUBKEY back, while the
  // smaller message sent after it was answered long ago.
  zmq::pollitem_t first{static_cast<void*>(peer), 0, ZMQ_POLLIN, 0};
  zmq::poll(&first, 1, std::chrono::milliseconds(0));
  EXPECT_FALSE(first.revents & ZMQ_POLLIN) << "the oversized message was processed";
  EXPECT_EQ(count(poller_->log(), "Connection from"), 1) << "only the central completed a handshake";
}

TEST_F(Handshake, AnOversizedAnswerFromANodeDoesNotStopTheCentral) {
  // Node 3 is a fake that answers anything with 4 MiB; the central's proxy accepts at most 64 KiB.
  int fake_port = free_port();
  zmq::context_t ctx;
  zmq::socket_t fake(ctx, zmq::socket_type::router);
  fake.set(zmq::sockopt::linger, 0);
  fake.bind("tcp://127.0.0.1:" + std::to_string(fake_port));
  std::atomic<bool> stop{false};
  std::atomic<int> received{0};
  std::thread fake_node([&] {
    std::string huge = "[PUBKEY] [" + std::string(4 << 20, 'A') + "]";
    while (!stop) {
      zmq::pollitem_t item{static_cast<void*>(fake), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t id, body;
      if (!fake.recv(id, zmq::recv_flags::dontwait)) continue;
      while (id.more() && fake.recv(body, zmq::recv_flags::dontwait) && body.more()) {
      }
      ++received;
      fake.send(id, zmq::send_flags::sndmore);
      fake.send(zmq::buffer(huge), zmq::send_flags::dontwait);
    }
  });
  start_poller();
  start_central("", "", "      max_frame_size: 65536\n      handshake_timeout: 2\n",
                "  - id: 3\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(fake_port) + "\n");
  bool got = eventually([&] { return received >= 2; });
  long before = ping_ok();
  bool pongs = eventually([&] { return ping_ok() >= before + 2; });
  bool serving = runs("central-still-serving");
  stop = true;
  fake_node.join();
  EXPECT_TRUE(got) << "the central never contacted the fake node";
  EXPECT_TRUE(pongs) << "the central stopped pinging node 2";
  EXPECT_TRUE(serving);
  EXPECT_TRUE(central_->alive());
  // The 4 MiB answer was dropped unread: had it been read, the client would have failed on it.
  std::string log = central_->log();
  EXPECT_EQ(count(log, "session established with node '3'"), 0);
  EXPECT_EQ(count(log, "cannot read pubkey response"), 0);
  EXPECT_EQ(count(log, "cannot load pubkey"), 0);
}

TEST_F(Handshake, KeysRotateWhileTheCentralKeepsPingingAndRunningCommands) {
  start_poller("    external_com_rotation_seconds: 2\n");
  start_central();
  ASSERT_TRUE(eventually([&] { return ping_ok() >= 1; }));
  EXPECT_TRUE(runs("before-rotation"));
  long before = ping_ok();
  ASSERT_TRUE(eventually([&] { return count(poller_->log(), "key rotated") >= 3; }))
      << "the poller never rotated its keys three times";
  EXPECT_TRUE(runs("after-rotation"));
  EXPECT_TRUE(eventually([&] { return ping_ok() >= before + 3; })) << "pings stopped across rotations";
  EXPECT_TRUE(eventually([&] { return count(poller_->log(), "key rotated") >= 4; }));
  EXPECT_TRUE(runs("after-more-rotations"));
  std::string log = central_->log();
  EXPECT_GE(count(log, "node '2' rotated the session key"), 3);
  // One handshake for the whole test: rotations never forced the central to start again.
  EXPECT_EQ(count(log, "session established with node '2'"), 1);
  EXPECT_EQ(count(log, "decrypt issue"), 0);
}

TEST_F(Handshake, StrictModeRefusesAnUnknownServerKey) {
  start_poller();
  start_central("    fingerprint_mode: strict\n");
  std::string message = refusal();
  EXPECT_EQ(message.rfind("Send message problem for '2': no fingerprint found for target '" + target() +
                              "' [strict mode]",
                          0),
            0u)
      << message;
  EXPECT_NE(central_->log().find("no fingerprint found for target '" + target() + "' [strict mode]"),
            std::string::npos);
  EXPECT_EQ(ping_ok(), 0);
}

TEST_F(Handshake, FirstModeRefusesAServerKeyThatChanged) {
  start_poller();
  start_central();
  ASSERT_TRUE(eventually([&] { return ping_ok() >= 1; }));
  // The poller is reinstalled: new key pair, new database, same address.
  poller_.reset();
  std::filesystem::remove(poller_priv_);
  std::filesystem::remove(poller_pub_);
  ASSERT_TRUE(protocol::generate_key_files(poller_priv_, poller_pub_));
  start_poller();
  // The next ping finds the session gone; the central reconnects and meets the new key.
  ASSERT_TRUE(eventually([&] {
    return central_->log().find("fingerprint changed for target '" + target() + "'") != std::string::npos;
  })) << "the central never noticed the new key";
  std::string message = refusal();
  EXPECT_EQ(message.rfind("Send message problem for '2': fingerprint changed for target '" + target() + "'", 0), 0u)
      << message;
  EXPECT_EQ(count(central_->log(), "session established with node '2'"), 1) << "the new key was never trusted";
}

TEST_F(Handshake, APollerThatLostOurSessionGetsTheUnansweredFramesAgain) {
  start_poller();
  start_central();
  ASSERT_TRUE(eventually([&] { return ping_ok() >= 1; }));
  // Same keys, empty database: the poller no longer knows the central's session.
  poller_.reset();
  start_poller();
  // Sent on the old session, refused by the poller, sent again on a new one: it runs.
  EXPECT_TRUE(runs("after-the-poller-forgot-us"));
  EXPECT_NE(central_->log().find("session lost"), std::string::npos);
  EXPECT_GE(count(central_->log(), "session established with node '2'"), 2);
}

TEST_F(Handshake, APinnedServerKeyIsTrustedEvenInStrictMode) {
  start_poller();
  start_central("    fingerprint_mode: strict\n", "    server_pubkey: " + poller_pub_ + "\n");
  EXPECT_TRUE(eventually([&] { return ping_ok() >= 1; }));
  EXPECT_TRUE(runs("pinned"));
}

TEST_F(Handshake, APinnedServerKeyRefusesAnyOtherKey) {
  start_poller();
  // "always" would accept anything: the pin still wins.
  start_central("    fingerprint_mode: always\n", "    server_pubkey: " + central_pub_ + "\n");
  std::string message = refusal();
  EXPECT_EQ(message.rfind("Send message problem for '2': server key of target '" + target() +
                              "' does not match server_pubkey '" + central_pub_ + "'",
                          0),
            0u)
      << message;
  EXPECT_NE(central_->log().find("does not match server_pubkey"), std::string::npos);
  EXPECT_EQ(ping_ok(), 0);
}

TEST_F(Handshake, InternalComCryptIsReportedAsIgnored) {
  start_poller("    internal_com_crypt: true\n");
  EXPECT_TRUE(eventually([&] { return poller_->log().find("internal_com_crypt ignored") != std::string::npos; }));
  EXPECT_TRUE(poller_->alive());
}

}  // namespace
}  // namespace gorgone::testing
