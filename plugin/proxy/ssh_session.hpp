// One SSH session to a push_ssh node (libssh, blocking calls): connection with the host-key
// policy, authentication, commands on exec channels with timeouts, and SFTP file writes that
// never leave a half-written file under the destination's name.
// No method builds a shell command: paths go to SFTP calls; exec() runs the text it is given
// (the user's own command, or a fixed one).
// Thread-safety: thread-bound (one SSH thread per node); shutdown() may be called from any
// thread to make a blocked call return.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>

#include "gorgone/json.hpp"
#include "gorgone/result.hpp"

struct ssh_session_struct;
struct sftp_session_struct;

namespace gorgone::proxy {

// A push_ssh node's attributes (Gorgone's names), as registered.
struct SshOptions {
  std::string host;            // address
  int port = 22;               // ssh_port
  std::string user;            // ssh_username ("" = libssh's default: the local user)
  std::string password;        // ssh_password (never logged)
  std::string directory;       // ssh_directory (keys and known_hosts are looked up there)
  std::string known_hosts;     // ssh_known_hosts
  std::string identity;        // ssh_identity (a private key file)
  int connect_timeout = 5;     // ssh_connect_timeout, seconds
  // strict_serverkey_check: true refuses a host key that known_hosts does not list; false
  // accepts it and records it. A key that differs from the one recorded is always refused.
  bool strict_host_key = false;
};

// Reads the attributes of a node object. Errors name the attribute and the node.
Result<SshOptions> ssh_options_of(const std::string& node_id, const json::Value& node);

struct ExecResult {
  enum class Outcome { kCompleted, kTimedOut, kFailed, kStopped } outcome = Outcome::kFailed;
  int exit_code = -1;  // kCompleted: the remote exit status (-1 when the server sent none)
  std::string out, err;
  bool truncated = false;  // output beyond the cap was dropped
  std::string error;       // kFailed: why (libssh's text)
};

class SshSession {
 public:
  static constexpr std::size_t kOutputCap = 1 << 20;  // bytes kept per stream
  static constexpr std::size_t kBlock = 128 * 1024;   // SFTP write size

  SshSession();
  ~SshSession();
  SshSession(const SshSession&) = delete;
  SshSession& operator=(const SshSession&) = delete;

  // Connects, checks the host key, authenticates (public key: identity file, keys of
  // ssh_directory, agent; then password) and opens SFTP. The error says which step failed
  // and why, never the password. `refused` is set when the node answered and said no (host
  // key, authentication): trying again will not help until its configuration changes.
  // Runs in non-blocking steps: `stop` (may be null) or shutdown() end it within ~50 ms.
  Status connect(const SshOptions& options, bool* refused, const std::atomic<bool>* stop);
  // A cheap round trip (an SFTP stat of "."): false when the connection is gone.
  bool probe();
  // Without a round trip: the node has closed the connection (its end is gone; a killed or
  // restarted sshd). False when that cannot be seen yet.
  bool peer_closed() const;
  // Connected and not known to be cut.
  bool alive() const;
  void disconnect();
  // From any thread: cuts the TCP connection so that a call blocked on it fails now.
  void shutdown();

  // Runs `command` on an exec channel. `timeout_s`: the whole run; `nodata_s`: the longest
  // silence (0 = none). `stop` (may be null) ends the wait early (kStopped).
  ExecResult exec(const std::string& command, int timeout_s, int nodata_s, const std::atomic<bool>* stop);

  // ---- SFTP (each error text names the path and carries the server's reason)
  struct FileType {
    bool exists = false;
    bool directory = false;
    bool special = false;  // neither a regular file, a directory nor a link (a fifo, a socket...)
  };
  Result<FileType> stat(const std::string& path);
  // mkdir -p; existing directories are fine, anything else in the way is an error.
  Status make_directories(const std::string& path, mode_t mode = 0755);
  // Writes a remote file from `read` (called until it returns 0; a negative value is a read
  // error), first under a temporary name in the same directory, then renamed over `path`.
  // Mode set exactly (no umask); owner/group (remote numeric ids) when given. On any error
  // the temporary file is removed when the session still works; when it does not, its name
  // is remembered and removed on the next session (see leftovers()).
  using Reader = std::function<long(char* buf, std::size_t size)>;
  Status write_file(const std::string& path, const Reader& read, mode_t mode, std::optional<uid_t> uid,
                    std::optional<gid_t> gid, const std::atomic<bool>* stop);
  // Appends `data` to an existing file (the engine's command pipe): no create, no rename.
  Status append(const std::string& path, const std::string& data);
  // Creates `path` exclusively with `data` (a centcore command file).
  Status create(const std::string& path, const std::string& data, mode_t mode);
  // A user or group name of the node, from its /etc/passwd or /etc/group (read once per session).
  Result<uid_t> user_id(const std::string& name);
  Result<gid_t> group_id(const std::string& name);

  // Temporary files of writes a cut session interrupted; the caller removes them through the
  // next session with remove_leftovers().
  void remove_leftovers();
  std::size_t leftovers() const { return leftovers_.size(); }

 private:
  std::string error_text() const;
  std::string sftp_error_text() const;
  Result<std::map<std::string, std::uint32_t>> read_ids(const char* file);

  ssh_session_struct* session_ = nullptr;
  sftp_session_struct* sftp_ = nullptr;
  mutable std::mutex fd_mutex_;  // guards socket_fd_ against shutdown() from another thread
  int socket_fd_ = -1;
  std::optional<std::map<std::string, std::uint32_t>> users_, groups_;
  std::vector<std::string> leftovers_;
  std::map<mode_t, bool> mode_exact_;  // mode -> the server's umask leaves it whole (this session)
  bool replacing_ = false;             // the last file written replaced one (try unlink first)
};

}  // namespace gorgone::proxy
