// The reference host: Gorgone's core. Owns the routers, the modules, the history store and
// the REST server; dispatches every frame like Gorgone's message_run.
//
// Thread model: one loop thread (run()) owns both routers and calls every hook. Module
// threads talk to it through DEALER sockets on the inproc internal router; the REST server
// threads do the same. Thread-safety of the Host services is documented in module.hpp.
//
// Rule for the host, as module.hpp writes it for modules: the loop thread never blocks on
// anything but its poll. In particular it never touches the database: history rows,
// GETLOG/PUTLOG, session writes and the modules' history_job all go through `writer_`
// (history_writer.hpp), whose ends come back to the loop through `wake_fd_`. The only
// exceptions run before the loop starts (opening the store, loading sessions) or after it
// ended (the writer drains at exit).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "config.hpp"
#include "history_writer.hpp"
#include "gorgone/history.hpp"
#include "gorgone/module.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/handshake.hpp"
#include "module_loader.hpp"

namespace gorgone {

class RestServer;

class Core final : public Host {
 public:
  // Loads keys (generating a missing pair), opens the history, loads modules.
  // `module_path`: folders searched for module shared objects.
  static Result<std::unique_ptr<Core>> create(CoreConfig config, std::unique_ptr<History> history);
  ~Core() override;

  // Runs the loop until a stop was requested and the modules stopped. Returns the exit code.
  int run();
  // Async-signal-safe.
  void request_stop() { stop_requested_.store(true); }
  // Async-signal-safe: the loop reopens the log file at its next turn (SIGHUP).
  void request_reopen() { reopen_requested_.store(true); }
  // A signalfd for SIGTERM/SIGINT (stop) and SIGHUP (reopen the log), read by the loop.
  // The caller keeps it open while run() runs.
  void watch_signals(int fd) { signal_fd_ = fd; }

  // Host
  void log(Severity severity, std::string_view message) override;
  History& history() override { return *history_; }
  zmq::context_t& zmq_context() override { return context_; }
  CoreInfo core_info() const override;
  bool stopping() const override { return stopping_.load(); }
  void add_history(const std::string* token, int code, std::string_view data_json, int instant = 0) override;
  void send_internal(std::string_view identity, const protocol::Frame& frame) override;
  Status send_external(const std::string& routing_id, const protocol::Frame& frame) override;
  void dispatch(const protocol::Frame& frame) override;
  void send_to_parents(const protocol::Frame& frame) override;
  void history_job(std::function<void(History&)> work, std::function<void()> done) override;
  void post(std::function<void()> job) override;

  static constexpr const char* kInternalEndpoint = "inproc://gorgone-internal";
  // Any thread (the REST log endpoint): GETLOG's answer (code, data JSON) for the filter
  // `data`, read on the history thread after everything queued before it (so after the rows
  // of a sync stored before the call). Straight to the history thread: the loop is not
  // involved, the calling thread waits. nullopt when it took longer than `timeout`.
  std::optional<std::pair<int, std::string>> read_log(std::string data, std::chrono::milliseconds timeout);
  const std::map<std::string, std::string>& api_endpoints() const { return api_endpoints_; }
  const CoreConfig& config() const { return config_; }

 private:
  explicit Core(CoreConfig config, std::unique_ptr<History> history);
  Status setup();
  Status load_keys();
  void load_modules();
  void register_static_nodes();
  // Registers what changed in the register module's nodes file since the last time; false
  // (and nothing changed) when the file cannot be read. `summary` says what was done.
  bool reload_nodes(std::string& summary);
  // SIGHUP and POST /api/internal/reload: the configuration file is read again and each
  // module with a reload hook gets its entry (what it applied, what needs a restart, in
  // `summary`); then the nodes file as reload_nodes(). False when either could not be read
  // or a module refused its entry (that part changed nothing).
  bool reload(std::string& summary);
  bool reload_modules(std::string& summary);
  std::map<std::string, std::string> static_nodes_;  // id -> node entry (JSON) last registered
  std::atomic<bool> reload_requested_{false};         // SIGHUP
  void read_internal();
  // external_router.cpp
  Status setup_external();
  void read_external();
  void external_tick(std::int64_t now);
  void tick();
  // dbcleaner (config_.purge): one bounded step on the history thread, then the next.
  static constexpr std::int64_t kPurgeInterval = 3600;
  static constexpr std::int64_t kPurgeStep = 10000;
  void purge_step(double now, std::int64_t so_far);
  bool purging_ = false;
  std::int64_t last_purge_ = 0;
  // router: "internal", "external", or "" for frames from dispatch() (no reply).
  void message_run(const std::string& router, const std::string& identity, std::string_view text);
  // internal_actions.cpp
  void run_internal_action(const std::string& router, const std::string& identity, protocol::Frame& frame);
  void reply(const std::string& router, const std::string& identity, std::string_view type,
             std::string_view token, int code, std::string_view data_json);
  // quiet: the caller reports a failure itself.
  bool send_router(zmq::socket_t& router, const std::string& identity, std::string_view body, bool quiet = false);
  LoadedModule* proxy() const;
  std::string constatus_json();
  std::string metrics_text();
  // GETLOG's answer (history thread): the rows a filter selects, a log-sync page cut by
  // max_rows and max_bytes.
  static std::string getlog_reply(History& history, const std::string& data, const std::string& id,
                                  std::int64_t max_rows, std::int64_t max_bytes, int& code);
  void count(const std::string& router, const std::string& action, bool proxied);

  CoreConfig config_;
  std::unique_ptr<History> history_;
  // Every database access of the loop goes through it (history_writer.hpp): rows, GETLOG,
  // PUTLOG, sessions, and the modules' history_job.
  std::unique_ptr<HistoryWriter> writer_;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;  // post(): run by the loop; guarded by posted_mu_
  void wake();          // any thread: rouses the loop (wake_fd_)
  void run_posted();    // loop thread
  zmq::context_t context_{1};
  std::optional<zmq::socket_t> internal_;
  std::optional<zmq::socket_t> external_;
  std::optional<protocol::RsaKey> server_key_;
  std::optional<protocol::HandshakeServer> handshake_;
  std::vector<std::unique_ptr<LoadedModule>> modules_;
  std::map<std::string, LoadedModule*> events_;             // event -> module
  std::map<std::string, std::string> api_endpoints_;        // "POST_/core/action/command" -> COMMAND
  struct Parent {
    std::int64_t last_time;
    std::string router_type;
  };
  std::map<std::string, Parent> parents_;                   // identity -> last PING
  std::map<std::string, std::map<std::string, long>> counters_;
  long counters_total_ = 0;
  long last_second_total_ = 0, trimmed_at_total_ = 0;  // malloc_trim after a burst (tick)
  std::int64_t last_trim_ = 0;
  std::unique_ptr<RestServer> rest_;
  mutable std::mutex id_mu_;  // guards config_.id (SETCOREID may set it)
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> reopen_requested_{false};
  std::atomic<bool> stopping_{false};
  std::chrono::steady_clock::time_point stop_started_;
  std::chrono::steady_clock::time_point last_gently_;
  std::int64_t last_rotation_check_ = 0;
  std::set<std::string> touched_identities_;  // sessions active since the last flush
  std::int64_t last_touch_flush_ = 0;
  std::int64_t last_check_ = 0;
  // Live results: a final history row (an action ended) sets `rows_ended_` and wakes the
  // loop through `wake_fd_` (eventfd); the loop tells its parents (SYNCLOGS) at most once
  // per kSynclogsInterval, so a parent syncs at once instead of at its next period.
  static constexpr std::chrono::milliseconds kSynclogsInterval{250};
  std::atomic<bool> rows_ended_{false};
  int wake_fd_ = -1;
  int signal_fd_ = -1;
  void read_signals();
  std::chrono::steady_clock::time_point last_synclogs_{};
  void synclogs_to_parents();
  void to_parents(const std::string& text);  // to every parent, encrypted for external ones
};

}  // namespace gorgone
