// Line logger: "YYYY-MM-DD HH:MM:SS - <severity> - <message>", to stderr or a file.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

#include "gorgone/module.hpp"

namespace gorgone {

class Logger {
 public:
  static Logger& instance();
  // Opens `path` for appending; empty path logs to stderr. Returns false on failure.
  bool open(const std::string& path);
  // Opens the same file again (after logrotate moved it). Returns false on failure, and then
  // keeps writing to the file it had.
  bool reopen();
  void set_severity(Severity s) { min_.store(s, std::memory_order_relaxed); }
  static bool parse_severity(const std::string& text, Severity& out);
  // One line per call: control characters in `message` (a peer's text may hold newlines that
  // would forge lines) are written escaped, as \n, \t or \xNN.
  void log(Severity s, std::string_view message);
  bool enabled(Severity s) const { return s >= min_.load(std::memory_order_relaxed); }

 private:
  std::mutex mu_;
  FILE* out_ = stderr;
  std::string path_;
  std::atomic<Severity> min_{Severity::kInfo};
};

inline void log_info(std::string_view m) { Logger::instance().log(Severity::kInfo, m); }
inline void log_error(std::string_view m) { Logger::instance().log(Severity::kError, m); }
inline void log_debug(std::string_view m) { Logger::instance().log(Severity::kDebug, m); }
inline void log_warning(std::string_view m) { Logger::instance().log(Severity::kWarning, m); }

}  // namespace gorgone
