// Test support: the history a FakeNode serves to GETLOG, scripted by a test (rows as raw
// JSON text, so that a test can put in them what a JSON writer would refuse), and one row
// as a poller writes it.
// Thread-safety: ScriptedLog may be filled by the test while the node's thread answers.
#pragma once

#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gorgone/json.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/response.hpp"

namespace gorgone::testing {

// The history a FakeNode serves: rows as JSON objects (raw text, so that a test can put in
// them what a JSON writer would refuse), each with its ctime; GETLOG {"ctime": c} answers
// the rows above c, oldest first, at most `page` of them.
class ScriptedLog {
 public:
  void add(double ctime, const std::string& row_json) {
    std::lock_guard<std::mutex> lock(mutex_);
    rows_.emplace_back(ctime, row_json);
  }
  void set_page(std::size_t page) {
    std::lock_guard<std::mutex> lock(mutex_);
    page_ = page;
  }
  // The GETLOG answer for `frame` from node `id`, or nullopt for another frame.
  std::optional<std::vector<std::string>> answer(const std::string& id, const protocol::Frame& frame) {
    if (frame.action != "GETLOG") return std::nullopt;
    json::Document d;
    double cursor = 0;
    if (json::parse(d, frame.data) && d.IsObject() && d.HasMember("ctime") && d["ctime"].IsNumber())
      cursor = d["ctime"].GetDouble();
    std::lock_guard<std::mutex> lock(mutex_);
    std::string result;
    std::size_t n = 0;
    bool more = false;
    for (const auto& [ctime, row] : rows_) {
      if (ctime <= cursor) continue;
      if (n == page_) {
        more = true;
        break;
      }
      result += (n++ ? "," : "") + row;
    }
    return std::vector<std::string>{protocol::build_response(
        "ACK", frame.token, 0,
        R"({"action":"getlog","result":[)" + result + "]" + (more ? R"(,"more":true)" : "") + R"(,"id":)" +
            json::quote(id) + "}")};
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<double, std::string>> rows_;
  std::size_t page_ = 100;
};

// One history row as a poller sends it; `data_json` is pasted as the JSON value of "data".
std::string Row(const std::string& token, double ctime, const std::string& data_json, int code = 0) {
  char c[64];
  std::snprintf(c, sizeof c, "%.17g", ctime);
  return R"({"id":"1","token":)" + json::quote(token) + R"(,"code":)" + std::to_string(code) +
         R"(,"etime":1700000000,"ctime":)" + c + R"(,"instant":0,"data":)" + data_json + "}";
}

}  // namespace gorgone::testing
