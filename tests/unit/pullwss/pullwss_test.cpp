// The pullwss module without a network: its directives (strict, errors naming the directive,
// never repeating the token), the messages it sends checked byte for byte against a captured
// exchange between a Perl pullwss poller and a Perl central (tests/vectors/wss_transcript.json),
// what it lets through in each direction, the central's refusals, and its keep-alive on a
// given clock.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "frames.hpp"
#include "gorgone/json.hpp"
#include "settings.hpp"

namespace gorgone::pullwss {
namespace {

Result<Settings> parse(const std::string& yaml) { return parse_settings(YAML::Load(yaml)); }

std::string error_of(const std::string& yaml) {
  auto s = parse(yaml);
  return s ? std::string("(accepted)") : s.error();
}

const char* kMinimal = "address: central.example\nport: 8086\ntoken: s3cret\n";

TEST(PullWssSettings, DefaultsAreGorgonesWithVerification) {
  auto s = parse(std::string("name: pullwss\npackage: gorgone::modules::core::pullwss::hooks\nenable: true\n") + kMinimal);
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->address, "central.example");
  EXPECT_EQ(s->port, "8086");
  EXPECT_FALSE(s->ssl);
  EXPECT_FALSE(s->ssl_insecure);  // unlike Gorgone, the central's certificate is verified
  EXPECT_EQ(s->ssl_ca_file, "");
  EXPECT_EQ(s->token, "s3cret");
  EXPECT_EQ(s->proxy, "");
  EXPECT_EQ(s->ping, 60);          // Gorgone's fixed keep-alive period
  EXPECT_EQ(s->ping_timeout, 180);
  EXPECT_EQ(s->max_message_size, 64LL << 20);
  EXPECT_EQ(s->url(), "ws://central.example:8086/");
  EXPECT_EQ(s->host_header(), "central.example:8086");
  EXPECT_TRUE(s->warnings.empty());
}

TEST(PullWssSettings, EveryDirective) {
  std::string ca = ::testing::TempDir() + "/pullwss-ca.pem";
  std::ofstream(ca) << "x";
  auto s = parse("address: 10.0.0.1\nport: 443\nssl: true\nssl_insecure: false\nssl_ca_file: " + ca +
                 "\ntoken: t\nproxy: http://user:pw@proxy.example:3128/\nping: 5\nping_timeout: 0\n"
                 "max_message_size: 1048576\n");
  ASSERT_TRUE(s) << s.error();
  EXPECT_TRUE(s->ssl);
  EXPECT_EQ(s->url(), "wss://10.0.0.1:443/");
  EXPECT_EQ(s->ssl_ca_file, ca);
  EXPECT_EQ(s->proxy_url.host, "proxy.example");
  EXPECT_EQ(s->proxy_url.port, "3128");
  EXPECT_EQ(s->proxy_url.credentials, "user:pw");
  EXPECT_EQ(s->ping, 5);
  EXPECT_EQ(s->ping_timeout, 0);
  EXPECT_EQ(s->max_message_size, 1048576);
  EXPECT_TRUE(s->warnings.empty());
}

TEST(PullWssSettings, GorgonesSslStringAndIpv6) {
  auto s = parse("address: '::1'\nport: 8086\ntoken: t\nssl: 'true'\n");
  ASSERT_TRUE(s) << s.error();
  EXPECT_TRUE(s->ssl);
  EXPECT_EQ(s->url(), "wss://[::1]:8086/");
}

TEST(PullWssSettings, MandatoryDirectivesAreNamed) {
  EXPECT_EQ(error_of("port: 8086\ntoken: t\n"), "pullwss: directive 'address' is required (the central's websocket listener)");
  EXPECT_EQ(error_of("address: '  '\nport: 8086\ntoken: t\n"),
            "pullwss: directive 'address' is required (the central's websocket listener)");
  EXPECT_EQ(error_of("address: a\ntoken: t\n"), "pullwss: directive 'port' is required (the central's websocket listener)");
  EXPECT_EQ(error_of("address: a\nport: 8086\n"), "pullwss: directive 'token' is required (the central's httpserver token)");
  EXPECT_EQ(error_of("address: a\nport: 8086\ntoken: ' '\n"),
            "pullwss: directive 'token' is required (the central's httpserver token)");
  EXPECT_EQ(error_of("[1, 2]"), "pullwss: the module configuration must be a map");
}

TEST(PullWssSettings, BadValuesAreNamedAndTheTokenIsNeverRepeated) {
  EXPECT_EQ(error_of("address: a\nport: 0\ntoken: t\n"),
            "pullwss: directive 'port' must be an integer between 1 and 65535, got '0'");
  EXPECT_EQ(error_of("address: a\nport: http\ntoken: t\n"),
            "pullwss: directive 'port' must be an integer between 1 and 65535, got 'http'");
  EXPECT_EQ(error_of("address: 'a b'\nport: 1\ntoken: t\n"),
            "pullwss: directive 'address' must be a host name or an address, got 'a b'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "ssl: maybe\n"), "pullwss: directive 'ssl' must be true or false, got 'maybe'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "ssl_insecure: 2\n"),
            "pullwss: directive 'ssl_insecure' must be true or false, got '2'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "ssl_ca_file: /nonexistent/ca.pem\n"),
            "pullwss: directive 'ssl_ca_file': cannot read '/nonexistent/ca.pem'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "ping: 0\n"),
            "pullwss: directive 'ping' must be an integer between 1 and 86400, got '0'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "ping_timeout: -1\n"),
            "pullwss: directive 'ping_timeout' must be an integer between 0 and 86400, got '-1'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "max_message_size: 10\n"),
            "pullwss: directive 'max_message_size' must be an integer between 1024 and 1073741824, got '10'");
  EXPECT_EQ(error_of("address: a\nport: 1\ntoken: [a]\n"), "pullwss: directive 'token' must be a string");
  std::string e = error_of("address: a\nport: 1\ntoken: \"se\\ncret\"\n");
  EXPECT_EQ(e, "pullwss: directive 'token' must not contain control characters");
  EXPECT_EQ(e.find("cret"), std::string::npos);
}

TEST(PullWssSettings, ProxyUrls) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "proxy: https://p:3128\n"),
            "pullwss: directive 'proxy' must be an http:// URL (http://[user[:password]@]host:port)");
  EXPECT_EQ(error_of(std::string(kMinimal) + "proxy: http://p\n"),
            "pullwss: directive 'proxy' must name a host and a port (http://host:port)");
  // The credentials are not repeated.
  std::string e = error_of(std::string(kMinimal) + "proxy: http://user:hunter2@p:99999\n");
  EXPECT_EQ(e, "pullwss: directive 'proxy' must have a port between 1 and 65535");
  auto p = parse_proxy_url("http://[::1]:3128");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->host, "::1");
  EXPECT_EQ(p->credentials, "");
}

TEST(PullWssSettings, UnknownAndGorgonesSplitSizeAreReportedNotFatal) {
  auto s = parse(std::string(kMinimal) + "pingg: 1\nmax_msg_size: 130000\nssl_insecure: true\n");
  ASSERT_TRUE(s) << s.error();
  ASSERT_EQ(s->warnings.size(), 3u);
  EXPECT_EQ(s->warnings[0], "unknown directive 'pingg' ignored");
  EXPECT_NE(s->warnings[1].find("directive 'max_msg_size' ignored"), std::string::npos);
  EXPECT_EQ(s->warnings[2], "directive 'ssl_insecure' has no effect without ssl: true");
}

// The captured exchange.
struct Transcript {
  std::vector<std::string> client, server;  // payloads, in order
  std::string first_head;
};

Transcript transcript() {
  Transcript t;
  const char* dir = std::getenv("GORGONE_VECTORS_DIR");
  if (!dir) return t;
  std::ifstream in(std::string(dir) + "/wss_transcript.json");
  std::stringstream ss;
  ss << in.rdbuf();
  json::Document doc;
  doc.Parse(ss.str().c_str());
  if (!doc.IsObject()) return t;
  for (const auto& f : doc["frames"].GetArray()) {
    std::string dir_ = f["dir"].GetString();
    if (f.HasMember("http_head")) {
      if (t.first_head.empty() && dir_ == "client->server") t.first_head = f["http_head"].GetString();
      continue;
    }
    (dir_ == "client->server" ? t.client : t.server).push_back(f["payload"].GetString());
  }
  return t;
}

// The central's decoding, for the test: the entities the poller uses.
std::string decode(std::string s) {
  for (auto [from, to] : {std::pair<const char*, const char*>{"&quot;", "\""}, {"&lt;", "<"}, {"&gt;", ">"},
                          {"&#39;", "'"}, {"&amp;", "&"}}) {
    for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + 1)) s.replace(at, std::strlen(from), to);
  }
  return s;
}

TEST(PullWssWire, RegistrationIsGorgonesByteForByte) {
  auto t = transcript();
  if (t.client.empty()) GTEST_SKIP() << "GORGONE_VECTORS_DIR not set";
  EXPECT_EQ(t.client[0], register_frame("6"));  // the first message of a connection
  EXPECT_EQ(register_frame("6"), "[REGISTERNODES] [] [] {\"nodes\":[{\"type\":\"wss\",\"identity\":\"6\",\"id\":\"6\"}]}");
  EXPECT_EQ(unregister_frame("6"), "[UNREGISTERNODES] [] [] {\"nodes\":[{\"id\":\"6\",\"type\":\"wss\",\"identity\":\"6\"}]}");
  // The upgrade Gorgone's poller sends: what a central looks at.
  EXPECT_NE(t.first_head.find("GET / HTTP/1.1\r\n"), std::string::npos);
  EXPECT_NE(t.first_head.find("Authorization: Bearer secret_token\r\n"), std::string::npos);
  EXPECT_NE(t.first_head.find("User-Agent: gorgone mojo\r\n"), std::string::npos);
}

// Every SETLOGS and PONG the Perl poller sent is what this module makes of the core's answer
// it came from (the ACK of a getlog; the PONG as it is), entity encoding included.
TEST(PullWssWire, AnswersAreEncodedAsGorgonesPoller) {
  auto t = transcript();
  if (t.client.empty()) GTEST_SKIP() << "GORGONE_VECTORS_DIR not set";
  int setlogs = 0, pongs = 0;
  for (const auto& sent : t.client) {
    if (sent.rfind("[REGISTERNODES]", 0) == 0) {
      EXPECT_EQ(sent.find('&'), std::string::npos) << "the keep-alive is not encoded";
      continue;
    }
    std::string plain = decode(sent);
    std::string core_answer = plain;
    if (plain.rfind("[SETLOGS] ", 0) == 0) {
      // "[SETLOGS] [tok] [] json" came from "[ACK] [tok] json".
      std::size_t close = plain.find("] [] ");
      core_answer = "[ACK] " + plain.substr(10, close + 1 - 10) + " " + plain.substr(close + 5);
      ++setlogs;
    } else {
      ASSERT_EQ(plain.rfind("[PONG] ", 0), 0u) << plain;
      ++pongs;
    }
    auto out = to_central(core_answer);
    ASSERT_TRUE(out) << core_answer;
    EXPECT_EQ(*out, sent);
  }
  EXPECT_GE(setlogs, 5);
  EXPECT_GE(pongs, 3);
}

// As Gorgone's Perl poller writes them, byte by byte: UTF-8 "é" (C3 A9) is two entities.
TEST(PullWssWire, EntityEncoding) {
  EXPECT_EQ(encode_entities("a&b<c>d\"e'f é"), "a&amp;b&lt;c&gt;d&quot;e&#39;f &Atilde;&copy;");
  EXPECT_EQ(encode_entities("&amp;"), "&amp;amp;");
  EXPECT_EQ(encode_entities(""), "");
}

TEST(PullWssWire, WhatGoesToTheCoreAndWhatComesBack) {
  auto t = transcript();
  for (const auto& received : t.server) EXPECT_TRUE(for_core(received)) << received;
  EXPECT_TRUE(for_core("[PING] [] [] {}"));
  EXPECT_FALSE(for_core("[ACK] [] {\"code\":0}"));
  EXPECT_FALSE(for_core("{\"code\":500,\"message\":\"token authorization unallowed\"}"));
  EXPECT_FALSE(for_core(""));
  // The core's ACKs of the central's commands stay here; getlog answers go as SETLOGS.
  EXPECT_FALSE(to_central("[ACK] [t] {\"code\":0,\"data\":{\"action\":\"command\"}}"));
  EXPECT_EQ(*to_central("[ACK] [t] {\"code\":0,\"data\":{\"action\":\"getlog\",\"result\":[]}}"),
            "[SETLOGS] [t] [] {&quot;code&quot;:0,&quot;data&quot;:{&quot;action&quot;:&quot;getlog&quot;,&quot;result&quot;:[]}}");
  EXPECT_EQ(*to_central("[SYNCLOGS] [] [] {}"), "[SYNCLOGS] [] [] {}");
  EXPECT_FALSE(to_central("[PUTLOG] [t] [] {}"));
  EXPECT_EQ(describe("[SETLOGS] [abc] [] {}"), "SETLOGS token abc");
  EXPECT_EQ(describe("[PONG] [] [] {}"), "PONG without token");
}

TEST(PullWssWire, RefusalsOfTheCentral) {
  EXPECT_EQ(refusal_reason("{\"code\":500,\"message\":\"token authorization unallowed\"}"), "token authorization unallowed");
  EXPECT_EQ(refusal_reason("{\"code\":500,\"message\":\"please registernodes\"}"), "please registernodes");
  EXPECT_FALSE(refusal_reason("[PING] [] [] {}"));
  EXPECT_FALSE(refusal_reason("{\"message\":\"no code\"}"));
  EXPECT_FALSE(refusal_reason("{not json"));
}

TEST(PullWssKeepAlive, RegistersAgainEveryPingAndDropsASilentLink) {
  KeepAlive k(60, 180);
  k.connected(1000);
  EXPECT_EQ(k.due(1059), KeepAlive::Action::kNone);
  EXPECT_EQ(k.due(1060), KeepAlive::Action::kSend);  // even when the central talks (Gorgone: every 60 s)
  k.received(1100);
  EXPECT_EQ(k.due(1119), KeepAlive::Action::kNone);
  EXPECT_EQ(k.due(1120), KeepAlive::Action::kSend);
  EXPECT_EQ(k.due(1280), KeepAlive::Action::kSend);
  EXPECT_EQ(k.due(1281), KeepAlive::Action::kReconnect);  // nothing received since 1100
}

TEST(PullWssKeepAlive, ZeroPingTimeoutNeverDrops) {
  KeepAlive k(5, 0);
  k.connected(0);
  for (int t = 1; t < 100000; t += 1000) EXPECT_NE(k.due(t), KeepAlive::Action::kReconnect);
}

}  // namespace
}  // namespace gorgone::pullwss
