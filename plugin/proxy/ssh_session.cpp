#include "ssh_session.hpp"

#include <fcntl.h>
#include <poll.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <vector>

#include "gorgone/protocol/crypto.hpp"

namespace gorgone::proxy {
namespace {

// Blocking calls on a connected session (SFTP requests, exit status) give up after this:
// a node that stops answering without closing the connection cannot hold its thread forever.
constexpr long kIoTimeoutSeconds = 60;

std::optional<long> whole_number(const json::Value& v) {
  if (v.IsInt64()) return v.GetInt64();
  if (v.IsUint64()) return std::nullopt;
  auto text = json::as_text(v);
  if (!text || text->empty() || text->size() > 9) return std::nullopt;
  for (char c : *text)
    if (c < '0' || c > '9') return std::nullopt;
  return std::stol(*text);
}

// A configuration flag as Gorgone's YAML reader gives it: false, no, off, 0, "" and null are
// false (a nodes file's `false` may reach us as text).
bool flag_true(const json::Value& v) {
  if (v.IsNull()) return false;
  if (v.IsBool()) return v.GetBool();
  if (v.IsNumber()) return v.GetDouble() != 0;
  if (v.IsString()) {
    std::string s = v.GetString();
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return !(s.empty() || s == "0" || s == "false" || s == "no" || s == "off");
  }
  return true;
}

const char* sftp_code_text(int code) {
  switch (code) {
    case SSH_FX_EOF: return "end of file";
    case SSH_FX_NO_SUCH_FILE: return "no such file or directory";
    case SSH_FX_PERMISSION_DENIED: return "permission denied";
    case SSH_FX_FAILURE: return "failure";
    case SSH_FX_BAD_MESSAGE: return "bad message";
    case SSH_FX_NO_CONNECTION: return "no connection";
    case SSH_FX_CONNECTION_LOST: return "connection lost";
    case SSH_FX_OP_UNSUPPORTED: return "operation unsupported";
    case SSH_FX_INVALID_HANDLE: return "invalid handle";
    case SSH_FX_NO_SUCH_PATH: return "no such path";
    case SSH_FX_FILE_ALREADY_EXISTS: return "file already exists";
    case SSH_FX_WRITE_PROTECT: return "write protected";
    case SSH_FX_NO_MEDIA: return "no media";
    default: return "error";
  }
}

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Result<SshOptions> ssh_options_of(const std::string& node_id, const json::Value& node) {
  SshOptions o;
  auto bad = [&](const char* name, const std::string& why) {
    return make_error("node '" + node_id + "': attribute '" + std::string(name) + "' " + why);
  };
  auto text = [&](const char* name) -> std::string {
    auto v = json::member_text(node, name);
    return v.value_or("");
  };
  o.host = text("address");
  if (o.host.empty()) return bad("address", "is required for a push_ssh node");
  if (o.host.find_first_of(" \t\r\n") != std::string::npos || o.host[0] == '-')
    return bad("address", "is not a host name or address");
  auto number = [&](const char* name, int& out, long lo, long hi) -> std::optional<Error> {
    auto it = node.FindMember(name);
    if (it == node.MemberEnd() || it->value.IsNull() || (it->value.IsString() && !*it->value.GetString()))
      return std::nullopt;
    auto n = whole_number(it->value);
    if (!n || *n < lo || *n > hi)
      return bad(name, "must be a whole number between " + std::to_string(lo) + " and " + std::to_string(hi));
    out = static_cast<int>(*n);
    return std::nullopt;
  };
  if (auto e = number("ssh_port", o.port, 1, 65535)) return *e;
  if (auto e = number("ssh_connect_timeout", o.connect_timeout, 1, 3600)) return *e;
  o.user = text("ssh_username");
  o.password = text("ssh_password");
  o.directory = text("ssh_directory");
  o.known_hosts = text("ssh_known_hosts");
  o.identity = text("ssh_identity");
  if (auto it = node.FindMember("strict_serverkey_check"); it != node.MemberEnd())
    o.strict_host_key = flag_true(it->value);
  return o;
}

SshSession::SshSession() = default;

SshSession::~SshSession() { disconnect(); }

std::string SshSession::error_text() const {
  const char* e = session_ ? ssh_get_error(session_) : nullptr;
  return e && *e ? e : "unknown error";
}

std::string SshSession::sftp_error_text() const {
  if (!sftp_) return error_text();
  int code = sftp_get_error(sftp_);
  std::string out = sftp_code_text(code);
  if (code == SSH_FX_FAILURE || code == SSH_FX_CONNECTION_LOST || code == SSH_FX_NO_CONNECTION || code == SSH_FX_OK) {
    std::string session = error_text();
    if (!session.empty() && session != "unknown error") out += " (" + session + ")";
  }
  return out;
}

bool SshSession::alive() const { return session_ && sftp_ && ssh_is_connected(session_); }

void SshSession::disconnect() {
  {
    std::lock_guard<std::mutex> lock(fd_mutex_);
    socket_fd_ = -1;
  }
  if (sftp_) {
    sftp_free(sftp_);
    sftp_ = nullptr;
  }
  if (session_) {
    if (ssh_is_connected(session_)) ssh_disconnect(session_);
    ssh_free(session_);
    session_ = nullptr;
  }
  users_.reset();
  groups_.reset();
  mode_exact_.clear();
  replacing_ = false;
}

void SshSession::shutdown() {
  std::lock_guard<std::mutex> lock(fd_mutex_);
  if (socket_fd_ >= 0) ::shutdown(socket_fd_, SHUT_RDWR);
}

Status SshSession::connect(const SshOptions& o, bool* refused, const std::atomic<bool>* stop) {
  using namespace std::chrono;
  if (refused) *refused = false;
  disconnect();
  session_ = ssh_new();
  if (!session_) return Status::failure("cannot create an SSH session (out of memory)");
  long timeout = o.connect_timeout;
  int nodelay = 1;
  bool no_config = false;
  int port = o.port;
  bool ok = ssh_options_set(session_, SSH_OPTIONS_HOST, o.host.c_str()) == SSH_OK &&
            ssh_options_set(session_, SSH_OPTIONS_PORT, &port) == SSH_OK &&
            ssh_options_set(session_, SSH_OPTIONS_TIMEOUT, &timeout) == SSH_OK &&
            ssh_options_set(session_, SSH_OPTIONS_NODELAY, &nodelay) == SSH_OK &&
            // What the node's attributes say, not whatever ~/.ssh/config of this host says.
            ssh_options_set(session_, SSH_OPTIONS_PROCESS_CONFIG, &no_config) == SSH_OK;
  if (ok && !o.user.empty()) ok = ssh_options_set(session_, SSH_OPTIONS_USER, o.user.c_str()) == SSH_OK;
  if (ok && !o.directory.empty()) ok = ssh_options_set(session_, SSH_OPTIONS_SSH_DIR, o.directory.c_str()) == SSH_OK;
  if (ok && !o.known_hosts.empty())
    ok = ssh_options_set(session_, SSH_OPTIONS_KNOWNHOSTS, o.known_hosts.c_str()) == SSH_OK;
  if (ok && !o.identity.empty()) ok = ssh_options_set(session_, SSH_OPTIONS_ADD_IDENTITY, o.identity.c_str()) == SSH_OK;
  if (!ok) {
    Status s = Status::failure("options: " + error_text());
    disconnect();
    return s;
  }
  const std::string where = "ssh://" + o.host + ":" + std::to_string(o.port);
  auto fail = [&](std::string why, bool no) {
    if (refused) *refused = no;
    disconnect();
    return Status::failure(std::move(why));
  };
  // Non-blocking steps, so that a node that does not answer never holds the caller longer
  // than its connect timeout, and stop/shutdown() end the wait at once.
  const auto deadline = steady_clock::now() + seconds(o.connect_timeout);
  auto step = [&](auto call, int again) {
    for (;;) {
      int rc = call();
      int fd = ssh_get_fd(session_);
      if (fd >= 0) {
        std::lock_guard<std::mutex> lock(fd_mutex_);
        socket_fd_ = fd;
      }
      if (rc != again) return rc;
      if ((stop && stop->load()) || steady_clock::now() >= deadline) return again;
      if (fd >= 0) {
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, 20);
      } else {
        ::poll(nullptr, 0, 20);
      }
    }
  };
  ssh_set_blocking(session_, 0);
  int rc = step([&] { return ssh_connect(session_); }, SSH_AGAIN);
  if (rc != SSH_OK)
    return fail("connect to " + where + ": " +
                    (rc == SSH_AGAIN ? (stop && stop->load() ? std::string("abandoned (stopping)")
                                                             : "no answer within " + std::to_string(o.connect_timeout) + " s")
                                     : error_text()),
                false);

  switch (ssh_session_is_known_server(session_)) {
    case SSH_KNOWN_HOSTS_OK:
      break;
    case SSH_KNOWN_HOSTS_CHANGED:
      return fail("host key check for " + where +
                      ": the server's key differs from the one known_hosts records for it (refused whatever "
                      "strict_serverkey_check says)",
                  true);
    case SSH_KNOWN_HOSTS_OTHER:
      return fail("host key check for " + where +
                      ": known_hosts records a key of another type for this server (refused whatever "
                      "strict_serverkey_check says)",
                  true);
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      if (o.strict_host_key)
        return fail("host key check for " + where +
                        ": the server's key is not in known_hosts and strict_serverkey_check is on",
                    true);
      if (ssh_session_update_known_hosts(session_) != SSH_OK)
        return fail("host key check for " + where + ": cannot record the server's key in known_hosts: " +
                        error_text(),
                    true);
      break;
    case SSH_KNOWN_HOSTS_ERROR:
    default:
      return fail("host key check for " + where + ": " + error_text(), true);
  }

  // Public key first (identity file, keys of ssh_directory, agent), then the password.
  auto timed_out = [&] { return steady_clock::now() >= deadline || (stop && stop->load()); };
  rc = step([&] { return ssh_userauth_publickey_auto(session_, nullptr, nullptr); }, SSH_AUTH_AGAIN);
  if (rc == SSH_AUTH_AGAIN || rc == SSH_AUTH_ERROR)
    return fail("authentication publickey on " + where + ": " +
                    (rc == SSH_AUTH_AGAIN && timed_out() ? std::string("no answer in time") : error_text()),
                rc == SSH_AUTH_ERROR && ssh_is_connected(session_));
  if (rc != SSH_AUTH_SUCCESS) {
    if (o.password.empty())
      return fail("authentication on " + where + ": no key was accepted and the node has no ssh_password", true);
    rc = step([&] { return ssh_userauth_password(session_, nullptr, o.password.c_str()); }, SSH_AUTH_AGAIN);
    if (rc == SSH_AUTH_AGAIN)
      return fail("authentication password on " + where + ": no answer in time", false);
    if (rc != SSH_AUTH_SUCCESS)
      return fail("authentication on " + where + ": no key was accepted and the password was refused", true);
  }
  ssh_set_blocking(session_, 1);

  sftp_ = sftp_new(session_);
  if (!sftp_) return fail("cannot open SFTP on " + where + ": " + error_text(), false);
  if (sftp_init(sftp_) != SSH_OK) return fail("cannot init SFTP on " + where + ": " + sftp_error_text(), false);
  long io_timeout = kIoTimeoutSeconds;
  ssh_options_set(session_, SSH_OPTIONS_TIMEOUT, &io_timeout);
  return Status::success();
}

bool SshSession::peer_closed() const {
  if (!alive()) return true;
  int fd = ssh_get_fd(session_);
  if (fd < 0) return true;
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

bool SshSession::probe() {
  if (!alive()) return false;
  sftp_attributes a = sftp_stat(sftp_, ".");
  if (a) {
    sftp_attributes_free(a);
    return true;
  }
  return alive();
}

ExecResult SshSession::exec(const std::string& command, int timeout_s, int nodata_s, const std::atomic<bool>* stop) {
  using namespace std::chrono;
  ExecResult r;
  if (!session_) {
    r.error = "not connected";
    return r;
  }
  ssh_channel ch = ssh_channel_new(session_);
  if (!ch) {
    r.error = error_text();
    return r;
  }
  struct Guard {
    ssh_channel ch;
    ~Guard() {
      if (ssh_channel_is_open(ch)) ssh_channel_close(ch);
      ssh_channel_free(ch);
    }
  } guard{ch};
  if (ssh_channel_open_session(ch) != SSH_OK || ssh_channel_request_exec(ch, command.c_str()) != SSH_OK) {
    r.error = error_text();
    return r;
  }
  auto start = steady_clock::now();
  auto deadline = start + seconds(timeout_s);
  auto last_data = start;
  std::vector<char> buf(65536);
  // A call cut because the link is closing (shutdown() from another thread) was stopped,
  // not failed.
  auto failed = [&] {
    if (stop && stop->load()) {
      r.outcome = ExecResult::Outcome::kStopped;
    } else {
      r.error = error_text();
    }
    return r;
  };
  auto keep = [&](std::string& into, int n) {
    std::size_t room = kOutputCap > into.size() ? kOutputCap - into.size() : 0;
    if (static_cast<std::size_t>(n) > room) r.truncated = true;
    into.append(buf.data(), std::min<std::size_t>(room, static_cast<std::size_t>(n)));
  };
  for (;;) {
    int got = 0;
    for (int stream = 0; stream < 2; ++stream) {
      int n = ssh_channel_read_nonblocking(ch, buf.data(), static_cast<uint32_t>(buf.size()), stream);
      if (n > 0) {
        keep(stream == 0 ? r.out : r.err, n);
        got += n;
      } else if (n == SSH_ERROR) {
        return failed();
      }
    }
    auto now = steady_clock::now();
    if (got > 0) {
      last_data = now;
      continue;
    }
    if (ssh_channel_is_eof(ch)) break;
    bool timed_out = now >= deadline || (nodata_s > 0 && now - last_data >= seconds(nodata_s));
    if (timed_out || (stop && stop->load())) {
      // The remote command is told to end; closing the channel makes its pipes break too.
      ssh_channel_request_send_signal(ch, "KILL");
      r.outcome = timed_out ? ExecResult::Outcome::kTimedOut : ExecResult::Outcome::kStopped;
      return r;
    }
    int rc = ssh_channel_poll_timeout(ch, 100, 0);
    if (rc == SSH_ERROR || (rc == 0 && !ssh_is_connected(session_))) return failed();
  }
  ssh_channel_send_eof(ch);
  r.exit_code = ssh_channel_get_exit_status(ch);
  r.outcome = ExecResult::Outcome::kCompleted;
  return r;
}

Result<SshSession::FileType> SshSession::stat(const std::string& path) {
  FileType t;
  sftp_attributes a = sftp_stat(sftp_, path.c_str());
  if (!a) {
    int code = sftp_get_error(sftp_);
    if (code == SSH_FX_NO_SUCH_FILE || code == SSH_FX_NO_SUCH_PATH) return t;
    return make_error("cannot stat '" + path + "': " + sftp_error_text());
  }
  t.exists = true;
  std::uint32_t fmt = a->permissions & S_IFMT;
  t.directory = fmt == S_IFDIR;
  t.special = fmt != S_IFDIR && fmt != S_IFREG && fmt != S_IFLNK;
  sftp_attributes_free(a);
  return t;
}

Status SshSession::make_directories(const std::string& path, mode_t mode) {
  auto t = stat(path);
  if (!t) return Status::failure(t.error());
  if (t->exists) {
    if (t->directory) return Status::success();
    return Status::failure("'" + path + "' exists and is not a directory");
  }
  std::string parent = parent_of(path);
  if (parent != path && parent != "/" && parent != ".") {
    Status s = make_directories(parent, mode);
    if (!s) return s;
  }
  if (sftp_mkdir(sftp_, path.c_str(), mode) == 0) return Status::success();
  std::string why = sftp_error_text();
  auto again = stat(path);  // another writer may have made it meanwhile
  if (again && again->exists && again->directory) return Status::success();
  return Status::failure("cannot create directory '" + path + "': " + why);
}

Status SshSession::write_file(const std::string& path, const Reader& read, mode_t mode, std::optional<uid_t> uid,
                              std::optional<gid_t> gid, const std::atomic<bool>* stop) {
  mode &= 0777;
  std::string base = base_of(path);
  if (base.size() > 100) base.resize(100);
  const std::string tmp = parent_of(path) + "/." + base + ".gorgone-" + protocol::to_hex(protocol::random_bytes(6)) + ".tmp";
  // Created with its final mode: the server's umask may take bits away, which the first file
  // of each mode tells (one stat per mode and session) and a setstat puts back.
  sftp_file f = sftp_open(sftp_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  if (!f) return Status::failure("cannot create '" + tmp + "': " + sftp_error_text());
  auto abandon = [&](std::string why) {
    if (alive()) {
      sftp_unlink(sftp_, tmp.c_str());
    } else {
      leftovers_.push_back(tmp);
    }
    return Status::failure(std::move(why));
  };
  std::vector<char> buf(kBlock);
  for (;;) {
    if (stop && stop->load()) {
      sftp_close(f);
      return abandon("copy to '" + path + "' abandoned: the SSH link to the node was closed");
    }
    long n = read(buf.data(), buf.size());
    if (n < 0) {
      sftp_close(f);
      return abandon("cannot read the source of '" + path + "'");
    }
    if (n == 0) break;
    std::size_t off = 0;
    while (off < static_cast<std::size_t>(n)) {
      ssize_t w = sftp_write(f, buf.data() + off, static_cast<std::size_t>(n) - off);
      if (w <= 0) {
        std::string why = sftp_error_text();
        sftp_close(f);
        return abandon("cannot write '" + tmp + "': " + why);
      }
      off += static_cast<std::size_t>(w);
    }
  }
  // What the server made of the mode, learnt once per mode; and the current ids when only
  // one of owner/group is asked (SFTP sets both at once).
  auto exact = mode_exact_.find(mode);
  const bool need_stat = exact == mode_exact_.end() || (uid.has_value() != gid.has_value());
  std::uint32_t cur_uid = 0, cur_gid = 0;
  if (need_stat) {
    sftp_attributes a = sftp_fstat(f);
    if (!a) {
      std::string why = sftp_error_text();
      sftp_close(f);
      return abandon("cannot stat '" + tmp + "': " + why);
    }
    if (exact == mode_exact_.end()) exact = mode_exact_.emplace(mode, (a->permissions & 0777) == mode).first;
    cur_uid = a->uid;
    cur_gid = a->gid;
    sftp_attributes_free(a);
  }
  if (sftp_close(f) != SSH_OK) return abandon("cannot close '" + tmp + "': " + sftp_error_text());
  if (!exact->second || uid || gid) {
    sftp_attributes_struct attr{};
    if (!exact->second) {
      attr.flags |= SSH_FILEXFER_ATTR_PERMISSIONS;
      attr.permissions = mode;
    }
    if (uid || gid) {
      attr.flags |= SSH_FILEXFER_ATTR_UIDGID;
      attr.uid = uid ? static_cast<std::uint32_t>(*uid) : cur_uid;
      attr.gid = gid ? static_cast<std::uint32_t>(*gid) : cur_gid;
    }
    if (sftp_setstat(sftp_, tmp.c_str(), &attr) != 0)
      return abandon("cannot set mode/owner/group of '" + path + "': " + sftp_error_text());
  }
  // SFTP version 3 renames only onto a free name, so a file being replaced goes first: in
  // between the destination is briefly absent, never half-written. Whether the files of a
  // copy replace others is learnt as it goes (new files: 1 request, replacements: 2).
  if (replacing_) {
    if (sftp_unlink(sftp_, path.c_str()) != 0) {
      int code = sftp_get_error(sftp_);
      if (code == SSH_FX_NO_SUCH_FILE || code == SSH_FX_NO_SUCH_PATH) replacing_ = false;
    }
    if (sftp_rename(sftp_, tmp.c_str(), path.c_str()) != 0)
      return abandon("cannot rename '" + tmp + "' to '" + path + "': " + sftp_error_text());
    return Status::success();
  }
  if (sftp_rename(sftp_, tmp.c_str(), path.c_str()) != 0) {
    if (sftp_unlink(sftp_, path.c_str()) != 0 || sftp_rename(sftp_, tmp.c_str(), path.c_str()) != 0)
      return abandon("cannot rename '" + tmp + "' to '" + path + "': " + sftp_error_text());
    replacing_ = true;
  }
  return Status::success();
}

Status SshSession::append(const std::string& path, const std::string& data) {
  sftp_file f = sftp_open(sftp_, path.c_str(), O_WRONLY | O_APPEND, 0660);
  if (!f) return Status::failure("cannot open '" + path + "': " + sftp_error_text());
  ssize_t w = data.empty() ? 0 : sftp_write(f, data.data(), data.size());
  std::string why = w < 0 ? sftp_error_text() : "";
  sftp_close(f);
  if (w < 0 || static_cast<std::size_t>(w) != data.size()) return Status::failure("cannot write '" + path + "': " + why);
  return Status::success();
}

Status SshSession::create(const std::string& path, const std::string& data, mode_t mode) {
  sftp_file f = sftp_open(sftp_, path.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  if (!f) return Status::failure("cannot create '" + path + "': " + sftp_error_text());
  ssize_t w = sftp_write(f, data.data(), data.size());
  std::string why = w < 0 ? sftp_error_text() : "";
  sftp_close(f);
  if (w < 0 || static_cast<std::size_t>(w) != data.size()) return Status::failure("cannot write '" + path + "': " + why);
  return Status::success();
}

Result<std::map<std::string, std::uint32_t>> SshSession::read_ids(const char* file) {
  sftp_file f = sftp_open(sftp_, file, O_RDONLY, 0);
  if (!f) return make_error(std::string("cannot read ") + file + " of the node: " + sftp_error_text());
  std::string text;
  std::vector<char> buf(65536);
  for (;;) {
    ssize_t n = sftp_read(f, buf.data(), buf.size());
    if (n < 0) {
      std::string why = sftp_error_text();
      sftp_close(f);
      return make_error(std::string("cannot read ") + file + " of the node: " + why);
    }
    if (n == 0 || text.size() > (16u << 20)) break;
    text.append(buf.data(), static_cast<std::size_t>(n));
  }
  sftp_close(f);
  std::map<std::string, std::uint32_t> ids;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    auto c1 = line.find(':');
    auto c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    auto c3 = c2 == std::string::npos ? c2 : line.find(':', c2 + 1);
    if (c3 == std::string::npos) continue;
    std::string id = line.substr(c2 + 1, c3 - c2 - 1);
    if (id.empty() || id.size() > 10 || id.find_first_not_of("0123456789") != std::string::npos) continue;
    ids.emplace(line.substr(0, c1), static_cast<std::uint32_t>(std::stoul(id)));
  }
  return ids;
}

Result<uid_t> SshSession::user_id(const std::string& name) {
  if (!users_) {
    auto ids = read_ids("/etc/passwd");
    if (!ids) return make_error(ids.error());
    users_ = std::move(ids.value());
  }
  auto it = users_->find(name);
  if (it == users_->end()) return make_error("user '" + name + "' does not exist on the node");
  return static_cast<uid_t>(it->second);
}

Result<gid_t> SshSession::group_id(const std::string& name) {
  if (!groups_) {
    auto ids = read_ids("/etc/group");
    if (!ids) return make_error(ids.error());
    groups_ = std::move(ids.value());
  }
  auto it = groups_->find(name);
  if (it == groups_->end()) return make_error("group '" + name + "' does not exist on the node");
  return static_cast<gid_t>(it->second);
}

void SshSession::remove_leftovers() {
  if (!alive()) return;
  std::vector<std::string> left;
  for (const auto& tmp : leftovers_) {
    if (sftp_unlink(sftp_, tmp.c_str()) == 0) continue;
    int code = sftp_get_error(sftp_);
    if (code != SSH_FX_NO_SUCH_FILE && code != SSH_FX_NO_SUCH_PATH) left.push_back(tmp);
  }
  leftovers_ = std::move(left);
}

}  // namespace gorgone::proxy
