// Line logger: "YYYY-MM-DD HH:MM:SS - <severity> - <message>", to stderr or a file.
// Thread-safe.
#pragma once

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
  void set_severity(Severity s) { min_ = s; }
  static bool parse_severity(const std::string& text, Severity& out);
  void log(Severity s, std::string_view message);
  bool enabled(Severity s) const { return s >= min_; }

 private:
  std::mutex mu_;
  FILE* out_ = stderr;
  Severity min_ = Severity::kInfo;
};

inline void log_info(std::string_view m) { Logger::instance().log(Severity::kInfo, m); }
inline void log_error(std::string_view m) { Logger::instance().log(Severity::kError, m); }
inline void log_debug(std::string_view m) { Logger::instance().log(Severity::kDebug, m); }

}  // namespace gorgone
