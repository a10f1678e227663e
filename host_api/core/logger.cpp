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
    if (out_ != stderr) std::fclose(out_);
    out_ = stderr;
    path_.clear();
    return true;
  }
  FILE* f = std::fopen(path.c_str(), "ae");
  if (!f) return false;
  setvbuf(f, nullptr, _IOLBF, 0);
  if (out_ != stderr) std::fclose(out_);
  out_ = f;
  path_ = path;
  return true;
}

bool Logger::reopen() {
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (path_.empty()) return true;
    path = path_;
  }
  return open(path);
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
  if (!enabled(s)) return;
  static const char* names[] = {"debug", "info", "notice", "warning", "error"};
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  localtime_r(&tv.tv_sec, &t);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &t);
  std::string line;
  line.reserve(message.size() + 48);
  line.append(stamp).append(" - ").append(names[static_cast<int>(s)]).append(" - ");
  for (char ch : message) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f) {
      line.push_back(ch);
    } else if (c == '\n') {
      line.append("\\n");
    } else if (c == '\t') {
      line.append("\\t");
    } else {
      static const char hex[] = "0123456789abcdef";
      line.append("\\x").push_back(hex[c >> 4]);
      line.push_back(hex[c & 15]);
    }
  }
  line.push_back('\n');
  std::lock_guard<std::mutex> lock(mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace gorgone
