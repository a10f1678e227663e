// Loading of the recorded vectors (GORGONE_VECTORS_DIR) for the protocol tests.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gorgone/protocol/crypto.hpp"

namespace gorgone::protocol::test {

inline std::string vectors_dir() {
  const char* dir = std::getenv("GORGONE_VECTORS_DIR");
  return dir != nullptr ? dir : "tests/vectors";
}

// Parses `<vectors>/<name>` into `doc`; fails the calling test when absent or invalid.
inline ::testing::AssertionResult load_vectors(const std::string& name, rapidjson::Document* doc) {
  std::string path = vectors_dir() + "/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) return ::testing::AssertionFailure() << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  doc->Parse(text.data(), text.size());
  if (doc->HasParseError() || !doc->IsObject()) return ::testing::AssertionFailure() << "invalid JSON in " << path;
  return ::testing::AssertionSuccess();
}

inline std::string str(const rapidjson::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || !it->value.IsString()) return std::string();
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

inline bool has(const rapidjson::Value& obj, const char* name) {
  return obj.IsObject() && obj.FindMember(name) != obj.MemberEnd();
}

inline std::string unhex(std::string_view hex) {
  auto r = from_hex(hex);
  EXPECT_TRUE(r.ok()) << hex;
  return r.ok() ? r.value() : std::string();
}

inline std::string dump(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

// JSON texts compare by value: Gorgone's key order is random.
inline bool same_json(std::string_view a, std::string_view b) {
  rapidjson::Document da, db;
  da.Parse(a.data(), a.size());
  db.Parse(b.data(), b.size());
  return !da.HasParseError() && !db.HasParseError() && da == db;
}

}  // namespace gorgone::protocol::test
