// Frame parser and builders against frames_and_getlog.json and proxy_frames.json.

#include "gorgone/protocol/frame.hpp"

#include <chrono>

#include <gtest/gtest.h>

#include "vectors.hpp"

namespace gorgone::protocol {
namespace {

using test::str;

TEST(FrameVectors, ParseLikeTheCore) {
  rapidjson::Document doc;
  ASSERT_TRUE(test::load_vectors("frames_and_getlog.json", &doc));
  const auto& cases = doc["frame_parse"];
  ASSERT_GE(cases.Size(), 11u);
  for (const auto& c : cases.GetArray()) {
    std::string text = str(c, "frame");
    SCOPED_TRACE(text);
    auto frame = parse_frame(text);
    ASSERT_EQ(frame.has_value(), c["parse_ok"].GetBool());
    if (!frame) continue;
    EXPECT_EQ(frame->action, str(c, "action"));
    EXPECT_EQ(frame->token, str(c, "token"));
    EXPECT_EQ(frame->target, str(c, "target"));
    EXPECT_EQ(frame->data, str(c, "data"));
  }
}

TEST(FrameVectors, BuildLikeBuildProtocol) {
  rapidjson::Document doc;
  ASSERT_TRUE(test::load_vectors("frames_and_getlog.json", &doc));
  const auto& cases = doc["build_protocol"];
  ASSERT_GE(cases.Size(), 3u);
  for (const auto& c : cases.GetArray()) {
    const auto& args = c["args"];
    std::string data;
    if (test::has(args, "raw_data")) data = str(args, "raw_data");
    else if (test::has(args, "data")) data = test::dump(args["data"]);
    EXPECT_EQ(build_frame(str(args, "action"), str(args, "token"), str(args, "target"), data), str(c, "out"));
  }
}

// Every recorded request frame parses, and rebuilding it gives the same bytes.
TEST(FrameVectors, RecordedProxyFramesRoundTrip) {
  rapidjson::Document doc;
  ASSERT_TRUE(test::load_vectors("proxy_frames.json", &doc));
  std::vector<std::string> frames;
  for (const char* group : {"internal_core_side", "external_core_side_pull"})
    for (const auto& m : doc[group].GetObject())
      if (m.value.IsString()) frames.emplace_back(m.value.GetString(), m.value.GetStringLength());
  for (const auto& m : doc["hooks_to_worker"].GetObject()) frames.push_back(str(m.value, "frame"));
  for (const char* group : {"wire_central_to_remote", "wire_central_to_pull"})
    for (const auto& m : doc[group].GetObject())
      for (const auto& msg : m.value.GetArray()) frames.push_back(str(msg, "plaintext"));
  ASSERT_GT(frames.size(), 30u);
  for (const auto& text : frames) {
    SCOPED_TRACE(text);
    if (text.rfind("[ACK]", 0) == 0 || text.rfind("[KEY]", 0) == 0) {
      EXPECT_FALSE(parse_frame(text).has_value());  // responses carry no target
      continue;
    }
    auto frame = parse_frame(text);
    ASSERT_TRUE(frame.has_value());
    EXPECT_FALSE(frame->action.empty());
    if (text.find("] { ") == std::string::npos) {
      EXPECT_EQ(build_frame(*frame), text);
    }
  }
}

TEST(FrameVectors, ResponsesMatchTheRecordedReplies) {
  rapidjson::Document doc;
  ASSERT_TRUE(test::load_vectors("proxy_frames.json", &doc));
  int checked = 0;
  for (const auto& ex : doc["edge_case_replies_from_a_poller"]["exchanges"].GetArray()) {
    std::string reply = str(ex, "reply");
    std::string request = str(ex, "request");
    auto request_frame = parse_frame(request);
    // "[TYPE] [TOKEN] " then optionally "[] " then {"code":..,"data":..}
    std::size_t type_end = reply.find(']');
    std::size_t token_end = reply.find(']', type_end + 1);
    if (reply[0] != '[' || token_end == std::string::npos) continue;
    std::string type = reply.substr(1, type_end - 1);
    if (type == "PUBKEY" || type == "KEY") continue;
    std::string token = reply.substr(type_end + 3, token_end - type_end - 3);
    std::string rest = reply.substr(token_end + 2);
    bool extra = rest.rfind("[] ", 0) == 0;
    EXPECT_EQ(extra, type == "PONG" || type == "SYNCLOGS") << reply;
    if (extra) rest = rest.substr(3);
    rapidjson::Document json;
    json.Parse(rest.data(), rest.size());
    ASSERT_FALSE(json.HasParseError()) << reply;
    std::string built = build_response(type, token, json["code"].GetInt(), test::dump(json["data"]));
    SCOPED_TRACE(built);
    EXPECT_EQ(built.substr(0, built.find('{')), reply.substr(0, reply.find('{')));
    EXPECT_TRUE(test::same_json(built.substr(built.find('{')), reply.substr(reply.find('{'))));
    if (request_frame && !request_frame->token.empty() && type != "ACK") {
      EXPECT_EQ(token, request_frame->token);
    }
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

TEST(Frame, ParserFollowsPerlBacktracking) {
  // ACTION is the shortest text for which the rest matches, so it can hold "]".
  auto odd = parse_frame("[A]x] [t] [] {}");
  ASSERT_TRUE(odd.has_value());
  EXPECT_EQ(odd->action, "A]x");
  EXPECT_EQ(odd->token, "t");

  auto target_bracket = parse_frame("[A] [t] [x]y] {}");
  ASSERT_TRUE(target_bracket.has_value());
  EXPECT_EQ(target_bracket->target, "x]y");

  // Newlines separate parts but cannot appear inside them.
  auto lines = parse_frame("[PING]\n[tok]\r\n[]\f\v{}\nmore");
  ASSERT_TRUE(lines.has_value());
  EXPECT_EQ(lines->token, "tok");
  EXPECT_EQ(lines->data, "{}\nmore");
  EXPECT_FALSE(parse_frame("[PING] [to\nk] [] {}").has_value());
  EXPECT_FALSE(parse_frame("[PI\nNG] [] [] {}").has_value());
  EXPECT_FALSE(parse_frame("[PING] [] [ta\nrget] {}").has_value());

  auto spaces = parse_frame("[PING] [] []     {\"a\": 1}  ");
  ASSERT_TRUE(spaces.has_value());
  EXPECT_EQ(spaces->data, "{\"a\": 1}  ");

  EXPECT_FALSE(parse_frame("").has_value());
  EXPECT_FALSE(parse_frame("[").has_value());
  EXPECT_FALSE(parse_frame("[PING][][] {}").has_value());
  EXPECT_FALSE(parse_frame(" [PING] [] [] {}").has_value());
  EXPECT_TRUE(parse_frame("[PING] [] [] ").has_value());
}

TEST(Frame, HostileInputsStayLinear) {
  std::string many;
  for (int i = 0; i < 200000; ++i) many += "[a] ";
  std::string no_space = std::string("[") + std::string(4 << 20, 'A');
  std::string brackets(4 << 20, ']');
  brackets[0] = '[';
  std::string separators;
  for (int i = 0; i < 300000; ++i) separators += "] [";
  separators = "[x" + separators;

  auto start = std::chrono::steady_clock::now();
  auto m = parse_frame(many);
  ASSERT_TRUE(m.has_value());  // "[a] [a] [a] " then data
  EXPECT_EQ(m->action, "a");
  EXPECT_EQ(m->data.size(), many.size() - 12);
  EXPECT_FALSE(parse_frame(no_space).has_value());
  EXPECT_FALSE(parse_frame(brackets).has_value());
  auto seps = parse_frame(separators);
  ASSERT_TRUE(seps.has_value());
  EXPECT_EQ(seps->action, "x");
  EXPECT_EQ(seps->token, "");
  std::string almost = many.substr(0, many.size() - 1) + "]";  // no space after the last "]"
  EXPECT_TRUE(parse_frame(almost).has_value());
  std::string nodata;
  for (int i = 0; i < 100000; ++i) nodata += "[a]]";
  EXPECT_FALSE(parse_frame(nodata).has_value());
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(std::chrono::duration_cast<std::chrono::seconds>(elapsed).count(), 5);
}

TEST(Frame, BuildFrame) {
  EXPECT_EQ(build_frame("PING", "", "", ""), "[PING] [] [] {}");
  EXPECT_EQ(build_frame(Frame{"COMMAND", "tok", "2~~2", "[]"}), "[COMMAND] [tok] [2~~2] []");
  auto back = parse_frame(build_frame("GETLOG", "t", "3", "{\"ctime\":0}"));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->data, "{\"ctime\":0}");
}

TEST(Frame, BuildResponseTypes) {
  EXPECT_EQ(build_response("ACK", "tok", 0, ""), "[ACK] [tok] {\"code\":0,\"data\":null}");
  EXPECT_EQ(build_response("ACK", "", 1, "{\"message\":\"request not well formatted\"}"),
            "[ACK] [] {\"code\":1,\"data\":{\"message\":\"request not well formatted\"}}");
  EXPECT_EQ(build_response("PONG", "t", 0, "{}"), "[PONG] [t] [] {\"code\":0,\"data\":{}}");
  EXPECT_EQ(build_response("SYNCLOGS", "", 0, "{\"id\":\"4\"}"), "[SYNCLOGS] [] [] {\"code\":0,\"data\":{\"id\":\"4\"}}");
  // The reference's unanchored alternation: "starts with PONG" or "ends with SYNCLOGS".
  EXPECT_EQ(build_response("PONGRESET", "t", 0, "null"), "[PONGRESET] [t] [] {\"code\":0,\"data\":null}");
  EXPECT_EQ(build_response("XSYNCLOGS", "t", 0, "null"), "[XSYNCLOGS] [t] [] {\"code\":0,\"data\":null}");
  EXPECT_EQ(build_response("CONSTATUS", "t", 2, "{}"), "[CONSTATUS] [t] {\"code\":2,\"data\":{}}");
  EXPECT_EQ(build_response("SETLOGS", "t", 0, "{}"), "[SETLOGS] [t] {\"code\":0,\"data\":{}}");
  // PONG replies parse as requests (that is why the extra "[]" exists).
  auto pong = parse_frame(build_response("PONG", "tok", 0, "{}"));
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->token, "tok");
  EXPECT_EQ(pong->target, "");
}

TEST(Frame, Tokens) {
  std::string t = generate_token();
  EXPECT_EQ(t.size(), 128u);
  EXPECT_EQ(t.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(generate_token(12).size(), 24u);
  EXPECT_NE(generate_token(), generate_token());
  EXPECT_TRUE(is_safe_token(t));
  EXPECT_TRUE(is_safe_token("tok-foobar_1"));
  EXPECT_TRUE(is_safe_token(std::string(256, 'a')));
  EXPECT_FALSE(is_safe_token(std::string(257, 'a')));
  EXPECT_FALSE(is_safe_token(""));
  EXPECT_FALSE(is_safe_token("../etc"));
  EXPECT_FALSE(is_safe_token("a/b"));
  EXPECT_FALSE(is_safe_token("a b"));
  EXPECT_FALSE(is_safe_token(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace gorgone::protocol
