// REMOTECOPY as a worker sends it: the PROCESSCOPY series goes out pipelined, at most a
// window of messages unanswered, answers retiring them in order, nothing interleaving with
// it; a lost session sends the unanswered chunks again first, a closed one abandons the
// series with a KO row. A fake link stands for the node (as in worker_test.cpp), a fake
// host records rows and logs, an inproc ROUTER stands for the core.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/status_codes.hpp"
#include "memory_history.hpp"
#include "eventually.hpp"
#include "recording_host.hpp"
#include "worker.hpp"

namespace gorgone::proxy {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using gorgone::testing::eventually;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class CopyHost : public gorgone::testing::RecordingHost {
 public:
  explicit CopyHost(std::string endpoint) : RecordingHost(&history_, CoreInfo{"1", "central", "", "", endpoint, "always"}) {}
  test::MemoryHistory history_;
};

// The node's transport: records what it is given and the most it ever held in flight; the
// test answers frames (each answer retires the oldest) and loses or closes the session.
struct LinkState {
  std::mutex mu;
  bool open = false, established = false;
  int opens = 0;
  std::vector<NodeLink::Frame> sent;
  std::deque<NodeLink::Frame> in_flight;
  std::size_t most_in_flight = 0;
  std::size_t answered = 0;  // answers the worker read
  std::deque<NodeLink::Event> events;
  int fds[2] = {-1, -1};

  LinkState() { ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds); }
  ~LinkState() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  void push(NodeLink::Event::Kind kind, std::string reason = "") {
    NodeLink::Event ev;
    ev.kind = kind;
    ev.reason = std::move(reason);
    if (kind == NodeLink::Event::Kind::kResponse) ev.response = {"ACK", "", R"({"code":0,"data":{}})"};
    {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(std::move(ev));
    }
    char b = 1;
    (void)!::write(fds[1], &b, 1);
  }
  std::size_t sent_count() {
    std::lock_guard<std::mutex> lock(mu);
    return sent.size();
  }
  std::size_t in_flight_count() {
    std::lock_guard<std::mutex> lock(mu);
    return in_flight.size();
  }
  std::vector<NodeLink::Frame> sent_frames() {
    std::lock_guard<std::mutex> lock(mu);
    return sent;
  }
  std::size_t most() {
    std::lock_guard<std::mutex> lock(mu);
    return most_in_flight;
  }
  std::size_t answered_count() {
    std::lock_guard<std::mutex> lock(mu);
    return answered;
  }
  int open_count() {
    std::lock_guard<std::mutex> lock(mu);
    return opens;
  }
};

class Link : public NodeLink {
 public:
  explicit Link(std::shared_ptr<LinkState> s) : s_(std::move(s)) {}
  bool is_open() const override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->open;
  }
  bool open(Clock::time_point) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    ++s_->opens;
    s_->open = true;
    s_->established = false;
    return true;
  }
  void close() override {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->open = s_->established = false;
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
    s_->sent.push_back(frame);
    s_->in_flight.push_back(frame);
    s_->most_in_flight = std::max(s_->most_in_flight, s_->in_flight.size());
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
    } else if (ev.kind == Kind::kResponse && !s_->in_flight.empty()) {
      s_->in_flight.pop_front();
      ++s_->answered;
    } else if (ev.kind == Kind::kLost) {
      ev.unanswered = std::move(s_->in_flight);
      s_->in_flight.clear();
      s_->open = s_->established = false;
    }
    return ev;
  }
  std::optional<Clock::time_point> deadline() const override { return std::nullopt; }
  const std::deque<Frame>& in_flight() const override { return s_->in_flight; }

 private:
  std::shared_ptr<LinkState> s_;
};

// One PROCESSCOPY message, read back.
struct Message {
  std::string status;  // inprogress | end
  std::string bytes;   // the chunk, decoded
  std::string md5;
};

Message read_message(const NodeLink::Frame& f) {
  Message m;
  auto frame = protocol::parse_frame(f.text);
  EXPECT_TRUE(frame) << f.text.substr(0, 200);
  if (!frame) return m;
  EXPECT_EQ(frame->action, "PROCESSCOPY");
  json::Document d;
  EXPECT_TRUE(json::parse(d, frame->data));
  const json::Value& c = d["content"];
  m.status = c["status"].GetString();
  if (c["chunk"].IsObject()) m.bytes = protocol::base64_decode_lenient(c["chunk"]["data"].GetString());
  if (c["md5"].IsString()) m.md5 = c["md5"].GetString();
  return m;
}

std::string md5_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_md5(), nullptr);
  return protocol::to_hex(std::string(reinterpret_cast<char*>(digest), len));
}

class CopyWindow : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "gorgone-copywin-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    static int n = 0;
    std::string endpoint = "inproc://copy-window-core-" + std::to_string(++n);
    host_ = std::make_unique<CopyHost>(endpoint);
    core_ = std::make_unique<zmq::socket_t>(host_->context_, zmq::socket_type::router);
    core_->set(zmq::sockopt::linger, 0);
    core_->set(zmq::sockopt::router_mandatory, 1);
    core_->bind(endpoint);
    // 40 chunks of 64 bytes and a short last one.
    std::mt19937 rng(7);
    for (int i = 0; i < 40 * 64 + 10; ++i) content_.push_back(static_cast<char>(rng()));
    std::ofstream(dir_ + "/file.bin", std::ios::binary) << content_;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << host_->all_logs();
    worker_.reset();
    core_.reset();
    fs::remove_all(dir_);
  }

  void start_worker() {
    Settings settings;
    settings.buffer_size = 64;
    worker_ = std::make_unique<Worker>(1, *host_, settings, "1");
    worker_->set_link_factory(
        [this](const std::string&, const json::Value&) { return std::make_unique<Link>(link_); });
    worker_->start();
    ASSERT_TRUE(ready());
    send("PROXYADDNODE", "", "2~~2", R"({"id":"2","type":"push_zmq","address":"127.0.0.1","port":1})");
  }
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
  void remote_copy(const std::string& token) {
    send("REMOTECOPY", token, "2~~2",
         R"({"content":{"source":")" + dir_ + R"(/file.bin","destination":"/tmp/dst","cache_dir":"/tmp"}})");
  }
  void command(const std::string& token) { send("COMMAND", token, "2~~2", R"({"content":[{"command":"true"}]})"); }
  // Everything sent before it was handled (a frame for an unknown node gets its KO row).
  bool barrier() {
    static int n = 0;
    std::string token = "barrier-" + std::to_string(++n);
    send("COMMAND", token, "99~~99", R"({"content":[{"command":"true"}]})");
    return eventually([&] { return !host_->rows_for(token).empty(); });
  }
  // Answers the oldest frame in flight and waits until the worker went on.
  void answer_one() {
    std::size_t before = link_->answered_count();
    link_->push(NodeLink::Event::Kind::kResponse);
    ASSERT_TRUE(eventually([&] { return link_->answered_count() > before; }));
    ASSERT_TRUE(barrier());
  }

  std::string dir_, content_;
  std::unique_ptr<CopyHost> host_;
  std::unique_ptr<zmq::socket_t> core_;
  std::shared_ptr<LinkState> link_ = std::make_shared<LinkState>();
  std::unique_ptr<Worker> worker_;
};

constexpr std::size_t kWindow = 16;     // worker.cpp's kCopyWindowFrames
constexpr std::size_t kMessages = 42;   // 41 chunks and the end message

// The whole series is never put in flight at once: the worker stops at the window and each
// answer lets exactly one more message go, until the `end` message; reassembled, the chunks
// are the file and the end message carries its MD5.
TEST_F(CopyWindow, ASeriesNeverHasMoreThanTheWindowInFlight) {
  start_worker();
  remote_copy("copy-1");
  ASSERT_TRUE(barrier());
  link_->push(NodeLink::Event::Kind::kEstablished);
  ASSERT_TRUE(eventually([&] { return link_->sent_count() == kWindow; }));
  ASSERT_TRUE(barrier());
  EXPECT_EQ(link_->sent_count(), kWindow) << "more than the window went before any answer";
  for (std::size_t i = 0; link_->sent_count() < kMessages; ++i) {
    ASSERT_LT(i, kMessages) << "the series stalled at " << link_->sent_count();
    std::size_t before = link_->sent_count();
    answer_one();
    EXPECT_EQ(link_->sent_count(), before + 1) << "one answer, one more message";
  }
  EXPECT_EQ(link_->most(), kWindow);
  std::string reassembled;
  auto frames = link_->sent_frames();
  ASSERT_EQ(frames.size(), kMessages);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    Message m = read_message(frames[i]);
    EXPECT_EQ(m.status, i + 1 < frames.size() ? "inprogress" : "end") << i;
    reassembled += m.bytes;
    if (i + 1 == frames.size()) {
      EXPECT_EQ(m.md5, md5_hex(content_));
    }
  }
  EXPECT_EQ(reassembled, content_);
  EXPECT_TRUE(host_->rows_for("copy-1").empty()) << "a series sent whole writes no row on this side";
}

// Nothing interleaves with a series: a COMMAND posted after the REMOTECOPY goes once the
// `end` message went, whatever the window allowed meanwhile.
TEST_F(CopyWindow, AFrameBehindASeriesWaitsForItsEndMessage) {
  start_worker();
  remote_copy("copy-2");
  command("cmd-after");
  ASSERT_TRUE(barrier());
  link_->push(NodeLink::Event::Kind::kEstablished);
  ASSERT_TRUE(eventually([&] { return link_->sent_count() == kWindow; }));
  while (link_->sent_count() < kMessages + 1) {
    ASSERT_EQ(link_->sent_frames().back().token, "copy-2") << "a frame went into the series";
    answer_one();
  }
  auto frames = link_->sent_frames();
  EXPECT_EQ(read_message(frames[kMessages - 1]).status, "end");
  EXPECT_EQ(frames.back().token, "cmd-after");
  EXPECT_EQ(frames.back().action, "COMMAND");
}

// A lost session hands back the unanswered messages: on the next session they go first, in
// order, then the rest of the series, still within the window; what the node answered is
// not sent again, so the node's file, appended chunk by chunk, is the source.
TEST_F(CopyWindow, ALostSessionSendsTheUnansweredChunksAgainFirst) {
  start_worker();
  remote_copy("copy-3");
  ASSERT_TRUE(barrier());
  link_->push(NodeLink::Event::Kind::kEstablished);
  ASSERT_TRUE(eventually([&] { return link_->sent_count() == kWindow; }));
  for (int i = 0; i < 3; ++i) answer_one();  // chunks 0..2 ran on the node; 3 more went
  ASSERT_EQ(link_->sent_count(), kWindow + 3);
  link_->push(NodeLink::Event::Kind::kLost, "decrypt failed");
  ASSERT_TRUE(eventually([&] { return link_->open_count() == 2; }));
  ASSERT_TRUE(barrier());
  link_->push(NodeLink::Event::Kind::kEstablished);
  ASSERT_TRUE(eventually([&] { return link_->sent_count() == 2 * kWindow + 3; }));
  ASSERT_TRUE(barrier());
  EXPECT_EQ(link_->sent_count(), 2 * kWindow + 3) << "the window holds after a resend";
  while (link_->in_flight_count() > 0) answer_one();
  auto frames = link_->sent_frames();
  // What the node ran: the first session's three answered chunks, then the second session's.
  std::vector<NodeLink::Frame> ran(frames.begin(), frames.begin() + 3);
  ran.insert(ran.end(), frames.begin() + kWindow + 3, frames.end());
  ASSERT_EQ(ran.size(), kMessages);
  std::string reassembled;
  for (const auto& f : ran) reassembled += read_message(f).bytes;
  EXPECT_EQ(reassembled, content_);
  EXPECT_EQ(read_message(ran.back()).md5, md5_hex(content_));
  EXPECT_LE(link_->most(), kWindow);
  EXPECT_TRUE(host_->rows_for("copy-3").empty());
  EXPECT_TRUE(host_->logged("[proxy] node '2': session lost (decrypt failed); reconnecting, 16 unanswered frame(s) "
                            "sent again"))
      << host_->all_logs();
}

// A session closed with messages of a series in flight forgets them: the node may have some
// or none, so the series cannot be completed. It gets a KO row and no `end` message is ever
// sent (the node installs nothing); the frames behind it go on the next session.
TEST_F(CopyWindow, ASessionClosedMidSeriesKosTheSeriesAndNeverSendsItsEnd) {
  start_worker();
  remote_copy("copy-4");
  command("cmd-after");
  ASSERT_TRUE(barrier());
  link_->push(NodeLink::Event::Kind::kEstablished);
  ASSERT_TRUE(eventually([&] { return link_->sent_count() == kWindow; }));
  answer_one();
  send("PROXYCLOSECONNECTION", "", "2~~2", R"({"id":"2"})");
  ASSERT_TRUE(eventually([&] { return !host_->rows_for("copy-4").empty(); }));
  auto rows = host_->rows_for("copy-4");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].code, code::kActionFinishKo);
  EXPECT_TRUE(contains(rows[0].data, "Send message problem for '2': remote copy failed: the session with node '2' "
                                       "was closed with 16 chunk(s) unanswered"))
      << rows[0].data;
  EXPECT_TRUE(host_->logged("[proxy] node '2': session closed with 16 PROCESSCOPY message(s) unanswered; copy to '2' "
                            "abandoned"))
      << host_->all_logs();
  ASSERT_TRUE(eventually([&] { return link_->open_count() == 2; }));
  link_->push(NodeLink::Event::Kind::kEstablished);
  ASSERT_TRUE(eventually([&] { return link_->sent_frames().back().token == "cmd-after"; }));
  ASSERT_TRUE(barrier());
  for (const auto& f : link_->sent_frames()) {
    if (f.token == "copy-4") {
      EXPECT_EQ(read_message(f).status, "inprogress");
    }
  }
  EXPECT_EQ(link_->sent_count(), kWindow + 1 + 1);
}

// A directory: the series is taken from the copy's archiver as it produces, within the
// window; the archive arrives whole, with its MD5.
TEST_F(CopyWindow, ADirectoryIsStreamedFromItsArchiverWithinTheWindow) {
  fs::create_directories(dir_ + "/tree/sub");
  std::ofstream(dir_ + "/tree/a.bin", std::ios::binary) << content_;
  std::ofstream(dir_ + "/tree/sub/b.cfg") << "beta\n";
  start_worker();
  send("REMOTECOPY", "copy-5", "2~~2",
       R"({"content":{"source":")" + dir_ + R"(/tree","destination":"/tmp/dst","cache_dir":"/tmp"}})");
  ASSERT_TRUE(barrier());
  link_->push(NodeLink::Event::Kind::kEstablished);
  ASSERT_TRUE(eventually([&] { return link_->sent_count() == kWindow; }));
  std::string archive;
  std::string md5;
  for (int i = 0; md5.empty(); ++i) {
    ASSERT_LT(i, 10000);
    answer_one();
    auto frames = link_->sent_frames();
    Message m = read_message(frames.back());
    if (m.status == "end") md5 = m.md5;
  }
  while (link_->in_flight_count() > 0) answer_one();
  for (const auto& f : link_->sent_frames()) archive += read_message(f).bytes;
  EXPECT_EQ(static_cast<unsigned char>(archive[0]), 0x1f);  // gzip
  EXPECT_EQ(md5, md5_hex(archive));
  EXPECT_LE(link_->most(), kWindow);
}

}  // namespace
}  // namespace gorgone::proxy
