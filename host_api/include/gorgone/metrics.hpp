// Prometheus text exposition format (version 0.0.4), for the host and its modules
// (GET /api/internal/metrics). Label values are escaped as the format requires (a node id is
// text a node or a configuration chose).
// Thread-safety: an object is thread-bound; the functions are reentrant.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace gorgone::metrics {

class Text {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // `type`: "gauge" or "counter". Each family once, before its samples.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ").append(name).append(" ")
        .append(type).append("\n");
  }
  void sample(std::string_view name, Labels labels, double value) {
    out_.append(name);
    if (labels.size() != 0) {
      out_.push_back('{');
      bool first = true;
      for (const auto& [key, val] : labels) {
        if (!first) out_.push_back(',');
        first = false;
        out_.append(key).append("=\"");
        for (char c : val) {
          if (c == '\\') out_.append("\\\\");
          else if (c == '"') out_.append("\\\"");
          else if (c == '\n') out_.append("\\n");
          else out_.push_back(c);
        }
        out_.push_back('"');
      }
      out_.push_back('}');
    }
    char number[40];
    if (std::isnan(value)) std::snprintf(number, sizeof number, " NaN\n");
    else if (value == std::floor(value) && std::fabs(value) < 1e15)
      std::snprintf(number, sizeof number, " %lld\n", static_cast<long long>(value));
    else std::snprintf(number, sizeof number, " %.17g\n", value);
    out_.append(number);
  }
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace gorgone::metrics
