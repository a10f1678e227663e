// The COMMAND and ACTIONENGINE events of the action module: runs the requested shell
// commands one after the other and writes the same history rows as Gorgone's action
// module (modules/core/action/class.pm, action_command and action_actionengine).
//
// Accepted request shapes (frame data):
//   {"content":[{"command":"...","timeout":10,"metadata":{...},"continue_on_error":0}, ...], ...}
//   {"content":{"command":"..."}}     (one command)
//   [{"command":"..."}, ...]          (the content list alone)
//   {"command":"..."}                 (one command alone)
// ACTIONENGINE (what Centreon sends to restart or reload a poller's engine, REST
// POST /api/[nodes/<id>/]core/action/engine with the body {"command":"...","plugins":"..."}):
//   {"content":{"command":"...","plugins":"<file>"}, ...}   (one command, an object)
// Thread-safety: run_command_request is reentrant; call it from a worker thread (it blocks
// for as long as the commands run).
#pragma once

#include <atomic>
#include <regex>
#include <string>
#include <string_view>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "command_runner.hpp"
#include "gorgone/result.hpp"
#include "output.hpp"

namespace gorgone::action {

struct ActionSettings {
  double command_timeout = 30;  // seconds, when a command gives none
  bool whitelist_cmds = false;
  std::vector<std::string> allowed_patterns;  // as configured, for log messages
  std::vector<std::regex> allowed_cmds;       // ECMAScript, searched (not anchored) like Perl's =~
  std::size_t output_cap = kDefaultOutputCap;
  // PROCESSCOPY: keep set-user-id, set-group-id and sticky bits of copied files and archive
  // entries (directive keep_setid: true). Off by default: they are cleared.
  bool keep_setid = false;
  // ACTIONENGINE: with paranoid_plugins, a request naming a plugins file is refused, since
  // this module does not install plugins (Gorgone refuses when their installation fails).
  bool paranoid_plugins = false;
  // The request lanes (request_pool.hpp): command runners, requests waiting for one, and
  // ACTIONENGINE requests waiting or running at a time.
  std::size_t command_concurrency = default_command_concurrency();
  std::size_t command_queue = 1000;
  std::size_t max_concurrent_engine = 3;

  // max(4, 2 x cores), at most 32: commands mostly wait (plugins on the network, sleeps),
  // so more runners than cores pay off, but each holds a process and a pipe.
  static std::size_t default_command_concurrency();
};

// Reads the module's directives: command_timeout, whitelist_cmds, allowed_cmds, keep_setid
// (strictly true/false/yes/no/1/0), paranoid_plugins, command_concurrency (1-256),
// command_queue (0-100000), max_concurrent_engine (1-256). Unknown keys are ignored.
Result<ActionSettings> parse_settings(const YAML::Node& module_config);

// True when whitelisting is off or the command matches one of allowed_cmds.
bool command_allowed(const ActionSettings& settings, const std::string& command);

// Runs one COMMAND request. `abort` (may be null) kills the running command and stops the
// request when it becomes true.
void run_command_request(std::string_view data, const ActionSettings& settings, const Output& out,
                         const std::atomic<bool>* abort);

// Runs one ACTIONENGINE request: one command with the module's command_timeout. Rows as
// Gorgone's: a KO row (code 1) for a bad request or a command that could not run to its
// end, else one row code 2 "actionengine has finished successfully" (whatever the exit
// status, as Gorgone). `abort` as for run_command_request.
void run_engine_request(std::string_view data, const ActionSettings& settings, const Output& out,
                        const std::atomic<bool>* abort);

// Returns `text` with every invalid UTF-8 sequence replaced by U+FFFD, so that command
// output can be stored as JSON text.
std::string sanitize_utf8(std::string_view text);

}  // namespace gorgone::action
