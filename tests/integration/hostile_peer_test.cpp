// Hostile peers on the wire, against real gorgone-host processes: recorded ciphertext sent
// again, HELOs forged from public keys, nodes that claim to be other nodes.
#include <gtest/gtest.h>
#include <zmq.hpp>

#include <fstream>

#include "fleet.hpp"
#include "gorgone/protocol/frame.hpp"
#include "wire_client.hpp"

namespace gorgone::testing {
namespace {

using gorgone_test::PgValue;

int lines_of(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

int occurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

std::string command_frame(const std::string& token, const std::string& cmd) {
  return "[COMMAND] [" + token + "] [] {\"content\":[{\"command\":" + json::quote(cmd) +
         "}],\"parameters\":{},\"variables\":[]}";
}

TEST(HostilePeer, ARecordedCiphertextSentAgainRunsOnce) {
  Fleet fleet;
  fleet.declare({"2", true, {"1"}});
  fleet.start("2");
  std::string dir = make_temp_dir("gorgone-replay");
  std::string ran = dir + "/ran";
  zmq::context_t ctx;
  std::string routing_id, wire;
  {
    WireClient central(ctx, "1", fleet.private_key("1"), fleet.port("2"));
    ASSERT_TRUE(central.handshake()) << fleet.logs();
    routing_id = central.identity();
    wire = central.encrypt(command_frame("replay-token-1", "echo run >> " + ran));
    central.send_raw(wire);
    ASSERT_TRUE(eventually([&] { return lines_of(ran) == 1; })) << fleet.logs();
  }
  // An eavesdropper with the recorded bytes and the routing id, but no key.
  zmq::socket_t replayer(ctx, zmq::socket_type::dealer);
  replayer.set(zmq::sockopt::routing_id, routing_id);
  replayer.set(zmq::sockopt::linger, 0);
  replayer.connect("tcp://127.0.0.1:" + std::to_string(fleet.port("2")));
  // Sent until the poller has refused it twice (its first connection may still be closing).
  ASSERT_TRUE(eventually([&] {
    replayer.send(zmq::buffer(wire), zmq::send_flags::dontwait);
    return occurrences(fleet.daemon("2").log(), "replayed frame refused") >= 2;
  })) << fleet.logs();
  EXPECT_EQ(lines_of(ran), 1) << "the replayed command ran again";
  std::filesystem::remove_all(dir);
}

TEST(HostilePeer, HelosForgedFromPublicKeysCreateNoSessionAndAreBounded) {
  Fleet fleet;
  HostSpec poller{"2", true, {"1"}};
  poller.core_directives = "    external_com_helo_per_minute: 10\n";
  fleet.declare(poller);
  fleet.start("2");
  zmq::context_t ctx;
  // A legitimate central connected before the flood.
  WireClient central(ctx, "1", fleet.private_key("1"), fleet.port("2"));
  ASSERT_TRUE(central.handshake()) << fleet.logs();
  central.send("[PING] [] [] {}");
  ASSERT_TRUE(central.next(std::chrono::seconds(10)));

  // Everything the attacker has is public: the poller's key and the central's key.
  auto poller_pub = protocol::RsaKey::load_public_file(std::filesystem::path(fleet.private_key("2")).parent_path() /
                                                       "rsakey.pub.pem");
  auto central_pub = protocol::RsaKey::load_public_file(std::filesystem::path(fleet.private_key("1")).parent_path() /
                                                        "rsakey.pub.pem");
  ASSERT_TRUE(poller_pub && central_pub);
  std::string helo = "[gorgone-1] [" + protocol::base64_encode(central_pub->public_pem_wire()) + "] [" +
                     protocol::base64_encode(poller_pub->encrypt_pkcs1("HELO").value()) + "]";
  int answered = 0;
  for (int i = 0; i < 300; ++i) {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::routing_id, "gorgone-flood-" + std::to_string(i));
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::rcvtimeo, 5000);
    s.connect("tcp://127.0.0.1:" + std::to_string(fleet.port("2")));
    s.send(zmq::buffer(helo), zmq::send_flags::none);
    zmq::message_t answer;
    if (s.recv(answer) && answer.to_string_view() != protocol::kHandshakeIssueReply) ++answered;
  }
  // 10 per minute from one address (the flood may straddle a minute: at most two windows).
  EXPECT_GT(answered, 0);
  EXPECT_LE(answered, 20);
  std::string log = fleet.daemon("2").log();
  int refusals = occurrences(log, "more than 10 HELO per minute from 127.0.0.1");
  EXPECT_TRUE(refusals == 1 || refusals == 2) << "one log line per minute, not one per HELO: " << refusals;
  // No session was stored, and the legitimate one still works.
  EXPECT_EQ(PgValue(fleet.db("2"), "SELECT count(*) FROM gorgone_identity WHERE identity LIKE '676f72676f6e652d666c6f6f64%'"),
            "0");
  central.send("[PING] [after-flood] [] {}");
  auto answer = central.next(std::chrono::seconds(10));
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->rfind("[PONG] [after-flood]", 0), 0u) << *answer;
}

TEST(HostSignals, SighupReopensTheLogFileAndTheHostKeepsServing) {
  Fleet fleet;
  HostSpec central{"1"};
  central.proxy = true;
  central.http = true;
  fleet.declare(central);
  fleet.start("1");
  Daemon& host = fleet.daemon("1");
  std::string log_file = fleet.log_path("1");
  ASSERT_NE(read_file(log_file).find("REST API on"), std::string::npos);
  // What logrotate does: move the file, then SIGHUP.
  std::filesystem::rename(log_file, log_file + ".1");
  ASSERT_EQ(::kill(host.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return read_file(log_file).find("SIGHUP: log file reopened") != std::string::npos; }));
  EXPECT_TRUE(host.alive());
  EXPECT_EQ(fleet.get("1", "/api/internal/constatus").first, 200);
  // Twice in a row is no different.
  ASSERT_EQ(::kill(host.pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually([&] { return occurrences(read_file(log_file), "SIGHUP: log file reopened") == 2; }));
  EXPECT_TRUE(host.alive());
}

}  // namespace
}  // namespace gorgone::testing
