// Log synchronisation from nodes that answer GETLOG with what a real poller may send but our
// own never would: text that is not UTF-8 (a Perl poller passes a command's Latin-1 output
// through), NUL characters, absurd ctimes, pages larger than the central accepts. The node
// is played in-process (FakeNode) so that each answer is exactly the one under test. In
// every case the odd row costs itself at most, never the rows after it.
#include <gtest/gtest.h>

#include <mutex>

#include "fake_node.hpp"
#include "fleet.hpp"

namespace gorgone::testing {
namespace {

using gorgone_test::PgValue;

// The history a FakeNode serves: rows as JSON objects (raw text, so that a test can put in
// them what a JSON writer would refuse), each with its ctime; GETLOG {"ctime": c} answers
// the rows above c, oldest first, at most `page` of them.
class ScriptedLog {
 public:
  void add(double ctime, const std::string& row_json) {
    std::lock_guard<std::mutex> lock(mutex_);
    rows_.emplace_back(ctime, row_json);
  }
  void set_page(std::size_t page) {
    std::lock_guard<std::mutex> lock(mutex_);
    page_ = page;
  }
  // The GETLOG answer for `frame` from node `id`, or nullopt for another frame.
  std::optional<std::vector<std::string>> answer(const std::string& id, const protocol::Frame& frame) {
    if (frame.action != "GETLOG") return std::nullopt;
    json::Document d;
    double cursor = 0;
    if (json::parse(d, frame.data) && d.IsObject() && d.HasMember("ctime") && d["ctime"].IsNumber())
      cursor = d["ctime"].GetDouble();
    std::lock_guard<std::mutex> lock(mutex_);
    std::string result;
    std::size_t n = 0;
    bool more = false;
    for (const auto& [ctime, row] : rows_) {
      if (ctime <= cursor) continue;
      if (n == page_) {
        more = true;
        break;
      }
      result += (n++ ? "," : "") + row;
    }
    return std::vector<std::string>{protocol::build_response(
        "ACK", frame.token, 0,
        R"({"action":"getlog","result":[)" + result + "]" + (more ? R"(,"more":true)" : "") + R"(,"id":)" +
            json::quote(id) + "}")};
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<double, std::string>> rows_;
  std::size_t page_ = 100;
};

// One history row as a poller sends it; `data_json` is pasted as the JSON value of "data".
std::string Row(const std::string& token, double ctime, const std::string& data_json, int code = 0) {
  char c[64];
  std::snprintf(c, sizeof c, "%.17g", ctime);
  return R"({"id":"1","token":)" + json::quote(token) + R"(,"code":)" + std::to_string(code) +
         R"(,"etime":1700000000,"ctime":)" + c + R"(,"instant":0,"data":)" + data_json + "}";
}

class LogSyncHostile : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::cerr << fleet_.logs();
  }

  // A central (id 1) that knows the fake node "2"; waits until it is pinged.
  void start(const std::string& core_directives = "") {
    fleet_.declare(HostSpec{"1"});
    node_ = std::make_unique<FakeNode>("2", std::vector<std::string>{fleet_.thumbprint("1")}, dir_ + "/node2",
                                       [this](const protocol::Frame& f) { return log_.answer("2", f); });
    HostSpec central{"1", false, {}, true, HostSpec::kProxyDirectives,
                     "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                         std::to_string(node_->port()) + "\n",
                     true};
    central.core_directives = core_directives;
    fleet_.declare(central);
    fleet_.start("1");
    ASSERT_TRUE(eventually([&] {
      auto cs = fleet_.constatus("1");
      return cs.HasMember("data") && cs["data"].HasMember("2") && cs["data"]["2"]["ping_ok"].GetInt64() > 0;
    })) << "the central never got a pong from the fake node";
  }

  std::string central(const std::string& sql) { return PgValue(fleet_.db("1"), sql); }
  long count(const std::string& token) {
    return std::stol(central("SELECT count(*) FROM gorgone_history WHERE token = '" + token + "'"));
  }
  bool arrives(const std::string& token) {
    return eventually([&] { return count(token) > 0; });
  }

  std::string dir_ = make_temp_dir("gorgone-fake");
  Fleet fleet_;
  ScriptedLog log_;
  std::unique_ptr<FakeNode> node_;
};

TEST_F(LogSyncHostile, RowsOfAFakeNodeArriveOnce) {
  start();
  log_.add(1700000000.5, Row("plain-1", 1700000000.5, R"("{\"n\":1}")"));
  ASSERT_TRUE(arrives("plain-1"));
  log_.add(1700000001.5, Row("plain-2", 1700000001.5, R"("{\"n\":2}")"));
  ASSERT_TRUE(arrives("plain-2"));
  EXPECT_EQ(count("plain-1"), 1);
  EXPECT_EQ(count("plain-2"), 1);
  bool getlog = false;
  for (const auto& f : node_->received()) getlog = getlog || f.action == "GETLOG";
  EXPECT_TRUE(getlog);
}

}  // namespace
}  // namespace gorgone::testing
