// Where the action module's request handlers report: history rows and log lines. The
// module binds these to the Host; tests bind them to vectors.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "gorgone/module.hpp"
#include "gorgone/utf8.hpp"

namespace gorgone::action {

struct Output {
  // One history row for the request's token: status code, JSON object text, instant flag.
  std::function<void(int code, const std::string& data_json, int instant)> history;
  std::function<void(Severity severity, std::string_view message)> log;

  // The row is made valid UTF-8 first: it repeats parts of the request (the command, its
  // metadata) whose bytes were never checked, and a JSON writer copies ill-formed bytes
  // as they are, which a UTF-8 store refuses (the row would be lost). U+FFFD replaces
  // them; JSON syntax is ASCII and stays intact.
  void row(int code, const std::string& data_json, int instant = 0) const {
    if (!history) return;
    if (utf8::is_clean(data_json)) {
      history(code, data_json, instant);
    } else {
      history(code, utf8::sanitize(data_json), instant);
    }
  }
  void write_log(Severity severity, std::string_view message) const {
    if (log) log(severity, message);
  }
};

}  // namespace gorgone::action
