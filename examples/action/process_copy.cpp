#include "process_copy.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <grp.h>
#include <memory>
#include <openssl/evp.h>
#include <optional>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/status_codes.hpp"

namespace gorgone::action {
namespace {
namespace fs = std::filesystem;
using json::Value;

// ---- small helpers

std::string errno_text() { return std::strerror(errno); }

void ko(const Output& out, const std::string& message) { out.row(code::kActionFinishKo, json::message(message)); }

const Value* member(const Value& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

// A member as text; absent, null and empty strings all count as "not set".
std::optional<std::string> text_member(const Value& obj, const char* name) {
  auto v = json::member_text(obj, name);
  if (!v || v->empty()) return std::nullopt;
  return v;
}

std::string join(const std::string& dir, const std::string& name) {
  return (!dir.empty() && dir.back() == '/') ? dir + name : dir + "/" + name;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the error close() may carry (delayed write errors).
  bool close() {
    int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Copies the rest of `in` to `out`. False with errno set on failure.
bool copy_fd(int in, int out) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    if (!write_all(out, buf, static_cast<std::size_t>(n))) return false;
  }
}

// ---- MD5

Result<std::string> file_md5(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return make_error("cannot read '" + path + "': " + errno_text());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) != 1) return make_error("md5 is not available");
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error("cannot read '" + path + "': " + errno_text());
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf, static_cast<std::size_t>(n));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[md[i] >> 4]);
    hex.push_back(kHex[md[i] & 0xF]);
  }
  return hex;
}

bool same_hex(std::string a, std::string b) {
  for (auto* s : {&a, &b})
    for (char& c : *s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return a == b;
}

// ---- ownership and mode of copied files

// Gorgone applies chmod(oct(mode)): "0640", "640" and the number 640 all mean 0640.
std::optional<mode_t> parse_mode(const Value& content) {
  auto text = json::member_text(content, "mode");
  if (!text || text->empty() || text->size() > 5) return std::nullopt;
  mode_t mode = 0;
  for (char c : *text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = static_cast<mode_t>(mode * 8 + (c - '0'));
  }
  if (mode == 0 || mode > 07777) return std::nullopt;  // Perl: a false mode is not applied
  return mode;
}

std::optional<uid_t> lookup_user(const std::string& name) {
  std::vector<char> buf(16384);
  struct passwd pw, *found = nullptr;
  if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found) return pw.pw_uid;
  return std::nullopt;
}

std::optional<gid_t> lookup_group(const std::string& name) {
  std::vector<char> buf(16384);
  struct group gr, *found = nullptr;
  if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) == 0 && found) return gr.gr_gid;
  return std::nullopt;
}

// Owner, group and mode for the new file: the request's values, else those of the file
// being replaced (the copy goes through rename, which would otherwise reset them).
void apply_attributes(int fd, const std::string& target, const Value& content, bool keep_setid, const Output& out) {
  struct stat old;
  bool existed = ::stat(target.c_str(), &old) == 0 && S_ISREG(old.st_mode);
  uid_t uid = existed ? old.st_uid : static_cast<uid_t>(-1);
  gid_t gid = existed ? old.st_gid : static_cast<gid_t>(-1);
  if (auto owner = text_member(content, "owner")) {
    if (auto u = lookup_user(*owner)) uid = *u;
    else out.write_log(Severity::kWarning, "[action] Copy processing - unknown user '" + *owner + "'");
  }
  if (auto group = text_member(content, "group")) {
    if (auto g = lookup_group(*group)) gid = *g;
    else out.write_log(Severity::kWarning, "[action] Copy processing - unknown group '" + *group + "'");
  }
  // chown first: it may clear set-id bits that chmod must set afterwards.
  if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) && ::fchown(fd, uid, gid) != 0)
    out.write_log(Severity::kWarning, "[action] Copy processing - cannot chown '" + target + "': " + errno_text());
  mode_t mode = existed ? (old.st_mode & 07777) : 0644;
  if (auto m = parse_mode(content)) mode = *m;
  if (!keep_setid && (mode & 07000)) {
    out.write_log(Severity::kWarning, "[action] Copy processing - set-id/sticky bits of '" + target +
                                          "' cleared (keep_setid is off)");
    mode &= 0777;
  }
  if (::fchmod(fd, mode) != 0)
    out.write_log(Severity::kWarning, "[action] Copy processing - cannot chmod '" + target + "': " + errno_text());
}

// ---- regular files

// The file name to write: destination itself, or destination/<source basename> when the
// destination is a directory. The sender normally appends the basename already.
Result<std::string> regular_target(const std::string& destination, const Value& content) {
  std::error_code ec;
  if (destination.back() != '/' && !fs::is_directory(destination, ec)) return destination;
  auto source = text_member(content, "source");
  std::string base = source ? fs::path(*source).filename().string() : std::string();
  if (base.empty() || base == "." || base == "..")
    return make_error("Can't copy file to " + destination + ", Is a directory");
  return join(destination, base);
}

// Writes a temporary file next to the target and renames it over the target, so that
// readers (Engine reloading its configuration) never see a half-written file.
Status install_regular(const std::string& cache_file, const std::string& destination, const Value& content,
                       bool keep_setid, const Output& out) {
  auto target = regular_target(destination, content);
  if (!target) return Status::failure(target.error());
  auto fail = [&](const std::string& why) { return Status::failure("Can't copy file to " + *target + ", " + why); };

  Fd in(::open(cache_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (in.get() < 0) return fail(errno_text());
  // Archives get their destination created (make_path); do the same for a file's folder.
  const std::string dir = fs::path(*target).parent_path().string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(ec.message());
  std::string tmp = join(dir, ".gorgone-copy-XXXXXX");
  Fd tmp_fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (tmp_fd.get() < 0) return fail(errno_text());
  bool ok = copy_fd(in.get(), tmp_fd.get());
  std::string why = ok ? std::string() : errno_text();
  if (ok) apply_attributes(tmp_fd.get(), *target, content, keep_setid, out);
  if (ok && !tmp_fd.close()) {
    ok = false;
    why = errno_text();
  }
  if (ok && ::rename(tmp.c_str(), target->c_str()) != 0) {
    ok = false;
    why = errno_text();
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return fail(why);
  }
  return Status::success();
}

// ---- archives

// A member name that stays inside the destination: relative, no ".." component.
bool is_inside_name(const std::string& name) {
  if (name.empty() || name[0] == '/' || name.find('\0') != std::string::npos) return false;
  for (const auto& part : fs::path(name))
    if (part == "..") return false;
  return true;
}

std::string strip_dot_slash(std::string name) {
  while (name.size() >= 2 && name[0] == '.' && name[1] == '/') name.erase(0, 2);
  return name;
}

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct DiskDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};

Status copy_entry_data(struct archive* in, struct archive* out) {
  const void* buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(in, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) return Status::success();
    if (r < ARCHIVE_WARN) return Status::failure(archive_error_string(in));
    if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
      return Status::failure(archive_error_string(out));
  }
}

const char* kind_of(mode_t type) {
  switch (type) {
    case AE_IFCHR: return "character device";
    case AE_IFBLK: return "block device";
    case AE_IFIFO: return "FIFO";
    case AE_IFSOCK: return "socket";
    default: return "entry of unknown type";
  }
}

// A hard link may only name a regular file already below `destination`, reached without
// going through a symlink (one placed there earlier, by this archive or anyone else).
Status check_hard_link_target(const std::string& destination, const std::string& target) {
  std::string path = destination;
  const fs::path parts(target);
  for (auto it = parts.begin(); it != parts.end(); ++it) {
    if (it->empty() || *it == ".") continue;
    path = join(path, it->string());
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return Status::failure("no such file in the destination");
    if (S_ISLNK(st.st_mode)) return Status::failure("it goes through the symlink '" + path + "'");
    if (std::next(it) == parts.end() && !S_ISREG(st.st_mode)) return Status::failure("not a regular file");
  }
  return Status::success();
}

// Checks one entry and points it below `destination`. Empty result: skip the entry.
Result<std::string> place_entry(struct archive_entry* entry, const std::string& destination,
                                const CopyOptions& options, const Output& out) {
  const char* raw = archive_entry_pathname(entry);
  std::string name = strip_dot_slash(raw ? raw : "");
  if (name.empty() || name == "." || name == "./") return std::string();  // the root: leave it as is
  if (!is_inside_name(name)) return make_error("refusing entry '" + name + "' (absolute path or '..')");
  const char* hard = archive_entry_hardlink(entry);
  const mode_t type = archive_entry_filetype(entry);
  if (!hard && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
    return make_error(std::string("refusing ") + kind_of(type) + " '" + name +
                      "' (only files, directories and links are extracted)");
  if (type == AE_IFLNK && !hard) {
    const char* link = archive_entry_symlink(entry);
    if (!link || !is_inside_name(link))
      return make_error("refusing symlink '" + name + "' pointing outside the destination");
  }
  if (hard) {
    std::string target = strip_dot_slash(hard);
    if (!is_inside_name(target)) return make_error("refusing hard link '" + name + "' to '" + target + "'");
    Status s = check_hard_link_target(destination, target);
    if (!s) return make_error("refusing hard link '" + name + "' to '" + target + "' (" + s.message() + ")");
    archive_entry_copy_hardlink(entry, join(destination, target).c_str());
  }
  const mode_t perm = archive_entry_perm(entry);
  if (!options.keep_setid && (perm & 07000)) {
    archive_entry_set_perm(entry, perm & 0777);
    out.write_log(Severity::kWarning, "[action] Copy processing - set-id/sticky bits of '" + name +
                                          "' cleared (keep_setid is off)");
  }
  std::string full = join(destination, name);
  archive_entry_copy_pathname(entry, full.c_str());
  return full;
}

Status extract_entries(struct archive* in, struct archive* disk, const std::string& destination,
                       const CopyOptions& options, const Output& out) {
  struct archive_entry* entry;
  for (;;) {
    // Between entries: a module being killed does not wait for the rest of a big archive.
    if (options.abort && options.abort->load()) return Status::failure("the action module is stopping");
    int r = archive_read_next_header(in, &entry);
    if (r == ARCHIVE_EOF) return Status::success();
    if (r < ARCHIVE_WARN) return Status::failure(archive_error_string(in));
    auto full = place_entry(entry, destination, options, out);
    if (!full) return Status::failure(full.error());
    if (full->empty()) continue;
    if (archive_write_header(disk, entry) < ARCHIVE_WARN) return Status::failure(archive_error_string(disk));
    if (archive_entry_size(entry) > 0) {
      Status s = copy_entry_data(in, disk);
      if (!s) return s;
    }
    if (archive_write_finish_entry(disk) < ARCHIVE_WARN) return Status::failure(archive_error_string(disk));
  }
}

Status extract_archive(const std::string& cache_file, const std::string& requested, const CopyOptions& options,
                       const Output& out) {
  auto fail = [](const std::string& why) { return Status::failure("untar failed: " + why); };
  std::error_code ec;
  fs::create_directories(requested, ec);
  if (ec) return fail("cannot create '" + requested + "': " + ec.message());
  // Its real path: SECURE_SYMLINKS refuses any symlink on the way, and symlinks above the
  // destination (/var/run -> /run) are the administrator's, not the archive's.
  const std::string destination = fs::canonical(requested, ec).string();
  if (ec) return fail("cannot resolve '" + requested + "': " + ec.message());

  std::unique_ptr<struct archive, ArchiveDeleter> in(archive_read_new());
  std::unique_ptr<struct archive, DiskDeleter> disk(archive_write_disk_new());
  if (!in || !disk) return fail("out of memory");
  // What Archive::Tar reads: tar, optionally compressed. No external filter programs.
  archive_read_support_filter_gzip(in.get());
  archive_read_support_filter_bzip2(in.get());
  archive_read_support_filter_xz(in.get());
  archive_read_support_format_tar(in.get());
  // Archive::Tar runs with SAME_PERMISSIONS and restores owners when run as root.
  // No ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS: every entry is renamed to an absolute path
  // below the destination (no chdir in a threaded host); place_entry refuses absolute
  // member names before that.
  int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
              ARCHIVE_EXTRACT_SECURE_SYMLINKS;
  if (::geteuid() == 0) flags |= ARCHIVE_EXTRACT_OWNER;
  archive_write_disk_set_options(disk.get(), flags);
  archive_write_disk_set_standard_lookup(disk.get());

  if (archive_read_open_filename(in.get(), cache_file.c_str(), 65536) != ARCHIVE_OK)
    return fail(archive_error_string(in.get()));
  Status s = extract_entries(in.get(), disk.get(), destination, options, out);
  if (!s) return fail(s.message());
  if (archive_write_close(disk.get()) < ARCHIVE_WARN) return fail(archive_error_string(disk.get()));
  return Status::success();
}

}  // namespace

bool decode_base64(std::string_view in, std::string& out) {
  auto decoded = protocol::base64_decode_mime(in);
  if (!decoded) return false;
  out = std::move(decoded.value());
  return true;
}

bool is_confined_path(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos) return false;
  for (const auto& part : fs::path(path))
    if (part == "..") return false;
  return true;
}

void ProcessCopy::handle(const std::string& token, std::string_view data, const Output& out) {
  json::Document doc;
  if (!json::parse(doc, data)) return ko(out, "cannot decode json");
  const Value* content = member(doc, "content");
  if (!content || !content->IsObject()) return ko(out, "no content");
  // The token becomes part of a file name.
  if (!protocol::is_safe_token(token)) return ko(out, "invalid token");
  auto status = text_member(*content, "status");
  if (!status) return ko(out, "please set status");
  auto cache_dir = text_member(*content, "cache_dir");
  if (!cache_dir) return ko(out, "please set cache_dir");
  if (!is_confined_path(*cache_dir))
    return ko(out, "invalid cache_dir '" + *cache_dir + "': must be an absolute path without '..'");

  const std::string cache_file = join(*cache_dir, "copy_" + token);
  if (*status == "inprogress") return write_chunk(*content, cache_file, out);
  if (*status == "end") return finish(*content, cache_file, out);
  ko(out, "unknown status '" + *status + "'");
}

void ProcessCopy::write_chunk(const Value& content, const std::string& cache_file, const Output& out) {
  const Value* chunk = member(content, "chunk");
  const Value* data = chunk ? member(*chunk, "data") : nullptr;
  if (!data || !data->IsString()) return ko(out, "missing chunk data");
  std::string bytes;
  if (!decode_base64(std::string_view(data->GetString(), data->GetStringLength()), bytes))
    return ko(out, "invalid base64 in chunk data");
  // Like syswrite(..., size): at most chunk.size bytes.
  if (const Value* size_value = member(*chunk, "size")) {
    auto size = json::as_number(*size_value);
    if (size && *size >= 0 && *size < static_cast<double>(bytes.size())) bytes.resize(static_cast<std::size_t>(*size));
  }

  Fd fd(::open(cache_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660));
  if (fd.get() < 0) {
    std::string message = "file '" + cache_file + "' open failed: " + errno_text();
    out.write_log(Severity::kError, "[action] " + message);
    if (open_failed_.insert(cache_file).second) ko(out, message);
    return;
  }
  open_failed_.erase(cache_file);
  if (!write_all(fd.get(), bytes.data(), bytes.size()) || !fd.close())
    return ko(out, "file '" + cache_file + "' write failed: " + errno_text());
  out.row(code::kProcessCopyInProgress, json::message("process copy inprogress"));
  out.write_log(Severity::kInfo, "[action] Copy processing - Received chunk for '" +
                                     json::member_text(content, "destination").value_or("") + "'");
}

void ProcessCopy::finish(const Value& content, const std::string& cache_file, const Output& out) {
  open_failed_.erase(cache_file);
  Status s = install(content, cache_file, out);
  // A transfer ends here whatever the outcome: a leftover cache file would be prepended to
  // the next transfer that uses this token.
  ::unlink(cache_file.c_str());
  if (!s) {
    out.write_log(Severity::kError, "[action] Copy processing - " + s.message());
    return ko(out, s.message());
  }
  out.row(code::kActionFinishOk, json::message("process copy finished successfully"));
  out.write_log(Severity::kInfo, "[action] Copy processing - Copy to '" +
                                     json::member_text(content, "destination").value_or("") +
                                     "' finished successfully");
}

Status ProcessCopy::install(const Value& content, const std::string& cache_file, const Output& out) {
  auto md5 = text_member(content, "md5");
  if (!md5) return Status::failure("please set md5");
  auto type = text_member(content, "type");
  if (!type) return Status::failure("please set type");
  if (*type != "regular" && *type != "archive") return Status::failure("unknown type '" + *type + "'");
  auto destination = text_member(content, "destination");
  if (!destination) return Status::failure("please set destination");
  if (!is_confined_path(*destination))
    return Status::failure("invalid destination '" + *destination + "': must be an absolute path without '..'");

  // An empty file travels as a lone "end" message: no chunk created the cache file.
  Fd created(::open(cache_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660));
  if (created.get() < 0) return Status::failure("file '" + cache_file + "' open failed: " + errno_text());
  created.close();
  auto local = file_md5(cache_file);
  if (!local) return Status::failure(local.error());
  if (!same_hex(*local, *md5)) return Status::failure("md5 does not match");

  if (*type == "archive") return extract_archive(cache_file, *destination, options_, out);
  return install_regular(cache_file, *destination, content, options_.keep_setid, out);
}

}  // namespace gorgone::action
