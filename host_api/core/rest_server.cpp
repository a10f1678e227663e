#include "rest_server.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <httplib.h>
#include <map>
#include <mutex>
#include <netdb.h>
#include <openssl/ssl.h>
#include <optional>
#include <poll.h>
#include <sys/socket.h>
#include <type_traits>
#include <unistd.h>
#include <zmq.hpp>

#include "core.hpp"
#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/status_codes.hpp"
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
  // Waits for the reply carrying `token` that ends the request (a code other than 0: the
  // core's acknowledgement, code 0, comes first and is skipped). False when none came.
  bool wait_end(const std::string& token, std::chrono::microseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      auto r = wait(token, left);
      if (!r) return false;
      json::Document doc;
      if (!json::parse(doc, r->json) || !doc.IsObject()) continue;
      auto c = doc.FindMember("code");
      if (c != doc.MemberEnd() && json::as_number(c->value).value_or(0) != code::kActionBegin) return true;
    }
  }

 private:
  zmq::socket_t socket_;
};

// The calling REST thread's channel to the core, made on its first request and kept until
// the thread ends (the server joins its threads when it stops, before the core closes the ZMQ
// context). A socket per request cost a socket made, connected, announced to the core's
// router and torn down again, twice per routed request. Replies a request left behind
// (late ones) are skipped by the next wait, which looks for its own token.
CoreChannel& thread_channel(zmq::context_t& ctx) {
  thread_local std::unique_ptr<CoreChannel> channel;
  thread_local zmq::context_t* made_in = nullptr;
  if (!channel || made_in != &ctx) {
    channel = std::make_unique<CoreChannel>(ctx);
    made_in = &ctx;
  }
  return *channel;
}

using Clock = std::chrono::steady_clock;

// Waits until `sock` is ready for `events` (or in error) or `deadline` passes.
bool wait_until(int sock, short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{sock, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

// "127.0.0.1" / "::ffff:127.0.0.1" / "::1" and the port, as cpp-httplib reports them.
void address_of(int sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  if ((peer ? ::getpeername(sock, reinterpret_cast<sockaddr*>(&a), &len)
            : ::getsockname(sock, reinterpret_cast<sockaddr*>(&a), &len)) != 0)
    return;
  if (a.ss_family == AF_INET) port = ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
  else if (a.ss_family == AF_INET6) port = ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
  else return;
  char host[NI_MAXHOST] = {0};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, host, sizeof(host), nullptr, 0, NI_NUMERICHOST) == 0)
    ip = host;
}

// One connection, plain or TLS, on a non-blocking socket. cpp-httplib's own streams bound
// each read and each write, not their sum: a client sending a header line every few seconds
// would keep a server thread for ever. Here a request has RestServer::kRequestSeconds from
// its first byte to the end of its body, and its answer as long to be written; past either,
// the connection is over (every later call fails, so the server closes it).
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int sock, SSL* ssl) : sock_(sock), ssl_(ssl) {}

  // Before each request: waits for its first byte until `deadline`, then starts its clocks.
  bool next_request(Clock::time_point deadline) {
    read_deadline_.reset();
    write_deadline_.reset();
    return !expired_ && (pos_ < len_ || (ssl_ && SSL_pending(ssl_) > 0) || wait_until(sock_, POLLIN, deadline));
  }

  bool is_readable() const override {
    pollfd p{sock_, POLLIN, 0};
    return !expired_ && (pos_ < len_ || (ssl_ && SSL_pending(ssl_) > 0) || ::poll(&p, 1, 0) > 0);
  }
  bool is_writable() const override {
    return !expired_ && wait_until(sock_, POLLOUT, write_deadline_.value_or(Clock::now() + kBudget));
  }

  ssize_t read(char* ptr, std::size_t size) override {
    // What was written goes out before waiting for the client (a "100 Continue").
    if (!flush()) return -1;
    if (pos_ == len_) {
      if (!read_deadline_) read_deadline_ = Clock::now() + kBudget;
      ssize_t n = transfer(buf_, nullptr, sizeof(buf_), *read_deadline_);
      if (n <= 0) return n;
      pos_ = 0;
      len_ = static_cast<std::size_t>(n);
    }
    std::size_t n = std::min(size, len_ - pos_);
    std::memcpy(ptr, buf_ + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  // cpp-httplib writes an answer's head and its body separately: small writes are kept
  // and go out together at the next flush (after each request, or before a read), one
  // segment instead of two on the wire and one send instead of two.
  ssize_t write(const char* ptr, std::size_t size) override {
    if (size == 0) return 0;
    if (!write_deadline_) write_deadline_ = Clock::now() + kBudget;
    if (out_.size() + size <= kOutBuffer) {
      out_.append(ptr, size);
      return static_cast<ssize_t>(size);
    }
    if (!flush()) return -1;
    if (size <= kOutBuffer) {
      out_.append(ptr, size);
      return static_cast<ssize_t>(size);
    }
    return transfer(nullptr, ptr, std::min<std::size_t>(size, 1 << 30), *write_deadline_);
  }

  // Sends what write() kept. False when it could not all go (the connection is over).
  bool flush() {
    std::size_t done = 0;
    while (done < out_.size()) {
      ssize_t n = transfer(nullptr, out_.data() + done, out_.size() - done, *write_deadline_);
      if (n <= 0) {
        out_.clear();
        return false;
      }
      done += static_cast<std::size_t>(n);
    }
    out_.clear();
    return true;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(sock_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(sock_, false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  static constexpr auto kBudget = std::chrono::seconds(RestServer::kRequestSeconds);
  static constexpr std::size_t kOutBuffer = 64 * 1024;

  // One recv into `in` or send from `out` (SSL_read/SSL_write with TLS), waiting as the socket
  // or TLS asks until `deadline`. > 0: bytes moved; 0: the peer closed; -1: error or deadline.
  ssize_t transfer(char* in, const char* out, std::size_t size, Clock::time_point deadline) {
    if (expired_) return -1;
    while (true) {
      short wait_for = 0;
      if (ssl_) {
        int n = out ? SSL_write(ssl_, out, static_cast<int>(size)) : SSL_read(ssl_, in, static_cast<int>(size));
        if (n > 0) return n;
        int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_ZERO_RETURN) return 0;
        if (err == SSL_ERROR_WANT_READ) wait_for = POLLIN;
        else if (err == SSL_ERROR_WANT_WRITE) wait_for = POLLOUT;
        else return -1;
      } else {
        ssize_t n = out ? ::send(sock_, out, size, MSG_NOSIGNAL) : ::recv(sock_, in, size, 0);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        wait_for = out ? POLLOUT : POLLIN;
      }
      if (!wait_until(sock_, wait_for, deadline)) {
        expired_ = true;
        return -1;
      }
    }
  }

  int sock_;
  SSL* ssl_;
  char buf_[4096];
  std::size_t pos_ = 0, len_ = 0;
  std::optional<Clock::time_point> read_deadline_, write_deadline_;
  std::string out_;  // written, not sent yet (flush)
  bool expired_ = false;
};

// How many connections each peer address has in service: one address may hold at most
// RestServer::kThreadsPerPeer of the pool's threads.
class PeerCounter {
 public:
  bool acquire(const std::string& peer) {
    std::lock_guard<std::mutex> lock(mu_);
    int& n = counts_[peer];
    if (n >= RestServer::kThreadsPerPeer) return false;
    ++n;
    return true;
  }
  void release(const std::string& peer) {
    std::lock_guard<std::mutex> lock(mu_);
    if (--counts_[peer] <= 0) counts_.erase(peer);
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> counts_;
};

// cpp-httplib 0.11.4 is a compiled library: its listen() uses the backlog it was built with
// (CPPHTTPLIB_LISTEN_BACKLOG, 5), whatever this file defines, and a burst of connections
// beyond it is refused; its connections have no overall deadline. The listening socket and
// the per-connection hook are open to subclasses: this one raises the backlog and serves
// each connection through a DeadlineStream, then hands each request to cpp-httplib as usual.
template <class Base>
class TunedServer final : public Base {
 public:
  using Base::Base;
  // Linux applies a second listen() on a listening socket as a new backlog.
  bool raise_backlog(int backlog) { return ::listen(this->svr_sock_, backlog) == 0; }

 private:
  static constexpr bool kTls = std::is_base_of_v<httplib::SSLServer, Base>;

  bool process_and_close_socket(socket_t sock) override {
    std::string peer;
    int port = 0;
    address_of(sock, true, peer, port);
    bool ret = false;
    if (peers_.acquire(peer)) {
      int flags = ::fcntl(sock, F_GETFL, 0);
      ::fcntl(sock, F_SETFL, flags | O_NONBLOCK);
      ret = serve(sock);
      peers_.release(peer);
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ret;
  }

  bool serve(int sock) {
    const auto first_byte = std::chrono::seconds(RestServer::kReadTimeoutSeconds);
    if constexpr (kTls) {
      SSL* ssl = SSL_new(this->ssl_context());
      if (!ssl) return false;
      bool ret = false;
      if (SSL_set_fd(ssl, sock) == 1 && handshake(sock, ssl, Clock::now() + first_byte * 2)) {
        ret = requests(sock, ssl);
        if (ret) SSL_shutdown(ssl);  // best effort: the socket is non-blocking
      }
      SSL_free(ssl);
      return ret;
    } else {
      return requests(sock, nullptr);
    }
  }

  static bool handshake(int sock, SSL* ssl, Clock::time_point deadline) {
    while (true) {
      int r = SSL_accept(ssl);
      if (r == 1) return true;
      int err = SSL_get_error(ssl, r);
      short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
      if (!events || !wait_until(sock, events, deadline)) return false;
    }
  }

  // The keep-alive loop of cpp-httplib's own process_and_close_socket, with our stream.
  bool requests(int sock, SSL* ssl) {
    DeadlineStream strm(sock, ssl);
    bool ret = false;
    auto idle = std::chrono::seconds(RestServer::kReadTimeoutSeconds);
    for (int left = RestServer::kKeepAliveRequests; left > 0 && this->svr_sock_ != INVALID_SOCKET; --left) {
      if (!strm.next_request(Clock::now() + idle)) break;
      idle = std::chrono::seconds(RestServer::kKeepAliveSeconds);
      bool closed = false;
      if (ssl)
        ret = this->process_request(strm, left == 1, closed, [ssl](httplib::Request& req) { req.ssl = ssl; });
      else
        ret = this->process_request(strm, left == 1, closed, nullptr);
      // Whatever the outcome, the answer written goes out (a refusal ends with ret false).
      if (!strm.flush()) ret = false;
      if (!ret || closed) break;
    }
    return ret;
  }

  PeerCounter peers_;
};

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  if (body.empty()) {
    res.status = status == 200 ? 204 : status;
    return;
  }
  res.set_content(body + "\n", "application/json");
}

// Answers and then ends the connection: for requests whose body is left unread, which a
// kept-alive connection would otherwise parse as the next request. A content provider that
// reports failure once it has written everything is the way 0.11.4 offers a handler to end
// a connection.
void send_json_and_close(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_header("Connection", "close");
  auto text = std::make_shared<const std::string>(body + "\n");
  res.set_content_provider(text->size(), "application/json",
                           [text](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                             sink.write(text->data() + offset, std::min(length, text->size() - offset));
                             return false;
                           });
}

const std::string* header(const httplib::Request& req, const char* name) {
  auto it = req.headers.find(name);
  return it == req.headers.end() ? nullptr : &it->second;
}

// Whether the request says it has a body (check_head has validated Content-Length).
bool declares_body(const httplib::Request& req) {
  if (header(req, "Transfer-Encoding")) return true;
  const std::string* length = header(req, "Content-Length");
  return length && length->find_first_not_of('0') != std::string::npos;
}

}  // namespace

RestServer::RestServer(Core& core, HttpConfig config) : core_(core), config_(std::move(config)) {
  policy_.allowed_hosts_enabled = config_.allowed_hosts_enabled;
  for (const auto& s : config_.allowed_subnets)
    if (auto subnet = rest::parse_subnet(s)) policy_.subnets.push_back(*subnet);  // all valid: checked at load
  policy_.auth_enabled = config_.auth_enabled;
  if (config_.auth_enabled)
    policy_.expected_authorization = "Basic " + protocol::base64_encode(config_.auth_user + ":" + config_.auth_password);
  policy_.max_body_size = config_.max_body_size;
}

RestServer::~RestServer() { stop(); }

Status RestServer::start() {
  if (config_.ssl) {
    for (const auto& [what, file] : {std::make_pair("ssl_cert_file", config_.ssl_cert_file),
                                     std::make_pair("ssl_key_file", config_.ssl_key_file)})
      if (::access(file.c_str(), R_OK) != 0)
        return Status::failure(std::string("httpserver: cannot read ") + what + " '" + file + "'");
    auto tls = std::make_unique<TunedServer<httplib::SSLServer>>(config_.ssl_cert_file.c_str(),
                                                                 config_.ssl_key_file.c_str());
    if (!tls->is_valid())
      return Status::failure("httpserver: cannot use the certificate '" + config_.ssl_cert_file + "' with key '" +
                             config_.ssl_key_file + "' (not PEM, or they do not match)");
    server_ = std::move(tls);
  } else {
    server_ = std::make_unique<TunedServer<httplib::Server>>();
  }
  server_->new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  // Connections are served by TunedServer's DeadlineStream; these settings only keep what
  // cpp-httplib still does itself (the Keep-Alive header it sends) in line with it.
  // An answer goes out in one send (DeadlineStream::flush), but a large one in several:
  // without TCP_NODELAY a later one would wait for the client's delayed ACK, 40 ms each
  // (measured when head and body went separately: 25 requests/s for one client).
  // Every answer, refusals included, counted by status (GET /api/internal/metrics).
  server_->set_logger([this](const httplib::Request&, const httplib::Response& res) {
    if (res.status >= 0 && res.status < static_cast<int>(statuses_.size())) statuses_[res.status].fetch_add(1, std::memory_order_relaxed);
  });
  server_->set_tcp_nodelay(true);
  server_->set_read_timeout(kReadTimeoutSeconds, 0);
  server_->set_write_timeout(kRequestSeconds, 0);
  server_->set_keep_alive_timeout(kKeepAliveSeconds);
  server_->set_keep_alive_max_count(kKeepAliveRequests);
  // The handlers read bodies themselves with this bound; this one covers cpp-httplib's own paths.
  server_->set_payload_max_length(config_.max_body_size);

  // Runs once the request line and headers are read, before anything reads the body.
  // A GET without a body is answered here too: past this point cpp-httplib matches the path
  // against each route's std::regex, even a catch-all one (the host's top user-space
  // symbol under REST load). Requests with a body need the routes: their reader comes there.
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!admit(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (req.method != "GET" || declares_body(req)) return httplib::Server::HandlerResponse::Unhandled;
    handle(req, res, nullptr);
    return httplib::Server::HandlerResponse::Handled;
  });
  // "Expect: 100-continue" is answered before the pre-routing handler: same checks, so that
  // a refused client is told so instead of being invited to send its body.
  server_->set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
    return admit(req, res) ? 100 : res.status;
  });
  server_->set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log_error("[httpserver] " + req.method + " " + json::quote(req.path) + ": " + what);
    send_json_and_close(res, 500, rest::error_json("internal_error", "internal error"));
  });

  server_->Get(".*", [this](const httplib::Request& req, httplib::Response& res) { handle(req, res, nullptr); });
  auto with_body = [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    // Reads at most max_body_size bytes (after decompression); the receiver stops the
    // transfer as soon as the bound is passed.
    std::function<bool(std::string&, bool&)> read_body = [&](std::string& body, bool& too_large) {
      return reader([&](const char* data, std::size_t n) {
        if (body.size() + n > config_.max_body_size) {
          too_large = true;
          return false;
        }
        body.append(data, n);
        return true;
      });
    };
    handle(req, res, &read_body);
  };
  server_->Post(".*", with_body);
  server_->Put(".*", with_body);
  server_->Patch(".*", with_body);
  server_->Delete(".*", with_body);

  auto* plain = dynamic_cast<TunedServer<httplib::Server>*>(server_.get());
  auto* tls = dynamic_cast<TunedServer<httplib::SSLServer>*>(server_.get());
  if (!server_->bind_to_port(config_.address.c_str(), config_.port))
    return Status::failure("httpserver: cannot listen on " + config_.address + ":" + std::to_string(config_.port));
  if (!(plain ? plain->raise_backlog(kListenBacklog) : tls->raise_backlog(kListenBacklog)))
    log_error("[httpserver] cannot raise the listen backlog to " + std::to_string(kListenBacklog) +
              ": bursts of connections may be refused");
  port_ = config_.port;
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  const bool v6 = config_.address.find(':') != std::string::npos;
  log_info(std::string("[httpserver] REST API on ") + (config_.ssl ? "https" : "http") + "://" + (v6 ? "[" : "") +
           config_.address + (v6 ? "]" : "") + ":" + std::to_string(config_.port) + "/api/");
  if (!config_.auth_enabled && !rest::is_loopback_address(config_.address))
    log_warning("[httpserver] REST API on " + config_.address + " without auth: anyone who can reach this address "
                "can send commands to every node (enable auth, or listen on 127.0.0.1)");
  return Status::success();
}

std::vector<std::pair<int, std::uint64_t>> RestServer::status_counts() const {
  std::vector<std::pair<int, std::uint64_t>> out;
  for (std::size_t i = 0; i < statuses_.size(); ++i)
    if (std::uint64_t n = statuses_[i].load(std::memory_order_relaxed)) out.emplace_back(static_cast<int>(i), n);
  return out;
}

void RestServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

bool RestServer::admit(const httplib::Request& req, httplib::Response& res) const {
  rest::RequestHead head;
  head.method = req.method;
  head.peer = req.remote_addr;
  head.content_length = header(req, "Content-Length");
  head.transfer_encoding = header(req, "Transfer-Encoding");
  const std::string* authorization = header(req, "Authorization");
  if (authorization) head.authorization = *authorization;
  auto refusal = rest::check_head(policy_, head);
  if (!refusal) return true;
  // Neither the path nor the headers go to the log: they are the client's text.
  log_debug("[httpserver] " + std::to_string(refusal->status) + " for a " + req.method + " from " + req.remote_addr);
  send_json_and_close(res, refusal->status, refusal->body);
  return false;
}

void RestServer::handle(const httplib::Request& req, httplib::Response& res,
                        const std::function<bool(std::string&, bool&)>* read_body) {
  const rest::Route route = rest::route(req.method, req.path, core_.api_endpoints());
  if (route.kind == rest::RouteKind::kNotApi) {
    if (read_body && declares_body(req)) return send_json_and_close(res, 403, rest::error_json("http_error_403", "forbidden"));
    return send_json(res, 403, rest::error_json("http_error_403", "forbidden"));
  }

  std::string body;
  if (read_body && declares_body(req)) {
    if (req.is_multipart_form_data())
      return send_json_and_close(res, 400, rest::error_json("decode_error", "POST content must be JSON-formated"));
    bool too_large = false;
    bool complete = (*read_body)(body, too_large);
    if (too_large)
      return send_json_and_close(res, 413, rest::error_json("http_error_413", "the body is larger than the " +
                                                                                  std::to_string(config_.max_body_size) +
                                                                                  " bytes this server accepts (httpserver.max_body_size)"));
    if (!complete) return send_json_and_close(res, 400, rest::error_json("http_error_400", "the body could not be read"));
  }
  auto content = rest::body_content(req.method, body);
  if (!content) return send_json(res, 400, rest::error_json("decode_error", content.error()));

  zmq::context_t& ctx = core_.zmq_context();
  const rest::Params& params = req.params;

  auto get_log = [&](const std::string& target, const std::string& token) {
    if (!target.empty()) {
      // The proxy answers when the sync this caused (or joined) is stored, or refused.
      CoreChannel& ch = thread_channel(ctx);
      std::string sync_token = protocol::generate_token();
      ch.send(protocol::Frame{"GETLOG", sync_token, target, "{}"});
      (void)ch.wait_end(sync_token, std::chrono::microseconds(
                                        rest::wait_param(params, "sync_wait", rest::kDefaultSyncWaitMicroseconds)));
    }
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("token");
    w.String(token.c_str(), static_cast<rapidjson::SizeType>(token.size()));
    for (const auto& [k, v] : params) {
      if (k == "token") continue;
      w.Key(k.c_str(), static_cast<rapidjson::SizeType>(k.size()));
      w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    }
    w.EndObject();
    // The client's token (any text but a line break) only travels inside the JSON, where
    // the writer escapes it. Read on the history thread, after the sync above was stored.
    auto r = core_.read_log(std::string(sb.GetString(), sb.GetSize()), std::chrono::seconds(5));

    auto answer = [&](bool found, const json::Value* rows) {
      rapidjson::StringBuffer out;
      json::Writer a(out);
      a.StartObject();
      if (!found) {
        a.Key("error");
        a.String("no_log");
      }
      a.Key("message");
      a.String(found ? "Logs found" : "No log found for token");
      a.Key("token");
      a.String(token.c_str(), static_cast<rapidjson::SizeType>(token.size()));
      a.Key("data");
      if (rows) rows->Accept(a);
      else {
        a.StartArray();
        a.EndArray();
      }
      a.EndObject();
      send_json(res, 200, std::string(out.GetString(), out.GetSize()));
    };
    if (!r) return answer(false, nullptr);
    json::Document doc;
    if (!json::parse(doc, r->second) || !doc.IsObject())
      return send_json(res, 400, rest::error_json("decode_error", "Cannot decode response"));
    auto result = doc.FindMember("result");
    if (result == doc.MemberEnd() || !result->value.IsArray() || result->value.Empty()) return answer(false, nullptr);
    answer(true, &result->value);
  };

  auto call = [&](const std::string& event, const std::string& target, bool internal,
                  const std::vector<std::string>& variables) {
    CoreChannel& ch = thread_channel(ctx);
    std::string token = protocol::generate_token();
    ch.send(protocol::Frame{event, token, target, rest::request_data(params, *content, variables)});
    if (internal && target.empty()) {
      auto r = ch.wait(token, std::chrono::seconds(5));
      if (!r) return send_json(res, 400, rest::error_json("no_result", "No result found for action '" + event + "'"));
      json::Document doc;
      if (!json::parse(doc, r->json) || !doc.IsObject())
        return send_json(res, 400, rest::error_json("decode_error", "Cannot decode response"));
      if (!doc.HasMember("data") || doc["data"].IsNull()) return send_json(res, 204, "");
      // Metrics are text for Prometheus, not JSON.
      if (event == "METRICS" && doc["data"].IsObject() && doc["data"].HasMember("text") && doc["data"]["text"].IsString()) {
        res.status = 200;
        res.set_content(std::string(doc["data"]["text"].GetString(), doc["data"]["text"].GetStringLength()),
                        "text/plain; version=0.0.4; charset=utf-8");
        return;
      }
      return send_json(res, 200, json::dump(doc["data"]));
    }
    // Wait for the core's acknowledgement so that the request is dispatched when we answer.
    (void)ch.wait(token, std::chrono::seconds(5));
    if (params.count("log_wait")) {
      std::this_thread::sleep_for(std::chrono::microseconds(rest::wait_param(params, "log_wait", 0)));
      return get_log(target, token);
    }
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("token");
    w.String(token.c_str(), static_cast<rapidjson::SizeType>(token.size()));
    w.EndObject();
    send_json(res, 200, std::string(sb.GetString(), sb.GetSize()));
  };

  switch (route.kind) {
    case rest::RouteKind::kLog:
      return get_log(route.target, route.token);
    case rest::RouteKind::kCall:
      return call(route.event, route.target, route.internal, route.variables);
    default:
      return send_json(res, 404, rest::error_json("method_unknown", "Method not implemented"));
  }
}

}  // namespace gorgone
