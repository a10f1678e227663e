// An in-memory History for the proxy's unit tests: only what the proxy asks of it (rows are
// accepted and dropped; server fingerprints are kept), with failures on demand.
// Thread-safe, as History requires: a worker thread and the test read it at once.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gorgone/history.hpp"

namespace gorgone::proxy::test {

class MemoryHistory : public History {
 public:
  Result<std::int64_t> add(const HistoryRow&) override { return std::int64_t{0}; }
  Result<std::vector<HistoryRow>> getlog(const GetlogFilter&) override { return std::vector<HistoryRow>{}; }
  Result<double> sync_position(const std::string&) override { return 0.0; }
  Status store_synced(const std::string&, const std::vector<HistoryRow>&, double) override { return Status::success(); }
  Status save_identity(const IdentityRow&) override { return Status::success(); }
  Status touch_identity(const std::string&, std::int64_t) override { return Status::success(); }
  Result<std::vector<IdentityRow>> load_identities() override { return std::vector<IdentityRow>{}; }

  Result<std::optional<std::string>> target_fingerprint(const std::string& target) override {
    if (fail_fingerprint > 0) {
      --fail_fingerprint;
      throw std::runtime_error("history unavailable");
    }
    if (refuse_fingerprint) return make_error("history: no database");
    std::lock_guard<std::mutex> lock(mu_);
    auto it = fingerprints_.find(target);
    if (it == fingerprints_.end()) return std::optional<std::string>{};
    return std::optional<std::string>{it->second};
  }
  Status add_target_fingerprint(const std::string& target, const std::string& fingerprint) override {
    if (refuse_add) return Status::failure("history: no database");
    std::lock_guard<std::mutex> lock(mu_);
    fingerprints_[target] = fingerprint;
    return Status::success();
  }

  std::optional<std::string> stored(const std::string& target) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = fingerprints_.find(target);
    return it == fingerprints_.end() ? std::nullopt : std::optional<std::string>{it->second};
  }
  std::size_t stored_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return fingerprints_.size();
  }

  std::atomic<int> fail_fingerprint{0};        // the next n lookups throw
  std::atomic<bool> refuse_fingerprint{false};  // lookups fail with an error
  std::atomic<bool> refuse_add{false};          // storing a fingerprint fails

 private:
  std::mutex mu_;
  std::map<std::string, std::string> fingerprints_;
};

}  // namespace gorgone::proxy::test
