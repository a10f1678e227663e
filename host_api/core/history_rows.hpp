// What every History store does the same way with rows, whatever the database: the local
// ctime clock, the UTF-8 repair of what is stored, and the reason text of a KO row.
// Thread-compatible: a CtimeClock is guarded by its store's lock.
#pragma once

#include <sys/time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gorgone/history.hpp"
#include "gorgone/utf8.hpp"

namespace gorgone::history_rows {

// A fresh local ctime, strictly increasing, in steps of 10 us: an epoch time then has at most
// 15 significant digits, which a Perl parent prints back exactly in its GETLOG {"ctime"}
// (JSON::XS uses 15 digits); with 16 its cursor would be rounded and a row re-sent or skipped
// at every sync. ticks / 1e5 is the double nearest to that decimal, which is also what a
// database stores when given it. Ahead of the clock only past 100 000 rows a second.
class CtimeClock {
 public:
  std::int64_t next_ticks() {
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    std::int64_t ticks = static_cast<std::int64_t>(tv.tv_sec) * 100000 + tv.tv_usec / 10;
    if (ticks <= last_ticks_) ticks = last_ticks_ + 1;
    last_ticks_ = ticks;
    return ticks;
  }
  double next() { return static_cast<double>(next_ticks()) / 1e5; }

 private:
  std::int64_t last_ticks_ = 0;
};

// The row with its text made valid UTF-8 without NUL; nullopt when it is clean already.
inline std::optional<HistoryRow> sanitized(const HistoryRow& row) {
  bool token_clean = !row.token || utf8::is_clean(*row.token);
  if (token_clean && utf8::is_clean(row.data)) return std::nullopt;
  HistoryRow out = row;
  if (out.token) utf8::sanitize_in_place(*out.token);
  utf8::sanitize_in_place(out.data);
  return out;
}

// A page ready to store: `original` itself, or (nearly never) a copy in `storage` with the
// rows that needed it repaired.
inline const std::vector<HistoryRow>& sanitized_page(const std::vector<HistoryRow>& original,
                                                     std::vector<HistoryRow>& storage) {
  storage.clear();
  for (std::size_t i = 0; i < original.size(); ++i) {
    std::optional<HistoryRow> row = sanitized(original[i]);
    if (!row) continue;
    if (storage.empty()) storage = original;
    storage[i] = std::move(*row);
  }
  return storage.empty() ? original : storage;
}

// The reason of a KO row: the database's message, bounded (its detail may quote the row).
inline std::string ko_reason(std::string text) {
  constexpr std::size_t kMax = 512;
  if (text.size() > kMax) {
    text.resize(kMax);
    text += "...";
  }
  utf8::sanitize_in_place(text);  // the cut may split a character
  return text;
}

}  // namespace gorgone::history_rows
