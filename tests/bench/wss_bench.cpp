// wss pollers against push_zmq nodes on the same machine, in one run: what N of each cost
// one central, and how fast it routes commands to them.
//
// Phase wss: a central whose proxy listens for wss pollers (httpserver block); this process
// plays N pollers on ONE asio thread (async Beast clients: connect, upgrade with the bearer
// token, REGISTERNODES, a PONG to every PING, an empty SETLOGS to every GETLOG, and the
// arrival time of every COMMAND by its token).
// Phase push_zmq: a central (same configuration) whose register file declares N push_zmq
// nodes, played by one ROUTER per node on one thread (the real handshake), as fleet_bench.
//
// For each: the time until every node answered a ping (the central's constatus), the
// central's RSS and open files before any node and with all of them, then M commands posted
// through the central's REST API (POST /api/nodes/<id>/core/action/command, 8 client
// threads, round-robin over the nodes): frames/s until the last COMMAND reached its node,
// and the latency from POST to the frame's arrival.
//
// What bounds the figures: each REST answer takes about 40 ms on a kept-alive connection (the
// server writes headers and body in two sends without TCP_NODELAY, and the client delays its
// ACK), so 8 clients post about 200 commands/s whatever the transport: frames/s is the REST
// API's rate; the latency (the clients set TCP_NODELAY) is the routing's. With more than about
// 1000 push_zmq nodes the central runs out of ZMQ sockets (its one context keeps ZMQ's default
// limit of 1023) and that phase fails; the table says so.
// WSS_BENCH_LOGS=<dir> keeps both centrals' logs there.
//
// Run (release build): meson test -C build-rel --benchmark wss, or directly with
//   GORGONE_SOURCE_ROOT=. GORGONE_HOST_BIN=build-rel/host_api/core/gorgone-host
//   GORGONE_MODULE_PATH=build-rel/plugin/proxy:build-rel/examples/action
//   build-rel/tests/bench/wss_bench [nodes=1000] [commands=2000] [REST client threads=8]
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "fleet.hpp"
#include "proc_stats.hpp"
#include "zmq_node_sim.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"
#include <zmq.hpp>

using namespace gorgone;
using namespace gorgone::testing;
using Clock = std::chrono::steady_clock;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace {

constexpr const char* kToken = "bench-t0ken";
constexpr int kIdleSeconds = 10;  // one ping period
constexpr const char* kProxy = "      pool: 4\n      ping: 10\n      synchistory_time: 60\n";

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::size_t line_count(const std::string& path) {
  std::ifstream in(path);
  return static_cast<std::size_t>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
}

// The most frequent log messages from line `from` on, digits folded ("node '#'"), so that a
// flood, or an error repeated per node, shows in the report.
std::string top_lines(const std::string& path, std::size_t from, std::size_t top = 6) {
  std::ifstream in(path);
  std::string line;
  std::map<std::string, int> count;
  for (std::size_t i = 0; std::getline(in, line); ++i) {
    if (i < from) continue;
    auto sev = line.find(" - ");  // after the timestamp
    std::string msg = sev == std::string::npos ? line : line.substr(sev + 3);
    std::string folded;
    for (char c : msg)
      if (!std::isdigit(static_cast<unsigned char>(c))) folded += c;
      else if (folded.empty() || folded.back() != '#') folded += '#';
    ++count[folded.substr(0, 150)];
  }
  std::vector<std::pair<int, std::string>> v;
  for (auto& [m, n] : count) v.emplace_back(n, m);
  std::sort(v.rbegin(), v.rend());
  std::string out;
  for (std::size_t i = 0; i < v.size() && i < top; ++i) out += "    x" + std::to_string(v[i].first) + "  " + v[i].second + "\n";
  return out;
}

// The first arrival of each COMMAND token (written by a simulator thread, read by main).
class Arrivals {
 public:
  void record(const std::string& token) {
    auto now = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    if (!at_.emplace(token, now).second) ++duplicates_;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return at_.size();
  }
  std::optional<Clock::time_point> at(const std::string& token) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = at_.find(token);
    return it == at_.end() ? std::nullopt : std::optional<Clock::time_point>(it->second);
  }
  int duplicates() const {
    std::lock_guard<std::mutex> lock(mu_);
    return duplicates_;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, Clock::time_point> at_;
  int duplicates_ = 0;
};

// ---- N wss pollers on one io_context thread

class WsFleet;

class Poller : public std::enable_shared_from_this<Poller> {
 public:
  Poller(WsFleet& fleet, std::size_t index);
  void start();
  void send(std::string text) {
    queue_.push_back(std::move(text));
    if (queue_.size() == 1) write_next();
  }

 private:
  void read();
  void on_message(const std::string& text);
  void write_next() {
    ws_.text(true);
    ws_.async_write(net::buffer(queue_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->queue_.pop_front();
      if (ec) return self->failed("write", ec);
      if (!self->queue_.empty()) self->write_next();
    });
  }
  void failed(const char* step, beast::error_code ec);

  WsFleet& fleet_;
  std::size_t index_;
  std::string id_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  bool upgraded_ = false, pinged_ = false, dead_ = false;
};

class WsFleet {
 public:
  WsFleet(int port, std::vector<std::string> ids, Arrivals& arrivals)
      : endpoint_(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)), ids_(std::move(ids)),
        arrivals_(arrivals) {}
  ~WsFleet() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  // Every poller dials at once, as a fleet does when its central comes back.
  void start() {
    net::post(io_, [this] {
      for (std::size_t i = 0; i < ids_.size(); ++i) std::make_shared<Poller>(*this, i)->start();
    });
    thread_ = std::thread([this] {
      auto guard = net::make_work_guard(io_);
      io_.run();
    });
  }
  int upgraded() const { return upgraded_.load(); }
  int pinged() const { return pinged_.load(); }
  int closed() const { return closed_.load(); }
  int retries() const { return retries_.load(); }
  int refusals() const { return refusals_.load(); }
  std::map<std::string, int> errors() {
    std::lock_guard<std::mutex> lock(errors_mu_);
    return errors_;
  }

 private:
  friend class Poller;
  // A poller that could not connect or upgrade tries again after a second (as pollers do).
  void retry(std::size_t index) {
    ++retries_;
    auto t = std::make_shared<net::steady_timer>(io_, std::chrono::seconds(1));
    t->async_wait([this, t, index](beast::error_code) { std::make_shared<Poller>(*this, index)->start(); });
  }
  void error(const std::string& what) {
    std::lock_guard<std::mutex> lock(errors_mu_);
    ++errors_[what];
  }

  net::io_context io_{1};
  tcp::endpoint endpoint_;
  std::vector<std::string> ids_;
  Arrivals& arrivals_;
  std::thread thread_;
  std::atomic<int> upgraded_{0}, pinged_{0}, closed_{0}, retries_{0}, refusals_{0};
  std::mutex errors_mu_;
  std::map<std::string, int> errors_;
};

Poller::Poller(WsFleet& fleet, std::size_t index)
    : fleet_(fleet), index_(index), id_(fleet.ids_[index]), ws_(fleet.io_) {}

void Poller::start() {
  beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(30));
  beast::get_lowest_layer(ws_).async_connect(fleet_.endpoint_, [self = shared_from_this()](beast::error_code ec) {
    if (ec) return self->failed("connect", ec);
    beast::get_lowest_layer(self->ws_).expires_never();
    self->ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
    self->ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(beast::http::field::authorization, std::string("Bearer ") + kToken);
      req.set(beast::http::field::user_agent, "gorgone mojo");
    }));
    self->ws_.async_handshake("127.0.0.1", "/", [self](beast::error_code ec2) {
      if (ec2) return self->failed("upgrade", ec2);
      self->upgraded_ = true;
      ++self->fleet_.upgraded_;
      self->send("[REGISTERNODES] [] [] {\"nodes\":[{\"type\":\"wss\",\"identity\":\"" + self->id_ + "\",\"id\":\"" +
                 self->id_ + "\"}]}");
      self->read();
    });
  });
}

void Poller::read() {
  ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) return self->failed("read", ec);
    std::string text = beast::buffers_to_string(self->buffer_.data());
    self->buffer_.consume(self->buffer_.size());
    self->on_message(text);
    if (!self->dead_) self->read();
  });
}

// What Perl's HTML::Entities leaves of the only special character our answers hold.
std::string quotes_as_entities(const std::string& json) {
  std::string out;
  for (char c : json) out += c == '"' ? std::string("&quot;") : std::string(1, c);
  return out;
}

void Poller::on_message(const std::string& text) {
  if (text.rfind("{\"code\":500", 0) == 0) {
    ++fleet_.refusals_;
    fleet_.error("refused: " + text);
    return;
  }
  auto f = protocol::parse_frame(text);
  if (!f) return fleet_.error("unreadable message from the central");
  if (f->action == "COMMAND") {
    fleet_.arrivals_.record(f->token);
  } else if (f->action == "PING") {
    if (!pinged_) {
      pinged_ = true;
      ++fleet_.pinged_;
    }
    send("[PONG] [" + f->token + "] [] " +
         quotes_as_entities(R"({"data":{"action":"ping","data":{},"message":"ping ok","id":")" + id_ +
                            R"(","hostname":"x"},"code":0})"));
  } else if (f->action == "GETLOG") {
    send("[SETLOGS] [" + f->token + "] [] " +
         quotes_as_entities(R"({"code":0,"data":{"id":")" + id_ + R"(","action":"getlog","result":[]}})"));
  }
}

void Poller::failed(const char* step, beast::error_code ec) {
  if (dead_) return;
  dead_ = true;
  fleet_.error(std::string(step) + ": " + ec.message());
  if (!upgraded_) return fleet_.retry(index_);
  ++fleet_.closed_;  // the central closed an established connection: reported, not retried
}

// ---- measurements

// Nodes of `ids` with ping_ok >= 1 in the central's constatus (one REST call).
int answered(Fleet& fleet, const std::string& central, const std::vector<std::string>& ids) {
  auto cs = fleet.constatus(central);
  if (!cs.HasMember("data") || !cs["data"].IsObject()) return 0;
  int n = 0;
  for (const auto& id : ids) {
    auto it = cs["data"].FindMember(id.c_str());
    if (it != cs["data"].MemberEnd() && it->value.IsObject() && it->value.HasMember("ping_ok") &&
        it->value["ping_ok"].IsInt() && it->value["ping_ok"].GetInt() >= 1)
      ++n;
  }
  return n;
}

struct Figures {
  int nodes = 0, answered = 0;
  double to_ping_ok = 0;      // s from the first connection (or start) until all answered a ping
  long rss_before = 0, rss_after = 0;
  int fds_before = 0, fds_after = 0;
  int posted = 0, post_errors = 0, received = 0, duplicates = 0;
  double post_secs = 0, route_secs = 0, cpu_route = 0;
  double cpu_idle = 0;  // central CPU over kIdleSeconds with every node connected and pinged
  double p50 = 0, p99 = 0, pmax = 0;
  std::size_t log_lines_setup = 0, log_lines_route = 0;
  std::string notes;
};

// Posts `commands` commands over `threads` REST clients, round-robin over `ids`, then waits
// (at most 120 s) until every COMMAND reached its node.
int g_threads = 8;  // REST clients posting the commands (argv[3])

void route(Fleet& fleet, const std::string& central, const std::vector<std::string>& ids, int commands,
           Arrivals& arrivals, pid_t pid, Figures& fig) {
  const int kThreads = g_threads;
  struct Sent {
    std::string token;
    Clock::time_point at;
  };
  std::vector<std::vector<Sent>> sent(kThreads);
  std::atomic<int> next{0}, errors{0};
  std::mutex err_mu;
  std::map<std::string, int> err_kinds;
  int port = fleet.http_port(central);
  double cpu0 = cpu_seconds(pid);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);  // else Nagle holds the body behind the headers for a delayed ACK (40 ms)
      c.set_read_timeout(30, 0);
      for (int i; (i = next++) < commands;) {
        const std::string& node = ids[static_cast<std::size_t>(i) % ids.size()];
        auto at = Clock::now();
        auto r = c.Post(("/api/nodes/" + node + "/core/action/command").c_str(),
                        "[{\"command\":\"echo bench-" + std::to_string(i) + "\"}]", "application/json");
        json::Document d;
        if (!r || r->status != 200 || !json::parse(d, r->body) || !d.HasMember("token") || !d["token"].IsString()) {
          ++errors;
          std::lock_guard<std::mutex> lock(err_mu);
          ++err_kinds[r ? "HTTP " + std::to_string(r->status) + ": " + r->body.substr(0, 120)
                        : "no answer: " + httplib::to_string(r.error())];
          continue;
        }
        sent[static_cast<std::size_t>(t)].push_back({d["token"].GetString(), at});
      }
    });
  for (auto& th : threads) th.join();
  auto posted = Clock::now();
  std::vector<Sent> all;
  for (auto& s : sent) all.insert(all.end(), s.begin(), s.end());
  auto deadline = Clock::now() + std::chrono::seconds(120);
  auto all_arrived = [&] {
    for (const auto& s : all)
      if (!arrivals.at(s.token)) return false;
    return true;
  };
  while (Clock::now() < deadline && !all_arrived()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  fig.cpu_route = cpu_seconds(pid) - cpu0;
  std::vector<double> ms;
  Clock::time_point last = start;
  for (const auto& s : all)
    if (auto a = arrivals.at(s.token)) {
      ms.push_back(std::chrono::duration<double, std::milli>(*a - s.at).count());
      last = std::max(last, *a);
    }
  std::sort(ms.begin(), ms.end());
  fig.posted = static_cast<int>(all.size());
  fig.post_errors = errors.load();
  fig.received = static_cast<int>(ms.size());
  fig.duplicates = arrivals.duplicates();
  fig.post_secs = secs(start, posted);
  fig.route_secs = secs(start, last);
  auto pct = [&](double p) { return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, std::size_t(p * double(ms.size())))]; };
  fig.p50 = pct(0.50);
  fig.p99 = pct(0.99);
  fig.pmax = ms.empty() ? 0.0 : ms.back();
  for (const auto& [kind, n] : err_kinds) fig.notes += "  POST error x" + std::to_string(n) + ": " + kind + "\n";
}

// With WSS_BENCH_LOGS=<dir>, each central's log is kept there (the fleet's directory is not).
void keep_log(Fleet& fleet, const std::string& central, const std::string& name) {
  const char* dir = std::getenv("WSS_BENCH_LOGS");
  if (!dir || !*dir) return;
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(fleet.log_path(central), std::string(dir) + "/" + name + ".log",
                             std::filesystem::copy_options::overwrite_existing);
}

std::string httpserver_block(int port) {
  return std::string(kProxy) + "      httpserver:\n        enable: true\n        token: " + kToken +
         "\n        address: 127.0.0.1\n        port: " + std::to_string(port) + "\n";
}

Figures run_wss(Fleet& fleet, int nodes, int commands) {
  Figures fig;
  fig.nodes = nodes;
  int port = free_port();
  HostSpec spec{"1", false, {}, true, httpserver_block(port), "", true};
  fleet.declare(spec);
  fleet.start("1");
  pid_t pid = fleet.daemon("1").pid();
  if (!eventually([&] { return read_file(fleet.log_path("1")).find("wss listener on") != std::string::npos; }))
    throw std::runtime_error("the wss listener never started:\n" + fleet.logs());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  fig.rss_before = rss_kib(pid);
  fig.fds_before = open_fds(pid);

  std::vector<std::string> ids;
  for (int i = 0; i < nodes; ++i) ids.push_back(std::to_string(10000 + i));
  Arrivals arrivals;
  WsFleet sim(port, ids, arrivals);
  auto start = Clock::now();
  sim.start();
  double all_upgraded = -1;
  while (secs(start, Clock::now()) < 180 && (fig.answered = answered(fleet, "1", ids)) < nodes) {
    if (all_upgraded < 0 && sim.upgraded() >= nodes) all_upgraded = secs(start, Clock::now());
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (all_upgraded < 0 && sim.upgraded() >= nodes) all_upgraded = secs(start, Clock::now());
  fig.to_ping_ok = secs(start, Clock::now());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  fig.rss_after = rss_kib(pid);
  fig.fds_after = open_fds(pid);
  double cpu0 = cpu_seconds(pid);
  std::this_thread::sleep_for(std::chrono::seconds(kIdleSeconds));
  fig.cpu_idle = cpu_seconds(pid) - cpu0;
  fig.log_lines_setup = line_count(fleet.log_path("1"));

  route(fleet, "1", ids, commands, arrivals, pid, fig);
  fig.log_lines_route = line_count(fleet.log_path("1")) - fig.log_lines_setup;
  fig.notes += "  central log, most frequent lines until routing:\n" + top_lines(fleet.log_path("1"), 0) +
               "  central log, most frequent lines while routing:\n" +
               top_lines(fleet.log_path("1"), fig.log_lines_setup);
  char buf[256];
  std::snprintf(buf, sizeof buf, "  all %d upgraded after %.2f s; %d retries (connect/upgrade); %d closed by the central; "
                "%d refusals\n", sim.upgraded(), all_upgraded, sim.retries(), sim.closed(), sim.refusals());
  fig.notes += buf;
  for (const auto& [what, n] : sim.errors()) fig.notes += "  poller error x" + std::to_string(n) + ": " + what + "\n";
  if (!fleet.daemon("1").alive()) fig.notes += "  THE CENTRAL DIED\n";
  fleet.stop("1");
  keep_log(fleet, "1", "central-wss");
  return fig;
}

Figures run_zmq(Fleet& fleet, int nodes, int commands, long rss_base, int fds_base) {
  Figures fig;
  fig.nodes = nodes;
  fleet.declare({"sim"});
  fleet.declare({"2"});
  zmq::context_t ctx;
  ctx.set(zmq::ctxopt::max_sockets, nodes + 64);
  Arrivals arrivals;
  ZmqNodeSim sim(ctx, nodes, protocol::RsaKey::load_private_file(fleet.private_key("sim")).value(), fleet.thumbprint("2"),
                 [&arrivals](const protocol::Frame& f) {
                   if (f.action == "COMMAND") arrivals.record(f.token);
                 });
  std::vector<std::string> ids;
  std::string list;
  for (int i = 0; i < nodes; ++i) {
    ids.push_back(std::to_string(20000 + i));
    list += "  - id: " + ids.back() + "\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
            std::to_string(sim.ports()[static_cast<std::size_t>(i)]) + "\n";
  }
  sim.set_ids(ids);
  // The same central configuration as the wss phase (its listener too), plus the register file.
  HostSpec spec{"2", false, {}, true, httpserver_block(free_port()), list, true};
  fleet.declare(spec);
  // Its RSS before any node: the wss phase's central before its first poller (same binary,
  // same configuration but the register file).
  fig.rss_before = rss_base;
  fig.fds_before = fds_base;
  auto start = Clock::now();
  fleet.start("2");
  pid_t pid = fleet.daemon("2").pid();
  while (secs(start, Clock::now()) < 180 && (fig.answered = answered(fleet, "2", ids)) < nodes)
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  fig.to_ping_ok = secs(start, Clock::now());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  fig.rss_after = rss_kib(pid);
  fig.fds_after = open_fds(pid);
  double cpu0 = cpu_seconds(pid);
  std::this_thread::sleep_for(std::chrono::seconds(kIdleSeconds));
  fig.cpu_idle = cpu_seconds(pid) - cpu0;
  fig.log_lines_setup = line_count(fleet.log_path("2"));
  route(fleet, "2", ids, commands, arrivals, pid, fig);
  fig.log_lines_route = line_count(fleet.log_path("2")) - fig.log_lines_setup;
  fig.notes += "  central log, most frequent lines until routing:\n" + top_lines(fleet.log_path("2"), 0) +
               "  central log, most frequent lines while routing:\n" +
               top_lines(fleet.log_path("2"), fig.log_lines_setup);
  if (sim.undecryptable()) fig.notes += "  " + std::to_string(sim.undecryptable()) + " unreadable frames\n";
  if (!fleet.daemon("2").alive()) fig.notes += "  THE CENTRAL DIED\n";
  fleet.stop("2");
  keep_log(fleet, "2", "central-push_zmq");
  return fig;
}

void print(const Figures& w, const Figures& z, int commands) {
  auto row = [](const char* name, const std::string& a, const std::string& b) {
    std::printf("| %-44s | %16s | %16s |\n", name, a.c_str(), b.c_str());
  };
  auto f = [](const char* fmt, double v) {
    char b[64];
    std::snprintf(b, sizeof b, fmt, v);
    return std::string(b);
  };
  auto per = [](const Figures& x) { return x.nodes ? double(x.rss_after - x.rss_before) / x.nodes : 0.0; };
  auto rate = [&](const Figures& x) { return x.route_secs > 0 ? x.received / x.route_secs : 0.0; };
  auto post_rate = [&](const Figures& x) { return x.post_secs > 0 ? x.posted / x.post_secs : 0.0; };
  std::printf("\n| %-44s | %16s | %16s |\n", "", "wss", "push_zmq");
  std::printf("|%s|%s|%s|\n", std::string(46, '-').c_str(), std::string(18, '-').c_str(), std::string(18, '-').c_str());
  row("nodes", std::to_string(w.nodes), std::to_string(z.nodes));
  row("nodes with ping_ok >= 1", std::to_string(w.answered), std::to_string(z.answered));
  row("time until all answered a ping (s)", f("%.1f", w.to_ping_ok), f("%.1f", z.to_ping_ok));
  row("central RSS before nodes (KiB)", std::to_string(w.rss_before), std::to_string(z.rss_before));
  row("central RSS with all nodes (KiB)", std::to_string(w.rss_after), std::to_string(z.rss_after));
  row("central RSS per node (KiB)", f("%.1f", per(w)), f("%.1f", per(z)));
  row("central open files before / with nodes", std::to_string(w.fds_before) + " / " + std::to_string(w.fds_after),
      std::to_string(z.fds_before) + " / " + std::to_string(z.fds_after));
  row(("commands posted OK (of " + std::to_string(commands) + ")").c_str(), std::to_string(w.posted),
      std::to_string(z.posted));
  row("COMMAND frames received (duplicates)", std::to_string(w.received) + " (" + std::to_string(w.duplicates) + ")",
      std::to_string(z.received) + " (" + std::to_string(z.duplicates) + ")");
  row(("POST rate, " + std::to_string(g_threads) + " REST clients (req/s)").c_str(), f("%.0f", post_rate(w)), f("%.0f", post_rate(z)));
  row("routed frames/s (first POST -> last frame)", f("%.0f", rate(w)), f("%.0f", rate(z)));
  row("latency POST -> frame p50 (ms)", f("%.2f", w.p50), f("%.2f", z.p50));
  row("latency POST -> frame p99 (ms)", f("%.2f", w.p99), f("%.2f", z.p99));
  row("latency POST -> frame max (ms)", f("%.2f", w.pmax), f("%.2f", z.pmax));
  row(("central CPU, idle " + std::to_string(kIdleSeconds) + " s with all nodes (s)").c_str(), f("%.2f", w.cpu_idle),
      f("%.2f", z.cpu_idle));
  row("central CPU while routing (s)", f("%.2f", w.cpu_route), f("%.2f", z.cpu_route));
  row("central log lines: setup / routing", std::to_string(w.log_lines_setup) + " / " + std::to_string(w.log_lines_route),
      std::to_string(z.log_lines_setup) + " / " + std::to_string(z.log_lines_route));
  std::printf("time until all answered a ping: wss from the pollers' first connect (central already up), push_zmq\n"
              "from the central's start; both bounded by the ping period (first ping at a random offset).\n"
              "push_zmq's RSS/open files before nodes: the wss central's before its first poller (same configuration).\n"
              "latency: from just before the POST to the COMMAND frame's arrival at its node.\n");
  if (!w.notes.empty()) std::printf("wss notes:\n%s", w.notes.c_str());
  if (!z.notes.empty()) std::printf("push_zmq notes:\n%s", z.notes.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int nodes = argc > 1 ? std::atoi(argv[1]) : 1000;
  int commands = argc > 2 ? std::atoi(argv[2]) : 2000;
  if (argc > 3) g_threads = std::max(1, std::atoi(argv[3]));
  // Both fleets and the centrals (which inherit the limit) need a descriptor per connection.
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  std::printf("nodes: %d per transport, commands: %d, open files limit: %llu; central: pool 4, ping 10 s, "
              "synchistory_time 60 s, log severity debug\n",
              nodes, commands, static_cast<unsigned long long>(lim.rlim_cur));
  std::fflush(stdout);
  Fleet fleet;
  Figures w = run_wss(fleet, nodes, commands);
  std::printf("wss phase done\n");
  std::fflush(stdout);
  Figures z = run_zmq(fleet, nodes, commands, w.rss_before, w.fds_before);
  print(w, z, commands);
  bool ok = w.answered == nodes && z.answered == nodes && w.received == commands && z.received == commands;
  return ok ? 0 : 1;
}
