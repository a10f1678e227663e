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
#include <deque>
#include <ctime>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"
#include "gorgone/status_codes.hpp"
#include "memory_history.hpp"
#include "eventually.hpp"
#include "recording_host.hpp"
#include "worker.hpp"

namespace gorgone::proxy {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::MemoryHistory;

using gorgone::testing::eventually;

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

class FakeHost : public gorgone::testing::RecordingHost {
 public:
  FakeHost(std::string endpoint, std::string privkey) : RecordingHost(&history_), endpoint_(std::move(endpoint)), privkey_(std::move(privkey)) {}

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

  // Host services that fail the next n times they are asked (a worker must survive that).
  mutable std::atomic<int> fail_core_info{0};
  std::atomic<int> fail_context{0};
  std::string fingerprint_mode = "always";  // set before the worker starts
  MemoryHistory history_;

 private:
  std::string endpoint_, privkey_;
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
  // A worker that started, said it was ready, then stopped on an injected error.
  std::unique_ptr<Worker> failed_worker() {
    auto fail = std::make_shared<std::atomic<bool>>(false);
    auto worker = make_worker();
    worker->set_turn_hook([fail] {
      if (*fail) throw std::runtime_error("injected failure");
    });
    worker->start();
    EXPECT_TRUE(ready());
    *fail = true;
    EXPECT_TRUE(eventually([&] { return !worker->running(); }));
    return worker;
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
  auto worker = failed_worker();
  ASSERT_FALSE(worker->running());
  command("late-1", "2~~2");  // routed to the pool after the failure
  worker.reset();             // the proxy stops without restarting it
  EXPECT_TRUE(contains(only_ko("late-1"), "before reading this COMMAND")) << only_ko("late-1");
}

// The proxy stopping shuts a failed worker down: what reached its socket gets its KO rows and
// the socket closes then, not when the module is unloaded (which may never happen: the core
// could not end its ZMQ context, and the process hung at exit).
TEST_F(WorkerTest, ShuttingDownAFailedWorkerKosWhatReachedItsSocketAndClosesIt) {
  auto worker = failed_worker();
  ASSERT_FALSE(worker->running());
  command("late-2", "2~~2");
  worker->shut_down();  // the worker object lives on, as the proxy's does
  EXPECT_TRUE(contains(only_ko("late-2"), "before reading this COMMAND")) << only_ko("late-2");
  worker->shut_down();  // gently, then kill: a second call changes nothing
  EXPECT_EQ(host_->rows_for("late-2").size(), 1u);
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

// A node whose connection drops during a session: what comes for it next waits in its
// bounded queue (and one more than max_queue gets its KO), not in a ZMQ pipe where a close
// would discard it.
TEST_F(WorkerTest, FramesForANodeWhoseConnectionDroppedWaitInTheBoundedQueue) {
  Settings settings;
  settings.max_queue = 1;
  auto worker = make_worker(settings);
  worker->start();
  ASSERT_TRUE(ready());
  add_node("5", node_->port());
  command("first", "5~~5");
  ASSERT_TRUE(node_->serve_until([&] { return node_->got("first"); }));
  node_.reset();
  ASSERT_TRUE(eventually([&] { return host_->logged("[proxy] node '5': connection to tcp://127.0.0.1:"); }))
      << host_->all_logs();
  command("held", "5~~5");
  command("over", "5~~5");
  ASSERT_TRUE(eventually([&] { return !host_->rows_for("over").empty(); }));
  EXPECT_TRUE(contains(only_ko("over"), "node '5' is unreachable and 1 frames already wait for it (max_queue)"));
  EXPECT_TRUE(host_->rows_for("held").empty());
  worker->stop();
  EXPECT_TRUE(contains(only_ko("held"), "the frame held for node '5' was not sent")) << only_ko("held");
}

// A link that stands for a node's transport: it records what the worker gives it, and the
// test says what becomes of it (opened or not, established, answered, lost with the
// session). Its poll item is one end of a socket pair the test writes to, to wake the loop.
struct FakeLinkState {
  std::mutex mu;
  bool open_ok = true;         // open() succeeds
  bool open = false;           // a session exists
  bool established = false;    // frames may be sent
  std::optional<Clock::time_point> deadline;  // set by open(): the handshake wait
  int opens = 0;
  std::vector<NodeLink::Frame> sent;  // every frame taken, in order (resends included)
  std::deque<NodeLink::Frame> in_flight;
  std::deque<NodeLink::Event> events;  // what receive() reports next
  int refuse = 0;  // the next sends the transport cannot take (as a full pipe), asking for a retry
  std::optional<Clock::time_point> retry_at;
  int fds[2] = {-1, -1};

  FakeLinkState() { ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds); }
  ~FakeLinkState() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  void push(NodeLink::Event ev) {
    {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(std::move(ev));
    }
    char b = 1;
    (void)!::write(fds[1], &b, 1);
  }
  std::vector<std::string> sent_tokens() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::string> out;
    for (const auto& f : sent) out.push_back(f.token);
    return out;
  }
  template <typename T>
  T get(T FakeLinkState::*member) {
    std::lock_guard<std::mutex> lock(mu);
    return this->*member;
  }
};

class FakeLink : public NodeLink {
 public:
  explicit FakeLink(std::shared_ptr<FakeLinkState> s, std::int64_t handshake_timeout)
      : s_(std::move(s)), timeout_(handshake_timeout) {}
  bool is_open() const override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->open;
  }
  bool open(Clock::time_point now) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    ++s_->opens;
    if (!s_->open_ok) return false;
    s_->open = true;
    s_->established = false;
    s_->deadline = now + std::chrono::seconds(timeout_);
    return true;
  }
  void close() override {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->open = false;
    s_->established = false;
    s_->deadline.reset();
    s_->in_flight.clear();
  }
  std::optional<zmq::pollitem_t> poll_item(bool) const override {
    std::lock_guard<std::mutex> lock(s_->mu);
    if (!s_->open) return std::nullopt;
    return zmq::pollitem_t{nullptr, s_->fds[0], ZMQ_POLLIN, 0};
  }
  bool ready(Clock::time_point) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->open && s_->established;
  }
  bool send(const Frame& frame) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    if (s_->refuse > 0) {
      --s_->refuse;
      s_->retry_at = Clock::time_point{};  // at once
      return false;
    }
    s_->retry_at.reset();
    s_->sent.push_back(frame);
    s_->in_flight.push_back(frame);
    return true;
  }
  Event receive(Clock::time_point) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    if (s_->events.empty()) {
      char b[64];
      while (::read(s_->fds[0], b, sizeof(b)) > 0) {
      }
      return {};
    }
    Event ev = std::move(s_->events.front());
    s_->events.pop_front();
    using Kind = Event::Kind;
    if (ev.kind == Kind::kEstablished) {
      s_->established = true;
      s_->deadline.reset();
    } else if (ev.kind == Kind::kResponse && !s_->in_flight.empty()) {
      s_->in_flight.pop_front();
    } else if (ev.kind == Kind::kLost || ev.kind == Kind::kRefused || ev.kind == Kind::kAway) {
      if (ev.kind != Kind::kRefused || hand_back_on_refusal) ev.unanswered = std::move(s_->in_flight);
      s_->in_flight.clear();
      s_->open = false;
      s_->established = false;
      s_->deadline.reset();
    }
    return ev;
  }
  std::optional<Clock::time_point> deadline() const override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->deadline;
  }
  std::optional<Clock::time_point> retry_at() const override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->retry_at;
  }
  const std::deque<Frame>& in_flight() const override { return s_->in_flight; }
  // A refusal hands back what never ran (as an SSH link does), or not (as a ZMQ handshake).
  bool hand_back_on_refusal = false;

 private:
  std::shared_ptr<FakeLinkState> s_;
  std::int64_t timeout_;
};

// A clock the test moves.
struct FakeClock {
  Clock::time_point base = Clock::now();
  std::atomic<std::int64_t> ms{0};
  Clock::time_point now() const { return base + std::chrono::milliseconds(ms.load()); }
  void advance(std::chrono::milliseconds d) { ms += d.count(); }
};

NodeLink::Event event(NodeLink::Event::Kind kind, std::string reason = "") {
  NodeLink::Event ev;
  ev.kind = kind;
  ev.reason = std::move(reason);
  return ev;
}

class WorkerLinkTest : public WorkerTest {
 protected:
  std::unique_ptr<Worker> make_fake_worker(Settings settings = Settings()) {
    auto worker = make_worker(settings);
    worker->set_clock([this] { return clock_.now(); });
    std::int64_t timeout = settings.handshake_timeout;
    worker->set_link_factory([this, timeout](const std::string&, const json::Value&) {
      auto link = std::make_unique<FakeLink>(link_, timeout);
      link->hand_back_on_refusal = hand_back_on_refusal_;
      return link;
    });
    return worker;
  }
  // The loop went round at least once after everything sent so far (timeouts included).
  void turns() {
    static int n = 0;
    ASSERT_TRUE(barrier("turn-a-" + std::to_string(++n)));
    ASSERT_TRUE(barrier("turn-b-" + std::to_string(n)));
  }

  FakeClock clock_;
  std::shared_ptr<FakeLinkState> link_ = std::make_shared<FakeLinkState>();
  bool hand_back_on_refusal_ = false;
};

// Frames for a node whose link cannot open are held, in order, up to max_queue; one more
// gets a KO naming the bound; unregistering the node gives the held ones their KO rows.
TEST_F(WorkerLinkTest, HeldFramesAreBoundedAndKoedWhenTheNodeGoes) {
  link_->open_ok = false;
  Settings settings;
  settings.max_queue = 2;
  auto worker = make_fake_worker(settings);
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("held-1", "2~~2");
  command("held-2", "2~~2");
  command("over-1", "2~~2");
  turns();
  EXPECT_TRUE(contains(only_ko("over-1"), "node '2' is unreachable and 2 frames already wait for it (max_queue)"))
      << only_ko("over-1");
  EXPECT_TRUE(host_->rows_for("held-1").empty());
  EXPECT_TRUE(host_->rows_for("held-2").empty());
  EXPECT_TRUE(link_->sent_tokens().empty());
  send("PROXYDELNODE", "", "2~~2");
  turns();
  EXPECT_TRUE(contains(only_ko("held-1"), "node '2' was unregistered")) << only_ko("held-1");
  EXPECT_TRUE(contains(only_ko("held-2"), "node '2' was unregistered")) << only_ko("held-2");
  worker->stop();
}

// Held frames go, in order, once the link is established.
TEST_F(WorkerLinkTest, HeldFramesGoInOrderOnceTheLinkIsEstablished) {
  auto worker = make_fake_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("a", "2~~2");
  command("b", "2~~2");
  turns();
  EXPECT_EQ(link_->get(&FakeLinkState::opens), 1);
  EXPECT_TRUE(link_->sent_tokens().empty());
  link_->push(event(NodeLink::Event::Kind::kEstablished));
  ASSERT_TRUE(eventually([&] { return link_->sent_tokens().size() == 2; }));
  EXPECT_EQ(link_->sent_tokens(), (std::vector<std::string>{"a", "b"}));
  worker->stop();
  EXPECT_TRUE(host_->rows_for("a").empty()) << "sent frames are the node's";
}

// A frame the transport could not take for a moment (a full pipe, with nothing to poll that
// would say when it has room) stays first in the queue and is offered again without any
// event from the node; nothing is lost or KOed.
TEST_F(WorkerLinkTest, AFrameTheTransportCouldNotTakeIsOfferedAgainWithoutAnEvent) {
  link_->refuse = 2;
  auto worker = make_fake_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("a", "2~~2");
  command("b", "2~~2");
  turns();
  link_->push(event(NodeLink::Event::Kind::kEstablished));
  ASSERT_TRUE(eventually([&] { return link_->sent_tokens().size() == 2; })) << "refused twice, then never offered again";
  EXPECT_EQ(link_->sent_tokens(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(link_->get(&FakeLinkState::refuse), 0);
  worker->stop();
  EXPECT_TRUE(host_->rows_for("a").empty());
  EXPECT_TRUE(host_->rows_for("b").empty());
}

// A lost session hands back the unanswered frames: they are sent again, first and in order,
// on a new session; an answered one is not.
TEST_F(WorkerLinkTest, FramesInFlightAreSentAgainAfterALostSession) {
  auto worker = make_fake_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("a", "2~~2");
  command("b", "2~~2");
  command("c", "2~~2");
  turns();
  link_->push(event(NodeLink::Event::Kind::kEstablished));
  ASSERT_TRUE(eventually([&] { return link_->sent_tokens().size() == 3; }));
  NodeLink::Event answer = event(NodeLink::Event::Kind::kResponse);
  answer.response = {"ACK", "a", R"({"code":0,"data":{}})"};
  link_->push(answer);
  link_->push(event(NodeLink::Event::Kind::kLost, "decrypt failed"));
  ASSERT_TRUE(eventually([&] { return link_->get(&FakeLinkState::opens) == 2; }));
  ASSERT_TRUE(eventually([&] { return host_->logged("[proxy] node '2': session lost (decrypt failed); reconnecting, "
                                                    "2 unanswered frame(s) sent again"); }))
      << host_->all_logs();
  command("d", "2~~2");
  turns();
  link_->push(event(NodeLink::Event::Kind::kEstablished));
  ASSERT_TRUE(eventually([&] { return link_->sent_tokens().size() == 6; }));
  EXPECT_EQ(link_->sent_tokens(), (std::vector<std::string>{"a", "b", "c", "b", "c", "d"}));
  worker->stop();
}

// No answer by the link's deadline: the session is closed, the frames kept, and a new one
// opened after 1 s, then 2 s (fake clock), with a log line saying so each time.
TEST_F(WorkerLinkTest, ASilentNodeIsRetriedWithBackOff) {
  auto worker = make_fake_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("a", "2~~2");
  turns();
  EXPECT_EQ(link_->get(&FakeLinkState::opens), 1);
  clock_.advance(std::chrono::seconds(11));
  ASSERT_TRUE(eventually([&] {
    return host_->logged("[proxy] node '2': no answer to the handshake within 10 s; 1 frame(s) held, retrying in 1 s");
  })) << host_->all_logs();
  turns();
  EXPECT_FALSE(link_->get(&FakeLinkState::open));
  EXPECT_EQ(link_->get(&FakeLinkState::opens), 1) << "retried before its back-off";
  clock_.advance(std::chrono::milliseconds(1001));
  ASSERT_TRUE(eventually([&] { return link_->get(&FakeLinkState::opens) == 2; }));
  clock_.advance(std::chrono::seconds(11));
  ASSERT_TRUE(eventually([&] {
    return host_->logged("[proxy] node '2': no answer to the handshake within 10 s; 1 frame(s) held, retrying in 2 s");
  })) << host_->all_logs();
  clock_.advance(std::chrono::milliseconds(1001));
  turns();
  EXPECT_EQ(link_->get(&FakeLinkState::opens), 2) << "retried before its back-off";
  clock_.advance(std::chrono::milliseconds(1000));
  ASSERT_TRUE(eventually([&] { return link_->get(&FakeLinkState::opens) == 3; }));
  EXPECT_TRUE(host_->rows_for("a").empty()) << "kept while the node is silent";
  worker->stop();
}

// A clean stop with frames still held: each gets its KO row; a frame already taken by the
// link is the node's and gets none.
TEST_F(WorkerLinkTest, StoppingWithHeldFramesKosThem) {
  auto worker = make_fake_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("sent-1", "2~~2");
  turns();
  link_->push(event(NodeLink::Event::Kind::kEstablished));
  ASSERT_TRUE(eventually([&] { return link_->sent_tokens().size() == 1; }));
  link_->push(event(NodeLink::Event::Kind::kLost, "gone"));
  ASSERT_TRUE(eventually([&] { return link_->get(&FakeLinkState::opens) == 2; }));
  command("held-1", "2~~2");
  turns();
  worker->stop();
  EXPECT_TRUE(contains(only_ko("sent-1"), "the proxy is stopping; the frame held for node '2' was not sent"))
      << only_ko("sent-1");
  EXPECT_TRUE(contains(only_ko("held-1"), "the proxy is stopping; the frame held for node '2' was not sent"))
      << only_ko("held-1");
}

// A node that refuses the session: every frame held for it gets a KO row with the reason.
TEST_F(WorkerLinkTest, ARefusedSessionKosTheHeldFrames) {
  auto worker = make_fake_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("a", "2~~2");
  turns();
  link_->push(event(NodeLink::Event::Kind::kRefused, "bad key"));
  ASSERT_TRUE(eventually([&] { return !host_->rows_for("a").empty(); }));
  EXPECT_TRUE(contains(only_ko("a"), "Send message problem for '2': bad key")) << only_ko("a");
  EXPECT_TRUE(host_->logged("[proxy] node '2' refused the session: bad key")) << host_->all_logs();
  worker->stop();
}

// A link that cannot reach its node (an SSH connection refused or cut) hands back the frames
// that never ran: they stay first in the node's queue, the node is retried after a back-off
// (PONGRESET sent), and they go, in order, on the next session.
TEST_F(WorkerLinkTest, AnAwayNodeKeepsTheFramesThatNeverRanAndIsRetriedWithBackOff) {
  auto worker = make_fake_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("a", "2~~2");
  command("b", "2~~2");
  turns();
  link_->push(event(NodeLink::Event::Kind::kEstablished));
  ASSERT_TRUE(eventually([&] { return link_->sent_tokens().size() == 2; }));
  link_->push(event(NodeLink::Event::Kind::kAway, "cannot connect on target node '2': connection refused"));
  ASSERT_TRUE(eventually([&] {
    return host_->logged("[proxy] node '2': cannot connect on target node '2': connection refused; 2 frame(s) held, "
                         "retrying in 1 s");
  })) << host_->all_logs();
  command("c", "2~~2");
  turns();
  EXPECT_EQ(link_->get(&FakeLinkState::opens), 1) << "retried before its back-off";
  clock_.advance(std::chrono::milliseconds(1001));
  ASSERT_TRUE(eventually([&] { return link_->get(&FakeLinkState::opens) == 2; }));
  link_->push(event(NodeLink::Event::Kind::kEstablished));
  ASSERT_TRUE(eventually([&] { return link_->sent_tokens().size() == 5; }));
  EXPECT_EQ(link_->sent_tokens(), (std::vector<std::string>{"a", "b", "a", "b", "c"}));
  EXPECT_TRUE(host_->rows_for("a").empty());
  worker->stop();
}

// A refusal that hands back frames (an SSH host key or password refused): those get their KO
// rows too, beside the frames still held.
TEST_F(WorkerLinkTest, ARefusalKosTheFramesTheLinkHandsBack) {
  hand_back_on_refusal_ = true;
  auto worker = make_fake_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("a", "2~~2");
  turns();
  link_->push(event(NodeLink::Event::Kind::kEstablished));
  ASSERT_TRUE(eventually([&] { return link_->sent_tokens().size() == 1; }));
  link_->push(event(NodeLink::Event::Kind::kRefused, "password refused"));
  ASSERT_TRUE(eventually([&] { return !host_->rows_for("a").empty(); }));
  EXPECT_TRUE(contains(only_ko("a"), "Send message problem for '2': password refused")) << only_ko("a");
  worker->stop();
}

// A node registered again with new connection settings gets a new link; the frames held for
// it keep their place and go, in order, on the new one.
TEST_F(WorkerLinkTest, ReRegisteringANodeKeepsItsHeldFrames) {
  link_->open_ok = false;
  auto worker = make_fake_worker();
  worker->start();
  ASSERT_TRUE(ready());
  add_node("2", 1);
  command("a", "2~~2");
  command("b", "2~~2");
  turns();
  link_->open_ok = true;
  add_node("2", 2);  // another port: the session is recreated
  turns();
  EXPECT_TRUE(host_->logged("[proxy] Recreate session for 2")) << host_->all_logs();
  link_->push(event(NodeLink::Event::Kind::kEstablished));
  ASSERT_TRUE(eventually([&] { return link_->sent_tokens().size() == 2; })) << host_->all_logs();
  EXPECT_EQ(link_->sent_tokens(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(host_->rows_for("a").empty());
  worker->stop();
}

}  // namespace
}  // namespace gorgone::proxy
