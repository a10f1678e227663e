#include "remote_copy.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <cctype>
#include <fcntl.h>
#include <filesystem>
#include <openssl/evp.h>
#include <sys/eventfd.h>
#include <sys/poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
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

}  // namespace

namespace copy_rules {

bool compresses(const std::string& dir) {
  std::string sample;
  int files = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator() && files < 16; it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) continue;
    int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    std::size_t at = sample.size();
    sample.resize(at + 65536);
    ssize_t n = ::read(fd, sample.data() + at, 65536);
    ::close(fd);
    sample.resize(at + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    ++files;
  }
  if (sample.size() < 16384) return true;
  std::string out(sample.size() + (64 << 10), '\0');
  std::size_t used = 0;
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_filter_option(a, "gzip", "compression-level", "1");
  archive_write_set_format_raw(a);
  bool ok = archive_write_open_memory(a, out.data(), out.size(), &used) == ARCHIVE_OK;
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, static_cast<la_int64_t>(sample.size()));
  ok = ok && archive_write_header(a, e) == ARCHIVE_OK &&
       archive_write_data(a, sample.data(), sample.size()) == static_cast<la_ssize_t>(sample.size()) &&
       archive_write_close(a) == ARCHIVE_OK;
  archive_entry_free(e);
  archive_write_free(a);
  return !ok || used * 10 < sample.size() * 9;
}

}  // namespace copy_rules

// The bounded buffer between a copy's archiver thread (producer) and its owner (consumer),
// and the archiver itself. The owner never blocks: take() gives a chunk only when one is
// complete (or the archive ended); the archiver waits while `capacity` bytes are held.
class ArchivePipe {
 public:
  ArchivePipe(std::string dir, std::optional<std::string> owner, std::optional<std::string> group,
              std::optional<mode_t> mode, const std::atomic<bool>* stop, int gzip_level, std::size_t chunk,
              std::size_t capacity)
      : dir_(std::move(dir)),
        owner_(std::move(owner)),
        group_(std::move(group)),
        mode_(mode),
        stop_(stop),
        gzip_level_(gzip_level),
        chunk_(chunk),
        capacity_(std::max(capacity, chunk)),
        wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

  ~ArchivePipe() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_ = true;
    }
    room_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (wake_ >= 0) ::close(wake_);
  }

  void begin() {
    if (started_) return;
    started_ = true;
    if (stopping(stop_)) {  // no thread for an archive that would be abandoned at once
      finish("remote copy failed: the proxy is stopping; archive of '" + dir_ + "' abandoned");
      return;
    }
    if (wake_ < 0) {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
      error_ = "tar failed";
      return;
    }
    thread_ = std::thread([this] { archive(); });
  }

  int wake_fd() const { return wake_; }
  void clear_wake() {
    std::uint64_t n;
    while (::read(wake_, &n, sizeof n) > 0) {
    }
  }

  // A chunk can be taken now (or the archive ended, well or not). When not, the archiver
  // signals wake_fd() once it can.
  bool available() {
    std::lock_guard<std::mutex> lock(mu_);
    bool ok = finished_ || held_ - head_ >= chunk_;
    want_ = !ok;
    return ok;
  }

  // REQUIRES: available(). Up to chunk_ bytes; empty once the archive ended (error(): why not well).
  std::string take() {
    std::string out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::size_t n = std::min(chunk_, held_ - head_);
      out.assign(buf_, head_, n);
      head_ += n;
      // Compact once the taken part dominates: the buffer stays within about 2 x capacity.
      if (head_ >= capacity_ || head_ == held_) {
        buf_.erase(0, head_);
        held_ -= head_;
        head_ = 0;
      }
    }
    room_.notify_all();
    return out;
  }

  std::size_t held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_ - head_;
  }

  std::optional<std::string> error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  // libarchive's output: into the buffer, waiting while it is full.
  static la_ssize_t write_cb(struct archive*, void* self, const void* data, size_t n) {
    return static_cast<ArchivePipe*>(self)->put(static_cast<const char*>(data), n);
  }
  la_ssize_t put(const char* data, std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    room_.wait(lock, [&] { return cancel_ || held_ - head_ < capacity_; });
    if (cancel_ || abandoned_) return -1;
    buf_.append(data, n);
    held_ += n;
    signal_locked();
    return static_cast<la_ssize_t>(n);
  }
  void signal_locked() {
    if (!want_ || (!finished_ && held_ - head_ < chunk_)) return;
    want_ = false;
    std::uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
  }
  bool cancelled() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancel_;
  }
  // An archive abandoned: what it wrote so far is of no use to the node (which never gets
  // the `end` message): the owner gets the error at its next chunk.
  void abandon() {
    std::lock_guard<std::mutex> lock(mu_);
    abandoned_ = true;
    buf_.clear();
    head_ = held_ = 0;
  }
  void finish(std::optional<std::string> error) {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    error_ = std::move(error);
    signal_locked();
  }

  // The gzip tar of dir_'s content (entries relative to it, as Gorgone's Archive::Tar run
  // from inside the directory). No chdir: paths are joined explicitly. Gives up as soon as
  // the copy is dropped or `stop` becomes true.
  void archive() {
    // Data that does not compress (already compressed, random) is stored: deflate would
    // cost the archiver most of its time for nothing (doc/performance.md).
    int level = gzip_level_;
    if (level == CopyOptions::kAuto) level = copy_rules::compresses(dir_) ? 1 : 0;
    struct archive* a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_filter_option(a, "gzip", "compression-level", std::to_string(level).c_str());
    archive_write_set_format_pax_restricted(a);
    // Written as produced: no padding of the compressed stream to 10 KiB blocks.
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open(a, this, nullptr, &ArchivePipe::write_cb, nullptr) != ARCHIVE_OK) {
      archive_write_free(a);
      finish("tar failed");
      return;
    }
    std::error_code ec;
    std::vector<char> buf(65536);
    bool stopped = false, failed = false;
    auto halt = [&] { return stopping(stop_) || cancelled(); };
    for (auto it = fs::recursive_directory_iterator(dir_, fs::directory_options::none, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if ((stopped = halt())) break;
      const fs::path& p = it->path();
      struct stat st;
      if (::lstat(p.c_str(), &st) != 0) continue;
      if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;  // no links or devices
      fs::path relative = p.lexically_relative(dir_);
      if (relative.empty()) continue;
      struct archive_entry* e = archive_entry_new();
      archive_entry_copy_stat(e, &st);
      archive_entry_set_pathname(e, relative.c_str());
      if (owner_) archive_entry_set_uname(e, owner_->c_str());
      if (group_) archive_entry_set_gname(e, group_->c_str());
      if (mode_ && S_ISREG(st.st_mode)) archive_entry_set_perm(e, *mode_);
      int fd = S_ISREG(st.st_mode) ? ::open(p.c_str(), O_RDONLY | O_CLOEXEC) : -1;
      if (S_ISREG(st.st_mode) && fd < 0) {
        archive_entry_free(e);
        continue;  // unreadable: left out, as before
      }
      int rc = archive_write_header(a, e);
      archive_entry_free(e);
      if (rc != ARCHIVE_OK) {
        if (fd >= 0) ::close(fd);
        failed = true;
        break;
      }
      if (fd >= 0) {
        ssize_t n;
        while (!(stopped = halt()) && (n = ::read(fd, buf.data(), buf.size())) > 0)
          if (archive_write_data(a, buf.data(), static_cast<size_t>(n)) < 0) {
            failed = true;
            break;
          }
        ::close(fd);
        if (stopped || failed) break;
      }
    }
    bool ok = !stopped && !failed && !ec && archive_write_close(a) == ARCHIVE_OK;
    if (!ok) abandon();  // before free(), which would flush the compressor's tail into it
    archive_write_free(a);
    if (ok) finish(std::nullopt);
    else if (stopped) finish("remote copy failed: the proxy is stopping; archive of '" + dir_ + "' abandoned");
    else finish("tar failed");
  }

  const std::string dir_;
  const std::optional<std::string> owner_, group_;
  const std::optional<mode_t> mode_;
  const std::atomic<bool>* stop_;
  const int gzip_level_;
  const std::size_t chunk_, capacity_;
  const int wake_;
  bool started_ = false;  // owner's thread only
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable room_;
  // Guarded by mu_.
  std::string buf_;
  std::size_t head_ = 0, held_ = 0;  // taken / written bytes of buf_
  bool want_ = false;                // the owner waits on wake_
  bool finished_ = false, cancel_ = false, abandoned_ = false;
  std::optional<std::string> error_;
};

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

Result<std::unique_ptr<RemoteCopy>> RemoteCopy::start(const std::string& request, const std::string&,
                                                      const std::string&, std::size_t buffer_size,
                                                      const std::atomic<bool>* stop, Options options) {
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
  job->source_ = *source;
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
    if (!job->destination_.empty() && job->destination_.back() == '/')
      job->destination_ += fs::path(*source).filename().string();
    job->file_ = std::fopen(source->c_str(), "rb");
    if (!job->file_) return make_error("unknown source");
  } else if (S_ISDIR(st.st_mode)) {
    job->type_ = "archive";
    // Gorgone writes the archive to cache_dir first; here it streams from the archiver to
    // the node, so no file is left behind whatever happens (cache_dir only goes to the node).
    if (::access(source->c_str(), R_OK | X_OK) != 0) return make_error("tar failed");
    std::size_t capacity = options.pipe_bytes ? options.pipe_bytes : std::max<std::size_t>(4 * buffer_size, 256 << 10);
    job->pipe_ = std::make_unique<ArchivePipe>(*source, job->owner_, job->group_, mode, stop, options.gzip_level,
                                               buffer_size, capacity);
  } else {
    return make_error("unknown source");
  }
  job->md5_ = EVP_MD_CTX_new();
  EVP_DigestInit_ex(job->md5_, EVP_md5(), nullptr);
  return job;
}

RemoteCopy::~RemoteCopy() {
  pipe_.reset();  // stops and joins the archiver
  if (file_) std::fclose(file_);
  if (md5_) EVP_MD_CTX_free(md5_);
}

bool RemoteCopy::available() {
  if (!pipe_) return true;
  pipe_->begin();
  return pipe_->available();
}

int RemoteCopy::wake_fd() const { return pipe_ ? pipe_->wake_fd() : -1; }

void RemoteCopy::clear_wake() {
  if (pipe_) pipe_->clear_wake();
}

std::size_t RemoteCopy::held() const { return pipe_ ? pipe_->held() : 0; }

bool RemoteCopy::wait_available(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!available()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    struct pollfd p{wake_fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
    clear_wake();
  }
  return true;
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
  std::string buf;
  if (pipe_) {
    buf = pipe_->take();
  } else {
    buf.resize(buffer_size_);
    buf.resize(std::fread(buf.data(), 1, buf.size(), file_));
  }
  if (!buf.empty()) {
    EVP_DigestUpdate(md5_, buf.data(), buf.size());
    std::string b64 = mime_base64(buf);
    return message("inprogress", &b64, buf.size(), nullptr);
  }
  return end_message();
}

Result<std::string> RemoteCopy::end_message() {
  done_ = true;
  if (file_ && std::ferror(file_)) return make_error("remote copy failed: cannot read '" + source_ + "'");
  if (pipe_)
    if (auto error = pipe_->error()) return make_error(*error);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(md5_, digest, &len);
  std::string md5 = protocol::to_hex(std::string(reinterpret_cast<char*>(digest), len));
  return message("end", nullptr, 0, &md5);
}

}  // namespace gorgone::proxy
