// json::parse on arbitrary bytes: no crash, no deep recursion anywhere (parse, dump), the
// nesting limit holds for every accepted document, and what it accepts survives a round trip.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "gorgone/json.hpp"

namespace {

std::size_t depth_of(const gorgone::json::Value& v) {
  // Iterative on purpose: the property checked is that no recursion is needed anywhere.
  std::size_t deepest = 0;
  std::vector<std::pair<const gorgone::json::Value*, std::size_t>> todo{{&v, 0}};
  while (!todo.empty()) {
    auto [value, depth] = todo.back();
    todo.pop_back();
    if (value->IsArray()) {
      deepest = std::max(deepest, depth + 1);
      for (const auto& e : value->GetArray()) todo.emplace_back(&e, depth + 1);
    } else if (value->IsObject()) {
      deepest = std::max(deepest, depth + 1);
      for (const auto& m : value->GetObject()) todo.emplace_back(&m.value, depth + 1);
    }
  }
  return deepest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  gorgone::json::Document doc;
  std::string error;
  bool ok = gorgone::json::parse(doc, text, &error);
  FUZZ_CHECK(ok == error.empty());
  if (!ok) return 0;
  FUZZ_CHECK(depth_of(doc) <= gorgone::json::kMaxDepth);
  std::string dumped = gorgone::json::dump(doc);
  gorgone::json::Document again;
  FUZZ_CHECK(gorgone::json::parse(again, dumped, &error));
  FUZZ_CHECK(gorgone::json::dump(again) == dumped);
  return 0;
}
