// A proxy Worker on its own, with a fake Host (in-memory history, a real inproc ROUTER
// standing for the core) and, where a live node is needed, a node speaking the real
// handshake on loopback. Checks the failure rule of worker.hpp: an error on one frame costs
// that frame a KO row and nothing else; a worker whose loop fails gives every frame it held
// a KO row, and its successor takes over what was routed to it since.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"
#include "gorgone/status_codes.hpp"
#include "memory_history.hpp"
#include "worker.hpp"

namespace gorgone::proxy {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::MemoryHistory;

bool eventually(const std::function<bool()>& done, std::chrono::seconds limit = 30s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class FakeHost : public Host {
 public:
  FakeHost(std::string endpoint, std::string privkey) : endpoint_(std::move(endpoint)), privkey_(std::move(privkey)) {}

  void log(Severity, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mu_);
    logs_.emplace_back(message);
  }
  History& history() override { return history_; }
  zmq::context_t& zmq_context() override {
    if (fail_context > 0) {
      --fail_context;
      throw std::runtime_error("zmq context unavailable");
    }
    return context_;
  }
  CoreInfo core_info() const override {
    if (fail_core_info > 0) {
      --fail_core_info;
      throw std::runtime_error("core info unavailable");
    }
    return CoreInfo{"1", "central", privkey_, "", endpoint_, fingerprint_mode};
  }
  bool stopping() const override { return false; }
  void add_history(const std::string* token, int code, std::string_view data, int) override {
    std::lock_guard<std::mutex> lock(mu_);
    rows_.push_back({token ? *token : "", code, std::string(data)});
  }
  void send_internal(std::string_view, const protocol::Frame&) override {}
  Status send_external(const std::string&, const protocol::Frame&) override { return Status::success(); }
  void dispatch(const protocol::Frame&) override {}
  void send_to_parents(const protocol::Frame&) override {}

  struct Row {
    std::string token;
    int code;
    std::string data;
  };
  std::vector<Row> rows_for(const std::string& token) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Row> out;
    for (const auto& r : rows_)
      if (r.token == token) out.push_back(r);
    return out;
  }
  std::size_t row_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return rows_.size();
  }
  bool logged(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& l : logs_)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }
  std::string all_logs() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& l : logs_) out += l + "\n";
    return out;
  }

  // Host services that fail the next n times they are asked (a worker must survive that).
  mutable std::atomic<int> fail_core_info{0};
  std::atomic<int> fail_context{0};
  std::string fingerprint_mode = "always";  // set before the worker starts
  MemoryHistory history_;
  zmq::context_t context_;

 private:
  std::string endpoint_, privkey_;
  std::mutex mu_;
  std::vector<std::string> logs_;
  std::vector<Row> rows_;
};

// A push_zmq node: an external ROUTER with the server side of the handshake. It never
// answers the frames it gets, so that they stay in flight on the worker's side.
class FakeNode {
 public:
  FakeNode(zmq::context_t& ctx, const protocol::RsaKey& key, const std::string& client_thumbprint)
      : socket_(ctx, zmq::socket_type::router),
        server_(protocol::HandshakeServer::Config{key, {client_thumbprint}, "node", 32}) {
    socket_.set(zmq::sockopt::linger, 0);
    port_ = free_port();
    socket_.bind("tcp://127.0.0.1:" + std::to_string(port_));
  }
  int port() const { return port_; }
  // Serves the handshake and records decrypted frames until `done` or the limit.
  bool serve_until(const std::function<bool()>& done, std::chrono::seconds limit = 30s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 50ms);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t id, body;
      (void)socket_.recv(id, zmq::recv_flags::none);
      (void)socket_.recv(body, zmq::recv_flags::none);
      auto out = server_.on_message(id.to_string(), body.to_string_view(), static_cast<std::int64_t>(::time(nullptr)));
      using Kind = protocol::HandshakeServer::Outcome::Kind;
      if (out.kind == Kind::kMessage) {
        received.push_back(out.plaintext);
      } else if (!out.reply.empty()) {
        socket_.send(zmq::buffer(id.to_string()), zmq::send_flags::sndmore);
        socket_.send(zmq::buffer(out.reply), zmq::send_flags::none);
      }
    }
    return true;
  }
  bool got(const std::string& token) const {
    for (const auto& r : received)
      if (r.find("[" + token + "]") != std::string::npos) return true;
    return false;
  }
  std::vector<std::string> received;

 private:
  zmq::socket_t socket_;
  protocol::HandshakeServer server_;
  int port_ = 0;
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "gorgone-worker-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(protocol::generate_key_files(dir_ + "/client.pem", dir_ + "/client.pub.pem"));
    ASSERT_TRUE(protocol::generate_key_files(dir_ + "/node.pem", dir_ + "/node.pub.pem"));
    static int n = 0;
    std::string endpoint = "inproc://worker-test-core-" + std::to_string(++n);
    host_ = std::make_unique<FakeHost>(endpoint, dir_ + "/client.pem");
    core_ = std::make_unique<zmq::socket_t>(host_->context_, zmq::socket_type::router);
    core_->set(zmq::sockopt::linger, 0);
    core_->set(zmq::sockopt::router_mandatory, 1);
    core_->bind(endpoint);
    auto node_key = protocol::RsaKey::load_private_file(dir_ + "/node.pem");
    auto client_key = protocol::RsaKey::load_private_file(dir_ + "/client.pem");
    ASSERT_TRUE(node_key && client_key);
    node_ = std::make_unique<FakeNode>(host_->context_, *node_key, client_key->jwk_thumbprint());
    down_port_ = free_port();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << host_->all_logs();
    node_.reset();
    core_.reset();
    fs::remove_all(dir_);
  }

  std::unique_ptr<Worker> make_worker(Settings settings = Settings()) {
    return std::make_unique<Worker>(1, *host_, settings, "1");
  }
  // The core side: waits for the worker's PROXYREADY.
  bool ready() {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      zmq::pollitem_t item{static_cast<void*>(*core_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 100ms);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t id, body;
      (void)core_->recv(id, zmq::recv_flags::none);
      (void)core_->recv(body, zmq::recv_flags::none);
      if (body.to_string().rfind("[PROXYREADY]", 0) == 0) return true;
    }
    return false;
  }
  void send(const std::string& action, const std::string& token, const std::string& target,
            const std::string& data = "{}") {
    std::string text = protocol::build_frame(action, token, target, data);
    core_->send(zmq::buffer(std::string("gorgone-proxy-1")), zmq::send_flags::sndmore);
    core_->send(zmq::buffer(text), zmq::send_flags::none);
  }
  void add_node(const std::string& id, int port) {
    send("PROXYADDNODE", "", id + "~~" + id,
         R"({"id":")" + id + R"(","type":"push_zmq","address":"127.0.0.1","port":)" + std::to_string(port) + "}");
  }
  void command(const std::string& token, const std::string& target) {
    send("COMMAND", token, target, R"({"content":[{"command":"echo x"}]})");
  }
  // Everything sent before it was handled: a frame for a node nobody configured gets its KO.
  bool barrier(const std::string& token) {
    command(token, "99~~99");
    return eventually([&] { return !host_->rows_for(token).empty(); });
  }
  std::string only_ko(const std::string& token) {
    auto rows = host_->rows_for(token);
    EXPECT_EQ(rows.size(), 1u) << "token " << token;
    if (rows.empty()) return "";
    EXPECT_EQ(rows[0].code, code::kActionFinishKo);
    return rows[0].data;
  }

  std::string dir_;
  std::unique_ptr<FakeHost> host_;
  std::unique_ptr<zmq::socket_t> core_;
  std::unique_ptr<FakeNode> node_;
  int down_port_ = 0;
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The loop is made to fail by the test hook; every frame the worker held at that moment
// must get a KO row: queued for a node that is down, sent and unanswered, unread.
TEST_F(WorkerTest, AWorkerThatStopsOnAnErrorKosEveryFrameItHeld) {
  std::mutex m;
  std::condition_variable cv;
  bool armed = false, entered = false, release = false;
  auto worker = make_worker();
  worker->set_turn_hook([&] {
    std::unique_lock<std::mutex> lock(m);
    if (!armed) return;
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    throw std::runtime_error("injected failure");
  });
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", down_port_);      // down: its frames wait in its queue
  add_node("5", node_->port());  // up: its frames are sent and never answered
  command("held-1", "2~~2");
  command("held-2", "2~~3");  // for subnode 3, through 2
  command("flight-1", "5~~5");
  ASSERT_TRUE(node_->serve_until([&] { return node_->got("flight-1"); })) << "node 5 never got its frame";
  ASSERT_TRUE(barrier("barrier-1"));
  EXPECT_TRUE(host_->rows_for("held-1").empty());
  EXPECT_TRUE(host_->rows_for("flight-1").empty());

  // The loop stops at the start of its next turn; what is sent meanwhile stays unread.
  {
    std::unique_lock<std::mutex> lock(m);
    armed = true;
    cv.wait(lock, [&] { return entered; });
  }
  command("unread-1", "2~~2");
  add_node("7", down_port_);                               // a control frame: no row
  send("ACK", "ack-token", "", R"({"code":0,"data":{}})");  // the core's answer: no row
  command("unread-2", "5~~5");
  {
    std::lock_guard<std::mutex> lock(m);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(eventually([&] { return !worker->running(); }));

  EXPECT_TRUE(contains(only_ko("held-1"), "node '2' was not sent")) << only_ko("held-1");
  EXPECT_TRUE(contains(only_ko("held-1"), "proxy worker 1 stopped on an internal error (injected failure)"));
  EXPECT_TRUE(contains(only_ko("held-2"), "Send message problem for '3'")) << only_ko("held-2");
  EXPECT_TRUE(contains(only_ko("flight-1"), "before node '5' answered")) << only_ko("flight-1");
  EXPECT_TRUE(contains(only_ko("unread-1"), "Send message problem for '2'")) << only_ko("unread-1");
  EXPECT_TRUE(contains(only_ko("unread-1"), "before reading this COMMAND")) << only_ko("unread-1");
  EXPECT_TRUE(contains(only_ko("unread-2"), "before reading this COMMAND"));
  EXPECT_TRUE(host_->rows_for("ack-token").empty());
  EXPECT_EQ(host_->rows_for("barrier-1").size(), 1u);
  EXPECT_TRUE(host_->logged("[proxy] worker 1 stopped on error: injected failure; 5 held frame(s) got a KO row (2 unread)"))
      << host_->all_logs();

  // What is routed to the pool before the proxy replaces the worker waits on its control
  // socket; the successor adopts the socket and the node configurations and handles it.
  command("after-1", "5~~5");
  std::size_t rows_before = host_->row_count();
  auto next = make_worker();
  worker->stop();
  next->adopt(*worker);
  worker.reset();  // nothing left to KO: the successor has the socket
  EXPECT_EQ(host_->row_count(), rows_before);
  next->start();
  ASSERT_TRUE(ready());
  EXPECT_TRUE(node_->serve_until([&] { return node_->got("after-1"); })) << "the successor did not deliver after-1";
  EXPECT_TRUE(host_->rows_for("after-1").empty());
  next->stop();
}

TEST_F(WorkerTest, AFailedWorkerThatIsNotReplacedKosWhatReachedItsSocket) {
  std::atomic<bool> fail{false};
  auto worker = make_worker();
  worker->set_turn_hook([&] {
    if (fail) throw std::runtime_error("injected failure");
  });
  worker->start();
  ASSERT_TRUE(ready());
  fail = true;
  ASSERT_TRUE(eventually([&] { return !worker->running(); }));
  command("late-1", "2~~2");  // routed to the pool after the failure
  worker.reset();             // the proxy stops without restarting it
  EXPECT_TRUE(contains(only_ko("late-1"), "before reading this COMMAND")) << only_ko("late-1");
}

// An exception while handling one control frame: that frame gets a KO row naming the
// node and the failure, and the worker goes on with the next frames.
TEST_F(WorkerTest, AnErrorOnOneControlFrameCostsThatFrameAKoRowAndNothingElse) {
  auto worker = make_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", down_port_);
  host_->fail_core_info = 1;  // asked when the worker first builds node 2's connection
  command("broken-1", "2~~2");
  command("fine-1", "2~~2");
  ASSERT_TRUE(barrier("barrier-1"));
  EXPECT_TRUE(worker->running());
  std::string row = only_ko("broken-1");
  EXPECT_TRUE(contains(row, "internal error handling COMMAND for node '2': core info unavailable")) << row;
  EXPECT_TRUE(host_->rows_for("fine-1").empty()) << "held for node 2, not lost";
  EXPECT_TRUE(host_->logged("[proxy] worker 1: internal error handling COMMAND for node '2': core info unavailable"))
      << host_->all_logs();
  worker->stop();
}

// An exception while opening a node's session (in the flush of its queue): the session is
// retried later and the frames held for the node are delivered, none is lost.
TEST_F(WorkerTest, AnErrorOpeningASessionKeepsTheFramesAndRetries) {
  auto worker = make_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("5", node_->port());
  host_->fail_context = 1;  // asked when the worker opens node 5's socket
  command("kept-1", "5~~5");
  EXPECT_TRUE(node_->serve_until([&] { return node_->got("kept-1"); }, 60s)) << host_->all_logs();
  EXPECT_TRUE(worker->running());
  EXPECT_TRUE(host_->rows_for("kept-1").empty());
  EXPECT_TRUE(host_->logged("[proxy] node '5': internal error opening a session: zmq context unavailable; 1 frame(s) held"))
      << host_->all_logs();
  worker->stop();
}

// An exception while handling a node's message (here: the fingerprint lookup of the
// handshake fails): the message is dropped with a log line, the worker goes on, and the
// next session delivers the held frame.
TEST_F(WorkerTest, AnErrorOnANodeMessageDropsThatMessageOnly) {
  host_->fingerprint_mode = "first";
  host_->history_.fail_fingerprint = 1;
  Settings settings;
  settings.handshake_timeout = 1;
  auto worker = make_worker(settings);
  worker->start();
  ASSERT_TRUE(ready());
  add_node("5", node_->port());
  command("kept-1", "5~~5");
  EXPECT_TRUE(node_->serve_until([&] { return node_->got("kept-1"); }, 60s)) << host_->all_logs();
  EXPECT_TRUE(worker->running());
  EXPECT_TRUE(host_->rows_for("kept-1").empty());
  EXPECT_TRUE(host_->logged("[proxy] node '5': internal error handling a message from it: history unavailable; "
                            "message dropped"))
      << host_->all_logs();
  worker->stop();
}

}  // namespace
}  // namespace gorgone::proxy
