// The REST API's pure request handling: allowed_hosts matching, the checks made before a
// body is read, routes, wait parameters and bodies.
#include <gtest/gtest.h>

#include "gorgone/json.hpp"
#include "rest_request.hpp"

namespace gorgone::rest {
namespace {

std::vector<Subnet> subnets(std::initializer_list<const char*> texts) {
  std::vector<Subnet> out;
  for (const char* t : texts) out.push_back(parse_subnet(t).value());
  return out;
}

TEST(RestRequest, MalformedSubnetsDoNotParse) {
  for (const char* bad : {"10.0.0.0/x", "10.0.0.0/", "/-1", "/8", "::1/200", "10.0.0.0/33", "10.0.0.0/-1", "",
                          "10.0.0.0/ 8", " 10.0.0.0/8", "10.0.0.0/8/8", "localhost", "10.0.0.0/1000"})
    EXPECT_FALSE(parse_subnet(bad)) << bad;
  for (const char* good : {"10.0.0.0/8", "10.1.2.3/8", "127.0.0.1", "0.0.0.0/0", "::1", "::1/128", "fd00::/8", "::/0"})
    EXPECT_TRUE(parse_subnet(good)) << good;
}

TEST(RestRequest, PeersMatchSubnetsOfTheirFamily) {
  auto v4 = subnets({"10.0.0.0/8", "192.168.1.7"});
  EXPECT_TRUE(peer_allowed("10.200.3.4", v4));
  EXPECT_TRUE(peer_allowed("192.168.1.7", v4));
  EXPECT_FALSE(peer_allowed("192.168.1.8", v4));
  EXPECT_FALSE(peer_allowed("11.0.0.1", v4));
  // An IPv4 peer on a dual-stack socket is reported as ::ffff:a.b.c.d.
  EXPECT_TRUE(peer_allowed("::ffff:10.9.9.9", v4));
  EXPECT_FALSE(peer_allowed("::ffff:11.9.9.9", v4));
  EXPECT_FALSE(peer_allowed("::1", v4));
  EXPECT_FALSE(peer_allowed("", v4));
  EXPECT_FALSE(peer_allowed("not an address", v4));

  auto v6 = subnets({"::1/128", "fd00:1::/32"});
  EXPECT_TRUE(peer_allowed("::1", v6));
  EXPECT_TRUE(peer_allowed("fd00:1:ffff::5", v6));
  EXPECT_FALSE(peer_allowed("fd00:2::5", v6));
  EXPECT_FALSE(peer_allowed("127.0.0.1", v6));
  EXPECT_FALSE(peer_allowed("::ffff:127.0.0.1", v6));
  // A mapped network in an entry is an IPv4 network.
  EXPECT_TRUE(peer_allowed("127.0.0.1", subnets({"::ffff:127.0.0.0/104"})));
  EXPECT_TRUE(peer_allowed("::ffff:127.0.0.1", subnets({"::ffff:127.0.0.1"})));

  // A zone names an interface, not a network: it neither narrows nor widens a match, however
  // large its number (one past 2^32 once made an entry that did not match its own address).
  auto link = subnets({"fe80::/10", "fe80::1%1844674407370000095"});
  EXPECT_TRUE(peer_allowed("fe80::7%eth0", link));
  EXPECT_TRUE(peer_allowed("fe80::1%2", subnets({"fe80::1%1844674407370000095"})));
  EXPECT_TRUE(peer_allowed("fe80::1", subnets({"fe80::1%lo"})));
  EXPECT_FALSE(peer_allowed("fe80::2%1844674407370000095", subnets({"fe80::1%1844674407370000095"})));

  EXPECT_FALSE(peer_allowed("10.0.0.1", {})) << "an empty list lets no one in";
  EXPECT_TRUE(peer_allowed("203.0.113.9", subnets({"0.0.0.0/0"})));
  EXPECT_FALSE(peer_allowed("2001:db8::1", subnets({"0.0.0.0/0"})));
}

TEST(RestRequest, Loopback) {
  for (const char* a : {"127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1", "localhost"})
    EXPECT_TRUE(is_loopback_address(a)) << a;
  for (const char* a : {"0.0.0.0", "::", "10.0.0.1", "example.org", ""}) EXPECT_FALSE(is_loopback_address(a)) << a;
}

TEST(RestRequest, SameSecret) {
  EXPECT_TRUE(same_secret("Basic YWRtaW46czNjcmV0", "Basic YWRtaW46czNjcmV0"));
  EXPECT_FALSE(same_secret("Basic YWRtaW46czNjcmV0", "Basic YWRtaW46czNjcmV1"));
  EXPECT_FALSE(same_secret("", "Basic YWRtaW46czNjcmV0"));
  EXPECT_FALSE(same_secret("Basic YWRtaW46czNjcmV0x", "Basic YWRtaW46czNjcmV0"));
}

int status(const std::optional<Refusal>& r) { return r ? r->status : 0; }

TEST(RestRequest, ChecksBeforeTheBodyComeInOrder) {
  AccessPolicy p;
  p.allowed_hosts_enabled = true;
  p.subnets = subnets({"127.0.0.1/32"});
  p.auth_enabled = true;
  p.expected_authorization = "Basic YWRtaW46czNjcmV0";
  p.max_body_size = 1000;
  std::string big = "1000000000000", small = "10", bad = "12x";
  RequestHead h;
  h.method = "POST";
  h.peer = "10.0.0.1";
  h.content_length = &big;
  EXPECT_EQ(status(check_head(p, h)), 401) << "allowed_hosts first";
  h.peer = "127.0.0.1";
  EXPECT_EQ(status(check_head(p, h)), 413) << "then the size, before the credentials";
  h.content_length = &bad;
  EXPECT_EQ(status(check_head(p, h)), 400);
  h.content_length = &small;
  EXPECT_EQ(status(check_head(p, h)), 401) << "then the credentials";
  h.authorization = "Basic YWRtaW46czNjcmV0";
  EXPECT_EQ(status(check_head(p, h)), 0);
  h.method = "PRI";
  EXPECT_EQ(status(check_head(p, h)), 404);
  h.method = "GET";
  EXPECT_EQ(status(check_head(p, h)), 400) << "a GET has no body";
  h.content_length = nullptr;
  EXPECT_EQ(status(check_head(p, h)), 0);

  auto r = check_head(p, RequestHead{"POST", "127.0.0.1", &big, nullptr, ""});
  ASSERT_TRUE(r);
  json::Document d;
  ASSERT_TRUE(json::parse(d, r->body));
  EXPECT_STREQ(d["error"].GetString(), "http_error_413");
}

TEST(RestRequest, RoutesLikeGorgone) {
  const std::map<std::string, std::string> endpoints = {{"GET_/internal/constatus", "CONSTATUS"},
                                                         {"POST_/core/action/command", "COMMAND"},
                                                         {"GET_/nodes/x/y", "ODD"}};
  auto r = route("GET", "/api/internal/constatus", endpoints);
  EXPECT_EQ(r.kind, RouteKind::kCall);
  EXPECT_EQ(r.event, "CONSTATUS");
  EXPECT_TRUE(r.internal);
  EXPECT_EQ(r.target, "");
  r = route("POST", "/api/nodes/2/core/action/command/a//b/", endpoints);
  EXPECT_EQ(r.kind, RouteKind::kCall);
  EXPECT_EQ(r.event, "COMMAND");
  EXPECT_FALSE(r.internal);
  EXPECT_EQ(r.target, "2");
  EXPECT_EQ(r.variables, (std::vector<std::string>{"a", "b"}));
  r = route("GET", "/api/nodes/2/log/abc-def", endpoints);
  EXPECT_EQ(r.kind, RouteKind::kLog);
  EXPECT_EQ(r.target, "2");
  EXPECT_EQ(r.token, "abc-def");
  r = route("GET", "/api/log/", endpoints);
  EXPECT_EQ(r.kind, RouteKind::kLog);
  EXPECT_EQ(r.token, "");
  EXPECT_EQ(route("GET", "/api/log/a\nb", endpoints).kind, RouteKind::kUnknown);
  EXPECT_EQ(route("POST", "/api/log/abc", endpoints).kind, RouteKind::kUnknown);
  // Without the nodes/<id>/ group "nodes" is the namespace, as the regular expression reads it.
  r = route("GET", "/api/nodes/x/y/z", endpoints);
  EXPECT_EQ(r.kind, RouteKind::kCall);
  EXPECT_EQ(r.event, "ODD");
  EXPECT_EQ(r.variables, (std::vector<std::string>{"z"}));
  EXPECT_EQ(route("GET", "/other", endpoints).kind, RouteKind::kNotApi);
  EXPECT_EQ(route("GET", "/apix", endpoints).kind, RouteKind::kNotApi);
  EXPECT_EQ(route("GET", "/api", endpoints).kind, RouteKind::kUnknown);
  EXPECT_EQ(route("GET", "/api/internal/constatus-x", endpoints).kind, RouteKind::kUnknown);
  EXPECT_EQ(route("POST", "/api/nodes/a-b/core/action/command", endpoints).kind, RouteKind::kUnknown);
}

TEST(RestRequest, WaitsAreCapped) {
  Params p = {{"sync_wait", "30000000"}, {"log_wait", "abc"}, {"other", "1"}};
  EXPECT_EQ(wait_param(p, "sync_wait", 10000), kMaxWaitMicroseconds);
  EXPECT_EQ(wait_param(p, "log_wait", 7), 7);
  EXPECT_EQ(wait_param(p, "missing", 10000), 10000);
  EXPECT_EQ(wait_param({{"sync_wait", "999999999999999"}}, "sync_wait", 0), 0) << "too long: the fallback";
  EXPECT_EQ(wait_param({{"sync_wait", "200000"}}, "sync_wait", 0), 200000);
}

TEST(RestRequest, Bodies) {
  EXPECT_EQ(body_content("POST", "").value(), "null");
  EXPECT_EQ(body_content("GET", "not json").value(), "null");
  EXPECT_EQ(body_content("POST", " [ {\"a\" : 1} ] ").value(), "[{\"a\":1}]");
  auto bad = body_content("PUT", "{");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("JSON"), std::string::npos);

  std::string data = request_data({{"k\"", "v\n"}}, "[1]", {"a", "b"});
  json::Document d;
  ASSERT_TRUE(json::parse(d, data)) << data;
  EXPECT_STREQ(d["parameters"]["k\""].GetString(), "v\n");
  EXPECT_EQ(d["variables"].Size(), 2u);
  EXPECT_EQ(d["content"][0].GetInt(), 1);

  ASSERT_TRUE(json::parse(d, error_json("e\"", "m\\\n")));
  EXPECT_STREQ(d["message"].GetString(), "m\\\n");
}

}  // namespace
}  // namespace gorgone::rest
