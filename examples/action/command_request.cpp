#include "command_request.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "gorgone/json.hpp"
#include "gorgone/status_codes.hpp"
#include "gorgone/utf8.hpp"

namespace gorgone::action {
namespace {

using json::Value;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// std::regex matches recursively: a very long subject can exhaust the stack, so longer
// commands are refused when the whitelist is on.
constexpr std::size_t kMaxWhitelistedCommand = 8192;

// Gorgone's backtick() answer when it kills a command at the timeout.
constexpr const char* kTimeoutText = "Command too long to execute (timeout)...";

// ---- settings

Result<double> parse_timeout(const YAML::Node& node) {
  if (!node || node.IsNull()) return 30.0;
  std::string text = node.IsScalar() ? node.Scalar() : std::string();
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v) || v <= 0)
    return make_error("command_timeout must be a positive number of seconds, got '" + text + "'");
  return v;
}

// A whole number of `name` in [min, max]; the default when the key is absent or null.
Result<std::size_t> parse_count(const YAML::Node& node, const char* name, std::size_t fallback, std::size_t min,
                                std::size_t max) {
  if (!node || node.IsNull()) return fallback;
  std::string text = node.IsScalar() ? node.Scalar() : std::string("<not a scalar>");
  bool digits = !text.empty() && text.size() <= 9 &&
                std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  std::size_t v = digits ? std::stoul(text) : 0;
  if (!digits || v < min || v > max)
    return make_error(std::string(name) + " must be a whole number from " + std::to_string(min) + " to " +
                      std::to_string(max) + ", got '" + text + "'");
  return v;
}

// Gorgone tests the value with /true|1/i.
bool parse_flag(const YAML::Node& node) {
  if (!node || !node.IsScalar()) return false;
  std::string v = node.Scalar();
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v.find("true") != std::string::npos || v.find('1') != std::string::npos;
}

// ---- request decoding

const Value* member(const Value& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

// Perl's ref() of the decoded value, for Gorgone's "expected array, found '...'" text.
const char* perl_ref(const Value* v) {
  if (v && v->IsObject()) return "HASH";
  if (v && v->IsArray()) return "ARRAY";
  return "";
}

// Finds the list of commands in any accepted shape; builds a one-element list in `holder`
// when the request names a single command. Returns null (and sets `why`) otherwise.
const Value* find_content(json::Document& doc, Value& holder, std::string& why) {
  const Value* candidate = &doc;
  if (doc.IsObject() && doc.HasMember("content")) candidate = &doc["content"];
  if (candidate->IsArray()) return candidate;
  if (candidate->IsObject() && candidate->HasMember("command")) {
    holder.SetArray();
    holder.PushBack(Value(*candidate, doc.GetAllocator()), doc.GetAllocator());
    return &holder;
  }
  why = std::string("expected array, found '") + perl_ref(doc.IsObject() ? member(doc, "content") : &doc) + "'";
  return nullptr;
}

// Perl numification for `continue_on_error == 0`: false, 0 and non-numeric text are 0.
bool perl_zero(const Value& v) {
  if (v.IsBool()) return !v.GetBool();
  if (v.IsNumber()) return v.GetDouble() == 0;
  if (v.IsString()) return std::strtod(v.GetString(), nullptr) == 0;
  return false;  // null: not defined in Perl terms
}

int instant_flag(const json::Document& doc) {
  const Value* v = member(doc, "instant");
  if (!v) return 0;
  if (v->IsBool()) return v->GetBool() ? 1 : 0;
  auto n = json::as_number(*v);
  return n && *n != 0 ? 1 : 0;
}

// A command's own timeout when it is a positive number, else the module's default.
// (Perl's alarm() would treat 0 or garbage as "no timeout"; we never run unbounded.)
std::chrono::milliseconds command_timeout(const Value& entry, const ActionSettings& settings) {
  double seconds = settings.command_timeout;
  if (const Value* t = member(entry, "timeout")) {
    auto n = json::as_number(*t);
    if (n && std::isfinite(*n) && *n > 0) seconds = *n;
  }
  return std::chrono::milliseconds(static_cast<long long>(std::min(seconds, 1e9) * 1000));
}

// ---- history rows

struct Metrics {
  std::time_t start = 0;
  std::time_t end = 0;
};

void write_null_or(Writer& w, const Value* v) {
  if (v)
    v->Accept(w);
  else
    w.Null();
}

// The "result" ({exit_code, stdout}) and "metrics" ({start, end, duration}) members of a
// command's row.
void write_result(Writer& w, int exit_code, std::string_view stdout_text, const Metrics& m) {
  w.Key("result");
  w.StartObject();
  w.Key("exit_code");
  w.Int(exit_code);
  w.Key("stdout");
  w.String(stdout_text.data(), static_cast<rapidjson::SizeType>(stdout_text.size()));
  w.EndObject();
  w.Key("metrics");
  w.StartObject();
  w.Key("start");
  w.Int64(m.start);
  w.Key("end");
  w.Int64(m.end);
  w.Key("duration");
  w.Int64(m.end - m.start);
  w.EndObject();
}

std::string command_started_row(const Value& entry) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("message");
  w.String("command has started");
  w.Key("command");
  write_null_or(w, member(entry, "command"));
  w.Key("metadata");
  write_null_or(w, member(entry, "metadata"));
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

std::string command_result_row(const char* message, const Value& entry, int exit_code, const std::string& stdout_text,
                               const Metrics& m) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("message");
  w.String(message);
  w.Key("command");
  write_null_or(w, member(entry, "command"));
  w.Key("metadata");
  write_null_or(w, member(entry, "metadata"));
  write_result(w, exit_code, stdout_text, m);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

std::string processing_started_row(const Value& content) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("message");
  w.String("commands processing has started");
  w.Key("request_content");
  content.Accept(w);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

// Gorgone joins chomped lines with "\n": the output loses exactly one final newline.
std::string stdout_text(std::string output) {
  if (!output.empty() && output.back() == '\n') output.pop_back();
  return sanitize_utf8(output);
}

// ---- running

// A command line often carries passwords (monitoring plugins take them as arguments): logs
// above debug name its first word only; the whole line goes to debug, as Gorgone does.
std::string command_label(const std::string& command) {
  std::size_t start = command.find_first_not_of(" \t");
  if (start == std::string::npos) return std::string();
  std::size_t end = command.find_first_of(" \t\n", start);
  std::string word = command.substr(start, std::min<std::size_t>(end == std::string::npos ? command.size() - start : end - start, 64));
  bool more = end != std::string::npos && command.find_first_not_of(" \t\n", end) != std::string::npos;
  return more ? word + " ..." : word;
}

void log_command(const Output& out, Severity severity, const std::string& command, const std::string& what) {
  out.write_log(severity, "[action] command '" + command_label(command) + "' " + what);
  out.write_log(Severity::kDebug, "[action] command line: " + command);
}

// Checks every entry before anything runs, as Gorgone does. Returns false after writing
// the KO row.
bool validate(const Value& content, const ActionSettings& settings, const Output& out) {
  for (rapidjson::SizeType i = 0; i < content.Size(); ++i) {
    const std::string index = std::to_string(i);
    const Value* cmd = member(content[i], "command");
    auto text = cmd ? json::as_text(*cmd) : std::nullopt;
    if (!text || text->empty()) {
      out.row(code::kActionFinishKo, json::message("need command argument at array index '" + index + "'"));
      return false;
    }
    if (!command_allowed(settings, *text)) {
      log_command(out, Severity::kInfo, *text, "not allowed (whitelist)");
      out.row(code::kActionFinishKo, json::message("command not allowed (whitelist) at array index '" + index + "'"));
      return false;
    }
  }
  return true;
}

enum class Step { kOk, kError, kStop };

// Runs one entry and writes its rows.
Step run_one(const Value& entry, const ActionSettings& settings, const Output& out, int instant,
             const std::atomic<bool>* abort) {
  const std::string command = *json::as_text(entry["command"]);
  out.row(code::kActionBegin, command_started_row(entry));

  CommandOptions options;
  options.timeout = command_timeout(entry, settings);
  options.output_cap = settings.output_cap;
  options.abort = abort;
  Metrics m;
  m.start = std::time(nullptr);
  CommandResult r = run_shell_command(command, options);
  m.end = std::time(nullptr);
  if (r.truncated)
    log_command(out, Severity::kWarning, command, "output truncated to " + std::to_string(settings.output_cap) + " bytes");

  // Like Gorgone, a non-zero exit status is still a finished command (code 100): only a
  // command that could not run to its end is an error.
  if (r.completed()) {
    out.row(code::kCommandResult,
            command_result_row("command has finished successfully", entry, r.exit_code, stdout_text(r.output), m),
            instant);
    return Step::kOk;
  }
  std::string why = r.outcome == CommandResult::Outcome::kTimedOut ? kTimeoutText
                    : r.outcome == CommandResult::Outcome::kAborted
                        ? "Command aborted (the action module is stopping)"
                        : r.error;
  log_command(out, Severity::kError, command, "failed: " + why);
  out.row(code::kActionFinishKo, command_result_row("command execution issue", entry, -1, sanitize_utf8(why), m));
  return r.outcome == CommandResult::Outcome::kAborted ? Step::kStop : Step::kError;
}

// Gorgone's ACTIONENGINE issue row: like a command's, without metadata.
std::string engine_issue_row(const std::string& command, const std::string& why, const Metrics& m) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("message");
  w.String("command execution issue");
  w.Key("command");
  w.String(command.data(), static_cast<rapidjson::SizeType>(command.size()));
  write_result(w, -1, why, m);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace

std::size_t ActionSettings::default_command_concurrency() {
  std::size_t cores = std::thread::hardware_concurrency();
  return std::min<std::size_t>(std::max<std::size_t>(4, 2 * cores), 32);
}

Result<ActionSettings> parse_settings(const YAML::Node& config) {
  ActionSettings s;
  if (!config || !config.IsMap()) return s;
  auto timeout = parse_timeout(config["command_timeout"]);
  if (!timeout) return make_error(timeout.error());
  s.command_timeout = *timeout;
  s.whitelist_cmds = parse_flag(config["whitelist_cmds"]);
  s.paranoid_plugins = parse_flag(config["paranoid_plugins"]);
  auto concurrency = parse_count(config["command_concurrency"], "command_concurrency", s.command_concurrency, 1, 256);
  if (!concurrency) return make_error(concurrency.error());
  s.command_concurrency = *concurrency;
  auto waiting = parse_count(config["command_queue"], "command_queue", s.command_queue, 0, 100000);
  if (!waiting) return make_error(waiting.error());
  s.command_queue = *waiting;
  auto engines = parse_count(config["max_concurrent_engine"], "max_concurrent_engine", s.max_concurrent_engine, 1, 256);
  if (!engines) return make_error(engines.error());
  s.max_concurrent_engine = *engines;
  // A security switch: anything but a plain boolean is an error, not a guess.
  if (const YAML::Node keep = config["keep_setid"]; keep && !keep.IsNull()) {
    std::string v = keep.IsScalar() ? keep.Scalar() : std::string("<not a scalar>");
    std::string lower = v;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower == "true" || lower == "yes" || lower == "1") s.keep_setid = true;
    else if (lower == "false" || lower == "no" || lower == "0") s.keep_setid = false;
    else return make_error("keep_setid must be true or false, got '" + v + "'");
  }

  const YAML::Node allowed = config["allowed_cmds"];
  if (allowed && !allowed.IsNull() && !allowed.IsSequence()) return make_error("allowed_cmds must be a list of regular expressions");
  if (allowed && allowed.IsSequence()) {
    for (const auto& item : allowed) {
      if (!item.IsScalar()) return make_error("allowed_cmds entries must be strings");
      try {
        s.allowed_cmds.emplace_back(item.Scalar(), std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return make_error("allowed_cmds: invalid regular expression '" + item.Scalar() + "': " + e.what());
      }
      s.allowed_patterns.push_back(item.Scalar());
    }
  }
  return s;
}

bool command_allowed(const ActionSettings& settings, const std::string& command) {
  if (!settings.whitelist_cmds) return true;
  if (command.size() > kMaxWhitelistedCommand) return false;
  for (const auto& re : settings.allowed_cmds) {
    try {
      if (std::regex_search(command, re)) return true;
    } catch (const std::regex_error&) {
      // complexity or stack limits: treat as no match
    }
  }
  return false;
}

void run_command_request(std::string_view data, const ActionSettings& settings, const Output& out,
                         const std::atomic<bool>* abort) {
  json::Document doc;
  std::string parse_error;
  if (!json::parse(doc, data, &parse_error)) {
    out.write_log(Severity::kError, "[action] cannot decode json: " + parse_error);
    out.row(code::kActionFinishKo, json::message("cannot decode json"));
    return;
  }
  Value holder;
  std::string why;
  const Value* content = find_content(doc, holder, why);
  if (!content) {
    out.row(code::kActionFinishKo, json::message(why));
    return;
  }
  if (!validate(*content, settings, out)) return;

  out.row(code::kActionBegin, processing_started_row(*content));
  const int instant = instant_flag(doc);
  bool errors = false;
  for (const auto& entry : content->GetArray()) {
    Step step = run_one(entry, settings, out, instant, abort);
    if (step == Step::kOk) continue;
    const Value* coe = member(entry, "continue_on_error");
    if (step == Step::kStop || (coe && perl_zero(*coe))) {
      out.row(code::kActionFinishKo, json::message("commands processing has been interrupted because of error"));
      return;
    }
    errors = true;
  }
  if (errors)
    out.row(code::kActionFinishKo, json::message("commands processing has finished with errors"));
  else
    out.row(code::kActionFinishOk, json::message("commands processing has finished successfully"));
}

void run_engine_request(std::string_view data, const ActionSettings& settings, const Output& out,
                        const std::atomic<bool>* abort) {
  json::Document doc;
  std::string parse_error;
  if (!json::parse(doc, data, &parse_error)) {
    out.write_log(Severity::kError, "[action] ACTIONENGINE: cannot decode json: " + parse_error);
    out.row(code::kActionFinishKo, json::message("cannot decode json"));
    return;
  }
  const Value* content = member(doc, "content");
  if (!content || content->IsNull() || (content->IsString() && content->GetStringLength() == 0)) {
    out.row(code::kActionFinishKo, json::message("no content"));
    return;
  }
  // One command in an object, as Centreon sends it; anything else names no command.
  const Value* cmd = member(*content, "command");
  auto text = cmd ? json::as_text(*cmd) : std::nullopt;
  if (!text || text->empty()) {
    out.write_log(Severity::kError, "[action] ACTIONENGINE refused: the request names no command");
    out.row(code::kActionFinishKo, json::message("need valid command argument"));
    return;
  }
  const std::string command = *text;
  if (!command_allowed(settings, command)) {
    log_command(out, Severity::kError, command, "not allowed (whitelist)");
    out.row(code::kActionFinishKo, json::message("command not allowed (whitelist)"));
    return;
  }
  // Gorgone installs the plugins the file lists before the command; this module does not.
  if (const Value* plugins = member(*content, "plugins"); plugins && !plugins->IsNull()) {
    auto file = json::as_text(*plugins);
    if (!file || !file->empty()) {
      if (settings.paranoid_plugins) {
        out.write_log(Severity::kError, "[action] ACTIONENGINE refused: plugins cannot be validated by this module "
                                        "and paranoid_plugins is set");
        out.row(code::kActionFinishKo, json::message("validate plugins - not supported by this module"));
        return;
      }
      out.write_log(Severity::kInfo, "[action] ACTIONENGINE: plugins file not validated (not supported by this module)");
    }
  }

  // Gorgone runs it with the module's timeout; a request's own timeout is not read.
  CommandOptions options;
  options.timeout = std::chrono::milliseconds(static_cast<long long>(std::min(settings.command_timeout, 1e9) * 1000));
  options.output_cap = settings.output_cap;
  options.abort = abort;
  Metrics m;
  m.start = std::time(nullptr);
  CommandResult r = run_shell_command(command, options);
  m.end = std::time(nullptr);
  if (r.completed()) {
    if (r.exit_code != 0)
      log_command(out, Severity::kWarning, command, "(ACTIONENGINE) exited with status " + std::to_string(r.exit_code));
    out.row(code::kActionFinishOk, json::message("actionengine has finished successfully"));
    return;
  }
  std::string why = r.outcome == CommandResult::Outcome::kTimedOut ? kTimeoutText
                    : r.outcome == CommandResult::Outcome::kAborted
                        ? "Command aborted (the action module is stopping)"
                        : r.error;
  log_command(out, Severity::kError, command, "(ACTIONENGINE) failed: " + why);
  out.row(code::kActionFinishKo, engine_issue_row(command, sanitize_utf8(why), m));
}

std::string sanitize_utf8(std::string_view in) {
  // NUL is valid here: the JSON writer escapes it as \u0000.
  std::string out;
  out.reserve(in.size());
  for (std::size_t from = 0;;) {
    std::size_t nul = in.find('\0', from);
    out += utf8::sanitize(in.substr(from, nul == std::string_view::npos ? std::string_view::npos : nul - from));
    if (nul == std::string_view::npos) return out;
    out += '\0';
    from = nul + 1;
  }
}

}  // namespace gorgone::action
