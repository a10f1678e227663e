// The REST API's request handling without a core: the checks made before a body is read,
// allowed_hosts subnets and peers, routes, wait parameters, bodies and the JSON answers, on
// arbitrary requests. On short paths the route agrees with the regular expressions
// Gorgone's httpserver uses (run by std::regex, a backtracking ECMAScript engine).
//
// Input: one byte of method, one byte of flags, then newline-separated fields
// (path, peer, Content-Length, Authorization, subnets separated by ',', query "k=v&k=v"),
// then the body (the rest, newlines included). Seeds in tests/fuzz/corpus/rest/.
#include <cstddef>
#include <cstdint>
#include <regex>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "gorgone/json.hpp"
#include "rest_request.hpp"

namespace {

using namespace gorgone;

const std::map<std::string, std::string>& endpoints() {
  static const std::map<std::string, std::string> table = {
      {"GET_/internal/constatus", "CONSTATUS"}, {"POST_/internal/logger", "BCASTLOGGER"},
      {"GET_/internal/nodes", "NODES"},         {"POST_/core/action/command", "COMMAND"},
      {"GET_/nodes/a/b", "ODD"},                {"DELETE_/core/x/y", "DEL"}};
  return table;
}

// std::regex recurses per character: only short paths are compared.
constexpr std::size_t kMaxReferenceSize = 512;

rest::Route reference_route(const std::string& method, const std::string& path) {
  static const std::regex log_re(R"(^/api/(nodes/(\w*)/)?log/(.*)$)");
  static const std::regex internal_re(R"(^/api/(nodes/(\w*)/)?internal/(\w+)/?([\w/]*?)$)");
  static const std::regex action_re(R"(^/api/(nodes/(\w*)/)?(\w+)/(\w+)/(\w+)/?([\w/]*?)$)");
  rest::Route r;
  if (path.rfind("/api/", 0) != 0 && path != "/api") {
    r.kind = rest::RouteKind::kNotApi;
    return r;
  }
  std::smatch m;
  if (method == "GET" && std::regex_match(path, m, log_re)) {
    r.kind = rest::RouteKind::kLog;
    r.target = m[2].str();
    r.token = m[3].str();
    return r;
  }
  if (std::regex_match(path, m, internal_re)) {
    auto it = endpoints().find(method + "_/internal/" + m[3].str());
    if (it != endpoints().end()) {
      r.kind = rest::RouteKind::kCall;
      r.internal = true;
      r.event = it->second;
      r.target = m[2].str();
      r.variables = rest::split_variables(m[4].str());
      return r;
    }
  }
  if (std::regex_match(path, m, action_re)) {
    auto it = endpoints().find(method + "_/" + m[3].str() + "/" + m[4].str() + "/" + m[5].str());
    if (it != endpoints().end()) {
      r.kind = rest::RouteKind::kCall;
      r.event = it->second;
      r.target = m[2].str();
      r.variables = rest::split_variables(m[6].str());
      return r;
    }
  }
  return r;
}

std::string_view next_field(std::string_view& text) {
  std::size_t nl = text.find('\n');
  std::string_view field = text.substr(0, nl);
  text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  return field;
}

rest::Params parse_query(std::string_view q) {
  rest::Params out;
  while (!q.empty()) {
    std::size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    std::size_t eq = pair.find('=');
    out.emplace(std::string(pair.substr(0, eq)), eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1)));
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
  }
  return out;
}

bool json_object_with_error(const std::string& text) {
  json::Document d;
  return json::parse(d, text) && d.IsObject() && d.HasMember("error") && d["error"].IsString() &&
         d.HasMember("message") && d["message"].IsString();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static const char* const kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "PRI", "OPTIONS"};
  const std::string method = kMethods[data[0] % 8];
  const std::uint8_t flags = data[1];
  std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::string path(next_field(text));
  const std::string peer(next_field(text));
  const std::string content_length(next_field(text));
  const std::string authorization(next_field(text));
  const std::string subnet_list(next_field(text));
  const rest::Params params = parse_query(next_field(text));
  const std::string_view body = text;

  // Subnets: whatever parses contains its own network address, and nothing of the other family.
  std::vector<rest::Subnet> subnets;
  for (std::string_view list = subnet_list; !list.empty();) {
    std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    auto s = rest::parse_subnet(item);
    if (!s) continue;
    const std::string own = s->v6 ? s->net6.network().to_string() : s->net4.network().to_string();
    // (IPv4-mapped peers are matched as IPv4: a shorter IPv6 prefix over them matches none.)
    if (!(s->v6 && s->net6.network().is_v4_mapped())) FUZZ_CHECK(rest::peer_allowed(own, {*s}));
    FUZZ_CHECK(!rest::peer_allowed(s->v6 ? "192.0.2.1" : "2001:db8::1", {*s}));
    subnets.push_back(*s);
  }
  const bool allowed = rest::peer_allowed(peer, subnets);
  if (allowed) FUZZ_CHECK(!subnets.empty());
  (void)rest::is_loopback_address(peer);

  // The checks before the body, in their order.
  rest::AccessPolicy policy;
  policy.allowed_hosts_enabled = flags & 1;
  policy.subnets = subnets;
  policy.auth_enabled = flags & 2;
  policy.expected_authorization = "Basic YWRtaW46czNjcmV0";
  policy.max_body_size = 1 + (flags >> 4) * 1000;
  rest::RequestHead head;
  head.method = method;
  head.peer = peer;
  head.content_length = (flags & 4) ? &content_length : nullptr;
  const std::string chunked = "chunked";
  head.transfer_encoding = (flags & 8) ? &chunked : nullptr;
  head.authorization = authorization;
  auto refusal = rest::check_head(policy, head);
  if (refusal) {
    FUZZ_CHECK(refusal->status == 400 || refusal->status == 401 || refusal->status == 404 || refusal->status == 413);
    FUZZ_CHECK(json_object_with_error(refusal->body));
  }
  if (policy.allowed_hosts_enabled && !allowed) FUZZ_CHECK(refusal && refusal->status == 401);
  if (policy.auth_enabled && (!policy.allowed_hosts_enabled || allowed) &&
      authorization != policy.expected_authorization)
    FUZZ_CHECK(refusal && refusal->status != 0);
  if (!refusal && head.content_length) {
    FUZZ_CHECK(content_length.size() <= 19);
    FUZZ_CHECK(std::stoull(content_length) <= policy.max_body_size);
  }
  FUZZ_CHECK(rest::same_secret(authorization, policy.expected_authorization) ==
             (authorization == policy.expected_authorization));

  // Routes.
  const rest::Route route = rest::route(method, path, endpoints());
  for (const auto& v : route.variables) FUZZ_CHECK(!v.empty() && v.find('/') == std::string::npos);
  if (route.kind == rest::RouteKind::kCall) FUZZ_CHECK(!route.event.empty());
  if (path.size() <= kMaxReferenceSize) {
    const rest::Route ref = reference_route(method, path);
    FUZZ_CHECK(route.kind == ref.kind);
    FUZZ_CHECK(route.target == ref.target);
    FUZZ_CHECK(route.token == ref.token);
    FUZZ_CHECK(route.event == ref.event);
    FUZZ_CHECK(route.internal == ref.internal);
    FUZZ_CHECK(route.variables == ref.variables);
  }

  // Parameters, bodies and what is sent to the core.
  for (const char* name : {"sync_wait", "log_wait"}) {
    long wait = rest::wait_param(params, name, 10000);
    FUZZ_CHECK(wait >= 0 && wait <= rest::kMaxWaitMicroseconds);
  }
  auto content = rest::body_content(method, body);
  if (content) {
    json::Document d;
    FUZZ_CHECK(json::parse(d, *content));
    std::string request = rest::request_data(params, *content, route.variables);
    FUZZ_CHECK(json::parse(d, request) && d.IsObject() && d["parameters"].IsObject() &&
               d["parameters"].MemberCount() <= params.size() && d["variables"].IsArray() &&
               d["variables"].Size() == route.variables.size());
  } else {
    FUZZ_CHECK(json_object_with_error(rest::error_json("decode_error", content.error())));
  }

  // Answers carry client text only through the writer: it comes back unchanged.
  std::string answer = rest::error_json(path, authorization);
  json::Document d;
  FUZZ_CHECK(json::parse(d, answer) && d.IsObject());
  FUZZ_CHECK(std::string_view(d["error"].GetString(), d["error"].GetStringLength()) == path);
  FUZZ_CHECK(std::string_view(d["message"].GetString(), d["message"].GetStringLength()) == authorization);
  return 0;
}
