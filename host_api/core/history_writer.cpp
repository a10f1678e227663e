#include "history_writer.hpp"

#include <ctime>
#include <string>
#include <utility>

#include "logger.hpp"

namespace gorgone {

HistoryWriter::HistoryWriter(History& store, std::function<void()> wake, std::size_t max_rows)
    : store_(store), wake_(std::move(wake)), max_rows_(max_rows) {}

HistoryWriter::~HistoryWriter() { stop(); }

void HistoryWriter::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_ || thread_.joinable()) return;
  stopping_ = false;
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void HistoryWriter::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  running_ = false;
}

bool HistoryWriter::add(HistoryRow row) {
  if (row.etime == 0) row.etime = static_cast<std::int64_t>(std::time(nullptr));
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (running_) {
      if (queued_rows_ >= max_rows_) {
        ++stats_.rows_dropped;
        ++dropped_since_log_;
        auto now = std::chrono::steady_clock::now();
        if (now - last_drop_log_ >= std::chrono::seconds(10)) {
          last_drop_log_ = now;
          std::uint64_t n = dropped_since_log_;
          dropped_since_log_ = 0;
          lock.unlock();
          log_error("[core] history: " + std::to_string(n) + " row(s) not written: " + std::to_string(max_rows_) +
                    " rows already wait for the database");
        }
        return false;
      }
      Entry e;
      e.row = std::move(row);
      queue_.push_back(std::move(e));
      ++queued_rows_;
      lock.unlock();
      cv_.notify_one();
      return true;
    }
  }
  // Not running (before start, after stop): written on the caller's thread.
  std::vector<HistoryRow> one;
  one.push_back(std::move(row));
  write_rows(one);
  return one.empty();
}

void HistoryWriter::job(std::function<void(History&)> work, std::function<void()> done) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (running_) {
      Entry e;
      e.is_row = false;
      e.work = std::move(work);
      e.done = std::move(done);
      queue_.push_back(std::move(e));
      lock.unlock();
      cv_.notify_one();
      return;
    }
  }
  work(store_);
  finish(std::move(done));
}

void HistoryWriter::finish(std::function<void()> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.jobs_run;
  }
  if (!done) return;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_.push_back(std::move(done));
  }
  if (wake_) wake_();
}

void HistoryWriter::run_done() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    ready.swap(done_);
  }
  for (auto& d : ready) d();
}

void HistoryWriter::discard_done() {
  std::vector<std::function<void()>> gone;
  std::lock_guard<std::mutex> lock(done_mu_);
  gone.swap(done_);
}

HistoryWriter::Stats HistoryWriter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s = stats_;
  s.queued = queue_.size();
  return s;
}

// Consecutive rows go in one transaction; a store that is down keeps them (and everything
// queued behind them) waiting, so that the order of rows and jobs never changes.
void HistoryWriter::write_rows(std::vector<HistoryRow>& rows) {
  auto first_failure = std::chrono::steady_clock::now();
  auto pause = std::chrono::milliseconds(100);
  bool logged = false;
  if (gave_up_) {  // stopping with the store down: what is left is lost, and counted
    std::lock_guard<std::mutex> lock(mu_);
    stats_.rows_dropped += rows.size();
    rows.clear();
    return;
  }
  while (!rows.empty()) {
    Status s;
    std::vector<RefusedRow> refused;
    if (rows.size() == 1) {
      auto r = store_.add(rows.front());
      s = r ? Status::success() : Status::failure(r.error());
    } else {
      s = store_.store_synced_reporting("", rows, 0, refused);
    }
    if (s) {
      for (const auto& r : refused)
        log_error("[core] history: a row (token " + rows[r.index].token.value_or("") +
                  ") was refused by the store, a KO row took its place: " + r.reason);
      if (logged) log_info("[core] history: the store is back, " + std::to_string(rows.size()) + " waiting row(s) written");
      std::lock_guard<std::mutex> lock(mu_);
      stats_.rows_written += rows.size();
      rows.clear();
      return;
    }
    auto now = std::chrono::steady_clock::now();
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stopping_;
    }
    // At exit the store gets a few seconds, not a minute per batch.
    const auto limit = stopping ? std::chrono::seconds(5) : kRetryFor;
    if (now - first_failure >= limit) {
      std::size_t lost = rows.size();
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping) lost += queued_rows_;
        stats_.rows_dropped += rows.size();
      }
      log_error("[core] history: " + std::to_string(lost) + " row(s) lost: the store failed for " +
                std::to_string(limit.count()) + " s (" + s.message() + ")");
      rows.clear();
      gave_up_ = stopping;
      return;
    }
    if (!logged) {
      log_error("[core] history: cannot write " + std::to_string(rows.size()) + " row(s), trying again (" +
                s.message() + ")");
      logged = true;
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, pause);  // cut short by stop(), which shortens the retries too
    }
    pause = std::min<std::chrono::milliseconds>(pause * 2, std::chrono::seconds(5));
  }
}

void HistoryWriter::run() {
  std::vector<HistoryRow> rows;
  rows.reserve(64);
  for (;;) {
    Entry job;
    bool have_job = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left
      // The rows at the head of the queue, or the job there.
      while (!queue_.empty() && queue_.front().is_row && rows.size() < kMaxBatch) {
        rows.push_back(std::move(queue_.front().row));
        queue_.pop_front();
        --queued_rows_;
      }
      if (rows.empty()) {
        job = std::move(queue_.front());
        queue_.pop_front();
        have_job = true;
      }
    }
    if (!rows.empty()) {
      write_rows(rows);
      continue;
    }
    if (have_job) {
      job.work(store_);
      job.work = nullptr;
      finish(std::move(job.done));
    }
  }
}

}  // namespace gorgone
