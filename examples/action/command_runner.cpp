#include "command_runner.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

// posix_spawn_file_actions_addclosefrom_np is what keeps the host's descriptors out of
// the commands; glibc has it since 2.34.
#if !defined(__GLIBC__) || __GLIBC__ < 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ < 34)
#error "the action module needs posix_spawn_file_actions_addclosefrom_np (glibc 2.34 or later)"
#endif

namespace gorgone::action {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often a blocked wait looks at the abort flag.
constexpr milliseconds kTick{100};

// Closes the descriptor on every return path.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// The child dup2()s onto 0, 1 and 2; a source descriptor that is itself 0..2 (the host
// may run with closed standard streams) would be clobbered, so keep ours above them.
int above_stdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

// The signals the command must find at their default disposition: an ignored signal
// survives exec, and the host ignores some of these (SIGPIPE at least).
constexpr int kResetSignals[] = {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGALRM};

// posix_spawn's attribute and file-action objects, destroyed on every return path.
class SpawnSetup {
 public:
  SpawnSetup() {
    attr_ok_ = ::posix_spawnattr_init(&attr_) == 0;
    actions_ok_ = ::posix_spawn_file_actions_init(&actions_) == 0;
  }
  ~SpawnSetup() {
    if (attr_ok_) ::posix_spawnattr_destroy(&attr_);
    if (actions_ok_) ::posix_spawn_file_actions_destroy(&actions_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  // A process group of its own (so that the whole command can be killed), an empty signal
  // mask and default dispositions, stdin from /dev/null, stdout and stderr into the pipe,
  // and no other descriptor: those the host opened without O_CLOEXEC (sockets, database)
  // must not leak into commands.
  int prepare(int out_fd, int devnull) {
    if (!attr_ok_ || !actions_ok_) return ENOMEM;
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : kResetSignals) sigaddset(&defaults, sig);
    int rc;
    if ((rc = ::posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) ||
        (rc = ::posix_spawnattr_setpgroup(&attr_, 0)) || (rc = ::posix_spawnattr_setsigmask(&attr_, &none)) ||
        (rc = ::posix_spawnattr_setsigdefault(&attr_, &defaults)) ||
        (rc = ::posix_spawn_file_actions_adddup2(&actions_, devnull, 0)) ||
        (rc = ::posix_spawn_file_actions_adddup2(&actions_, out_fd, 1)) ||
        (rc = ::posix_spawn_file_actions_adddup2(&actions_, out_fd, 2)) ||
        (rc = ::posix_spawn_file_actions_addclosefrom_np(&actions_, 3)))
      return rc;
    return 0;
  }
  const posix_spawnattr_t* attr() const { return &attr_; }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
  bool attr_ok_ = false;
  bool actions_ok_ = false;
};

void kill_group(pid_t pid) {
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);  // in case the group was never created
}

bool aborted(const CommandOptions& o) { return o.abort && o.abort->load(); }

// Milliseconds poll() may sleep: up to the deadline, at most one tick.
int poll_delay(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()) + milliseconds(1);
  return static_cast<int>(std::clamp(left, milliseconds(0), kTick).count());
}

void append_capped(CommandResult& r, const char* data, std::size_t n, std::size_t cap) {
  std::size_t room = r.output.size() < cap ? cap - r.output.size() : 0;
  if (n > room) r.truncated = true;
  r.output.append(data, std::min(n, room));
}

// Reads the pipe until EOF, the deadline or an abort. Sets r.outcome when it gives up.
// Returns true on EOF.
bool read_output(int fd, Clock::time_point deadline, const CommandOptions& o, CommandResult& r) {
  char buf[65536];
  for (;;) {
    if (aborted(o)) {
      r.outcome = CommandResult::Outcome::kAborted;
      return false;
    }
    if (Clock::now() >= deadline) {
      r.outcome = CommandResult::Outcome::kTimedOut;
      return false;
    }
    struct pollfd p = {fd, POLLIN, 0};
    int rc = ::poll(&p, 1, poll_delay(deadline));
    if (rc < 0 && errno != EINTR) return true;  // cannot happen with a valid fd; stop reading
    if (rc <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return true;
    append_capped(r, buf, static_cast<std::size_t>(n), o.output_cap);
  }
}

// After EOF the shell normally exits at once, but a command may close its output and keep
// running: the deadline and the abort flag still apply. Returns true once reaped.
bool wait_exit(pid_t pid, Clock::time_point deadline, const CommandOptions& o, CommandResult& r, int& status) {
  auto pause = milliseconds(1);
  for (;;) {
    pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid) return true;
    if (got < 0 && errno != EINTR) {
      status = -1;  // ECHILD: someone else reaped it (SIGCHLD ignored)
      return true;
    }
    if (aborted(o)) {
      r.outcome = CommandResult::Outcome::kAborted;
      return false;
    }
    if (Clock::now() >= deadline) {
      r.outcome = CommandResult::Outcome::kTimedOut;
      return false;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(50));
  }
}

// Blocking reap after SIGKILL; loops on EINTR so that no zombie is left behind.
void reap(pid_t pid) {
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

void set_exit(CommandResult& r, int status) {
  if (status != -1 && WIFSIGNALED(status)) {
    r.outcome = CommandResult::Outcome::kSignaled;
    r.exit_code = 128 + WTERMSIG(status);
  } else {
    r.outcome = CommandResult::Outcome::kExited;
    r.exit_code = status == -1 ? -1 : WEXITSTATUS(status);
  }
}

CommandResult spawn_failed(std::string why) {
  CommandResult r;
  r.outcome = CommandResult::Outcome::kSpawnFailed;
  r.error = std::move(why);
  return r;
}

}  // namespace

CommandResult run_shell_command(const std::string& command, const CommandOptions& options) {
  const auto start = Clock::now();
  const auto deadline = start + options.timeout;
  if (command.find('\0') != std::string::npos) return spawn_failed("command contains a NUL byte");

  Fd devnull(above_stdio(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  if (devnull.get() < 0) return spawn_failed(std::string("cannot open /dev/null: ") + std::strerror(errno));
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return spawn_failed(std::string("pipe: ") + std::strerror(errno));
  Fd out_read(above_stdio(fds[0]));
  Fd out_write(above_stdio(fds[1]));
  if (out_read.get() < 0 || out_write.get() < 0) return spawn_failed("cannot move the pipe above stdio");

  SpawnSetup setup;
  if (int rc = setup.prepare(out_write.get(), devnull.get()); rc != 0)
    return spawn_failed(std::string("cannot prepare the command: ") + std::strerror(rc));
  std::string sh = "sh", dash_c = "-c", text = command;
  char* argv[] = {sh.data(), dash_c.data(), text.data(), nullptr};
  // glibc's posix_spawn runs the child on the parent's memory (clone with CLONE_VM and
  // CLONE_VFORK) until exec: no copy of the host's page tables per command, as fork would
  // make, and an exec failure comes back here as the return code. The group is in place
  // when it returns, so killing it can never miss the command.
  pid_t pid = -1;
  if (int rc = ::posix_spawn(&pid, "/bin/sh", setup.actions(), setup.attr(), argv, environ); rc != 0)
    return spawn_failed(std::string("cannot execute /bin/sh: ") + std::strerror(rc));

  out_write.reset();  // EOF arrives once every process of the command closed its copy
  devnull.reset();

  CommandResult r;
  int status = -1;
  bool done = read_output(out_read.get(), deadline, options, r) && wait_exit(pid, deadline, options, r, status);
  out_read.reset();
  if (done) {
    set_exit(r, status);
  } else {
    kill_group(pid);
    reap(pid);
    r.exit_code = -1;
  }
  r.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  return r;
}

}  // namespace gorgone::action
