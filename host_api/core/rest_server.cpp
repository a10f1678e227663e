#include "rest_server.hpp"

#include <arpa/inet.h>
#include <chrono>
#include <httplib.h>
#include <regex>
#include <unistd.h>
#include <zmq.hpp>

#include "core.hpp"
#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/response.hpp"
#include "logger.hpp"

namespace gorgone {
namespace {

using Reply = protocol::Response;

// One request's conversation with the core: a DEALER on the internal router.
class CoreChannel {
 public:
  explicit CoreChannel(zmq::context_t& ctx) : socket_(ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::routing_id, "gorgone-httpserver-" + protocol::to_hex(protocol::random_bytes(6)));
    socket_.set(zmq::sockopt::linger, 1000);
    socket_.connect(Core::kInternalEndpoint);
  }
  void send(const protocol::Frame& f) {
    std::string text = protocol::build_frame(f);
    socket_.send(zmq::buffer(text), zmq::send_flags::none);
  }
  // Waits for the reply carrying `token` (other replies are skipped).
  std::optional<Reply> wait(const std::string& token, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t msg;
      if (!socket_.recv(msg, zmq::recv_flags::dontwait)) continue;
      auto r = protocol::parse_response(msg.to_string_view());
      if (r && (r->token == token || token.empty())) return r;
    }
  }

 private:
  zmq::socket_t socket_;
};

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  if (body.empty()) {
    res.status = status == 200 ? 204 : status;
    return;
  }
  res.set_content(body + "\n", "application/json");
}

std::string error_json(const char* error, const char* message) {
  return std::string(R"({"error":")") + error + R"(","message":")" + message + "\"}";
}

bool ipv4_in_subnet(const std::string& ip, const std::string& cidr) {
  auto slash = cidr.find('/');
  std::string net = cidr.substr(0, slash);
  int bits = slash == std::string::npos ? 32 : std::atoi(cidr.c_str() + slash + 1);
  in_addr a{}, n{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1 || inet_pton(AF_INET, net.c_str(), &n) != 1) return false;
  if (bits <= 0) return true;
  uint32_t mask = bits >= 32 ? 0xffffffffu : ~((1u << (32 - bits)) - 1);
  return (ntohl(a.s_addr) & mask) == (ntohl(n.s_addr) & mask);
}

std::string request_data(const httplib::Request& req, const std::string& content_json,
                         const std::vector<std::string>& variables) {
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("content");
  w.RawValue(content_json.c_str(), content_json.size(), rapidjson::kObjectType);
  w.Key("parameters");
  w.StartObject();
  for (const auto& [k, v] : req.params) {
    w.Key(k.c_str());
    w.String(v.c_str());
  }
  w.EndObject();
  w.Key("variables");
  w.StartArray();
  for (const auto& v : variables) w.String(v.c_str());
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

std::vector<std::string> split_variables(const std::string& rest) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < rest.size()) {
    std::size_t end = rest.find('/', start);
    if (end == std::string::npos) end = rest.size();
    if (end > start) out.push_back(rest.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

long param_long(const httplib::Request& req, const char* name, long fallback, long max) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos) return fallback;
  return std::min(std::stol(v), max);
}

}  // namespace

RestServer::RestServer(Core& core, HttpConfig config) : core_(core), config_(std::move(config)) {}

RestServer::~RestServer() { stop(); }

Status RestServer::start() {
  if (config_.ssl) {
    for (const auto& [what, file] : {std::make_pair("ssl_cert_file", config_.ssl_cert_file),
                                     std::make_pair("ssl_key_file", config_.ssl_key_file)})
      if (::access(file.c_str(), R_OK) != 0)
        return Status::failure(std::string("httpserver: cannot read ") + what + " '" + file + "'");
    auto tls = std::make_unique<httplib::SSLServer>(config_.ssl_cert_file.c_str(), config_.ssl_key_file.c_str());
    if (!tls->is_valid())
      return Status::failure("httpserver: cannot use the certificate '" + config_.ssl_cert_file + "' with key '" +
                             config_.ssl_key_file + "' (not PEM, or they do not match)");
    server_ = std::move(tls);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  server_->set_payload_max_length(64 << 20);
  auto handler = [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); };
  server_->Get(".*", handler);
  server_->Post(".*", handler);
  server_->Put(".*", handler);
  server_->Patch(".*", handler);
  server_->Delete(".*", handler);
  if (!server_->bind_to_port(config_.address.c_str(), config_.port))
    return Status::failure("httpserver: cannot listen on " + config_.address + ":" + std::to_string(config_.port));
  port_ = config_.port;
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  log_info(std::string("[httpserver] REST API on ") + (config_.ssl ? "https" : "http") + "://" + config_.address + ":" + std::to_string(config_.port) + "/api/");
  return Status::success();
}

void RestServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void RestServer::handle(const httplib::Request& req, httplib::Response& res) {
  if (config_.allowed_hosts_enabled) {
    bool ok = false;
    for (const auto& s : config_.allowed_subnets) ok = ok || ipv4_in_subnet(req.remote_addr, s);
    if (!ok) return send_json(res, 401, error_json("http_error_401", "unauthorized"));
  }
  if (config_.auth_enabled) {
    std::string expected = "Basic " + protocol::base64_encode(config_.auth_user + ":" + config_.auth_password);
    if (req.get_header_value("Authorization") != expected)
      return send_json(res, 401, error_json("http_error_401", "unauthorized"));
  }
  const std::string& path = req.path;
  if (path.rfind("/api/", 0) != 0 && path != "/api")
    return send_json(res, 403, error_json("http_error_403", "forbidden"));

  std::string content = "null";
  if ((req.method == "POST" || req.method == "PATCH" || req.method == "PUT") && !req.body.empty()) {
    json::Document doc;
    if (!json::parse(doc, req.body))
      return send_json(res, 400, error_json("decode_error", "POST content must be JSON-formated"));
    content = json::dump(doc);
  }

  zmq::context_t& ctx = core_.zmq_context();
  const auto& endpoints = core_.api_endpoints();
  static const std::regex log_re(R"(^/api/(nodes/(\w*)/)?log/(.*)$)");
  static const std::regex internal_re(R"(^/api/(nodes/(\w*)/)?internal/(\w+)/?([\w/]*?)$)");
  static const std::regex action_re(R"(^/api/(nodes/(\w*)/)?(\w+)/(\w+)/(\w+)/?([\w/]*?)$)");
  std::smatch m;

  auto get_log = [&](const std::string& target, const std::string& token) {
    CoreChannel ch(ctx);
    if (!target.empty()) {
      ch.send(protocol::Frame{"GETLOG", "", target, "{}"});
      long wait_us = param_long(req, "sync_wait", 10000, 30000000);
      std::this_thread::sleep_for(std::chrono::microseconds(wait_us));
    }
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("token");
    w.String(token.c_str());
    for (const auto& [k, v] : req.params) {
      if (k == "token") continue;
      w.Key(k.c_str());
      w.String(v.c_str());
    }
    w.EndObject();
    std::string logtoken = token + "-log";
    ch.send(protocol::Frame{"GETLOG", logtoken, "", std::string(sb.GetString(), sb.GetSize())});
    auto r = ch.wait(logtoken, std::chrono::seconds(5));
    json::Document doc;
    std::string no_log = R"({"error":"no_log","message":"No log found for token","data":[],"token":)" +
                         json::quote(token) + "}";
    if (!r) return send_json(res, 200, no_log);
    if (!json::parse(doc, r->json) || !doc.IsObject())
      return send_json(res, 400, error_json("decode_error", "Cannot decode response"));
    if (!doc.HasMember("data") || !doc["data"].IsObject() || !doc["data"].HasMember("result") ||
        !doc["data"]["result"].IsArray() || doc["data"]["result"].Empty())
      return send_json(res, 200, no_log);
    std::string body = R"({"message":"Logs found","token":)" + json::quote(token) +
                       ",\"data\":" + json::dump(doc["data"]["result"]) + "}";
    send_json(res, 200, body);
  };

  auto call = [&](const std::string& event, const std::string& target, bool internal,
                  const std::vector<std::string>& variables) {
    CoreChannel ch(ctx);
    std::string token = protocol::generate_token();
    std::string data = request_data(req, content, variables);
    ch.send(protocol::Frame{event, token, target, data});
    if (internal && target.empty()) {
      auto r = ch.wait(token, std::chrono::seconds(5));
      if (!r)
        return send_json(res, 400, R"({"error":"no_result","message":"No result found for action ')" + event + "'\"}");
      json::Document doc;
      if (!json::parse(doc, r->json) || !doc.IsObject())
        return send_json(res, 400, error_json("decode_error", "Cannot decode response"));
      if (!doc.HasMember("data") || doc["data"].IsNull()) return send_json(res, 204, "");
      return send_json(res, 200, json::dump(doc["data"]));
    }
    // Wait for the core's acknowledgement so that the request is dispatched when we answer.
    (void)ch.wait(token, std::chrono::seconds(5));
    if (req.has_param("log_wait")) {
      long wait_us = param_long(req, "log_wait", 0, 30000000);
      std::this_thread::sleep_for(std::chrono::microseconds(wait_us));
      return get_log(target, token);
    }
    send_json(res, 200, "{\"token\":\"" + token + "\"}");
  };

  // std::regex recurses per character: a hostile path must not reach it.
  if (path.size() > 1024) return send_json(res, 404, error_json("method_unknown", "Method not implemented"));
  try {
    if (req.method == "GET" && std::regex_match(path, m, log_re)) return get_log(m[2].str(), m[3].str());
    if (std::regex_match(path, m, internal_re)) {
      auto it = endpoints.find(req.method + "_/internal/" + m[3].str());
      if (it != endpoints.end()) return call(it->second, m[2].str(), true, split_variables(m[4].str()));
    }
    if (std::regex_match(path, m, action_re)) {
      auto it = endpoints.find(req.method + "_/" + m[3].str() + "/" + m[4].str() + "/" + m[5].str());
      if (it != endpoints.end()) return call(it->second, m[2].str(), false, split_variables(m[6].str()));
    }
  } catch (const std::exception& e) {
    log_error(std::string("[httpserver] ") + req.method + " " + path + ": " + e.what());
    return send_json(res, 500, error_json("internal_error", "internal error"));
  }
  send_json(res, 404, error_json("method_unknown", "Method not implemented"));
}

}  // namespace gorgone
