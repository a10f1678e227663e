// The action example module's request lanes (request_pool.hpp) with the real COMMAND,
// ACTIONENGINE and PROCESSCOPY handlers, without loading the module: requests run side by
// side, a copy never waits behind a command, the bounds give KO rows, and stopping ends
// every thread (killing running commands on kill). Order of rows only, never timings.
#include <cerrno>
#include <chrono>
#include <csignal>
#include <functional>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <mutex>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

#include "command_request.hpp"
#include "gorgone/json.hpp"
#include "process_copy.hpp"
#include "request_pool.hpp"
#include "proc_stats.hpp"

namespace gorgone::action {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Row {
  int code;
  std::string message;
};

// Rows per token, written by several runner threads at once.
class Rows {
 public:
  Output output(const std::string& token) {
    Output out;
    out.history = [this, token](int code, const std::string& text, int) {
      json::Document d;
      std::string message = json::parse(d, text) && d.IsObject() && d.HasMember("message") && d["message"].IsString()
                                ? d["message"].GetString()
                                : text;
      std::lock_guard<std::mutex> lock(mu_);
      rows_[token].push_back(Row{code, message});
      cv_.notify_all();
    };
    return out;
  }
  std::vector<Row> of(const std::string& token) {
    std::lock_guard<std::mutex> lock(mu_);
    return rows_[token];
  }
  // True once `token` has a row with `code` (false after a minute: the test fails).
  bool wait_for(const std::string& token, int code) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 60s, [&] { return has(token, code); });
  }
  bool has_row(const std::string& token, int code) {
    std::lock_guard<std::mutex> lock(mu_);
    return has(token, code);
  }
  bool finished(const std::string& token) { return has_row(token, 1) || has_row(token, 2); }

 private:
  bool has(const std::string& token, int code) {
    for (const auto& r : rows_[token])
      if (r.code == code) return true;
    return false;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<Row>> rows_;
};

bool wait_until(const std::function<bool()>& probe) {
  for (int i = 0; i < 600; ++i) {
    if (probe()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return probe();
}

bool dead(pid_t pid) { return gorgone::testing::process_gone(pid); }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string command(const std::string& cmd) { return R"({"content":[{"command":)" + json::quote(cmd) + "}]}"; }
std::string engine(const std::string& cmd) { return R"({"content":{"command":)" + json::quote(cmd) + "}}"; }

class RequestPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "gorgone-pool-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (pool_) pool_->stop(/*kill_running=*/true);
    pool_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void make_pool(PoolLimits limits) {
    pool_ = std::make_unique<RequestPool>(
        limits,
        [this](const Request& r, const std::atomic<bool>* abort) {
          if (r.action == "ACTIONENGINE")
            run_engine_request(r.data, settings_, rows_.output(r.token), abort);
          else
            run_command_request(r.data, settings_, rows_.output(r.token), abort);
        },
        [this](const Request& r, const std::atomic<bool>*) { copier_.handle(r.token, r.data, rows_.output(r.token)); },
        [this](const Request& r, const std::string& message) {
          rows_.output(r.token).row(1, json::message(message));
        });
    ASSERT_TRUE(pool_->start());
  }
  Status push(const std::string& action, const std::string& token, const std::string& data) {
    return pool_->push(Request{action, token, data});
  }
  // A command that writes its shell's pid to <dir>/<name>.pid, then becomes `sleep 60`.
  std::string sleeper(const std::string& name) {
    return "echo $$ > " + (dir_ / (name + ".pid")).string() + "; exec sleep 60";
  }
  pid_t pid_of(const std::string& name) {
    fs::path p = dir_ / (name + ".pid");
    std::string text;
    if (!wait_until([&] { return !(text = read_text(p)).empty() && text.back() == '\n'; })) return -1;
    return static_cast<pid_t>(std::stol(text));
  }

  fs::path dir_;
  ActionSettings settings_;
  ProcessCopy copier_;
  Rows rows_;
  std::unique_ptr<RequestPool> pool_;
};

TEST_F(RequestPoolTest, ALaterCommandFinishesWhileASlowOneStillRuns) {
  make_pool(PoolLimits{4, 10, 3, 1u << 20});
  ASSERT_TRUE(push("COMMAND", "slow", command(sleeper("slow"))));
  ASSERT_TRUE(push("COMMAND", "quick", command("echo quick")));
  ASSERT_TRUE(rows_.wait_for("quick", 2));
  // The echo has its final row while the sleep has none: it did not wait behind it.
  EXPECT_FALSE(rows_.finished("slow"));
  EXPECT_FALSE(rows_.has_row("slow", 100));
  pid_t slow = pid_of("slow");
  ASSERT_GT(slow, 0);
  EXPECT_FALSE(dead(slow));
  auto quick = rows_.of("quick");
  ASSERT_EQ(quick.size(), 4u);  // begin, command started, result, finish: as with one runner
  EXPECT_EQ(quick[0].message, "commands processing has started");
  EXPECT_EQ(quick[1].message, "command has started");
  EXPECT_EQ(quick[2].code, 100);
  EXPECT_EQ(quick[3].message, "commands processing has finished successfully");
}

TEST_F(RequestPoolTest, TheCommandsOfOneRequestStillRunInOrder) {
  make_pool(PoolLimits{4, 10, 3, 1u << 20});
  fs::path trace = dir_ / "trace";
  std::string append = " >> " + trace.string();
  ASSERT_TRUE(push("COMMAND", "seq",
                   R"({"content":[{"command":)" + json::quote("sleep 0.3; echo one" + append) + R"(},{"command":)" +
                       json::quote("echo two" + append) + R"(},{"command":)" + json::quote("echo three" + append) +
                       "}]}"));
  ASSERT_TRUE(rows_.wait_for("seq", 2));
  EXPECT_EQ(read_text(trace), "one\ntwo\nthree\n");
  EXPECT_EQ(rows_.of("seq").size(), 8u);
}

TEST_F(RequestPoolTest, ACopySeriesCompletesWhileEveryRunnerIsBusy) {
  make_pool(PoolLimits{1, 10, 3, 1u << 20});
  ASSERT_TRUE(push("COMMAND", "slow", command(sleeper("slow"))));
  ASSERT_GT(pid_of("slow"), 0);
  // A command waiting for the only runner, and the copy series behind it.
  ASSERT_TRUE(push("COMMAND", "waiting", command("echo waiting")));
  const std::string dest = (dir_ / "copied.txt").string(), cache = dir_.string();
  ASSERT_TRUE(push("PROCESSCOPY", "copy1",
                   R"({"content":{"status":"inprogress","type":"regular","chunk":{"size":5,"data":"aGVsbG8="},"cache_dir":)" +
                       json::quote(cache) + R"(,"destination":)" + json::quote(dest) + "}}"));
  ASSERT_TRUE(push("PROCESSCOPY", "copy1",
                   R"({"content":{"status":"end","type":"regular","md5":"5d41402abc4b2a76b9719d911017c592","cache_dir":)" +
                       json::quote(cache) + R"(,"destination":)" + json::quote(dest) + "}}"));
  ASSERT_TRUE(rows_.wait_for("copy1", 2));
  EXPECT_EQ(read_text(dest), "hello");
  auto copy = rows_.of("copy1");
  ASSERT_EQ(copy.size(), 2u);
  EXPECT_EQ(copy[0].code, 101);
  EXPECT_EQ(copy[1].message, "process copy finished successfully");
  // The commands are where they were: one running, one waiting.
  EXPECT_FALSE(rows_.finished("slow"));
  EXPECT_TRUE(rows_.of("waiting").empty());
}

TEST_F(RequestPoolTest, BeyondTheWaitingBoundARequestGetsAKoRow) {
  make_pool(PoolLimits{1, 1, 3, 1u << 20});
  ASSERT_TRUE(push("COMMAND", "running", command(sleeper("running"))));
  ASSERT_GT(pid_of("running"), 0);  // taken by the runner: the queue is empty again
  ASSERT_TRUE(push("COMMAND", "waiting", command("echo waiting")));
  Status refused = push("COMMAND", "refused", command("echo refused"));
  EXPECT_FALSE(refused);
  EXPECT_NE(refused.message().find("command_queue"), std::string::npos) << refused.message();
  auto rows = rows_.of("refused");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].code, 1);
  EXPECT_EQ(rows[0].message, "action module is busy: 1 requests already wait for a command runner (command_queue)");
  // The waiting request is not lost: it runs once the runner is free.
  EXPECT_TRUE(rows_.of("waiting").empty());
  ::kill(pid_of("running"), SIGKILL);
  EXPECT_TRUE(rows_.wait_for("waiting", 2));
}

TEST_F(RequestPoolTest, EngineRequestsAreBoundedByMaxConcurrentEngine) {
  make_pool(PoolLimits{4, 10, 1, 1u << 20});
  ASSERT_TRUE(push("ACTIONENGINE", "engine1", engine(sleeper("engine1"))));
  ASSERT_GT(pid_of("engine1"), 0);
  EXPECT_FALSE(push("ACTIONENGINE", "engine2", engine("echo again")));
  auto rows = rows_.of("engine2");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].code, 1);
  EXPECT_EQ(rows[0].message, "max_concurrent_engine limit reached (1/1)");
  // Commands are not engine requests.
  ASSERT_TRUE(push("COMMAND", "cmd", command("echo cmd")));
  EXPECT_TRUE(rows_.wait_for("cmd", 2));
  // Once the first one ended, another is accepted.
  ::kill(pid_of("engine1"), SIGKILL);
  ASSERT_TRUE(rows_.wait_for("engine1", 2));
  ASSERT_TRUE(wait_until([&] { return bool(push("ACTIONENGINE", "engine3", engine("echo third"))); }));
  EXPECT_TRUE(rows_.wait_for("engine3", 2));
}

TEST_F(RequestPoolTest, KillStopsEveryRunningCommandAndJoinsTheThreads) {
  make_pool(PoolLimits{3, 10, 3, 1u << 20});
  ASSERT_TRUE(push("COMMAND", "a", command(sleeper("a"))));
  ASSERT_TRUE(push("ACTIONENGINE", "b", engine(sleeper("b"))));
  pid_t a = pid_of("a"), b = pid_of("b");
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  pool_->stop(/*kill_running=*/true);
  EXPECT_EQ(pool_->live_threads(), 0);
  EXPECT_TRUE(dead(a));
  EXPECT_TRUE(dead(b));
  auto ra = rows_.of("a");
  ASSERT_EQ(ra.size(), 4u);
  EXPECT_EQ(ra[2].message, "command execution issue");
  EXPECT_EQ(ra[3].message, "commands processing has been interrupted because of error");
  auto rb = rows_.of("b");
  ASSERT_EQ(rb.size(), 1u);
  EXPECT_EQ(rb[0].code, 1);
  EXPECT_EQ(rb[0].message, "command execution issue");
  // No child left behind, running or zombie.
  int status;
  errno = 0;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  // Refused from now on, with a row.
  EXPECT_FALSE(push("COMMAND", "late", command("echo late")));
  ASSERT_EQ(rows_.of("late").size(), 1u);
  EXPECT_EQ(rows_.of("late")[0].message, "action module is not running");
}

TEST_F(RequestPoolTest, GentlyFinishesTheRequestInHandAndRefusesTheWaitingOnes) {
  make_pool(PoolLimits{1, 10, 3, 1u << 20});
  fs::path go = dir_ / "go", started = dir_ / "started";
  ASSERT_TRUE(push("COMMAND", "in-hand",
                   command("touch " + started.string() + "; while [ ! -e " + go.string() +
                           " ]; do sleep 0.05; done; echo finished")));
  ASSERT_TRUE(wait_until([&] { return fs::exists(started); }));
  ASSERT_TRUE(push("COMMAND", "waiting", command("echo never")));
  pool_->request_stop();
  EXPECT_GT(pool_->live_threads(), 0);  // the runner still has its request
  std::ofstream(go.string()) << "";
  ASSERT_TRUE(wait_until([&] { return pool_->live_threads() == 0; }));
  auto done = rows_.of("in-hand");
  ASSERT_EQ(done.size(), 4u);
  EXPECT_EQ(done[3].code, 2);
  auto dropped = rows_.of("waiting");
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].code, 1);
  EXPECT_EQ(dropped[0].message, "action module is stopping: request not processed");
  // And it starts again.
  ASSERT_TRUE(pool_->start());
  ASSERT_TRUE(push("COMMAND", "again", command("echo again")));
  EXPECT_TRUE(rows_.wait_for("again", 2));
}

TEST_F(RequestPoolTest, ManyRequestsAtOnceEachGetTheirRows) {
  make_pool(PoolLimits{4, 100, 3, 1u << 20});
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(push("COMMAND", "t" + std::to_string(i), command("echo " + std::to_string(i))));
  for (int i = 0; i < 40; ++i) {
    std::string token = "t" + std::to_string(i);
    ASSERT_TRUE(rows_.wait_for(token, 2)) << token;
    auto rows = rows_.of(token);
    ASSERT_EQ(rows.size(), 4u) << token;
    EXPECT_EQ(rows[2].code, 100);
  }
}

}  // namespace
}  // namespace gorgone::action
