// The REST API's access controls as Gorgone's httpserver module configures them.
#include <arpa/inet.h>
#include <atomic>
#include <thread>
#include <cstring>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "fleet.hpp"
#include "pg_fixture.hpp"

namespace gorgone::testing {
namespace {

// A raw TCP connection to 127.0.0.1 (from `source`, another loopback address, when given):
// to send what an HTTP client library would not.
class RawConnection {
 public:
  explicit RawConnection(int port, const char* source = nullptr) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    if (source) {
      sockaddr_in from{};
      from.sin_family = AF_INET;
      ::inet_pton(AF_INET, source, &from.sin_addr);
      ::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof(from));
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    timeval tv{15, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& text) {
    return ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
  }
  // True once the server has closed the connection (nothing more to read, or reset).
  bool closed_by_server() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }
  // What one read brings (up to 15 s of silence: then "").
  std::string read_some() {
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  // Everything until the server closes the connection (or 15 s of silence).
  std::string read_all() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }

 private:
  int fd_;
  bool connected_ = false;
};

// "HTTP/1.1 413 ..." -> 413
int status_of(const std::string& answer) {
  return answer.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(answer.c_str() + 9) : 0;
}

std::string body_of(const std::string& answer) {
  auto p = answer.find("\r\n\r\n");
  return p == std::string::npos ? "" : answer.substr(p + 4);
}

// The "error" member of a JSON answer, "" when the body is not such an object.
std::string error_of(const std::string& body) {
  json::Document d;
  if (!json::parse(d, body) || !d.IsObject() || !d.HasMember("error") || !d["error"].IsString()) return "";
  return d["error"].GetString();
}

bool ipv6_loopback_available() {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

HostSpec api_host(const std::string& http_extra = "") {
  HostSpec h{"1"};
  h.proxy = true;
  h.http = true;
  h.http_extra = http_extra;
  return h;
}

const char* kAuth = "      auth:\n        enabled: true\n        user: admin\n        password: s3cret\n";

TEST(Rest, ServesHttpsWithTheConfiguredCertificate) {
  Fleet fleet;
  std::string dir = make_temp_dir("gorgone-tls");
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 -keyout " + dir +
                    "/key.pem -out " + dir + "/cert.pem >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  HostSpec central{"1"};
  central.proxy = true;
  central.http = true;
  central.https = true;
  central.http_extra = "      ssl: true\n      ssl_cert_file: " + dir + "/cert.pem\n      ssl_key_file: " + dir + "/key.pem\n";
  fleet.declare(central);
  fleet.start("1");
  auto [status, body] = fleet.get("1", "/api/internal/thumbprint");
  EXPECT_EQ(status, 200) << fleet.logs();
  EXPECT_NE(body.find(fleet.thumbprint("1")), std::string::npos);
  // Plain HTTP on the TLS port gets nothing useful.
  httplib::Client plain("127.0.0.1", fleet.http_port("1"));
  auto r = plain.Get("/api/internal/thumbprint");
  EXPECT_TRUE(!r || r->status != 200);
  std::filesystem::remove_all(dir);
}

TEST(Rest, AMissingCertificateIsReportedAndTheHostKeepsRunning) {
  Fleet fleet;
  HostSpec central{"1"};
  central.proxy = true;
  central.http = true;
  central.wait_http = false;
  central.http_extra = "      ssl: true\n      ssl_cert_file: /nonexistent/cert.pem\n      ssl_key_file: /nonexistent/key.pem\n";
  fleet.declare(central);
  fleet.start("1");
  EXPECT_TRUE(eventually([&] {
    return fleet.daemon("1").log().find("cannot read ssl_cert_file '/nonexistent/cert.pem'") != std::string::npos;
  }));
  EXPECT_TRUE(fleet.daemon("1").alive()) << "the core keeps running without its API";
}

TEST(Rest, BasicAuthAndAllowedHosts) {
  Fleet fleet;
  HostSpec central{"1"};
  central.proxy = true;
  central.http = true;
  central.http_extra = "      auth:\n        enabled: true\n        user: admin\n        password: s3cret\n";
  fleet.declare(central);
  fleet.start("1");
  auto [s1, b1] = fleet.get("1", "/api/internal/thumbprint");
  EXPECT_EQ(s1, 401);
  EXPECT_NE(b1.find("http_error_401"), std::string::npos);
  auto [s2, b2] = fleet.get("1", "/api/internal/thumbprint", {{"Authorization", "Basic YWRtaW46d3Jvbmc="}});
  EXPECT_EQ(s2, 401);  // admin:wrong
  auto [s3, b3] = fleet.get("1", "/api/internal/thumbprint", {{"Authorization", "Basic YWRtaW46czNjcmV0"}});
  EXPECT_EQ(s3, 200) << b3;  // admin:s3cret
  // The password never reaches the log.
  EXPECT_EQ(fleet.daemon("1").log().find("s3cret"), std::string::npos);

  Fleet other;
  HostSpec fenced{"1"};
  fenced.proxy = true;
  fenced.http = true;
  fenced.http_extra = "      allowed_hosts:\n        enabled: true\n        subnets:\n          - 10.0.0.0/8\n";
  other.declare(fenced);
  other.start("1");
  EXPECT_EQ(other.get("1", "/api/internal/thumbprint").first, 401);
}


TEST(Rest, AMalformedSubnetStopsTheHostWithItsName) {
  for (const char* bad : {"10.0.0.0/x", "10.0.0.0/", "/-1", "'::1/200'"}) {
    Fleet fleet;
    HostSpec h = api_host(std::string("      allowed_hosts:\n        enabled: true\n        subnets:\n          - ") + bad +
                          "\n");
    h.wait_http = false;
    fleet.declare(h);
    fleet.start("1");
    ASSERT_TRUE(eventually([&] { return !fleet.daemon("1").alive(); })) << bad << " was accepted";
    EXPECT_NE(fleet.daemon("1").stop(), 0);
    std::string log = fleet.daemon("1").log();
    std::string shown = bad[0] == '\'' ? std::string(bad).substr(1, std::strlen(bad) - 2) : bad;
    EXPECT_NE(log.find("allowed_hosts.subnets[0]: '" + shown + "'"), std::string::npos) << log;
    EXPECT_NE(log.find("config.yaml"), std::string::npos) << log;
  }
}

TEST(Rest, AllowedHostsMatchIpv6PeersAndIpv4MappedPeers) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback (::1) on this machine";
  auto get_v6 = [](Fleet& fleet) {
    httplib::Client c("::1", fleet.http_port("1"));
    c.set_read_timeout(15, 0);
    auto r = c.Get("/api/internal/thumbprint");
    return r ? r->status : 0;
  };
  {
    Fleet fleet;
    HostSpec h = api_host("      allowed_hosts:\n        enabled: true\n        subnets:\n          - '::1/128'\n");
    h.http_address = "'::1'";
    h.wait_http = false;
    fleet.declare(h);
    fleet.start("1");
    EXPECT_TRUE(eventually([&] { return get_v6(fleet) == 200; })) << fleet.logs();
  }
  {
    Fleet fleet;
    HostSpec h = api_host("      allowed_hosts:\n        enabled: true\n        subnets:\n          - 10.0.0.0/8\n");
    h.http_address = "'::1'";
    h.wait_http = false;
    fleet.declare(h);
    fleet.start("1");
    EXPECT_TRUE(eventually([&] { return get_v6(fleet) != 0; })) << fleet.logs();
    EXPECT_EQ(get_v6(fleet), 401);
  }
  {
    // A dual-stack listener reports an IPv4 client as ::ffff:127.0.0.1: it is matched as IPv4.
    Fleet fleet;
    HostSpec h = api_host("      allowed_hosts:\n        enabled: true\n        subnets:\n          - 127.0.0.1/32\n");
    h.http_address = "'::'";
    fleet.declare(h);
    fleet.start("1");
    EXPECT_EQ(fleet.get("1", "/api/internal/thumbprint").first, 200) << fleet.logs();
  }
}

TEST(Rest, WithoutAuthOnANonLoopbackAddressTheHostWarns) {
  const std::string warning = "without auth: anyone who can reach this address";
  {
    Fleet fleet;
    HostSpec h = api_host("      allowed_hosts:\n        enabled: true\n        subnets:\n          - 127.0.0.1/32\n");
    h.http_address = "0.0.0.0";
    fleet.declare(h);
    fleet.start("1");
    EXPECT_TRUE(eventually([&] { return fleet.daemon("1").log().find(warning) != std::string::npos; }))
        << fleet.logs();
  }
  Fleet fleet;
  fleet.declare(api_host());
  fleet.start("1");
  EXPECT_EQ(fleet.get("1", "/api/internal/constatus").first, 200);
  EXPECT_EQ(fleet.daemon("1").log().find(warning), std::string::npos) << "127.0.0.1 is not exposed";
}

TEST(Rest, ABodyOverTheCapIsRefusedBeforeAuthWithoutBeingRead) {
  Fleet fleet;
  fleet.declare(api_host(std::string(kAuth) + "      max_body_size: 4096\n"));
  fleet.start("1");
  const int port = fleet.http_port("1");
  // A terabyte announced, nothing sent: the answer comes at once, before the credentials.
  RawConnection huge(port);
  ASSERT_TRUE(huge.connected());
  ASSERT_TRUE(huge.send("POST /api/core/action/command HTTP/1.1\r\nHost: gorgone\r\nContent-Type: application/json\r\n"
                        "Content-Length: 1000000000000\r\n\r\n"));
  std::string answer = huge.read_all();
  EXPECT_EQ(status_of(answer), 413) << answer;
  EXPECT_EQ(error_of(body_of(answer)), "http_error_413") << answer;

  // The same with "Expect: 100-continue": refused instead of being invited to send.
  RawConnection expect(port);
  ASSERT_TRUE(expect.send("POST /api/core/action/command HTTP/1.1\r\nHost: gorgone\r\nExpect: 100-continue\r\n"
                          "Content-Length: 5000\r\n\r\n"));
  answer = expect.read_all();
  EXPECT_EQ(status_of(answer), 413) << answer;

  // A small body without credentials: 401, with JSON.
  auto [status, body] = fleet.post("1", "/api/core/action/command", "[{\"command\":\"true\"}]");
  EXPECT_EQ(status, 401) << body;
  EXPECT_EQ(error_of(body), "http_error_401") << body;

  // With credentials, a body over the cap sent in chunks is cut at the cap.
  RawConnection chunked(port);
  std::string chunk(5000, ' ');
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", chunk.size());
  ASSERT_TRUE(chunked.send("POST /api/core/action/command HTTP/1.1\r\nHost: gorgone\r\n"
                           "Authorization: Basic YWRtaW46czNjcmV0\r\nTransfer-Encoding: chunked\r\n\r\n" +
                           std::string(size) + "\r\n" + chunk + "\r\n0\r\n\r\n"));
  answer = chunked.read_all();
  EXPECT_EQ(status_of(answer), 413) << answer;
  EXPECT_EQ(error_of(body_of(answer)), "http_error_413") << answer;
  EXPECT_TRUE(fleet.daemon("1").alive());
}

// The server keeps what it writes until the answer is complete (one send per answer), but
// a "100 Continue" must reach the client before the server waits for the body, or a client
// that waits for it before sending (curl does) and the server wait for each other.
TEST(Rest, AClientWaitingForContinueIsInvitedThenAnswered) {
  Fleet fleet;
  fleet.declare(api_host());
  fleet.start("1");
  RawConnection c(fleet.http_port("1"));
  ASSERT_TRUE(c.connected());
  const std::string body = "[{\"command\":\"true\"}]";
  ASSERT_TRUE(c.send("POST /api/core/action/command HTTP/1.1\r\nHost: gorgone\r\nContent-Type: application/json\r\n"
                     "Expect: 100-continue\r\nConnection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n"));
  std::string invited = c.read_some();
  ASSERT_EQ(invited.rfind("HTTP/1.1 100 Continue\r\n\r\n", 0), 0u) << invited;
  ASSERT_TRUE(c.send(body));
  std::string answer = invited.substr(std::strlen("HTTP/1.1 100 Continue\r\n\r\n")) + c.read_all();
  EXPECT_EQ(status_of(answer), 200) << answer;
  EXPECT_NE(body_of(answer).find("\"token\""), std::string::npos) << answer;
}

TEST(Rest, SlowClientsDoNotStarveTheApi) {
  Fleet fleet;
  fleet.declare(api_host());
  fleet.start("1");
  // 20 clients send half a request and then one more header line now and then, never
  // finishing: each keeps a server thread reading its headers.
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 20; ++i) {
    slow.push_back(std::make_unique<RawConnection>(fleet.http_port("1")));
    ASSERT_TRUE(slow.back()->send("GET /api/internal/constatus HTTP/1.1\r\nHost: gorgone\r\n"));
  }
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    while (!done) {
      for (auto& c : slow) c->send("X-Slow: 1\r\n");
      for (int i = 0; i < 10 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  auto [status, body] = fleet.get("1", "/api/internal/constatus");
  done = true;
  trickle.join();
  EXPECT_EQ(status, 200) << body;
}

TEST(Rest, OnePeerCannotHoldEveryThread) {
  Fleet fleet;
  fleet.declare(api_host());
  fleet.start("1");
  // More slow connections from 127.0.0.1 than the server has threads.
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 70; ++i) {
    slow.push_back(std::make_unique<RawConnection>(fleet.http_port("1")));
    slow.back()->send("GET /api/internal/constatus HTTP/1.1\r\nHost: gorgone\r\n");
  }
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    while (!done) {
      for (auto& c : slow) c->send("X-Slow: 1\r\n");
      for (int i = 0; i < 5 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  // Another address is still served.
  RawConnection other(fleet.http_port("1"), "127.0.0.2");
  ASSERT_TRUE(other.connected());
  ASSERT_TRUE(other.send("GET /api/internal/constatus HTTP/1.1\r\nHost: gorgone\r\nConnection: close\r\n\r\n"));
  std::string answer = other.read_all();
  done = true;
  trickle.join();
  EXPECT_EQ(status_of(answer), 200) << answer;
}

TEST(Rest, ARequestStillUnreadAtItsDeadlineIsDropped) {
  Fleet fleet;
  fleet.declare(api_host());
  fleet.start("1");
  // A header line ten times a second: never a gap long enough for a per-read timeout.
  RawConnection slow(fleet.http_port("1"));
  ASSERT_TRUE(slow.send("GET /api/internal/constatus HTTP/1.1\r\nHost: gorgone\r\n"));
  bool dropped = eventually(
      [&] {
        if (slow.closed_by_server()) return true;
        return !slow.send("X-Slow: 1\r\n");
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(dropped);
  EXPECT_EQ(fleet.get("1", "/api/internal/constatus").first, 200);
}

TEST(Rest, ListensWithABacklogForBursts) {
  Fleet fleet;
  fleet.declare(api_host());
  fleet.start("1");
  // ss shows a listening socket's backlog in Send-Q.
  std::string out = make_temp_dir("gorgone-ss") + "/ss.txt";
  std::string cmd = "ss -Hltn 'sport = :" + std::to_string(fleet.http_port("1")) + "' > " + out + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::istringstream line(read_file(out));
  std::string state;
  long recv_q = -1, send_q = -1;
  line >> state >> recv_q >> send_q;
  EXPECT_EQ(state, "LISTEN") << read_file(out);
  EXPECT_GE(send_q, 128) << read_file(out);
  std::filesystem::remove_all(std::filesystem::path(out).parent_path());
}

TEST(Rest, ClientChosenWaitsAreCapped) {
  Fleet fleet;
  fleet.declare(api_host());
  fleet.start("1");
  // Longer than the 5 s cap (and the core's answer), far shorter than the 30 s asked for.
  httplib::Client c("127.0.0.1", fleet.http_port("1"));
  c.set_read_timeout(15, 0);
  auto r = c.Get("/api/nodes/2/log/sometoken?sync_wait=30000000");
  ASSERT_TRUE(r) << "no answer within the client's timeout";
  EXPECT_EQ(r->status, 200) << r->body;
  r = c.Post("/api/core/action/command?log_wait=30000000", "[{\"command\":\"true\"}]", "application/json");
  ASSERT_TRUE(r) << "no answer within the client's timeout";
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST(Rest, ADeeplyNestedBodyIsADecodeErrorAndTheHostLives) {
  Fleet fleet;
  fleet.declare(api_host());
  fleet.start("1");
  auto [status, body] = fleet.post("1", "/api/core/action/command", std::string(400 * 1024, '['));
  EXPECT_EQ(status, 400) << body;
  EXPECT_EQ(error_of(body), "decode_error") << body;
  EXPECT_TRUE(fleet.daemon("1").alive());
  EXPECT_EQ(fleet.get("1", "/api/internal/constatus").first, 200) << fleet.logs();
}

TEST(Rest, ErrorAnswersAreJsonWhateverThePathHolds) {
  Fleet fleet;
  fleet.declare(api_host());
  fleet.start("1");
  // A quote and a backslash in the path and the token come back escaped, or not at all.
  for (const char* path : {"/api/nodes/2/log/a%22b%5Cc?sync_wait=0", "/other%22", "/api/x%22/y/z", "/api/log/%22"}) {
    auto [status, body] = fleet.get("1", path);
    json::Document d;
    EXPECT_TRUE(json::parse(d, body) && d.IsObject()) << path << ": " << status << " " << body;
  }
  auto [status, body] = fleet.post("1", "/api/core/action/command", "{\"a\":");
  EXPECT_EQ(status, 400);
  EXPECT_EQ(error_of(body), "decode_error") << body;
}

}  // namespace
}  // namespace gorgone::testing

namespace gorgone::testing {
namespace {

TEST(Host, ABrokenModuleIsRefusedWithItsReasonAndTheOthersRun) {
  Fleet fleet;
  std::string dir = make_temp_dir("gorgone-badmod");
  write_file(dir + "/gorgone-broken.so", "not a shared object");
  HostSpec central{"1"};
  central.proxy = true;
  central.http = true;
  central.extra_modules =
      "    - name: broken\n      package: " + dir + "/gorgone-broken.so\n      enable: true\n"
      "    - name: missing\n      package: gorgone::modules::core::nothere::hooks\n      enable: true\n";
  fleet.declare(central);
  fleet.start("1");
  std::string log = fleet.daemon("1").log();
  EXPECT_NE(log.find("module 'broken': cannot load '" + dir + "/gorgone-broken.so'"), std::string::npos) << log;
  EXPECT_NE(log.find("module 'missing' not loaded"), std::string::npos) << log;
  EXPECT_NE(log.find("gorgone-nothere.so"), std::string::npos) << log;
  // The proxy and the API work all the same.
  auto [status, body] = fleet.get("1", "/api/internal/constatus");
  EXPECT_EQ(status, 200) << body;
  std::filesystem::remove_all(dir);
}

// Gorgone's dbcleaner, built in: at start (then hourly) rows past the retention go, recent
// ones stay; and the read-only calls Centreon polls through the API (constatus, thumbprint,
// information) answer without writing a history row each.
TEST(Retention, OldRowsArePurgedAtStartAndReadOnlyCallsWriteNoRow) {
  Fleet fleet;
  HostSpec central{"1"};
  central.http = true;
  central.extra_modules =
      "    - name: dbcleaner\n      package: gorgone::modules::core::dbcleaner::hooks\n      enable: true\n"
      "      purge_history_time: 3600\n";
  fleet.declare(central);
  fleet.start("1");  // creates the schema
  fleet.stop("1");
  const std::string db = fleet.db("1");
  for (int i = 0; i < 3; ++i) {
    gorgone_test::PgExec(db, "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) VALUES "
                             "('old', 2, 1, extract(epoch from now()) - 7200, 0, '{}'), "
                             "('recent', 2, 1, extract(epoch from now()) - 60, 0, '{}')");
  }
  fleet.start("1");
  ASSERT_TRUE(eventually([&] { return gorgone_test::PgValue(db, "SELECT count(*) FROM gorgone_history WHERE token = 'old'") == "0"; }))
      << fleet.logs();
  EXPECT_EQ(gorgone_test::PgValue(db, "SELECT count(*) FROM gorgone_history WHERE token = 'recent'"), "3");
  EXPECT_TRUE(eventually([&] { return fleet.daemon("1").log().find("[core] dbcleaner: ") != std::string::npos; }));
  for (const char* path : {"/api/internal/constatus", "/api/internal/thumbprint", "/api/internal/information"})
    EXPECT_EQ(fleet.get("1", path).first, 200) << path;
  // Rows are written in order by the history thread: one written after the calls is there
  // only once everything before it is.
  EXPECT_EQ(fleet.post("1", "/api/internal/logger", R"({"severity":"info"})").first, 204);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(gorgone_test::PgValue(db, "SELECT count(*) FROM gorgone_history WHERE data LIKE '%constatus%' OR "
                                      "data LIKE '%getthumbprint%' OR data LIKE '%information%'"),
            "0");
}

}  // namespace
}  // namespace gorgone::testing
