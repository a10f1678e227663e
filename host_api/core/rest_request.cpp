#include "rest_request.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "gorgone/json.hpp"

namespace gorgone::rest {
namespace {

namespace ip = boost::asio::ip;

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= '0' && c <= '9'; });
}

// An IPv6 zone ("%eth0", "%3") is dropped: allowed_hosts names networks, not interfaces, and
// Asio keeps a numeric zone in a type narrower than it reads it with, so a large one would not
// come back as written.
std::optional<ip::address> parse_address(std::string_view text) {
  boost::system::error_code ec;
  ip::address a = ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  if (a.is_v6() && a.to_v6().scope_id() != 0) return ip::address(ip::address_v6(a.to_v6().to_bytes()));
  return a;
}

// std::regex's \w in the C locale.
bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::size_t word_length(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && is_word(s[n])) ++n;
  return n;
}

// What may follow the last named segment: /?([\w/]*?)$. Sets the variables part.
bool variables_tail(std::string_view tail, std::string_view* variables) {
  if (!std::all_of(tail.begin(), tail.end(), [](char c) { return is_word(c) || c == '/'; })) return false;
  if (!tail.empty() && tail.front() == '/') tail.remove_prefix(1);
  *variables = tail;
  return true;
}

// The optional "nodes/<id>/" group, tried first as the regular expression engine does, then
// left out; `rest` gets the text after it. \w* is followed by '/', so the only length that
// can match is the whole word: no other backtracking is possible.
template <typename Match>
bool with_target(std::string_view after_api, Match match) {
  constexpr std::string_view kNodes = "nodes/";
  if (after_api.substr(0, kNodes.size()) == kNodes) {
    std::string_view rest = after_api.substr(kNodes.size());
    std::size_t n = word_length(rest);
    if (n < rest.size() && rest[n] == '/' && match(rest.substr(0, n), rest.substr(n + 1))) return true;
  }
  return match(std::string_view(), after_api);
}

// Segments "a/b/c" of (\w+)/(\w+)/... : `count` words separated by '/', then the tail.
bool words(std::string_view s, std::size_t count, std::vector<std::string_view>* out, std::string_view* tail) {
  out->clear();
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t n = word_length(s);
    if (n == 0) return false;
    out->push_back(s.substr(0, n));
    s.remove_prefix(n);
    if (i + 1 < count) {
      if (s.empty() || s.front() != '/') return false;
      s.remove_prefix(1);
    }
  }
  *tail = s;
  return true;
}

}  // namespace

std::optional<Subnet> parse_subnet(std::string_view text) {
  std::size_t slash = text.find('/');
  auto address = parse_address(text.substr(0, slash));
  if (!address) return std::nullopt;
  unsigned max = address->is_v4() ? 32 : 128;
  unsigned length = max;
  if (slash != std::string_view::npos) {
    std::string_view prefix = text.substr(slash + 1);
    if (!all_digits(prefix) || prefix.size() > 3) return std::nullopt;
    length = static_cast<unsigned>(std::stoul(std::string(prefix)));
    if (length > max) return std::nullopt;
  }
  Subnet s;
  // ::ffff:a.b.c.d/n (n >= 96) is an IPv4 network written the IPv6 way; peers of that form
  // are matched as IPv4, so the entry is too.
  if (address->is_v6() && address->to_v6().is_v4_mapped() && length >= 96) {
    address = ip::address(ip::make_address_v4(ip::v4_mapped, address->to_v6()));
    length -= 96;
  }
  if (address->is_v4()) {
    s.net4 = ip::network_v4(address->to_v4(), static_cast<unsigned short>(length)).canonical();
  } else {
    s.v6 = true;
    s.net6 = ip::network_v6(address->to_v6(), static_cast<unsigned short>(length)).canonical();
  }
  return s;
}

bool peer_allowed(std::string_view peer, const std::vector<Subnet>& subnets) {
  auto address = parse_address(peer);
  if (!address) return false;
  if (address->is_v6() && address->to_v6().is_v4_mapped())
    address = ip::address(ip::make_address_v4(ip::v4_mapped, address->to_v6()));
  for (const auto& s : subnets) {
    if (!s.v6 && address->is_v4() &&
        ip::network_v4(address->to_v4(), s.net4.prefix_length()).canonical() == s.net4)
      return true;
    if (s.v6 && address->is_v6() &&
        ip::network_v6(address->to_v6(), s.net6.prefix_length()).canonical() == s.net6)
      return true;
  }
  return false;
}

bool is_loopback_address(std::string_view address) {
  if (address == "localhost") return true;
  auto a = parse_address(address);
  if (!a) return false;
  if (a->is_v4()) return a->to_v4().is_loopback();
  const ip::address_v6 v6 = a->to_v6();
  return v6.is_loopback() || (v6.is_v4_mapped() && ip::make_address_v4(ip::v4_mapped, v6).is_loopback());
}

bool same_secret(std::string_view a, std::string_view b) {
  unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
  unsigned int la = 0, lb = 0;
  if (EVP_Digest(a.data(), a.size(), da, &la, EVP_sha256(), nullptr) != 1 ||
      EVP_Digest(b.data(), b.size(), db, &lb, EVP_sha256(), nullptr) != 1 || la != lb)
    return false;
  return CRYPTO_memcmp(da, db, la) == 0;
}

std::string error_json(std::string_view error, std::string_view message) { return json::error_message(error, message); }

std::optional<Refusal> check_head(const AccessPolicy& policy, const RequestHead& head) {
  if (policy.allowed_hosts_enabled && !peer_allowed(head.peer, policy.subnets))
    return Refusal{401, error_json("http_error_401", "unauthorized")};
  bool has_body = head.transfer_encoding != nullptr;
  if (head.content_length) {
    const std::string& v = *head.content_length;
    if (!all_digits(v) || v.size() > 19)
      return Refusal{400, error_json("http_error_400", "Content-Length must be a decimal number of bytes")};
    unsigned long long length = std::stoull(v);
    if (length > policy.max_body_size)
      return Refusal{413, error_json("http_error_413", "the body is larger than the " +
                                                           std::to_string(policy.max_body_size) +
                                                           " bytes this server accepts (httpserver.max_body_size)")};
    has_body = has_body || length > 0;
  }
  if (policy.auth_enabled && !same_secret(head.authorization, policy.expected_authorization))
    return Refusal{401, error_json("http_error_401", "unauthorized")};
  const std::string_view m = head.method;
  if (m != "GET" && m != "POST" && m != "PUT" && m != "PATCH" && m != "DELETE")
    return Refusal{404, error_json("method_unknown", "Method not implemented")};
  if (m == "GET" && has_body) return Refusal{400, error_json("http_error_400", "a GET request has no body")};
  return std::nullopt;
}

Route route(std::string_view method, std::string_view path, const std::map<std::string, std::string>& endpoints) {
  Route r;
  constexpr std::string_view kApi = "/api/";
  if (path != "/api" && path.substr(0, kApi.size()) != kApi) {
    r.kind = RouteKind::kNotApi;
    return r;
  }
  if (path == "/api") return r;
  const std::string_view after_api = path.substr(kApi.size());

  // GET /api/(nodes/(\w*)/)?log/(.*)   ('.' is anything but a line break)
  if (method == "GET") {
    bool found = with_target(after_api, [&](std::string_view target, std::string_view rest) {
      constexpr std::string_view kLog = "log/";
      if (rest.substr(0, kLog.size()) != kLog) return false;
      rest.remove_prefix(kLog.size());
      if (rest.find_first_of("\r\n") != std::string_view::npos) return false;
      r.target = std::string(target);
      r.token = std::string(rest);
      return true;
    });
    if (found) {
      r.kind = RouteKind::kLog;
      return r;
    }
  }

  std::vector<std::string_view> parts;
  std::string_view target, tail;
  // /api/(nodes/(\w*)/)?internal/(\w+)/?([\w/]*?)
  bool internal = with_target(after_api, [&](std::string_view t, std::string_view rest) {
    constexpr std::string_view kInternal = "internal/";
    if (rest.substr(0, kInternal.size()) != kInternal) return false;
    target = t;
    return words(rest.substr(kInternal.size()), 1, &parts, &tail) && variables_tail(tail, &tail);
  });
  if (internal) {
    auto it = endpoints.find(std::string(method) + "_/internal/" + std::string(parts[0]));
    if (it != endpoints.end()) {
      r.kind = RouteKind::kCall;
      r.internal = true;
      r.event = it->second;
      r.target = std::string(target);
      r.variables = split_variables(tail);
      return r;
    }
  }
  // /api/(nodes/(\w*)/)?(\w+)/(\w+)/(\w+)/?([\w/]*?)
  bool action = with_target(after_api, [&](std::string_view t, std::string_view rest) {
    target = t;
    return words(rest, 3, &parts, &tail) && variables_tail(tail, &tail);
  });
  if (action) {
    auto it = endpoints.find(std::string(method) + "_/" + std::string(parts[0]) + "/" + std::string(parts[1]) + "/" +
                             std::string(parts[2]));
    if (it != endpoints.end()) {
      r.kind = RouteKind::kCall;
      r.event = it->second;
      r.target = std::string(target);
      r.variables = split_variables(tail);
      return r;
    }
  }
  return r;
}

long wait_param(const Params& params, const char* name, long fallback) {
  auto it = params.find(name);
  if (it == params.end()) return std::min(fallback, kMaxWaitMicroseconds);
  const std::string& v = it->second;
  if (!all_digits(v) || v.size() > 12) return std::min(fallback, kMaxWaitMicroseconds);
  return std::min(std::stol(v), kMaxWaitMicroseconds);
}

Result<std::string> body_content(std::string_view method, std::string_view body) {
  if ((method != "POST" && method != "PATCH" && method != "PUT") || body.empty()) return std::string("null");
  json::Document doc;
  std::string why;
  if (!json::parse(doc, body, &why)) return make_error("POST content must be JSON-formated: " + why);
  return json::dump(doc);
}

std::string request_data(const Params& params, const std::string& content_json,
                         const std::vector<std::string>& variables) {
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("content");
  w.RawValue(content_json.c_str(), content_json.size(), rapidjson::kObjectType);
  w.Key("parameters");
  w.StartObject();
  for (const auto& [k, v] : params) {
    w.Key(k.c_str(), static_cast<rapidjson::SizeType>(k.size()));
    w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
  }
  w.EndObject();
  w.Key("variables");
  w.StartArray();
  for (const auto& v : variables) w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

std::vector<std::string> split_variables(std::string_view rest) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < rest.size()) {
    std::size_t end = rest.find('/', start);
    if (end == std::string_view::npos) end = rest.size();
    if (end > start) out.emplace_back(rest.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace gorgone::rest
