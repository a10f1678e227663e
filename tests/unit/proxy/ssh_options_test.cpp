// The attributes of a push_ssh node, read once when its link is made: Gorgone's names and
// defaults, and an error naming the node and the attribute for a value that cannot be used.
#include <gtest/gtest.h>

#include "gorgone/json.hpp"
#include "ssh_session.hpp"

namespace gorgone::proxy {
namespace {

Result<SshOptions> options(const std::string& node_json) {
  json::Document d;
  EXPECT_TRUE(json::parse(d, node_json)) << node_json;
  return ssh_options_of("7", d);
}

TEST(SshOptions, GorgoneNamesAndDefaults) {
  auto o = options(R"({"id":"7","type":"push_ssh","address":"10.0.0.7"})");
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->host, "10.0.0.7");
  EXPECT_EQ(o->port, 22);
  EXPECT_EQ(o->connect_timeout, 5);
  EXPECT_FALSE(o->strict_host_key);
  EXPECT_TRUE(o->user.empty());

  o = options(R"({"address":"poller","ssh_port":"2222","ssh_username":"centreon","ssh_password":"pw",
                  "ssh_directory":"/var/lib/centreon-gorgone/.ssh","ssh_known_hosts":"/k","ssh_identity":"/id",
                  "ssh_connect_timeout":10,"strict_serverkey_check":1})");
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->port, 2222);
  EXPECT_EQ(o->user, "centreon");
  EXPECT_EQ(o->password, "pw");
  EXPECT_EQ(o->directory, "/var/lib/centreon-gorgone/.ssh");
  EXPECT_EQ(o->known_hosts, "/k");
  EXPECT_EQ(o->identity, "/id");
  EXPECT_EQ(o->connect_timeout, 10);
  EXPECT_TRUE(o->strict_host_key);
}

// A nodes file's `false` may arrive as text: it means false, as in Gorgone's YAML reader.
TEST(SshOptions, StrictServerKeyCheckFlags) {
  for (const char* off : {"false", "0", "\"false\"", "\"no\"", "\"0\"", "\"\"", "null"}) {
    auto o = options(std::string(R"({"address":"h","strict_serverkey_check":)") + off + "}");
    ASSERT_TRUE(o) << o.error();
    EXPECT_FALSE(o->strict_host_key) << off;
  }
  for (const char* on : {"true", "1", "\"true\"", "\"yes\"", "\"1\""}) {
    auto o = options(std::string(R"({"address":"h","strict_serverkey_check":)") + on + "}");
    ASSERT_TRUE(o) << o.error();
    EXPECT_TRUE(o->strict_host_key) << on;
  }
}

TEST(SshOptions, UnusableValuesNameTheNodeAndTheAttribute) {
  auto o = options(R"({"type":"push_ssh"})");
  ASSERT_FALSE(o);
  EXPECT_EQ(o.error(), "node '7': attribute 'address' is required for a push_ssh node");
  o = options(R"({"address":"-oProxyCommand=x"})");
  ASSERT_FALSE(o);
  EXPECT_EQ(o.error(), "node '7': attribute 'address' is not a host name or address");
  for (const char* port : {"0", "65536", "\"22x\"", "-1", "1.5", "[]"}) {
    o = options(std::string(R"({"address":"h","ssh_port":)") + port + "}");
    ASSERT_FALSE(o) << port;
    EXPECT_EQ(o.error(), "node '7': attribute 'ssh_port' must be a whole number between 1 and 65535") << port;
  }
  o = options(R"({"address":"h","ssh_connect_timeout":0})");
  ASSERT_FALSE(o);
  EXPECT_EQ(o.error(), "node '7': attribute 'ssh_connect_timeout' must be a whole number between 1 and 3600");
}

}  // namespace
}  // namespace gorgone::proxy
