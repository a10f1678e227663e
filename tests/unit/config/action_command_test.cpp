// The action example module's COMMAND side, without loading the module: the shell runner
// and the request handler with its history rows.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <csignal>
#include <pthread.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "command_request.hpp"
#include "command_runner.hpp"
#include "gorgone/json.hpp"
#include "proc_stats.hpp"

namespace gorgone::action {
namespace {

using namespace std::chrono_literals;
using Outcome = CommandResult::Outcome;

// No child of the test process may be left, running or zombie.
void expect_no_children() {
  int status;
  errno = 0;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

bool dead(pid_t pid) { return gorgone::testing::process_gone(pid); }

CommandResult run(const std::string& command, std::chrono::milliseconds timeout = 10s,
                  std::size_t cap = kDefaultOutputCap) {
  CommandOptions o;
  o.timeout = timeout;
  o.output_cap = cap;
  return run_shell_command(command, o);
}

TEST(CommandRunner, ExitCodes) {
  auto ok = run("true");
  EXPECT_EQ(ok.outcome, Outcome::kExited);
  EXPECT_EQ(ok.exit_code, 0);
  auto three = run("exit 3");
  EXPECT_EQ(three.outcome, Outcome::kExited);
  EXPECT_EQ(three.exit_code, 3);
  auto missing = run("/nonexistent/program");
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.output.find("not found"), std::string::npos) << missing.output;
  expect_no_children();
}

TEST(CommandRunner, CapturesStdoutAndStderrInOrder) {
  auto r = run("echo out; echo err >&2; printf 'last'");
  EXPECT_EQ(r.outcome, Outcome::kExited);
  EXPECT_EQ(r.output, "out\nerr\nlast");
  EXPECT_FALSE(r.truncated);
}

TEST(CommandRunner, ArgumentIsNotReinterpreted) {
  // Quotes and metacharacters reach /bin/sh exactly once, as written.
  auto r = run("printf '%s|' \"a b\" 'c;d' '$HOME'");
  EXPECT_EQ(r.output, "a b|c;d|$HOME|");
}

TEST(CommandRunner, StdinIsDevNull) {
  auto r = run("cat; echo done", 5s);
  EXPECT_EQ(r.outcome, Outcome::kExited);
  EXPECT_EQ(r.output, "done\n");
}

TEST(CommandRunner, SignalledCommand) {
  auto r = run("kill -TERM $$");
  EXPECT_EQ(r.outcome, Outcome::kSignaled);
  EXPECT_EQ(r.exit_code, 128 + SIGTERM);
}

TEST(CommandRunner, TimeoutKillsTheWholeGroup) {
  auto start = std::chrono::steady_clock::now();
  // The background sleep is a grandchild: it must die with the group.
  auto r = run("sleep 30 & echo $!; sleep 30", 500ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.outcome, Outcome::kTimedOut);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_LT(took, 5s);
  EXPECT_GE(took, 450ms);
  expect_no_children();
  ASSERT_FALSE(r.output.empty());
  pid_t grandchild = static_cast<pid_t>(std::stol(r.output));
  bool gone = false;
  for (int i = 0; i < 50 && !(gone = dead(grandchild)); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(gone) << "background process " << grandchild << " survived";
}

TEST(CommandRunner, TimeoutAfterOutputClosed) {
  // The command closes its output early: EOF comes first, the timeout must still apply.
  auto r = run("exec >&- 2>&-; sleep 30", 300ms);
  EXPECT_EQ(r.outcome, Outcome::kTimedOut);
  expect_no_children();
}

TEST(CommandRunner, OutputIsCapped) {
  auto r = run("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo tail-ok >&2", 20s);
  EXPECT_EQ(r.outcome, Outcome::kExited);
  EXPECT_EQ(r.exit_code, 0);  // the command was drained, never blocked
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.output.size(), kDefaultOutputCap);
  EXPECT_EQ(r.output.find_first_not_of('x'), std::string::npos);

  auto small = run("echo 0123456789", 5s, 4);
  EXPECT_EQ(small.output, "0123");
  EXPECT_TRUE(small.truncated);
}

TEST(CommandRunner, AbortKillsTheCommand) {
  std::atomic<bool> abort{false};
  CommandOptions o;
  o.timeout = 30s;
  o.abort = &abort;
  std::thread t([&] {
    std::this_thread::sleep_for(200ms);
    abort = true;
  });
  auto start = std::chrono::steady_clock::now();
  auto r = run_shell_command("sleep 30", o);
  t.join();
  EXPECT_EQ(r.outcome, Outcome::kAborted);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  expect_no_children();
}

TEST(CommandRunner, DoesNotLeakDescriptors) {
  int fd = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(fd, 0);
  std::string n = std::to_string(fd);
  auto r = run("if [ -e /proc/$$/fd/" + n + " ]; then echo leaked; else echo clean; fi");
  ::close(fd);
  EXPECT_EQ(r.output, "clean\n");
}

TEST(CommandRunner, CommandsGetDefaultSignalsAndAnEmptyMask) {
  // An ignored signal survives exec and a blocked one stays blocked: the command must not
  // inherit the host's (it ignores SIGPIPE, its threads may block signals).
  struct sigaction ignore {}, old_int {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGINT, &ignore, &old_int), 0);
  sigset_t term, old_mask;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old_mask), 0);
  auto interrupted = run("kill -INT $$; echo survived");
  auto terminated = run("kill -TERM $$; echo survived");
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  EXPECT_EQ(interrupted.outcome, Outcome::kSignaled) << interrupted.output;
  EXPECT_EQ(interrupted.exit_code, 128 + SIGINT);
  EXPECT_EQ(terminated.outcome, Outcome::kSignaled) << terminated.output;
  EXPECT_EQ(terminated.exit_code, 128 + SIGTERM);
}

TEST(CommandRunner, CommandsRunInAProcessGroupOfTheirOwn) {
  auto r = run("read -r pid comm state ppid pgrp rest < /proc/$$/stat; echo $pgrp $$");
  ASSERT_EQ(r.outcome, Outcome::kExited) << r.output;
  std::istringstream lines(r.output);
  long pgid = 0, pid = 0;
  lines >> pgid >> pid;
  EXPECT_EQ(pgid, pid) << r.output;
  EXPECT_NE(pgid, static_cast<long>(::getpgrp()));
}

TEST(CommandRunner, RejectsNulByte) {
  auto r = run(std::string("echo a\0b", 8));
  EXPECT_EQ(r.outcome, Outcome::kSpawnFailed);
  EXPECT_FALSE(r.error.empty());
}

// ---- the COMMAND request

struct Row {
  int code;
  json::Document data;
  int instant;
};

struct Recorder {
  std::vector<Row> rows;
  std::vector<std::pair<Severity, std::string>> logs;
  Output output() {
    Output out;
    out.log = [this](Severity s, std::string_view m) { logs.emplace_back(s, std::string(m)); };
    out.history = [this](int code, const std::string& text, int instant) {
      Row row{code, json::Document(), instant};
      EXPECT_TRUE(json::parse(row.data, text)) << text;
      rows.push_back(std::move(row));
    };
    return out;
  }
  std::string message(std::size_t i) const {
    return rows.at(i).data.HasMember("message") ? rows.at(i).data["message"].GetString() : "";
  }
};

Recorder run_request(const std::string& data, const ActionSettings& settings = ActionSettings()) {
  Recorder rec;
  run_command_request(data, settings, rec.output(), nullptr);
  return rec;
}

TEST(CommandRequest, SuccessRowsMatchGorgone) {
  auto rec = run_request(R"({"variables":[],"parameters":{},"content":[{"timeout":10,"command":"echo hello-from-2"}]})");
  ASSERT_EQ(rec.rows.size(), 4u);
  EXPECT_EQ(rec.rows[0].code, 0);
  EXPECT_EQ(rec.message(0), "commands processing has started");
  EXPECT_EQ(json::dump(rec.rows[0].data["request_content"]), R"([{"timeout":10,"command":"echo hello-from-2"}])");

  EXPECT_EQ(rec.rows[1].code, 0);
  EXPECT_EQ(rec.message(1), "command has started");
  EXPECT_STREQ(rec.rows[1].data["command"].GetString(), "echo hello-from-2");
  EXPECT_TRUE(rec.rows[1].data["metadata"].IsNull());

  const auto& result = rec.rows[2].data;
  EXPECT_EQ(rec.rows[2].code, 100);
  EXPECT_EQ(rec.message(2), "command has finished successfully");
  EXPECT_STREQ(result["command"].GetString(), "echo hello-from-2");
  EXPECT_TRUE(result["metadata"].IsNull());
  EXPECT_EQ(result["result"]["exit_code"].GetInt(), 0);
  EXPECT_STREQ(result["result"]["stdout"].GetString(), "hello-from-2");  // one newline removed
  EXPECT_EQ(result["metrics"]["duration"].GetInt64(),
            result["metrics"]["end"].GetInt64() - result["metrics"]["start"].GetInt64());
  EXPECT_GT(result["metrics"]["start"].GetInt64(), 1600000000);

  EXPECT_EQ(rec.rows[3].code, 2);
  EXPECT_EQ(rec.message(3), "commands processing has finished successfully");
  EXPECT_EQ(json::dump(rec.rows[3].data), R"({"message":"commands processing has finished successfully"})");
}

TEST(CommandRequest, NonZeroExitIsStillAResult) {
  auto rec = run_request(R"({"content":[{"command":"echo partial; exit 4"},{"command":"echo second"}]})");
  ASSERT_EQ(rec.rows.size(), 6u);
  EXPECT_EQ(rec.rows[2].code, 100);
  EXPECT_EQ(rec.rows[2].data["result"]["exit_code"].GetInt(), 4);
  EXPECT_STREQ(rec.rows[2].data["result"]["stdout"].GetString(), "partial");
  EXPECT_EQ(rec.rows[4].code, 100);
  EXPECT_EQ(rec.rows[5].code, 2);
}

TEST(CommandRequest, TimeoutIsAnExecutionIssueAndProcessingGoesOn) {
  auto start = std::chrono::steady_clock::now();
  auto rec = run_request(R"({"content":[{"command":"sleep 30","timeout":1,"metadata":{"k":"v"}},{"command":"echo after"}]})");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  ASSERT_EQ(rec.rows.size(), 6u);
  EXPECT_EQ(rec.rows[2].code, 1);
  EXPECT_EQ(rec.message(2), "command execution issue");
  EXPECT_EQ(rec.rows[2].data["result"]["exit_code"].GetInt(), -1);
  EXPECT_STREQ(rec.rows[2].data["result"]["stdout"].GetString(), "Command too long to execute (timeout)...");
  EXPECT_STREQ(rec.rows[2].data["metadata"]["k"].GetString(), "v");
  EXPECT_STREQ(rec.rows[4].data["result"]["stdout"].GetString(), "after");
  EXPECT_EQ(rec.rows[5].code, 1);
  EXPECT_EQ(rec.message(5), "commands processing has finished with errors");
  expect_no_children();
}

TEST(CommandRequest, ContinueOnErrorZeroStops) {
  auto rec = run_request(R"([{"command":"sleep 5","timeout":0.2,"continue_on_error":0},{"command":"echo never"}])");
  ASSERT_EQ(rec.rows.size(), 4u);
  EXPECT_EQ(rec.rows[2].code, 1);
  EXPECT_EQ(rec.rows[3].code, 1);
  EXPECT_EQ(rec.message(3), "commands processing has been interrupted because of error");
}

TEST(CommandRequest, AcceptedShapes) {
  for (const char* data : {R"([{"command":"echo x"}])", R"({"command":"echo x"})", R"({"content":{"command":"echo x"}})"}) {
    auto rec = run_request(data);
    ASSERT_EQ(rec.rows.size(), 4u) << data;
    EXPECT_EQ(json::dump(rec.rows[0].data["request_content"]), R"([{"command":"echo x"}])") << data;
    EXPECT_STREQ(rec.rows[2].data["result"]["stdout"].GetString(), "x");
    EXPECT_EQ(rec.rows[3].code, 2);
  }
}

TEST(CommandRequest, BadRequests) {
  auto bad_json = run_request("{not json");
  ASSERT_EQ(bad_json.rows.size(), 1u);
  EXPECT_EQ(bad_json.rows[0].code, 1);
  EXPECT_EQ(bad_json.message(0), "cannot decode json");

  auto no_array = run_request(R"({"content":{"foo":1}})");
  ASSERT_EQ(no_array.rows.size(), 1u);
  EXPECT_EQ(no_array.message(0), "expected array, found 'HASH'");
  EXPECT_EQ(run_request(R"({"content":"ls"})").message(0), "expected array, found ''");
  EXPECT_EQ(run_request(R"({"parameters":{}})").message(0), "expected array, found ''");

  // Checked before anything runs: no "started" row, no side effect.
  auto missing = run_request(R"({"content":[{"command":"echo ok"},{"timeout":3},{"command":"touch /should-not-exist"}]})");
  ASSERT_EQ(missing.rows.size(), 1u);
  EXPECT_EQ(missing.rows[0].code, 1);
  EXPECT_EQ(missing.message(0), "need command argument at array index '1'");
  EXPECT_EQ(run_request(R"([{"command":""}])").message(0), "need command argument at array index '0'");
}

TEST(CommandRequest, Whitelist) {
  auto settings = parse_settings(YAML::Load("whitelist_cmds: true\nallowed_cmds: ['^echo ', '^/usr/lib/centreon/plugins/.*$']\n"));
  ASSERT_TRUE(settings) << settings.error();
  auto denied = run_request(R"([{"command":"echo fine"},{"command":"rm -rf /tmp/nothing"}])", *settings);
  ASSERT_EQ(denied.rows.size(), 1u);
  EXPECT_EQ(denied.rows[0].code, 1);
  EXPECT_EQ(denied.message(0), "command not allowed (whitelist) at array index '1'");

  auto allowed = run_request(R"([{"command":"echo fine"}])", *settings);
  ASSERT_EQ(allowed.rows.size(), 4u);
  EXPECT_EQ(allowed.rows[3].code, 2);
}

TEST(CommandRequest, CommandLinesReachTheLogOnlyAtDebug) {
  // Plugins take passwords as arguments: above debug, a log line names the first word only.
  auto settings = parse_settings(YAML::Load("whitelist_cmds: true\nallowed_cmds: ['^echo ']\n"));
  ASSERT_TRUE(settings) << settings.error();
  auto rec = run_request(R"([{"command":"/usr/lib/centreon/plugins/check --password s3cret"}])", *settings);
  ASSERT_FALSE(rec.logs.empty());
  bool named = false;
  for (const auto& [severity, line] : rec.logs) {
    if (severity != Severity::kDebug) {
      EXPECT_EQ(line.find("s3cret"), std::string::npos) << line;
    }
    named = named || line == "[action] command '/usr/lib/centreon/plugins/check ...' not allowed (whitelist)";
  }
  EXPECT_TRUE(named);
  EXPECT_EQ(rec.logs.back().first, Severity::kDebug);
  EXPECT_NE(rec.logs.back().second.find("s3cret"), std::string::npos);
}

TEST(CommandRequest, InstantFlagOnResultRows) {
  auto rec = run_request(R"({"instant":1,"content":[{"command":"echo i"}]})");
  ASSERT_EQ(rec.rows.size(), 4u);
  EXPECT_EQ(rec.rows[1].instant, 0);
  EXPECT_EQ(rec.rows[2].instant, 1);
}

TEST(CommandRequest, OutputIsValidUtf8) {
  auto rec = run_request(R"([{"command":"printf 'caf\\303\\251 \\377 end\\n'"}])");
  ASSERT_EQ(rec.rows.size(), 4u);
  EXPECT_STREQ(rec.rows[2].data["result"]["stdout"].GetString(), "caf\xC3\xA9 \xEF\xBF\xBD end");
}

// The command text and its metadata are copied into the rows: bytes that are not UTF-8
// there must not make a row a UTF-8 store refuses.
TEST(CommandRequest, RowsAreValidUtf8WhenTheRequestIsNot) {
  std::vector<std::string> texts;
  Output out;
  out.history = [&](int, const std::string& text, int) { texts.push_back(text); };
  run_command_request("[{\"command\":\"echo 'caf\xE9'\",\"metadata\":{\"k\":\"\xFF\"}}]", ActionSettings(), out,
                      nullptr);
  ASSERT_EQ(texts.size(), 4u);
  for (const auto& t : texts) EXPECT_TRUE(utf8::is_clean(t)) << t;
  json::Document started;
  ASSERT_TRUE(json::parse(started, texts[1]));
  EXPECT_STREQ(started["command"].GetString(), "echo 'caf\xEF\xBF\xBD'");
  EXPECT_STREQ(started["metadata"]["k"].GetString(), "\xEF\xBF\xBD");
}

TEST(CommandRequest, AbortStopsTheRequest) {
  std::atomic<bool> abort{false};
  Recorder rec;
  std::thread t([&] {
    std::this_thread::sleep_for(200ms);
    abort = true;
  });
  run_command_request(R"([{"command":"sleep 30"},{"command":"echo never"}])", ActionSettings(), rec.output(), &abort);
  t.join();
  ASSERT_EQ(rec.rows.size(), 4u);
  EXPECT_EQ(rec.message(2), "command execution issue");
  EXPECT_EQ(rec.message(3), "commands processing has been interrupted because of error");
}

// ---- the ACTIONENGINE request (Centreon's engine restart or reload)

Recorder run_engine(const std::string& data, const ActionSettings& settings = ActionSettings(),
                    const std::atomic<bool>* abort = nullptr) {
  Recorder rec;
  run_engine_request(data, settings, rec.output(), abort);
  return rec;
}

TEST(EngineRequest, OneFinalRowAsGorgone) {
  auto rec = run_engine(R"({"content":{"command":"echo restarted"},"parameters":{},"variables":[]})");
  ASSERT_EQ(rec.rows.size(), 1u);
  EXPECT_EQ(rec.rows[0].code, 2);
  EXPECT_EQ(json::dump(rec.rows[0].data), R"({"message":"actionengine has finished successfully"})");
  // Gorgone reads no exit status here: a command that ran to its end is a success.
  auto failed = run_engine(R"({"content":{"command":"exit 3"}})");
  ASSERT_EQ(failed.rows.size(), 1u);
  EXPECT_EQ(failed.rows[0].code, 2);
}

TEST(EngineRequest, RunsTheCommandOnce) {
  std::string file = ::testing::TempDir() + "engine-" + std::to_string(::getpid()) + ".out";
  auto rec = run_engine(R"({"content":{"command":)" + json::quote("echo ran >> " + file) + "}}");
  ASSERT_EQ(rec.rows.size(), 1u);
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "ran\n");
  std::remove(file.c_str());
}

TEST(EngineRequest, BadRequestsGetAKoRow) {
  struct Case {
    const char* data;
    const char* message;
  } cases[] = {
      {"{not json", "cannot decode json"},
      {R"({"parameters":{}})", "no content"},
      {R"({"content":""})", "no content"},
      {R"({"content":null})", "no content"},
      {R"({"content":{"plugins":"/x.json"}})", "need valid command argument"},
      {R"({"content":{"command":""}})", "need valid command argument"},
      {R"({"content":[{"command":"echo x"}]})", "need valid command argument"},  // a list is COMMAND's shape
  };
  for (const auto& c : cases) {
    auto rec = run_engine(c.data);
    ASSERT_EQ(rec.rows.size(), 1u) << c.data;
    EXPECT_EQ(rec.rows[0].code, 1) << c.data;
    EXPECT_EQ(rec.message(0), c.message) << c.data;
  }
}

TEST(EngineRequest, WhitelistAndParanoidPlugins) {
  auto settings = parse_settings(YAML::Load("whitelist_cmds: true\nallowed_cmds: ['^echo ']\n"));
  ASSERT_TRUE(settings) << settings.error();
  auto denied = run_engine(R"({"content":{"command":"sudo systemctl restart centengine"}})", *settings);
  ASSERT_EQ(denied.rows.size(), 1u);
  EXPECT_EQ(denied.rows[0].code, 1);
  EXPECT_EQ(denied.message(0), "command not allowed (whitelist)");
  EXPECT_EQ(run_engine(R"({"content":{"command":"echo ok"}})", *settings).rows.at(0).code, 2);

  // Plugins are not installed by this module: ignored, unless paranoid_plugins refuses.
  const std::string with_plugins = R"({"content":{"command":"echo ok","plugins":"/var/cache/plugins.json"}})";
  EXPECT_EQ(run_engine(with_plugins).rows.at(0).code, 2);
  auto paranoid = parse_settings(YAML::Load("paranoid_plugins: true"));
  ASSERT_TRUE(paranoid);
  auto refused = run_engine(with_plugins, *paranoid);
  ASSERT_EQ(refused.rows.size(), 1u);
  EXPECT_EQ(refused.rows[0].code, 1);
  EXPECT_EQ(refused.message(0), "validate plugins - not supported by this module");
}

TEST(EngineRequest, TimeoutIsAnExecutionIssueWithGorgonesFields) {
  auto settings = parse_settings(YAML::Load("command_timeout: 0.3"));
  ASSERT_TRUE(settings);
  // The request's own timeout is not read (Gorgone uses the module's).
  auto rec = run_engine(R"({"content":{"command":"sleep 30","timeout":100}})", *settings);
  ASSERT_EQ(rec.rows.size(), 1u);
  const auto& d = rec.rows[0].data;
  EXPECT_EQ(rec.rows[0].code, 1);
  EXPECT_EQ(rec.message(0), "command execution issue");
  EXPECT_STREQ(d["command"].GetString(), "sleep 30");
  EXPECT_FALSE(d.HasMember("metadata"));
  EXPECT_EQ(d["result"]["exit_code"].GetInt(), -1);
  EXPECT_STREQ(d["result"]["stdout"].GetString(), "Command too long to execute (timeout)...");
  EXPECT_EQ(d["metrics"]["duration"].GetInt64(), d["metrics"]["end"].GetInt64() - d["metrics"]["start"].GetInt64());
  expect_no_children();
}

TEST(EngineRequest, AbortKillsTheCommand) {
  std::atomic<bool> abort{true};
  auto rec = run_engine(R"({"content":{"command":"sleep 30"}})", ActionSettings(), &abort);
  ASSERT_EQ(rec.rows.size(), 1u);
  EXPECT_EQ(rec.rows[0].code, 1);
  EXPECT_STREQ(rec.rows[0].data["result"]["stdout"].GetString(), "Command aborted (the action module is stopping)");
  expect_no_children();
}

TEST(ActionSettings, RequestLanes) {
  auto defaults = parse_settings(YAML::Node());
  ASSERT_TRUE(defaults);
  EXPECT_GE(defaults->command_concurrency, 4u);
  EXPECT_LE(defaults->command_concurrency, 32u);
  EXPECT_EQ(defaults->command_queue, 1000u);
  EXPECT_EQ(defaults->max_concurrent_engine, 3u);
  EXPECT_FALSE(defaults->paranoid_plugins);

  auto s = parse_settings(YAML::Load("command_concurrency: 2\ncommand_queue: 0\nmax_concurrent_engine: 1\n"));
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->command_concurrency, 2u);
  EXPECT_EQ(s->command_queue, 0u);
  EXPECT_EQ(s->max_concurrent_engine, 1u);

  for (const char* bad : {"command_concurrency: 0", "command_concurrency: 257", "command_concurrency: -1",
                          "command_concurrency: many", "command_concurrency: [1]", "command_queue: 100001",
                          "command_queue: 1.5", "max_concurrent_engine: 0"}) {
    auto r = parse_settings(YAML::Load(bad));
    ASSERT_FALSE(r) << bad;
    std::string key = std::string(bad).substr(0, std::string(bad).find(':'));
    EXPECT_NE(r.error().find(key), std::string::npos) << r.error();
  }
}

TEST(ActionSettings, Parse) {
  auto defaults = parse_settings(YAML::Node());
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->command_timeout, 30);
  EXPECT_FALSE(defaults->whitelist_cmds);

  // The allowed_cmds Centreon ships must compile.
  auto s = parse_settings(YAML::Load(R"(
name: action
package: gorgone::modules::core::action::hooks
command_timeout: 12
whitelist_cmds: "True"
paranoid_plugins: true
allowed_cmds:
  - ^sudo\s+(/bin/|/usr/bin/)?systemctl\s+(reload|restart)\s+(centengine|centreontrapd|cbd)\s*$
  - ^(sudo\s+)?(/usr/bin/)?service\s+(centengine|centreontrapd|cbd|cbd-sql)\s+(reload|restart)\s*$
  - ^/usr/sbin/centenginestats\s+-c\s+/etc/centreon-engine/+centengine\.cfg\s*$
  - ^cat\s+/var/lib/centreon-engine/+[a-zA-Z0-9\-]+-stats\.json\s*$
  - ^/usr/lib/centreon/plugins/.*$
  - ^/usr/share/centreon/bin/centreon -u \"centreon-gorgone\" -p \S+ -w -o CentreonWorker -a processQueue$
)"));
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->command_timeout, 12);
  EXPECT_TRUE(s->whitelist_cmds);
  EXPECT_EQ(s->allowed_cmds.size(), 6u);
  EXPECT_TRUE(command_allowed(*s, "sudo systemctl restart centengine"));
  EXPECT_TRUE(command_allowed(*s, "cat /var/lib/centreon-engine/central-stats.json"));
  EXPECT_FALSE(command_allowed(*s, "sudo systemctl restart sshd"));
  EXPECT_FALSE(command_allowed(*s, "cat /var/lib/centreon-engine/../../etc/shadow-stats.json; id"));

  auto bad = parse_settings(YAML::Load("allowed_cmds: ['(unclosed']"));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("(unclosed"), std::string::npos) << bad.error();
  EXPECT_FALSE(parse_settings(YAML::Load("command_timeout: -3")));
  EXPECT_FALSE(parse_settings(YAML::Load("command_timeout: soon")));
  EXPECT_FALSE(parse_settings(YAML::Load("allowed_cmds: '^echo'")));
}

TEST(Utf8, Sanitize) {
  EXPECT_EQ(sanitize_utf8("plain"), "plain");
  EXPECT_EQ(sanitize_utf8("\xE2\x82\xAC"), "\xE2\x82\xAC");
  EXPECT_EQ(sanitize_utf8("a\xE2\x82"), "a\xEF\xBF\xBD");  // cut sequence: one subpart
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");    // overlong
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(sanitize_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

}  // namespace
}  // namespace gorgone::action
