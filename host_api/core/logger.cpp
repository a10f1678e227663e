#include "logger.hpp"

#include <ctime>
#include <sys/time.h>

namespace gorgone {

Logger& Logger::instance() {
  static Logger logger;
  return logger;
}

bool Logger::open(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (path.empty()) {
    out_ = stderr;
    return true;
  }
  FILE* f = std::fopen(path.c_str(), "a");
  if (!f) return false;
  setvbuf(f, nullptr, _IOLBF, 0);
  if (out_ != stderr) std::fclose(out_);
  out_ = f;
  return true;
}

bool Logger::parse_severity(const std::string& text, Severity& out) {
  if (text == "debug") out = Severity::kDebug;
  else if (text == "info") out = Severity::kInfo;
  else if (text == "notice") out = Severity::kNotice;
  else if (text == "warning") out = Severity::kWarning;
  else if (text == "error") out = Severity::kError;
  else return false;
  return true;
}

void Logger::log(Severity s, std::string_view message) {
  if (s < min_) return;
  static const char* names[] = {"debug", "info", "notice", "warning", "error"};
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  localtime_r(&tv.tv_sec, &t);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &t);
  std::lock_guard<std::mutex> lock(mu_);
  std::fprintf(out_, "%s - %s - %.*s\n", stamp, names[static_cast<int>(s)], static_cast<int>(message.size()),
               message.data());
  std::fflush(out_);
}

}  // namespace gorgone
