#include "remote_copy.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <cctype>
#include <fcntl.h>
#include <filesystem>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"

namespace gorgone::proxy {
namespace fs = std::filesystem;
namespace {

// MIME base64 as Perl's encode_base64 writes it: a newline every 76 characters and at the end.
std::string mime_base64(std::string_view bytes) {
  std::string flat = protocol::base64_encode(bytes), out;
  out.reserve(flat.size() + flat.size() / 76 + 1);
  for (std::size_t i = 0; i < flat.size(); i += 76) {
    out.append(flat, i, 76);
    out.push_back('\n');
  }
  return out;
}

std::optional<std::string> text_member(const json::Value& obj, const char* name) {
  auto v = json::member_text(obj, name);
  if (v && v->empty()) return std::nullopt;
  return v;
}

// A request value quoted in an error message: enough to recognise it, never a flood.
std::string shown(const std::string& v) { return v.size() <= 64 ? v : v.substr(0, 64) + "..."; }

bool stopping(const std::atomic<bool>* stop) { return stop && stop->load(); }

// Writes `dir` as a gzip tar of its content (entries relative to it, as Gorgone's
// Archive::Tar run from inside the directory). No chdir: paths are joined explicitly.
// Gives up (kStopped) as soon as `stop` becomes true.
enum class ArchiveOutcome { kOk, kFailed, kStopped };
ArchiveOutcome write_archive(const std::string& dir, const std::string& out_path,
                             const std::optional<std::string>& owner, const std::optional<std::string>& group,
                             std::optional<mode_t> mode, const std::atomic<bool>* stop) {
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  if (archive_write_open_filename(a, out_path.c_str()) != ARCHIVE_OK) {
    archive_write_free(a);
    return ArchiveOutcome::kFailed;
  }
  std::error_code ec;
  std::vector<char> buf(65536);
  bool stopped = false;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (stopping(stop)) {
      stopped = true;
      break;
    }
    const fs::path& p = it->path();
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;  // no links or devices
    fs::path relative = p.lexically_relative(dir);
    if (relative.empty()) continue;
    struct archive_entry* e = archive_entry_new();
    archive_entry_copy_stat(e, &st);
    archive_entry_set_pathname(e, relative.c_str());
    if (owner) archive_entry_set_uname(e, owner->c_str());
    if (group) archive_entry_set_gname(e, group->c_str());
    if (mode && S_ISREG(st.st_mode)) archive_entry_set_perm(e, *mode);
    int rc = archive_write_header(a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK) break;
    if (S_ISREG(st.st_mode)) {
      int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ssize_t n;
      while (!(stopped = stopping(stop)) && (n = ::read(fd, buf.data(), buf.size())) > 0)
        archive_write_data(a, buf.data(), static_cast<size_t>(n));
      ::close(fd);
      if (stopped) break;
    }
  }
  bool ok = !stopped && !ec && archive_write_close(a) == ARCHIVE_OK;
  archive_write_free(a);
  return stopped ? ArchiveOutcome::kStopped : ok ? ArchiveOutcome::kOk : ArchiveOutcome::kFailed;
}

}  // namespace

namespace copy_rules {

bool safe_path(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos) return false;
  for (const auto& part : fs::path(p))
    if (part == "..") return false;
  return true;
}

std::optional<unsigned> parse_mode(const std::string& text) {
  if (text.empty() || text.size() > 4) return std::nullopt;
  unsigned mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  return mode;
}

bool portable_name(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  auto word = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(name[0])) return false;
  for (char c : name)
    if (!word(c) && c != '.' && c != '-') return false;
  return true;
}

}  // namespace copy_rules

Result<std::unique_ptr<RemoteCopy>> RemoteCopy::start(const std::string& request, const std::string& parent,
                                                      const std::string& token, std::size_t buffer_size,
                                                      const std::atomic<bool>* stop) {
  json::Document d;
  if (!json::parse(d, request) || !d.IsObject() || !d.HasMember("content") || !d["content"].IsObject())
    return make_error("remote copy failed");
  const json::Value& c = d["content"];
  std::unique_ptr<RemoteCopy> job(new RemoteCopy());
  job->buffer_size_ = buffer_size;
  auto source = text_member(c, "source");
  auto destination = text_member(c, "destination");
  if (!source || !destination) return make_error("remote copy failed");
  job->cache_dir_ = text_member(c, "cache_dir").value_or("/var/cache/centreon");
  if (!copy_rules::safe_path(*source) || !copy_rules::safe_path(*destination) || !copy_rules::safe_path(job->cache_dir_))
    return make_error("remote copy failed: source, destination and cache_dir must be absolute paths without '..'");
  job->destination_ = *destination;
  job->owner_ = text_member(c, "owner");
  job->group_ = text_member(c, "group");
  job->mode_ = text_member(c, "mode");
  // Checked here, once: these values reach libarchive and the node's chown/chmod.
  std::optional<mode_t> mode;
  if (job->mode_ && !(mode = copy_rules::parse_mode(*job->mode_)))
    return make_error("remote copy failed: mode must be 1 to 4 octal digits, got '" + shown(*job->mode_) + "'");
  if (job->owner_ && !copy_rules::portable_name(*job->owner_))
    return make_error("remote copy failed: owner must be a user name ([A-Za-z0-9_][A-Za-z0-9_.-]*, at most 32 "
                      "characters), got '" + shown(*job->owner_) + "'");
  if (job->group_ && !copy_rules::portable_name(*job->group_))
    return make_error("remote copy failed: group must be a group name ([A-Za-z0-9_][A-Za-z0-9_.-]*, at most 32 "
                      "characters), got '" + shown(*job->group_) + "'");
  if (d.HasMember("logging")) job->logging_json_ = json::dump(d["logging"]);

  struct stat st;
  if (::stat(source->c_str(), &st) != 0) return make_error("unknown source");
  if (S_ISREG(st.st_mode)) {
    job->type_ = "regular";
    job->local_path_ = *source;
    if (!job->destination_.empty() && job->destination_.back() == '/')
      job->destination_ += fs::path(*source).filename().string();
  } else if (S_ISDIR(st.st_mode)) {
    job->type_ = "archive";
    std::string kind = text_member(c, "type").value_or("tmp");
    for (char& ch : kind)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-') ch = '_';
    // A name of its own per transfer (Gorgone shares one per type and parent, which lets two
    // copies overwrite each other's archive), removed once sent.
    std::error_code ec;
    fs::create_directories(job->cache_dir_, ec);
    std::string name = job->cache_dir_ + "/" + kind + "-" + parent + "-" + token.substr(0, 16) + "-XXXXXX";
    int fd = ::mkstemp(name.data());
    if (fd < 0) return make_error("tar failed");
    ::close(fd);
    job->local_path_ = name;
    job->remove_local_ = true;
    ArchiveOutcome outcome = write_archive(*source, name, job->owner_, job->group_, mode, stop);
    if (outcome != ArchiveOutcome::kOk) {
      ::unlink(name.c_str());
      if (outcome == ArchiveOutcome::kStopped)
        return make_error("remote copy failed: the proxy is stopping; archive of '" + *source + "' abandoned");
      return make_error("tar failed");
    }
  } else {
    return make_error("unknown source");
  }
  job->file_ = std::fopen(job->local_path_.c_str(), "rb");
  if (!job->file_) return make_error("unknown source");
  job->md5_ = EVP_MD_CTX_new();
  EVP_DigestInit_ex(job->md5_, EVP_md5(), nullptr);
  return job;
}

RemoteCopy::~RemoteCopy() {
  if (file_) std::fclose(file_);
  if (md5_) EVP_MD_CTX_free(md5_);
  if (remove_local_) ::unlink(local_path_.c_str());
}

std::string RemoteCopy::message(const char* status, const std::string* chunk, std::size_t size,
                                const std::string* md5) const {
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  auto opt = [&](const char* key, const std::optional<std::string>& v) {
    w.Key(key);
    if (v) w.String(v->c_str());
    else w.Null();
  };
  w.StartObject();
  w.Key("logging");
  w.RawValue(logging_json_.c_str(), logging_json_.size(), rapidjson::kObjectType);
  w.Key("content");
  w.StartObject();
  w.Key("status"); w.String(status);
  w.Key("type"); w.String(type_.c_str());
  w.Key("chunk");
  if (chunk) {
    w.StartObject();
    w.Key("data"); w.String(chunk->c_str(), static_cast<rapidjson::SizeType>(chunk->size()));
    w.Key("size"); w.Uint64(size);
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("md5");
  if (md5) w.String(md5->c_str());
  else w.Null();
  w.Key("destination"); w.String(destination_.c_str());
  w.Key("cache_dir"); w.String(cache_dir_.c_str());
  if (md5) {
    opt("owner", owner_);
    opt("group", group_);
    if (type_ == "regular") opt("mode", mode_);
  }
  w.EndObject();
  w.Key("parameters");
  w.StartObject();
  w.Key("no_fork"); w.Int(1);
  w.EndObject();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

Result<std::string> RemoteCopy::next() {
  std::string buf(buffer_size_, '\0');
  std::size_t n = std::fread(buf.data(), 1, buf.size(), file_);
  if (n > 0) {
    buf.resize(n);
    EVP_DigestUpdate(md5_, buf.data(), n);
    std::string b64 = mime_base64(buf);
    return message("inprogress", &b64, n, nullptr);
  }
  done_ = true;
  if (std::ferror(file_)) return make_error("remote copy failed: cannot read '" + local_path_ + "'");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(md5_, digest, &len);
  std::string md5 = protocol::to_hex(std::string(reinterpret_cast<char*>(digest), len));
  return message("end", nullptr, 0, &md5);
}

}  // namespace gorgone::proxy
