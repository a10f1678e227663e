// Runs one shell command the way Gorgone's action module does: `/bin/sh -c <command>` in a
// process group of its own, stdin from /dev/null, stdout and stderr captured together
// through one pipe, and the whole group killed when the timeout expires.
//
// The command text is passed as one argv element; nothing is ever pasted into another
// shell string. Output beyond `output_cap` bytes is read and dropped so that the command
// never blocks on a full pipe.
//
// Thread-safety: reentrant; the module's command runners call it at the same time. The
// command is started with posix_spawn (no fork of the host's memory); every descriptor the
// runner opens is O_CLOEXEC, so a command never holds another runner's pipe (which would
// delay that runner's end of output until this command exits).
// Caveat: if the host sets SIGCHLD to SIG_IGN the kernel reaps children itself and the
// exit status is lost (exit_code -1).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>

namespace gorgone::action {

inline constexpr std::size_t kDefaultOutputCap = 1u << 20;  // 1 MiB

struct CommandOptions {
  std::chrono::milliseconds timeout{30000};
  std::size_t output_cap = kDefaultOutputCap;
  // When it becomes true the command's process group is killed (module shutdown).
  const std::atomic<bool>* abort = nullptr;
};

struct CommandResult {
  enum class Outcome {
    kExited,       // exit_code = exit status
    kSignaled,     // killed by a signal it did not get from us: exit_code = 128 + signal
    kTimedOut,     // we killed the group after the timeout
    kAborted,      // we killed the group because *abort became true
    kSpawnFailed,  // nothing ran: see error
  };
  Outcome outcome = Outcome::kSpawnFailed;
  int exit_code = -1;
  std::string output;  // stdout + stderr, at most output_cap bytes, untouched
  bool truncated = false;
  std::string error;
  std::chrono::milliseconds elapsed{0};

  bool completed() const { return outcome == Outcome::kExited || outcome == Outcome::kSignaled; }
};

CommandResult run_shell_command(const std::string& command, const CommandOptions& options);

}  // namespace gorgone::action
