#include "ssh_actions.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <set>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/status_codes.hpp"
#include "gorgone/utf8.hpp"
#include "remote_copy.hpp"

namespace gorgone::proxy {
namespace fs = std::filesystem;
using json::Value;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

namespace {

const Value* member(const Value& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
}

std::string text_of(const Value& obj, const char* name) {
  const Value* v = member(obj, name);
  return v ? json::as_text(*v).value_or("") : "";
}

// Perl's ref() of a request value, for Gorgone's "expected array, found '...'".
const char* perl_ref(const Value* v) {
  if (!v) return "";
  if (v->IsObject()) return "HASH";
  if (v->IsArray()) return "ARRAY";
  return "";
}

// Perl numification for `continue_on_error == 0`.
bool perl_zero(const Value& v) {
  if (v.IsBool()) return !v.GetBool();
  if (v.IsNumber()) return v.GetDouble() == 0;
  if (v.IsString()) return std::strtod(v.GetString(), nullptr) == 0;
  return false;
}

// Gorgone's /(\d+)/ on a timeout: the first run of digits, else the default.
int digits_or(const Value* v, int fallback) {
  if (!v) return fallback;
  if (v->IsNumber()) {
    double d = v->GetDouble();
    return d >= 1 && d < 1e7 ? static_cast<int>(d) : fallback;
  }
  auto text = json::as_text(*v);
  if (!text) return fallback;
  auto start = text->find_first_of("0123456789");
  if (start == std::string::npos) return fallback;
  auto end = text->find_first_not_of("0123456789", start);
  std::string run = text->substr(start, std::min<std::size_t>(7, end == std::string::npos ? text->size() - start : end - start));
  int n = std::stoi(run);
  return n > 0 ? n : fallback;
}

std::string message_with(const std::string& message, const char* key, const std::string& value) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("message");
  w.String(message.c_str(), static_cast<rapidjson::SizeType>(message.size()));
  w.Key(key);
  w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

void write_or_null(Writer& w, const Value* v) {
  if (v)
    v->Accept(w);
  else
    w.Null();
}

void write_text(Writer& w, const std::string& text) {
  std::string clean = utf8::sanitize(text);
  w.String(clean.c_str(), static_cast<rapidjson::SizeType>(clean.size()));
}

// Gorgone's first row of a request that runs commands.
std::string processing_started(const Value& content) {
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

// A request value shown in a message: enough to recognise it, never a flood.
std::string shown(const std::string& v) { return v.size() <= 128 ? v : v.substr(0, 128) + "..."; }

bool has_newline(const std::string& s) { return s.find_first_of("\r\n") != std::string::npos; }

// A local file read by blocks for SshSession::write_file.
struct FileReader {
  int fd;
  long operator()(char* buf, std::size_t size) const {
    for (;;) {
      ssize_t n = ::read(fd, buf, size);
      if (n >= 0 || errno != EINTR) return static_cast<long>(n);
    }
  }
};

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// Owner and group names of a request, as ids of the node (validated names only).
struct Ids {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};
Result<Ids> resolve_ids(SshSession& s, const std::string& owner, const std::string& group) {
  Ids ids;
  if (!owner.empty()) {
    if (!copy_rules::portable_name(owner)) return make_error("owner must be a user name, got '" + shown(owner) + "'");
    auto u = s.user_id(owner);
    if (!u) return make_error(u.error());
    ids.uid = *u;
  }
  if (!group.empty()) {
    if (!copy_rules::portable_name(group)) return make_error("group must be a group name, got '" + shown(group) + "'");
    auto g = s.group_id(group);
    if (!g) return make_error(g.error());
    ids.gid = *g;
  }
  return ids;
}

// Copies the content of local directory `source` under remote `destination`, file by file:
// directories made as needed, each file written under a temporary name then renamed, modes
// kept (`mode` given: for files, as the archive of a ZMQ copy does). Links, devices and
// fifos are skipped. Set-id and sticky bits are never copied.
Status copy_directory(SshSession& s, const std::string& source, const std::string& destination,
                      std::optional<unsigned> mode, const Ids& ids, const std::atomic<bool>* stop,
                      std::size_t& files) {
  Status made = s.make_directories(destination);
  if (!made) return made;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(source, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (stop && stop->load()) return Status::failure("copy abandoned: the SSH link to the node was closed");
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    std::string relative = it->path().lexically_relative(source).string();
    if (relative.empty() || relative == ".") continue;
    std::string remote = destination + (destination.back() == '/' ? "" : "/") + relative;
    if (S_ISDIR(st.st_mode)) {
      Status d = s.make_directories(remote, (st.st_mode & 0777) | 0700);
      if (!d) return d;
    } else if (S_ISREG(st.st_mode)) {
      Fd fd(::open(it->path().c_str(), O_RDONLY | O_CLOEXEC));
      if (fd.fd < 0) return Status::failure("cannot read '" + it->path().string() + "': " + std::strerror(errno));
      Status w = s.write_file(remote, FileReader{fd.fd}, mode.value_or(st.st_mode) & 0777, ids.uid, ids.gid, stop);
      if (!w) return w;
      ++files;
    }
  }
  if (ec) return Status::failure("cannot read directory '" + source + "': " + ec.message());
  return Status::success();
}

}  // namespace

// A PROCESSCOPY series for a node behind this one's parent: chunks land in a private local
// file, checked against the MD5 of the `end` message, then go to the node over SFTP.
struct SshActions::Copy {
  std::string path;  // local temporary file
  int fd = -1;
  EVP_MD_CTX* md5 = nullptr;
  std::uint64_t size = 0;
  // A private temporary file (0600) and a fresh MD5; null when the file cannot be made.
  static std::unique_ptr<Copy> make() {
    auto copy = std::make_unique<Copy>();
    std::string tmpl = (fs::temp_directory_path() / "gorgone-sshcopy-XXXXXX").string();
    copy->fd = ::mkstemp(tmpl.data());
    if (copy->fd < 0) return nullptr;
    copy->path = tmpl;
    copy->md5 = EVP_MD_CTX_new();
    EVP_DigestInit_ex(copy->md5, EVP_md5(), nullptr);
    return copy;
  }
  ~Copy() {
    if (fd >= 0) ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
    if (md5) EVP_MD_CTX_free(md5);
  }
};

SshActions::SshActions(Host& host, std::string node_id) : host_(host), id_(std::move(node_id)) {}
SshActions::~SshActions() = default;

SshActions::Outcome SshActions::run(SshSession& s, const std::string& action, const std::string& token,
                                    const std::string& target, const std::string& data, const RowSink& row,
                                    const std::atomic<bool>* stop) {
  Outcome out;
  if (action == "PING") {
    // A harmless command: the node answers when its sshd runs commands for us.
    ExecResult r = s.exec("hostname", 5, 5, stop);
    out.pong = r.outcome == ExecResult::Outcome::kCompleted;
    if (!out.pong)
      host_.log(Severity::kError, "[proxy] node '" + id_ + "': ping over SSH failed: " +
                                      (r.outcome == ExecResult::Outcome::kTimedOut ? std::string("no answer in 5 s") : r.error));
    out.session_lost = !s.alive();
    return out;
  }
  json::Document d;
  std::string error;
  if (!json::parse(d, data, &error)) {
    host_.log(Severity::kError, "[proxy] node '" + id_ + "': " + action + " ignored: " + error);
    row(code::kActionFinishKo, json::message("proxy - cannot decode json"), 0);
    return out;
  }
  static const Value kNull;
  const Value* content = member(d, "content");
  if (action == "COMMAND") return command(s, content ? *content : kNull, target, row, stop);
  if (action == "ACTIONENGINE") {
    // One command, as Gorgone wraps it (plugin validation is not available over SSH).
    Value list(rapidjson::kArrayType);
    if (content) list.PushBack(Value(*content, d.GetAllocator()), d.GetAllocator());
    return command(s, list, target, row, stop);
  }
  if (action == "ENGINECOMMAND") return enginecommand(s, content ? *content : kNull, target, row);
  if (action == "REMOTECOPY") return remotecopy(s, content ? *content : kNull, target, row, stop);
  if (action == "PROCESSCOPY") return processcopy(s, token, content ? *content : kNull, row, stop);
  host_.log(Severity::kError, "[proxy] node '" + id_ + "': unsupported action '" + action + "' over SSH");
  row(code::kActionFinishKo, json::message("unsupported action"), 0);
  return out;
}

SshActions::Outcome SshActions::command(SshSession& s, const Value& content, const std::string& target,
                                        const RowSink& row, const std::atomic<bool>* stop) {
  Outcome out;
  if (!content.IsArray()) {
    row(code::kActionFinishKo, json::message(std::string("expected array, found '") + perl_ref(&content) + "'"), 0);
    return out;
  }
  for (rapidjson::SizeType i = 0; i < content.Size(); ++i) {
    auto cmd = member(content[i], "command") ? json::as_text(content[i]["command"]) : std::nullopt;
    if (!cmd || cmd->empty()) {
      row(code::kActionFinishKo, json::message("need command argument at array index '" + std::to_string(i) + "'"), 0);
      return out;
    }
  }
  row(code::kActionBegin, processing_started(content), 0);
  const bool direct = target == id_;
  bool errors = false;
  for (const auto& entry : content.GetArray()) {
    const std::string command = *json::as_text(entry["command"]);
    const Value* metadata = member(entry, "metadata");
    {
      rapidjson::StringBuffer sb;
      Writer w(sb);
      w.StartObject();
      w.Key("message");
      w.String("command has started");
      w.Key("command");
      write_text(w, command);
      w.Key("metadata");
      write_or_null(w, metadata);
      w.EndObject();
      row(code::kActionBegin, std::string(sb.GetString(), sb.GetSize()), 0);
    }
    bool failed = false;
    if (metadata && member(*metadata, "centcore_proxy") && !direct) {
      // A node behind this one, reached through centcore on it.
      Status c = centcore(s, text_of(*metadata, "centcore_cmd"), target, "");
      row(c ? code::kActionFinishOk : code::kActionFinishKo,
          json::message(c ? "send action_centcore succeeded" : c.message()), 0);
      failed = !c;
    } else {
      const int timeout = digits_or(member(entry, "timeout"), 60);
      const int nodata = digits_or(member(entry, "timeout_nodata"), 30);
      host_.log(Severity::kDebug, "[proxy] node '" + id_ + "': running over SSH: " + command);
      std::time_t start = std::time(nullptr);
      ExecResult r = s.exec(command, timeout, nodata, stop);
      std::time_t end = std::time(nullptr);
      const Value* instant = member(entry, "instant");
      int instant_flag = instant && json::as_number(*instant).value_or(0) != 0 ? 1 : 0;
      std::string message;
      int code = code::kCommandResult;
      switch (r.outcome) {
        case ExecResult::Outcome::kCompleted:
          message = "command has finished successfully";
          break;
        case ExecResult::Outcome::kTimedOut:
          message = "command has timed out";
          code = code::kActionFinishKo;
          break;
        case ExecResult::Outcome::kStopped:
          message = "command aborted: the SSH link to the node was closed";
          code = code::kActionFinishKo;
          break;
        case ExecResult::Outcome::kFailed:
          message = r.error;
          code = code::kActionFinishKo;
          break;
      }
      if (r.truncated)
        host_.log(Severity::kWarning, "[proxy] node '" + id_ + "': command output truncated to " +
                                          std::to_string(SshSession::kOutputCap) + " bytes per stream");
      if (code != code::kCommandResult)
        host_.log(Severity::kError, "[proxy] node '" + id_ + "': command over SSH failed: " + message);
      if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
      if (!r.err.empty() && r.err.back() == '\n') r.err.pop_back();
      rapidjson::StringBuffer sb;
      Writer w(sb);
      w.StartObject();
      w.Key("message");
      write_text(w, message);
      w.Key("command");
      write_text(w, command);
      w.Key("metadata");
      write_or_null(w, metadata);
      w.Key("result");
      w.StartObject();
      w.Key("exit_code");
      w.Int(r.exit_code);
      w.Key("stdout");
      write_text(w, r.out);
      w.Key("stderr");
      write_text(w, r.err);
      w.EndObject();
      w.Key("metrics");
      w.StartObject();
      w.Key("start");
      w.Int64(start);
      w.Key("end");
      w.Int64(end);
      w.Key("duration");
      w.Int64(end - start);
      w.EndObject();
      w.EndObject();
      row(code, std::string(sb.GetString(), sb.GetSize()), instant_flag);
      failed = code != code::kCommandResult;
      if (r.outcome == ExecResult::Outcome::kFailed && !s.alive()) out.session_lost = true;
      if (r.outcome == ExecResult::Outcome::kStopped) {
        row(code::kActionFinishKo, json::message("commands processing has been interrupted because of error"), 0);
        return out;
      }
    }
    if (!failed) continue;
    const Value* coe = member(entry, "continue_on_error");
    if ((coe && perl_zero(*coe)) || out.session_lost) {
      row(code::kActionFinishKo, json::message("commands processing has been interrupted because of error"), 0);
      return out;
    }
    errors = true;
  }
  if (errors)
    row(code::kActionFinishKo, json::message("commands processing has finished with errors"), 0);
  else
    row(code::kActionFinishOk, json::message("commands processing has finished successfully"), 0);
  return out;
}

Status SshActions::centcore(SshSession& s, const std::string& command, const std::string& target,
                            const std::string& param) {
  if (command.empty()) return Status::failure("please set command");
  if (target.empty()) return Status::failure("please set target");
  // One line per file: a newline in a field would add commands of the caller's choosing.
  if (has_newline(command) || has_newline(target) || has_newline(param))
    return Status::failure("centcore command, target and parameter must be single lines");
  using namespace std::chrono;
  auto us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  char name[64];
  std::snprintf(name, sizeof name, "%lld%05lld.cmd", static_cast<long long>(us / 1000000),
                static_cast<long long>((us % 1000000) / 10));
  std::string path = std::string(kCentcoreDir) + "/" + name;
  std::string line = command + ":" + target + (param.empty() ? "" : ":" + param) + "\n";
  Status c = s.create(path, line, 0660);
  if (!c) return Status::failure("cannot write centcore file '" + path + "': " + c.message());
  host_.log(Severity::kDebug, "[proxy] node '" + id_ + "': centcore file '" + path + "' written");
  return Status::success();
}

SshActions::Outcome SshActions::enginecommand(SshSession& s, const Value& content, const std::string& target,
                                              const RowSink& row) {
  Outcome out;
  const Value* commands = member(content, "commands");
  if (!commands || !commands->IsArray()) {
    row(code::kActionFinishKo, json::message("need commands argument (a list)"), 0);
    return out;
  }
  if (target != id_) {
    for (const auto& c : commands->GetArray()) {
      std::string command = json::as_text(c).value_or("");
      while (!command.empty() && command.back() == '\n') command.pop_back();
      Status st = centcore(s, "EXTERNALCMD", target, command);
      if (!st) host_.log(Severity::kError, "[proxy] node '" + id_ + "': EXTERNALCMD for '" + target + "': " + st.message());
    }
    row(code::kActionFinishOk, json::message("commands processing has finished"), 0);
    return out;
  }
  const std::string file = text_of(content, "command_file");
  if (file.empty()) {
    row(code::kActionFinishKo, json::message("need command_file argument"), 0);
    return out;
  }
  if (!copy_rules::safe_path(file)) {
    row(code::kActionFinishKo, json::message("command file '" + shown(file) + "' must be an absolute path without '..'"), 0);
    return out;
  }
  auto type = s.stat(file);
  if (!type || !type->exists) {
    row(code::kActionFinishKo, message_with("command file '" + file + "' must exist", "error",
                                            type ? "no such file" : type.error()), 0);
    out.session_lost = !s.alive();
    return out;
  }
  if (!type->special) {
    row(code::kActionFinishKo, json::message("command file '" + file + "' must be a pipe file"), 0);
    return out;
  }
  row(code::kActionBegin, processing_started(content), 0);
  for (const auto& c : commands->GetArray()) {
    std::string command = json::as_text(c).value_or("");
    while (!command.empty() && command.back() == '\n') command.pop_back();
    // The engine reads one command per line: an embedded newline would smuggle in another.
    if (has_newline(command)) {
      row(code::kActionFinishKo, message_with("command refused: it spans several lines", "command", command), 0);
      return out;
    }
    Status st = s.append(file, command + "\n");
    if (!st) {
      row(code::kActionFinishKo, message_with("command file '" + file + "' must be writeable", "error", st.message()), 0);
      out.session_lost = !s.alive();
      return out;
    }
    row(code::kActionFinishOk, message_with("command has been submitted", "command", command), 0);
  }
  row(code::kActionFinishOk, json::message("commands processing has finished"), 0);
  return out;
}

SshActions::Outcome SshActions::remotecopy(SshSession& s, const Value& content, const std::string& target,
                                           const RowSink& row, const std::atomic<bool>* stop) {
  Outcome out;
  auto ko = [&](const std::string& message) {
    host_.log(Severity::kError, "[proxy] node '" + id_ + "': remote copy failed: " + message);
    row(code::kActionFinishKo, json::message(message), 0);
    out.session_lost = !s.alive();
    return out;
  };
  const std::string source = text_of(content, "source");
  std::string destination = text_of(content, "destination");
  if (source.empty()) return ko("please set source");
  if (destination.empty()) return ko("please set destination");
  const bool direct = target == id_;
  if (!direct) destination = source;  // for centcore on the node to forward
  if (!copy_rules::safe_path(source) || !copy_rules::safe_path(destination))
    return ko("source and destination must be absolute paths without '..'");
  std::optional<unsigned> mode;
  if (std::string m = text_of(content, "mode"); !m.empty() && !(mode = copy_rules::parse_mode(m)))
    return ko("mode must be 1 to 4 octal digits, got '" + shown(m) + "'");
  auto ids = resolve_ids(s, text_of(content, "owner"), text_of(content, "group"));
  if (!ids) return ko(ids.error());

  struct stat st;
  if (::stat(source.c_str(), &st) != 0) return ko("unknown source");
  std::size_t files = 0;
  if (S_ISREG(st.st_mode)) {
    std::string path = destination;
    if (path.back() == '/') path += fs::path(source).filename().string();
    auto parent = fs::path(path).parent_path().string();
    Status d = s.make_directories(parent.empty() ? "/" : parent);
    if (!d) return ko("cannot sftp copy file : " + d.message());
    Fd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) return ko("cannot read source '" + source + "': " + std::strerror(errno));
    Status w = s.write_file(path, FileReader{fd.fd}, mode.value_or(st.st_mode) & 0777, ids->uid, ids->gid, stop);
    if (!w) return ko("cannot sftp copy file : " + w.message());
    files = 1;
  } else if (S_ISDIR(st.st_mode)) {
    Status c = copy_directory(s, source, destination, mode, *ids, stop, files);
    if (!c) return ko("cannot sftp copy file : " + c.message());
  } else {
    return ko("unknown source");
  }
  host_.log(Severity::kInfo, "[proxy] node '" + id_ + "': remote copy of '" + source + "' done (" +
                                 std::to_string(files) + " file(s))");
  const Value* metadata = member(content, "metadata");
  if (metadata && member(*metadata, "centcore_proxy") && !direct) {
    Status c = centcore(s, text_of(*metadata, "centcore_cmd"), target, "");
    if (!c) host_.log(Severity::kError, "[proxy] node '" + id_ + "': centcore after remote copy: " + c.message());
  }
  row(code::kActionFinishOk, json::message("send remotecopy succeeded"), 0);
  return out;
}

SshActions::Outcome SshActions::processcopy(SshSession& s, const std::string& token, const Value& content,
                                            const RowSink& row, const std::atomic<bool>* stop) {
  Outcome out;
  auto ko = [&](const std::string& message) {
    copies_.erase(token);
    host_.log(Severity::kError, "[proxy] node '" + id_ + "': process copy failed: " + message);
    row(code::kActionFinishKo, json::message(message), 0);
    out.session_lost = !s.alive();
    return out;
  };
  const std::string status = text_of(content, "status");
  const std::string type = text_of(content, "type");
  if (status.empty()) return ko("please set status");
  if (type.empty()) return ko("please set type");
  if (status == "inprogress") {
    const Value* chunk = member(content, "chunk");
    const Value* data = chunk ? member(*chunk, "data") : nullptr;
    if (!data || !data->IsString()) return ko("process copy unknown error: a chunk without data");
    auto& copy = copies_[token];
    if (!copy) {
      copy = Copy::make();
      if (!copy) return ko("cannot create a local file for the copy: " + std::string(std::strerror(errno)));
    }
    std::string bytes = protocol::base64_decode_lenient(std::string_view(data->GetString(), data->GetStringLength()));
    if (const Value* size = member(*chunk, "size")) {
      auto n = json::as_number(*size);
      if (n && *n >= 0 && *n < static_cast<double>(bytes.size())) bytes.resize(static_cast<std::size_t>(*n));
    }
    if (::write(copy->fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
      return ko("cannot write the local file of the copy: " + std::string(std::strerror(errno)));
    EVP_DigestUpdate(copy->md5, bytes.data(), bytes.size());
    copy->size += bytes.size();
    row(code::kProcessCopyInProgress, json::message("process copy inprogress"), 0);
    return out;
  }
  if (status != "end") return ko("process copy unknown error");
  const std::string destination = text_of(content, "destination");
  if (destination.empty()) return ko("please set destination");
  if (!copy_rules::safe_path(destination)) return ko("destination must be an absolute path without '..'");
  auto it = copies_.find(token);
  std::unique_ptr<Copy> copy;
  if (it != copies_.end()) {
    copy = std::move(it->second);
    copies_.erase(it);
  } else {
    // An empty file has no chunk.
    copy = Copy::make();
    if (!copy) return ko("cannot create a local file for the copy: " + std::string(std::strerror(errno)));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(copy->md5, digest, &len);
  std::string md5 = protocol::to_hex(std::string_view(reinterpret_cast<const char*>(digest), len));
  if (text_of(content, "md5") != md5) return ko("md5 does not match");
  auto ids = resolve_ids(s, text_of(content, "owner"), text_of(content, "group"));
  if (!ids) return ko(ids.error());
  if (::lseek(copy->fd, 0, SEEK_SET) != 0) return ko("cannot read the local file of the copy");
  if (type == "regular") {
    std::optional<unsigned> mode;
    if (std::string m = text_of(content, "mode"); !m.empty() && !(mode = copy_rules::parse_mode(m)))
      return ko("mode must be 1 to 4 octal digits, got '" + shown(m) + "'");
    auto parent = fs::path(destination).parent_path().string();
    Status d = s.make_directories(parent.empty() ? "/" : parent);
    if (!d) return ko("cannot sftp copy file : " + d.message());
    Status w = s.write_file(destination, FileReader{copy->fd}, mode.value_or(0644) & 0777, ids->uid, ids->gid, stop);
    if (!w) return ko("cannot sftp copy file : " + w.message());
  } else if (type == "archive") {
    Status made = s.make_directories(destination);
    if (!made) return ko("untar failed: " + made.message());
    struct archive* a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    struct ArchiveGuard {
      struct archive* a;
      ~ArchiveGuard() { archive_read_free(a); }
    } guard{a};
    if (archive_read_open_fd(a, copy->fd, 65536) != ARCHIVE_OK)
      return ko(std::string("untar failed: ") + archive_error_string(a));
    struct archive_entry* e;
    int rc;
    std::set<std::string> made_dirs{destination};
    auto parent_made = [&](const std::string& remote) {
      std::string parent = fs::path(remote).parent_path().string();
      if (made_dirs.count(parent)) return Status::success();
      Status p = s.make_directories(parent);
      if (p) made_dirs.insert(parent);
      return p;
    };
    while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
      std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
      while (name.rfind("./", 0) == 0) name.erase(0, 2);
      while (!name.empty() && name.back() == '/') name.pop_back();
      if (name.empty() || name == ".") continue;
      std::string remote = destination + (destination.back() == '/' ? "" : "/") + name;
      // Entry names come from the sender: never above the destination.
      if (name[0] == '/' || !copy_rules::safe_path(remote))
        return ko("untar failed: entry '" + shown(name) + "' leaves the destination");
      auto ftype = archive_entry_filetype(e);
      mode_t perm = archive_entry_perm(e) & 0777;
      if (ftype == AE_IFDIR) {
        Status dd = s.make_directories(remote, perm | 0700);
        if (!dd) return ko("untar failed: " + dd.message());
        made_dirs.insert(remote);
      } else if (ftype == AE_IFREG) {
        if (Status p = parent_made(remote); !p) return ko("untar failed: " + p.message());
        auto reader = [a](char* buf, std::size_t size) -> long {
          la_ssize_t n = archive_read_data(a, buf, size);
          return n < 0 ? -1 : static_cast<long>(n);
        };
        Status w = s.write_file(remote, reader, perm, ids->uid, ids->gid, stop);
        if (!w) return ko("untar failed: " + w.message());
      }
    }
    if (rc != ARCHIVE_EOF) return ko(std::string("untar failed: ") + archive_error_string(a));
  } else {
    return ko("process copy unknown error");
  }
  row(code::kActionFinishOk, json::message("process copy finished successfully"), 0);
  return out;
}

}  // namespace gorgone::proxy
