// The pure part of the REST API's request handling: who may call, whether a request may be
// read at all, where its path goes, what its parameters and body mean, and the JSON answers
// that say no. No core, no sockets, no httplib: the REST server calls these on each request,
// the configuration parser validates subnets with them, and a fuzz target drives them with
// arbitrary requests. Reentrant (no shared state).
#pragma once

#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gorgone/result.hpp"

namespace gorgone::rest {

// A body larger than this is refused (413) unless httpserver.max_body_size says otherwise.
constexpr std::size_t kDefaultMaxBodySize = 1 << 20;
// sync_wait and log_wait (microseconds, chosen by the client) hold a server thread: capped.
constexpr long kMaxWaitMicroseconds = 5'000'000;
// GET /api/nodes/:id/log/:token waits for the log sync it asked for, at most this long unless
// the client gives sync_wait: it returns as soon as the proxy says the sync is stored.
constexpr long kDefaultSyncWaitMicroseconds = 2'000'000;

// One allowed_hosts entry: an IPv4 or IPv6 network ("10.0.0.0/8", "::1/128"), or a plain
// address (a /32 or /128).
struct Subnet {
  bool v6 = false;
  boost::asio::ip::network_v4 net4;
  boost::asio::ip::network_v6 net6;
};

// nullopt when `text` is not an address, or its prefix length is missing, not a number or
// too large for the family.
std::optional<Subnet> parse_subnet(std::string_view text);

// `peer`: the numeric address a connection comes from. An IPv4-mapped IPv6 peer
// (::ffff:a.b.c.d, what a dual-stack socket reports) is matched as IPv4; any other IPv6
// peer only against IPv6 subnets. An unparsable peer is never allowed.
bool peer_allowed(std::string_view peer, const std::vector<Subnet>& subnets);

// True for 127.0.0.0/8, ::1, ::ffff:127.x.y.z and "localhost"; false for the wildcard
// addresses, hostnames and anything unparsable (the caller warns on false).
bool is_loopback_address(std::string_view address);

// Constant-time equality: both sides are hashed (SHA-256) and the digests compared with
// CRYPTO_memcmp, so neither the position of the first difference nor the length leaks.
bool same_secret(std::string_view a, std::string_view b);

// {"error":<error>,"message":<message>}, built by the JSON writer.
std::string error_json(std::string_view error, std::string_view message);

// A request refused before its body is read: the answer to send; the connection is closed
// after it, since the body (if any) is left unread.
struct Refusal {
  int status;
  std::string body;
};

struct AccessPolicy {
  bool allowed_hosts_enabled = false;
  std::vector<Subnet> subnets;
  bool auth_enabled = false;
  std::string expected_authorization;  // "Basic " + base64(user:password)
  std::size_t max_body_size = kDefaultMaxBodySize;
};

// What is known once the request line and headers are read.
struct RequestHead {
  std::string_view method;
  std::string_view peer;
  const std::string* content_length = nullptr;     // nullptr: no Content-Length header
  const std::string* transfer_encoding = nullptr;  // nullptr: none
  std::string_view authorization;
};

// In this order: allowed_hosts (401), the declared body size (413; a malformed
// Content-Length is a 400), the credentials (401), then the method (only GET, POST, PUT,
// PATCH and DELETE are served; a GET may not carry a body). nullopt: go on and read the
// body, at most policy.max_body_size bytes.
std::optional<Refusal> check_head(const AccessPolicy& policy, const RequestHead& head);

// Where a path under /api goes. Same matching as Gorgone's httpserver routes:
//   GET /api/[nodes/<id>/]log/<token>
//   /api/[nodes/<id>/]internal/<name>[/<variables>]
//   /api/[nodes/<id>/]<namespace>/<module>/<name>[/<variables>]
// with <id>, <name>... made of [A-Za-z0-9_] and variables of [A-Za-z0-9_/].
enum class RouteKind {
  kNotApi,   // not under /api: 403
  kLog,      // token
  kCall,     // event, internal
  kUnknown,  // 404
};

struct Route {
  RouteKind kind = RouteKind::kUnknown;
  std::string target;  // the <id> of nodes/<id>/, empty for this node
  std::string token;   // kLog
  std::string event;   // kCall: the event the endpoint table maps to
  bool internal = false;
  std::vector<std::string> variables;
};

// endpoints: "METHOD_/internal/name" or "METHOD_/namespace/module/name" -> event.
Route route(std::string_view method, std::string_view path, const std::map<std::string, std::string>& endpoints);

using Params = std::multimap<std::string, std::string>;

// A wait parameter in microseconds: `fallback` when absent or not a plain number, at most
// kMaxWaitMicroseconds.
long wait_param(const Params& params, const char* name, long fallback);

// The frame's "content": "null" without a body, else the body re-serialised; an error when
// a POST, PUT or PATCH body is not JSON (or nests too deep).
Result<std::string> body_content(std::string_view method, std::string_view body);

// {"content":<content_json>,"parameters":{...},"variables":[...]}
std::string request_data(const Params& params, const std::string& content_json,
                         const std::vector<std::string>& variables);

// "a//b/" -> ["a", "b"]
std::vector<std::string> split_variables(std::string_view rest);

}  // namespace gorgone::rest
