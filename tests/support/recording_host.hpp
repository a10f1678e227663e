// Test support: a Host that records what a module asks of it (log lines, history rows,
// frames for the parents) instead of running a core. Tests derive from it to change one
// service (a history store, failures on demand).
//
// history_job runs `work` at once on the caller's thread and queues `done` (or, with
// defer_history_jobs, queues both: a slow database); post queues its job; run_posted() plays the loop and runs what is queued, in order, until nothing is.
// Thread-safety: thread-safe, except run_posted (the test's thread, as the loop).
#pragma once

#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "gorgone/module.hpp"

namespace gorgone::testing {

class RecordingHost : public Host {
 public:
  struct Row {
    std::string token;  // "" when the row has none
    int code;
    std::string data;
  };

  RecordingHost() = default;
  explicit RecordingHost(History* history, CoreInfo info = CoreInfo{"1", "central", "", "", "", "always"})
      : history_(history), info_(std::move(info)) {}

  void log(Severity, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mu_);
    logs_.emplace_back(message);
  }
  History& history() override {
    if (!history_) std::abort();  // the module under test was not expected to need one
    return *history_;
  }
  zmq::context_t& zmq_context() override { return context_; }
  CoreInfo core_info() const override { return info_; }
  bool stopping() const override { return false; }
  void add_history(const std::string* token, int code, std::string_view data, int) override {
    std::lock_guard<std::mutex> lock(mu_);
    rows_.push_back({token ? *token : "", code, std::string(data)});
  }
  void send_internal(std::string_view, const protocol::Frame&) override {}
  Status send_external(const std::string&, const protocol::Frame&) override { return Status::success(); }
  void dispatch(const protocol::Frame&) override {}
  void send_to_parents(const protocol::Frame& frame) override {
    std::lock_guard<std::mutex> lock(mu_);
    parents_.push_back(frame);
  }
  void history_job(std::function<void(History&)> work, std::function<void()> done) override {
    if (defer_history_jobs) {  // the database is slow: nothing happens before run_posted()
      post([this, work = std::move(work), done = std::move(done)] {
        work(history());
        if (done) post(done);
      });
      return;
    }
    work(history());
    if (done) post(std::move(done));
  }
  void post(std::function<void()> job) override {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(job));
  }

  // Runs what history_job and post queued, and what those queue in turn.
  void run_posted() {
    for (;;) {
      std::function<void()> job;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (posted_.empty()) return;
        job = std::move(posted_.front());
        posted_.pop_front();
      }
      job();
    }
  }

  std::vector<Row> rows() {
    std::lock_guard<std::mutex> lock(mu_);
    return rows_;
  }
  std::vector<Row> rows_for(const std::string& token) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Row> out;
    for (const auto& r : rows_)
      if (r.token == token) out.push_back(r);
    return out;
  }
  void clear_rows() {
    std::lock_guard<std::mutex> lock(mu_);
    rows_.clear();
  }
  std::size_t row_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return rows_.size();
  }
  std::vector<protocol::Frame> parents() {
    std::lock_guard<std::mutex> lock(mu_);
    return parents_;
  }
  std::vector<std::string> logs() {
    std::lock_guard<std::mutex> lock(mu_);
    return logs_;
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

  zmq::context_t context_;
  bool defer_history_jobs = false;  // set before the module runs

 protected:
  History* history_ = nullptr;
  CoreInfo info_{"1", "central", "", "", "", "always"};

 private:
  std::mutex mu_;
  std::vector<std::string> logs_;
  std::vector<Row> rows_;
  std::vector<protocol::Frame> parents_;
  std::deque<std::function<void()>> posted_;
};

}  // namespace gorgone::testing
