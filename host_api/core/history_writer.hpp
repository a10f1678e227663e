// The host's history thread: every database access the loop would otherwise make goes
// through it, so that routing never waits for PostgreSQL (a slow COPY, a server restart,
// a reconnection that takes its connect_timeout).
//
// One thread, one FIFO. Rows (add) and jobs (job) run in the order they were queued, so a
// GETLOG queued after a row sees that row. Consecutive rows are written in one transaction
// (History::store_synced_reporting without a node: one COPY), up to kMaxBatch at a time.
// A batch the store cannot take (the server is down) is kept and tried again, with a pause
// growing to 5 s, for up to kRetryFor; the queue is bounded (`max_rows` rows): past it,
// new rows are refused and counted, with one log line per 10 s, and the loop goes on.
// A job runs once, whatever happens; its `done` then runs on the loop thread (run_done),
// which `wake` is called to rouse.
//
// Thread-safety: add, job, stats: any thread. run_done: the loop thread only. start/stop:
// the thread that owns the writer.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "gorgone/history.hpp"

namespace gorgone {

class HistoryWriter {
 public:
  static constexpr std::size_t kMaxBatch = 1000;
  static constexpr std::chrono::seconds kRetryFor{60};

  struct Stats {
    std::size_t queued = 0;          // rows and jobs waiting
    std::uint64_t rows_written = 0;  // rows the store took
    std::uint64_t rows_dropped = 0;  // refused (queue full) or given up (store down too long)
    std::uint64_t jobs_run = 0;
  };

  HistoryWriter(History& store, std::function<void()> wake, std::size_t max_rows = 100000);
  ~HistoryWriter();
  HistoryWriter(const HistoryWriter&) = delete;
  HistoryWriter& operator=(const HistoryWriter&) = delete;

  void start();
  // Runs what is queued (a store that is down gets its kRetryFor per batch at most), then
  // joins. Later add/job calls run on the caller's thread.
  void stop();

  // Queues a row; etime is set now when 0 (the time of the event, not of the write).
  // False when the queue is full (the row is lost and counted).
  bool add(HistoryRow row);
  // `work` runs on the history thread after everything queued before it; then `done`
  // (may be empty) runs on the loop thread at its next run_done().
  void job(std::function<void(History&)> work, std::function<void()> done);
  // Loop thread: runs the `done` of every finished job, in order.
  void run_done();
  // Drops the finished jobs' `done` without running them (at exit, before modules unload).
  void discard_done();
  Stats stats() const;

 private:
  struct Entry {
    bool is_row = true;
    HistoryRow row;
    std::function<void(History&)> work;
    std::function<void()> done;
  };
  void run();
  void write_rows(std::vector<HistoryRow>& rows);
  void finish(std::function<void()> done);

  History& store_;
  std::function<void()> wake_;
  const std::size_t max_rows_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;       // guarded by mu_
  std::size_t queued_rows_ = 0;   // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  bool running_ = false;          // guarded by mu_: the thread serves the queue
  std::chrono::steady_clock::time_point last_drop_log_{};  // guarded by mu_
  std::uint64_t dropped_since_log_ = 0;                    // guarded by mu_
  Stats stats_;                   // guarded by mu_ (queued computed)
  bool gave_up_ = false;          // history thread: stopping with the store down
  std::mutex done_mu_;
  std::vector<std::function<void()>> done_;  // guarded by done_mu_
  std::thread thread_;
};

}  // namespace gorgone
