// The REST API's access controls as Gorgone's httpserver module configures them.
#include <gtest/gtest.h>

#include "fleet.hpp"

namespace gorgone::testing {
namespace {

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

}  // namespace
}  // namespace gorgone::testing
