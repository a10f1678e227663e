// Test support: a private OpenSSH server (/usr/sbin/sshd) on 127.0.0.1 and a free port.
//
//   if (std::string why = Sshd::unavailable(); !why.empty()) GTEST_SKIP() << why;
//   Sshd sshd;   // running: key login as sshd.user() with sshd.client_key()
//
// Everything lives in a fresh directory under /tmp: host and client keys, sshd_config,
// the log (sshd.log), the pid file, the authorized keys and the password user's home.
// The server runs in the foreground (-D), as a child of the test process. SFTP is served
// inside the session process (internal-sftp: no sftp-server process to find or kill).
// stop(), kill() and the destructor end the listener and every session process it
// started, so no connection outlives them. Servers still alive when the test program ends
// (gtest environment tear-down, or exit()) are removed with their user; if the test
// program is killed, sshd gets SIGTERM from the kernel (PR_SET_PDEATHSIG) and the user is
// removed by the next Sshd created on the machine (its comment names the dead owner pid).
//
// Thread-safety: one Sshd is used by one thread at a time, the thread that started it
// (sshd is told to stop when that thread ends). Distinct instances are independent.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <shadow.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "proc_stats.hpp"

namespace gorgone_test {

class SshdEnvironment;

class Sshd {
 public:
  // Why the fixture cannot run here, "" when it can: sshd's privilege separation and the
  // password account need root, and the OpenSSH and shadow tools must be installed.
  static std::string unavailable() {
    if (::geteuid() != 0) return "needs root (sshd privilege separation, a local password user)";
    for (const char* tool : {kSshd, kKeygen, kUseradd, kUserdel, kChpasswd}) {
      if (::access(tool, X_OK) != 0) return std::string(tool) + " is missing (openssh-server, passwd)";
    }
    if (::getpwnam("sshd") == nullptr) return "no 'sshd' privilege separation user (openssh-server)";
    // Without PAM, sshd refuses every login (keys too) to an account whose hash starts with '!'.
    if (struct spwd* sp = ::getspnam("root"); sp != nullptr && sp->sp_pwdp != nullptr && sp->sp_pwdp[0] == '!') {
      return "root's account is locked ('!' in /etc/shadow): sshd without PAM refuses its logins";
    }
    return "";
  }

  // Generates the host key and two client key pairs (ed25519, no passphrase), authorizes
  // client_key() for user(), creates password_user(), writes sshd_config and starts sshd.
  // Throws std::runtime_error with the failing tool's or sshd's own error text.
  Sshd() {
    std::string tmpl = std::string(kDirPrefix) + "XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error(std::string("Sshd: mkdtemp: ") + std::strerror(errno));
    }
    dir_ = tmpl;
    registry().add(this);
    try {
      // The password user must reach its home inside; private keys stay 0600.
      ::chmod(dir_.c_str(), 0755);
      remove_stale_users();
      // sshd's privilege separation chroot; the package creates it only at boot.
      if (::mkdir("/run/sshd", 0755) != 0 && errno != EEXIST) {
        throw std::runtime_error(std::string("Sshd: mkdir /run/sshd: ") + std::strerror(errno));
      }
      keygen(host_key(), "gorgone-test-host");
      keygen(client_key(), "gorgone-test-client");
      keygen(other_key(), "gorgone-test-unauthorized");
      std::filesystem::create_directory(dir_ + "/authorized_keys");
      ::chmod((dir_ + "/authorized_keys").c_str(), 0755);
      write(dir_ + "/authorized_keys/root", read(client_key() + ".pub"), 0644);
      port_ = free_port();
      write_known_hosts();
      create_password_user();
      // The same key logs in as the password user: a plain /bin/sh account, so that commands
      // run without root's shell start-up files (whatever this machine put there).
      write(dir_ + "/authorized_keys/" + password_user_, read(client_key() + ".pub"), 0644);
      write_config();
      start();
    } catch (...) {
      cleanup();
      registry().remove(this);
      throw;
    }
  }

  // Stops sshd and its sessions, deletes the password user and removes the directory.
  ~Sshd() {
    cleanup();
    registry().remove(this);
  }

  Sshd(const Sshd&) = delete;
  Sshd& operator=(const Sshd&) = delete;

  // The TCP port on 127.0.0.1; the same across stop()/start().
  int port() const { return port_; }
  // The private directory holding keys, config, log and pid file.
  const std::string& dir() const { return dir_; }
  // The account that logs in with client_key(): root (PermitRootLogin yes).
  std::string user() const { return "root"; }
  // Private key authorized for user() and password_user(); its public half is client_key() + ".pub".
  std::string client_key() const { return dir_ + "/client_ed25519"; }
  // A private key authorized for nobody: for "wrong key" cases.
  std::string other_key() const { return dir_ + "/other_ed25519"; }
  // A known_hosts file with one line, "[127.0.0.1]:<port> ssh-ed25519 AAAA...", for the
  // host key the server had when it was created (change_host_key() leaves it as is).
  std::string known_hosts() const { return dir_ + "/known_hosts"; }
  // A local account created for this server (shell /bin/sh, home in dir()), that logs in by
  // password, or with client_key().
  std::string password_user() const { return password_user_; }
  // Its random password (letters and digits).
  std::string password() const { return password_; }
  // sshd's log so far (LogLevel VERBOSE): for failure messages.
  std::string log() const { return read(log_file()); }
  // Whether sshd is running (it may have exited on its own).
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return false;
    }
    return true;
  }

  // Graceful stop: SIGTERM to sshd and its session processes, then waits until they are
  // gone (SIGKILL after 10 s). Open connections are closed by the server.
  void stop() {
    if (!running()) return;
    std::map<pid_t, unsigned long long> tree = freeze();
    for (const auto& [pid, start] : tree) {
      ::kill(pid, SIGTERM);
      ::kill(pid, SIGCONT);
    }
    if (!reap_listener(std::chrono::seconds(10))) {
      ::kill(pid_, SIGKILL);
      reap_listener(std::chrono::seconds(10));
    }
    pid_ = 0;
    wait_gone(tree, true);
  }

  // Abrupt stop: SIGKILL to sshd and every session process, as a crash or a cut cable
  // would: an in-flight transfer is cut.
  void kill() {
    if (!running()) return;
    std::map<pid_t, unsigned long long> tree = freeze();
    for (const auto& [pid, start] : tree) ::kill(pid, SIGKILL);
    reap_listener(std::chrono::seconds(30));
    pid_ = 0;
    wait_gone(tree, false);
  }

  // Starts sshd (again) on the same port with the same keys and config, and returns once
  // it accepts TCP connections (the probe shows in the log as a connection closed before
  // the SSH identification). Does nothing when it is running. Throws with the log when
  // sshd exits or is not ready within 30 s (e.g. someone else took the port meanwhile).
  void start() {
    if (running()) return;
    ::unlink(pid_file().c_str());
    int log_fd = ::open(log_file().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) {
      if (log_fd >= 0) ::close(log_fd);
      if (null_fd >= 0) ::close(null_fd);
      throw std::runtime_error("Sshd: cannot open " + log_file());
    }
    struct stat st {};
    off_t log_start = ::fstat(log_fd, &st) == 0 ? st.st_size : 0;
    std::vector<std::string> args = {kSshd, "-D", "-e", "-f", config_file(), "-E", log_file()};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string path_env = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    char* envp[] = {path_env.data(), nullptr};
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls until exec: the test program may have threads.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execve(kSshd, argv.data(), envp);
      ::_exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    if (pid < 0) throw std::runtime_error(std::string("Sshd: fork: ") + std::strerror(errno));
    pid_ = pid;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                            : "was killed by signal " + std::to_string(WTERMSIG(status));
        throw std::runtime_error("Sshd: sshd " + how + ": " + read(log_file()).substr(log_start));
      }
      // sshd writes its pid file once its listening sockets are bound: then a connection
      // that succeeds reached sshd, not whoever held the port before.
      if (trim(read(pid_file())) == std::to_string(pid_) && accepts_tcp()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    throw std::runtime_error("Sshd: sshd not accepting on 127.0.0.1:" + std::to_string(port_) +
                             " after 30 s: " + read(log_file()).substr(log_start));
  }

  // Replaces the host key by a new one and (re)starts sshd; known_hosts() keeps the old
  // key, so a client that checks it strictly must refuse the server.
  void change_host_key() {
    stop();
    ::unlink(host_key().c_str());
    ::unlink((host_key() + ".pub").c_str());
    keygen(host_key(), "gorgone-test-host");
    start();
  }

 private:
  static constexpr const char* kSshd = "/usr/sbin/sshd";
  static constexpr const char* kKeygen = "/usr/bin/ssh-keygen";
  static constexpr const char* kUseradd = "/usr/sbin/useradd";
  static constexpr const char* kUserdel = "/usr/sbin/userdel";
  static constexpr const char* kChpasswd = "/usr/sbin/chpasswd";
  static constexpr const char* kUserPrefix = "gssht";
  static constexpr const char* kUserComment = "gorgone test sshd, pid ";
  static constexpr const char* kDirPrefix = "/tmp/gorgone-sshd-";

  // The live servers of this process, removed at the end of the test program even when
  // their destructor does not run (a static instance, exit() from a test).
  class Registry {
   public:
    void add(Sshd* s) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!hooked_) {
        hooked_ = true;
        owner_ = ::getpid();
        std::atexit([] { registry().cleanup_all(); });
      }
      live_.insert(s);
    }
    void remove(Sshd* s) {
      std::lock_guard<std::mutex> lock(mu_);
      live_.erase(s);
    }
    void cleanup_all() {
      std::set<Sshd*> live;
      {
        std::lock_guard<std::mutex> lock(mu_);
        // A forked child (a gtest death test) must not remove its parent's servers.
        if (::getpid() != owner_) return;
        live = live_;
      }
      for (Sshd* s : live) s->cleanup();
    }

   private:
    std::mutex mu_;
    std::set<Sshd*> live_;
    bool hooked_ = false;
    pid_t owner_ = 0;
  };

  friend class SshdEnvironment;
  static Registry& registry() {
    static Registry r;
    return r;
  }

  std::string host_key() const { return dir_ + "/host_ed25519"; }
  std::string config_file() const { return dir_ + "/sshd_config"; }
  std::string log_file() const { return dir_ + "/sshd.log"; }
  std::string pid_file() const { return dir_ + "/sshd.pid"; }

  // Idempotent: stops the server, deletes the user and the directory.
  void cleanup() {
    stop();
    if (!password_user_.empty()) {
      std::string out;
      run({kUserdel, "--remove", "--force", password_user_}, "", &out);
      password_user_.clear();
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  static void write(const std::string& path, const std::string& text, mode_t mode) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out || ::chmod(path.c_str(), mode) != 0) throw std::runtime_error("Sshd: cannot write " + path);
  }

  static std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
  }

  static std::string random_string(size_t n, const char* alphabet) {
    std::random_device rd;
    std::uniform_int_distribution<size_t> pick(0, std::strlen(alphabet) - 1);
    std::string out;
    for (size_t i = 0; i < n; ++i) out += alphabet[pick(rd)];
    return out;
  }

  // A TCP port that was free a moment ago on 127.0.0.1.
  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("Sshd: socket failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
              ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    ::close(fd);
    if (!ok) throw std::runtime_error("Sshd: no free port on 127.0.0.1");
    return ntohs(a.sin_port);
  }

  bool accepts_tcp() const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(fd);
    return ok;
  }

  // Runs a tool (no shell) with stdin_text on its standard input; its stdout and stderr go
  // to *output. Returns the exit status, -1 when it did not exit normally.
  static int run(std::vector<std::string> args, const std::string& stdin_text, std::string* output) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return -1;
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      return -1;
    }
    // Small texts only (a password line): the pipe buffer holds it all before the fork.
    ssize_t written = ::write(in[1], stdin_text.data(), stdin_text.size());
    ::close(in[1]);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string path_env = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    char* envp[] = {path_env.data(), nullptr};
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::execve(argv[0], argv.data(), envp);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) output->append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    if (pid < 0 || written != static_cast<ssize_t>(stdin_text.size())) {
      if (pid > 0) ::waitpid(pid, nullptr, 0);
      return -1;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static void run_or_throw(std::vector<std::string> args, const std::string& stdin_text = "") {
    std::string out;
    std::string what = args[0];
    if (run(std::move(args), stdin_text, &out) != 0) {
      throw std::runtime_error("Sshd: " + what + " failed: " + trim(out));
    }
  }

  static void keygen(const std::string& path, const std::string& comment) {
    run_or_throw({kKeygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path});
  }

  void write_known_hosts() {
    std::istringstream pub(read(host_key() + ".pub"));
    std::string type, key;
    pub >> type >> key;
    write(known_hosts(), "[127.0.0.1]:" + std::to_string(port_) + " " + type + " " + key + "\n", 0644);
  }

  void create_password_user() {
    std::string out;
    for (int attempt = 0; attempt < 5; ++attempt) {
      std::string name = kUserPrefix + random_string(6, "abcdefghijklmnopqrstuvwxyz0123456789");
      out.clear();
      if (run({kUseradd, "--create-home", "--home-dir", dir_ + "/" + name, "--shell", "/bin/sh", "--comment",
               kUserComment + std::to_string(::getpid()), name},
              "", &out) == 0) {
        password_user_ = name;
        break;
      }
    }
    if (password_user_.empty()) throw std::runtime_error("Sshd: useradd failed: " + trim(out));
    password_ = random_string(24, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    run_or_throw({kChpasswd}, password_user_ + ":" + password_ + "\n");
  }

  void write_config() {
    std::string d = dir_;
    std::string text =
        "# Private test server on loopback.\n"
        "Port " + std::to_string(port_) + "\n"
        "ListenAddress 127.0.0.1\n"
        "HostKey " + host_key() + "\n"
        "PidFile " + pid_file() + "\n"
        "LogLevel VERBOSE\n"
        // %u: one file per user in the private directory. StrictModes would reject it:
        // /tmp above it is world-writable.
        "AuthorizedKeysFile " + d + "/authorized_keys/%u\n"
        "StrictModes no\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication yes\n"
        "PermitEmptyPasswords no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "PermitRootLogin yes\n"
        "AllowUsers root " + password_user_ + "\n"
        "Subsystem sftp internal-sftp\n"
        "MaxStartups 100\n"
        "MaxSessions 50\n"
        "ClientAliveInterval 0\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        "X11Forwarding no\n";
    write(config_file(), text, 0644);
  }

  // Deletes the users (and their server's directory) left by test programs that died
  // before removing them.
  static void remove_stale_users() {
    std::ifstream in("/etc/passwd");
    std::string line;
    std::vector<std::pair<std::string, std::string>> stale;  // name, home
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::istringstream fields(line);
      for (std::string x; std::getline(fields, x, ':');) f.push_back(x);
      if (f.size() < 6 || f[0].rfind(kUserPrefix, 0) != 0 || f[4].rfind(kUserComment, 0) != 0) continue;
      pid_t owner = static_cast<pid_t>(std::atol(f[4].c_str() + std::strlen(kUserComment)));
      if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) stale.emplace_back(f[0], f[5]);
    }
    for (const auto& [name, home] : stale) {
      std::string out;
      run({kUserdel, "--remove", "--force", name}, "", &out);
      std::string parent = std::filesystem::path(home).parent_path().string();
      if (parent.rfind(kDirPrefix, 0) == 0) {
        std::error_code ec;
        std::filesystem::remove_all(parent, ec);
      }
    }
  }

  // State letter and start time (clock ticks since boot) of a process; false when gone.
  static bool proc_stat(pid_t pid, char* state, pid_t* ppid, unsigned long long* start) {
    std::string text = gorgone::testing::read_proc("/proc/" + std::to_string(pid) + "/stat");
    size_t paren = text.rfind(')');
    if (paren == std::string::npos) return false;
    std::istringstream rest(text.substr(paren + 2));
    std::string skip;
    long long parent = 0;
    rest >> *state >> parent;
    for (int field = 5; field < 22; ++field) rest >> skip;  // fields 5..21
    rest >> *start;
    *ppid = static_cast<pid_t>(parent);
    return static_cast<bool>(rest);
  }

  // sshd and all its descendants (sessions run in their own sessions, so no process group
  // covers them), with their start times.
  std::map<pid_t, unsigned long long> tree() const {
    std::multimap<pid_t, std::pair<pid_t, unsigned long long>> children;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string name = entry.path().filename().string();
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
      pid_t pid = static_cast<pid_t>(std::atol(name.c_str()));
      char state = 0;
      pid_t ppid = 0;
      unsigned long long start = 0;
      if (proc_stat(pid, &state, &ppid, &start)) children.emplace(ppid, std::make_pair(pid, start));
    }
    std::map<pid_t, unsigned long long> out;
    char state = 0;
    pid_t ppid = 0;
    unsigned long long start = 0;
    if (!proc_stat(pid_, &state, &ppid, &start)) return out;
    out[pid_] = start;
    std::vector<pid_t> todo = {pid_};
    while (!todo.empty()) {
      pid_t p = todo.back();
      todo.pop_back();
      auto range = children.equal_range(p);
      for (auto it = range.first; it != range.second; ++it) {
        if (out.emplace(it->second.first, it->second.second).second) todo.push_back(it->second.first);
      }
    }
    return out;
  }

  // SIGSTOPs sshd and its descendants until no new one appears (a stopped process cannot
  // fork), so that signals then reach every process of this server and no other.
  std::map<pid_t, unsigned long long> freeze() {
    std::map<pid_t, unsigned long long> frozen;
    for (int round = 0; round < 50; ++round) {
      std::map<pid_t, unsigned long long> now = tree();
      std::vector<pid_t> fresh;
      for (const auto& [pid, start] : now) {
        if (frozen.emplace(pid, start).second) fresh.push_back(pid);
      }
      if (fresh.empty()) break;
      for (pid_t pid : fresh) ::kill(pid, SIGSTOP);
      // Stopping is asynchronous: wait until each one is stopped (or gone) before looking
      // for children again.
      for (pid_t pid : fresh) {
        for (int i = 0; i < 200; ++i) {
          char state = 0;
          pid_t ppid = 0;
          unsigned long long start = 0;
          if (!proc_stat(pid, &state, &ppid, &start) || state == 'T' || state == 't' || state == 'Z' ||
              state == 'X') {
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
    }
    return frozen;
  }

  bool reap_listener(std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }

  // Waits until the session processes of `procs` have exited (a zombie waiting for init
  // counts as exited); SIGKILLs the ones still there after 10 s when `force`.
  static void wait_gone(const std::map<pid_t, unsigned long long>& procs, bool force) {
    auto alive = [](pid_t pid, unsigned long long start) {
      char state = 0;
      pid_t ppid = 0;
      unsigned long long now_start = 0;
      return proc_stat(pid, &state, &ppid, &now_start) && now_start == start && state != 'Z' && state != 'X';
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      bool any = false;
      for (const auto& [pid, start] : procs) any = any || alive(pid, start);
      if (!any) return;
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!force) return;
    for (const auto& [pid, start] : procs) {
      if (alive(pid, start)) ::kill(pid, SIGKILL);
    }
  }

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = 0;
  std::string password_user_;
  std::string password_;
};

// Removes the servers still alive once all tests ran, while gtest still reports errors.
class SshdEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { Sshd::registry().cleanup_all(); }
};

inline ::testing::Environment* const kSshdEnvironment = ::testing::AddGlobalTestEnvironment(new SshdEnvironment);

}  // namespace gorgone_test
