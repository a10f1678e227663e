// Where the action module's request handlers report: history rows and log lines. The
// module binds these to the Host; tests bind them to vectors.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "gorgone/module.hpp"

namespace gorgone::action {

struct Output {
  // One history row for the request's token: status code, JSON object text, instant flag.
  std::function<void(int code, const std::string& data_json, int instant)> history;
  std::function<void(Severity severity, std::string_view message)> log;

  void row(int code, const std::string& data_json, int instant = 0) const {
    if (history) history(code, data_json, instant);
  }
  void write_log(Severity severity, std::string_view message) const {
    if (log) log(severity, message);
  }
};

}  // namespace gorgone::action
