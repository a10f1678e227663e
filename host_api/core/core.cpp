#include "core.hpp"

#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/resource.h>

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sys/time.h>

#include <csignal>
#include <unistd.h>

#include "core_text.hpp"
#include "gorgone/json.hpp"
#include "gorgone/status_codes.hpp"
#include "logger.hpp"
#include "rest_server.hpp"
#include "startup.hpp"
#include "yaml_loader.hpp"

namespace gorgone {
namespace fs = std::filesystem;
using protocol::Frame;
using namespace internal;

namespace {

const char* const kInternalActions[] = {"ADDLISTENER", "PUTLOG",       "GETLOG",     "KILL",
                                        "PING",        "CONSTATUS",    "SETCOREID",  "SETMODULEKEY",
                                        "SYNCLOGS",    "LOADMODULE",   "UNLOADMODULE", "INFORMATION",
                                        "GETTHUMBPRINT", "RELOAD", "METRICS"};

bool is_internal_action(const std::string& a) {
  if (a.rfind("BCAST", 0) == 0) return true;
  return std::find(std::begin(kInternalActions), std::end(kInternalActions), a) != std::end(kInternalActions);
}



}  // namespace

Core::Core(CoreConfig config, std::unique_ptr<History> history)
    : config_(std::move(config)), history_(std::move(history)) {}

Core::~Core() {
  if (rest_) rest_->stop();
  rest_.reset();
  // Modules were stopped by run(); make sure anything left is killed before unloading.
  for (auto& m : modules_) {
    Status s = m->hooks.kill();
    (void)s;
  }
  // What is queued is written; what modules handed the loop is dropped while their code is
  // still loaded. Rows written from now on (a module thread ending) go straight to the store.
  if (writer_) {
    writer_->stop();
    writer_->discard_done();
  }
  {
    std::vector<std::function<void()>> gone;
    std::lock_guard<std::mutex> lock(posted_mu_);
    gone.swap(posted_);
  }
  internal_.reset();
  external_.reset();
  while (!modules_.empty()) modules_.pop_back();  // reverse order of loading
  if (wake_fd_ >= 0) ::close(wake_fd_);  // after the modules: their threads may write rows until then
}

Result<std::unique_ptr<Core>> Core::create(CoreConfig config, std::unique_ptr<History> history) {
  std::unique_ptr<Core> core(new Core(std::move(config), std::move(history)));
  Status s = core->setup();
  if (!s) return make_error(s.message());
  return core;
}

void Core::log(Severity severity, std::string_view message) { Logger::instance().log(severity, message); }

CoreInfo Core::core_info() const {
  CoreInfo i;
  {
    std::lock_guard<std::mutex> lock(id_mu_);
    i.id = config_.id;
  }
  i.hostname = config_.hostname;
  i.privkey_path = config_.privkey;
  i.pubkey_path = config_.pubkey;
  i.internal_endpoint = kInternalEndpoint;
  i.fingerprint_mode = config_.fingerprint_mode;
  return i;
}

void Core::wake() {
  if (wake_fd_ < 0) return;
  std::uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);  // only fails when the counter is full: awake anyway
  (void)n;
}

// Queued for the history thread: the caller (the loop, a module thread) never waits for the
// database. A parent that syncs on our SYNCLOGS reads through the same queue, after the row.
void Core::add_history(const std::string* token, int code, std::string_view data_json, int instant) {
  HistoryRow row;
  if (token) row.token = *token;
  row.code = code;
  row.instant = instant;
  row.data = std::string(data_json);
  if (!writer_) {
    auto r = history_->add(row);
    if (!r) log_error("[core] cannot write history: " + r.error());
    return;
  }
  if (!writer_->add(std::move(row))) return;
  if ((code == code::kActionFinishOk || code == code::kActionFinishKo) && !rows_ended_.exchange(true)) wake();
}

void Core::history_job(std::function<void(History&)> work, std::function<void()> done) {
  writer_->job(std::move(work), std::move(done));
}

void Core::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(job));
  }
  wake();
}

void Core::run_posted() {
  std::vector<std::function<void()>> jobs;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    jobs.swap(posted_);
  }
  for (auto& j : jobs) j();
}

void Core::synclogs_to_parents() {
  auto now = std::chrono::steady_clock::now();
  if (!rows_ended_.load() || now - last_synclogs_ < kSynclogsInterval) return;
  rows_ended_.store(false);
  last_synclogs_ = now;
  if (parents_.empty()) return;
  to_parents(protocol::build_frame(
      Frame{"SYNCLOGS", "", "", "{\"code\":0,\"data\":{\"id\":" + json::quote(core_info().id) + "}}"}));
}

Status Core::load_keys() {
  std::error_code ec;
  bool has_priv = fs::exists(config_.privkey, ec), has_pub = fs::exists(config_.pubkey, ec);
  if (!has_priv && !has_pub) {
    log_info("[core] no key pair at '" + config_.privkey + "': generating one");
    Status s = protocol::generate_key_files(config_.privkey, config_.pubkey);
    if (!s) return Status::failure("cannot generate the key pair: " + s.message());
  }
  auto priv = protocol::RsaKey::load_private_file(config_.privkey);
  if (!priv) return Status::failure(config_.source_file + ": gorgone.gorgonecore.privkey: " + priv.error());
  auto pub = protocol::RsaKey::load_public_file(config_.pubkey);
  if (!pub) return Status::failure(config_.source_file + ": gorgone.gorgonecore.pubkey: " + pub.error());
  server_key_ = std::move(priv.value());
  // The example pair shipped with the sources (examples/keys/central) is public: a host that
  // uses it can be impersonated by anyone who has the sources.
  if (server_key_->jwk_thumbprint() == "CnVbRZdQHHZN8h1vjJ2vG3sQOznWnB1pxsYiWuj63M0")
    log_warning("[core] the key pair '" + config_.privkey +
                "' is the public example pair shipped with the sources: anyone can impersonate this host. "
                "Outside the demo, delete both key files and restart: a new pair is generated");
  return Status::success();
}

Status Core::setup() {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return Status::failure(std::string("cannot create the loop's eventfd: ") + std::strerror(errno));
  writer_ = std::make_unique<HistoryWriter>(*history_, [this] { wake(); }, config_.history_queue);
  writer_->start();
  // Every push node is a ZMQ socket (and every REST request one more): libzmq's default cap
  // of 1023 sockets per context stopped a central at about a thousand nodes, after which
  // every new socket, REST calls included, failed with "Too many open files". The cap follows
  // the process's file limit instead (raised to its hard limit), as each socket needs files.
  {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
      if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
        ::getrlimit(RLIMIT_NOFILE, &rl);
      }
      const rlim_t cap = std::min<rlim_t>(rl.rlim_cur, 65535);
      if (cap > 1023) context_.set(zmq::ctxopt::max_sockets, static_cast<int>(cap));
      Logger::instance().log(Severity::kInfo, "[core] up to " + std::to_string(context_.get(zmq::ctxopt::max_sockets)) +
                                                  " ZMQ sockets (open files limit " + std::to_string(rl.rlim_cur) + ")");
    }
  }
  Status s = load_keys();
  if (!s) return s;
  add_history(nullptr, code::kStarted, json::message("gorgoned is starting..."));
  // Gorgone encrypts its internal bus because modules are separate processes; here they are
  // threads of this process, so encryption would only protect memory copies (doc/protocol.md).
  if (config_.internal_com_crypt)
    Logger::instance().log(Severity::kNotice,
                           "[core] internal_com_crypt ignored: modules run in-process and the internal bus "
                           "(inproc) never leaves this process");

  internal_.emplace(context_, zmq::socket_type::router);
  internal_->set(zmq::sockopt::routing_id, "router-internal");
  internal_->set(zmq::sockopt::linger, 0);
  internal_->set(zmq::sockopt::router_handover, 1);
  internal_->set(zmq::sockopt::router_mandatory, 1);
  // In-process peers: no high-water mark, so a burst towards a busy worker waits in its
  // queue instead of being dropped (each node's own queue is bounded by the proxy).
  internal_->set(zmq::sockopt::sndhwm, 0);
  internal_->set(zmq::sockopt::rcvhwm, 0);
  internal_->bind(kInternalEndpoint);

  if (!config_.external_com_type.empty()) {
    Status e = setup_external();
    if (!e) return e;
  }
  load_modules();
  return Status::success();
}

void Core::load_modules() {
  const std::vector<std::string> path = module_search_path(config_);
  for (const auto& entry : config_.modules) {
    auto file = resolve_package(entry.package, path);
    if (!file) {
      log_error("[core] module '" + entry.name + "' not loaded: " + file.error());
      continue;
    }
    auto loaded = load_module(entry.name, *file);
    if (!loaded) {
      log_error("[core] " + loaded.error() + "; module skipped");
      continue;
    }
    std::unique_ptr<LoadedModule> mod = std::move(loaded.value());
    Status s = mod->hooks.register_(entry.node, config_.gorgone, *this, mod->registration);
    if (!s || !mod->registration.loaded) {
      log_error("[core] module '" + entry.name + "' cannot be loaded" + (s ? std::string() : ": " + s.message()));
      continue;
    }
    for (const auto& ev : mod->registration.events) {
      events_[ev.event] = mod.get();
      if (!ev.uri.empty()) {
        std::string method = ev.method.empty() ? "GET" : ev.method;
        api_endpoints_[method + "_/" + mod->registration.ns + "/" + mod->registration.name + ev.uri] = ev.event;
      }
    }
    log_info("[core] module '" + entry.name + "' is loaded from " + mod->path);
    modules_.push_back(std::move(mod));
  }
  api_endpoints_["GET_/internal/constatus"] = "CONSTATUS";
  api_endpoints_["GET_/internal/thumbprint"] = "GETTHUMBPRINT";
  api_endpoints_["GET_/internal/information"] = "INFORMATION";
  api_endpoints_["POST_/internal/logger"] = "BCASTLOGGER";
  api_endpoints_["POST_/internal/reload"] = "RELOAD";
  api_endpoints_["GET_/internal/metrics"] = "METRICS";
}

LoadedModule* Core::proxy() const {
  for (const auto& m : modules_)
    if (m->registration.name == config_.proxy_name) return m.get();
  return nullptr;
}

void Core::register_static_nodes() {
  if (config_.register_config_file.empty()) return;
  std::string summary;
  (void)reload_nodes(summary);
  log_info("[register] " + summary);
}

// The nodes file against what it held last time: new and changed entries are registered
// (a changed node keeps the frames held for it), entries gone are unregistered (their held
// frames get KO rows). A file that cannot be read changes nothing.
bool Core::reload_nodes(std::string& summary) {
  std::size_t count = 0;
  auto text = nodes_file_json(config_.register_config_file, count);
  json::Document doc;
  if (!text || !json::parse(doc, *text) || !doc.IsObject() || !doc.HasMember("nodes") || !doc["nodes"].IsArray()) {
    summary = "nodes file not (re)loaded, the registered nodes stay as they are: " +
              (text ? std::string("unreadable") : text.error());
    log_error("[register] " + summary);
    return false;
  }
  std::map<std::string, std::string> now;
  std::vector<std::string> register_entries;
  for (const auto& node : doc["nodes"].GetArray()) {
    std::string entry = json::dump(node);
    auto id = node.IsObject() ? json::member_text(node, "id") : std::nullopt;
    if (!id || id->empty()) {
      register_entries.push_back(entry);  // the proxy refuses it with a line naming why
      continue;
    }
    auto before = static_nodes_.find(*id);
    if (before == static_nodes_.end() || before->second != entry) register_entries.push_back(entry);
    now[*id] = std::move(entry);
  }
  std::size_t added = 0, changed = 0, removed = 0;
  for (const auto& [id, entry] : now) {
    auto before = static_nodes_.find(id);
    if (before == static_nodes_.end()) ++added;
    else if (before->second != entry) ++changed;
  }
  std::string gone;
  for (const auto& [id, entry] : static_nodes_) {
    if (now.count(id)) continue;
    gone += std::string(gone.empty() ? "" : ",") + "{\"id\":" + json::quote(id) + "}";
    ++removed;
  }
  if (!gone.empty()) dispatch(Frame{"UNREGISTERNODES", protocol::generate_token(), "", "{\"nodes\":[" + gone + "]}"});
  if (!register_entries.empty()) {
    std::string list;
    for (const auto& e : register_entries) list += (list.empty() ? "" : ",") + e;
    dispatch(Frame{"REGISTERNODES", protocol::generate_token(), "", "{\"nodes\":[" + list + "]}"});
  }
  static_nodes_ = std::move(now);
  summary = std::to_string(count) + " node(s) in " + config_.register_config_file + ": " + std::to_string(added) +
            " added, " + std::to_string(changed) + " changed, " + std::to_string(removed) + " removed";
  return true;
}

bool Core::reload_modules(std::string& summary) {
  auto doc = load_yaml_with_includes(config_.source_file);
  auto next = doc ? parse_core_config(*doc, config_.source_file) : Result<CoreConfig>(make_error(doc.error()));
  if (!next) {
    summary = "configuration not read again, the modules keep their directives: " + next.error();
    log_error("[core] reload: " + summary);
    return false;
  }
  bool ok = true;
  for (const auto& m : modules_) {
    if (!m->hooks.reload) continue;
    auto entry = std::find_if(next->modules.begin(), next->modules.end(),
                              [&](const ModuleEntry& e) { return e.name == m->name; });
    std::string said;
    if (entry == next->modules.end()) {
      said = "no longer in the configuration: it keeps running until a restart";
    } else {
      Status s = m->hooks.reload(entry->node, said);
      if (!s) {
        ok = false;
        said = s.message();
        log_error("[core] reload: module '" + m->name + "': " + said);
      } else {
        log_info("[core] reload: module '" + m->name + "': " + said);
      }
    }
    summary += (summary.empty() ? "" : "; ") + std::string("module '") + m->name + "': " + said;
  }
  return ok;
}

bool Core::reload(std::string& summary) {
  std::string modules, nodes = "no nodes file configured";
  bool ok = reload_modules(modules);
  if (!config_.register_config_file.empty()) {
    ok = reload_nodes(nodes) && ok;
    log_info("[register] reload: " + nodes);
  }
  summary = nodes + (modules.empty() ? "" : "; " + modules);
  return ok;
}

int Core::run() {
  std::string id = core_info().id;
  for (auto& m : modules_) {
    Status s = m->hooks.init(id);
    if (!s) log_error("[core] module '" + m->name + "' init failed: " + s.message());
  }
  register_static_nodes();
  if (config_.http.enabled) {
    rest_ = std::make_unique<RestServer>(*this, config_.http);
    Status s = rest_->start();
    if (!s) {
      log_error("[core] " + s.message());
      rest_.reset();
    }
  }
  log_info("[core] gorgone core " + (id.empty() ? std::string("(no id)") : "id " + id) + " is running");

  while (true) {
    // internal, wake, then the external router and the signalfd when there are.
    zmq::pollitem_t items[4] = {{static_cast<void*>(*internal_), 0, ZMQ_POLLIN, 0},
                                {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    int n = 2, external_at = -1, signals_at = -1;
    if (external_) items[external_at = n++] = {static_cast<void*>(*external_), 0, ZMQ_POLLIN, 0};
    if (signal_fd_ >= 0) items[signals_at = n++] = {nullptr, signal_fd_, ZMQ_POLLIN, 0};
    // A SYNCLOGS held back by the interval goes out when the interval ends.
    auto wait = std::chrono::milliseconds(200);
    if (rows_ended_.load()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(last_synclogs_ + kSynclogsInterval -
                                                                        std::chrono::steady_clock::now());
      wait = std::max(std::chrono::milliseconds(0), std::min(wait, left + std::chrono::milliseconds(1)));
    }
    try {
      zmq::poll(items, n, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) log_error(std::string("[core] poll: ") + e.what());
    }
    if (items[0].revents & ZMQ_POLLIN) read_internal();
    if (items[1].revents & ZMQ_POLLIN) {
      std::uint64_t count;
      ssize_t r = ::read(wake_fd_, &count, sizeof count);
      (void)r;
    }
    writer_->run_done();
    run_posted();
    if (signals_at >= 0 && (items[signals_at].revents & ZMQ_POLLIN)) read_signals();
    if (external_at >= 0 && (items[external_at].revents & ZMQ_POLLIN)) read_external();
    synclogs_to_parents();
    tick();
    if (stopping_) {
      int total = 0;
      for (auto& m : modules_) {
        CheckResult r;
        if (m->hooks.check(r)) total += r.count;
      }
      auto elapsed = std::chrono::steady_clock::now() - stop_started_;
      if (total == 0) break;
      if (elapsed > std::chrono::seconds(config_.timeout)) {
        log_error("[core] modules did not stop in time: killing them");
        for (auto& m : modules_) (void)m->hooks.kill_internal();
        break;
      }
      if (std::chrono::steady_clock::now() - last_gently_ > std::chrono::seconds(10)) {
        for (auto& m : modules_) (void)m->hooks.gently();
        last_gently_ = std::chrono::steady_clock::now();
      }
    }
  }
  if (rest_) rest_->stop();
  log_info("[core] gorgone core stopped");
  return 0;
}

void Core::read_signals() {
  signalfd_siginfo info;
  while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    if (info.ssi_signo == SIGHUP) {
      request_reopen();
      reload_requested_.store(true);
    } else {
      if (!stop_requested_) log_info(std::string("[core] ") + ::strsignal(static_cast<int>(info.ssi_signo)) + " received");
      request_stop();
    }
  }
}

void Core::tick() {
  if (reopen_requested_.exchange(false)) {
    if (Logger::instance().reopen()) log_info("[core] SIGHUP: log file reopened");
    else log_error(std::string("[core] SIGHUP: cannot reopen the log file: ") + std::strerror(errno));
  }
  if (reload_requested_.exchange(false) && !stopping_) {
    std::string summary;
    (void)reload(summary);  // each part logged what it did
  }
  if (stop_requested_ && !stopping_) {
    stopping_ = true;
    stop_started_ = std::chrono::steady_clock::now();
    last_gently_ = stop_started_;
    log_info("[core] stop requested: stopping modules");
    for (auto& m : modules_) (void)m->hooks.gently();
  }
  std::int64_t now = now_s();
  if (!stopping_ && now != last_check_) {
    last_check_ = now;
    for (auto& m : modules_) {
      CheckResult r;
      Status s = m->hooks.check(r);
      if (!s) log_error("[core] module '" + m->name + "' check failed: " + s.message());
    }
    for (auto it = parents_.begin(); it != parents_.end();)
      it = (now - it->second.last_time > 1800) ? parents_.erase(it) : std::next(it);
    // After a burst, give back what glibc keeps in its per-thread arenas (REST threads,
    // workers): the RSS returns near its idle figure instead of staying at the burst's peak.
    // Once the traffic has calmed (fewer than 100 frames in the last second: pings and log
    // syncs go on) after more than 1 000 frames, at most every 10 s; and at most every 60 s
    // whatever the traffic, or a central whose fleet's pings never fall under 100 frames a
    // second (beyond about 1 000 nodes) would never give anything back.
    const bool calm = counters_total_ - last_second_total_ < 100;
    if (counters_total_ - trimmed_at_total_ > 1000 && now - last_trim_ >= (calm ? 10 : 60)) {
      ::malloc_trim(0);
      trimmed_at_total_ = counters_total_;
      last_trim_ = now;
    }
    last_second_total_ = counters_total_;
  }
  if (handshake_) external_tick(now);
  if (config_.purge && !purging_ && now - last_purge_ >= kPurgeInterval) {
    last_purge_ = now;
    purging_ = true;
    purge_step(static_cast<double>(now), 0);
  }
}

// Gorgone's dbcleaner, at start and then hourly, on the history thread in steps of
// kPurgeStep rows: a large backlog never holds up the rows and GETLOGs queued behind it for
// long.
void Core::purge_step(double now, std::int64_t so_far) {
  auto deleted = std::make_shared<Result<std::int64_t>>(std::int64_t{0});
  const PurgeConfig p = *config_.purge;
  writer_->job(
      [deleted, now, p](History& h) {
        *deleted = h.purge_some(now, p.history_seconds, p.sessions_seconds, kPurgeStep);
      },
      [this, deleted, now, so_far] {
        if (!*deleted) {
          log_error("[core] dbcleaner: purge failed: " + deleted->error());
          purging_ = false;
          return;
        }
        std::int64_t total = so_far + deleted->value();
        if (deleted->value() >= kPurgeStep && !stopping_) return purge_step(now, total);
        purging_ = false;
        log_info("[core] dbcleaner: " + std::to_string(total) + " history and session row(s) purged");
      });
}

bool Core::send_router(zmq::socket_t& router, const std::string& identity, std::string_view body, bool quiet) {
  // Both routers are ROUTER_MANDATORY: a peer that is gone, or whose queue is full, is an
  // error we report, never a message dropped without a word.
  try {
    if (!router.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      if (!quiet) log_error("[core] cannot send to '" + identity + "': its queue is full");
      return false;
    }
    router.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
    return true;
  } catch (const zmq::error_t& e) {
    if (!quiet) log_error("[core] cannot send to '" + identity + "': " + e.what());
    return false;
  }
}

void Core::read_internal() {
  for (int batch = 0; batch < 1000; ++batch) {
    zmq::message_t id, body;
    if (!internal_->recv(id, zmq::recv_flags::dontwait)) return;
    if (id.more()) (void)internal_->recv(body, zmq::recv_flags::none);
    // A module never sends multipart messages: drop any extra part.
    while (body.more()) {
      zmq::message_t extra;
      (void)internal_->recv(extra, zmq::recv_flags::none);
    }
    std::string identity = id.to_string();
    if (identity.rfind("gorgone-", 0) != 0) {
      log_error("[core] unknown identity: " + identity);
      continue;
    }
    message_run("internal", identity, body.to_string_view());
  }
}



void Core::reply(const std::string& router, const std::string& identity, std::string_view type,
                 std::string_view token, int code, std::string_view data_json) {
  if (router.empty()) return;
  std::string text = protocol::build_response(type, token, code, data_json.empty() ? "null" : data_json);
  if (router == "internal") {
    send_router(*internal_, identity, text);
  } else if (handshake_) {
    auto wire = handshake_->encrypt_for(identity, text);
    if (wire) send_router(*external_, identity, *wire);
  }
}

void Core::dispatch(const Frame& frame) { message_run("", "", protocol::build_frame(frame)); }

void Core::message_run(const std::string& router, const std::string& identity, std::string_view text) {
  auto parsed = protocol::parse_frame(text);
  if (!parsed) {
    reply(router, identity, "ACK", "", code::kActionFinishKo, json::message("request not well formatted"));
    return;
  }
  Frame frame = std::move(*parsed);
  if (frame.token.empty()) frame.token = protocol::generate_token();
  std::string id = core_info().id;
  bool has_target = !frame.target.empty() && frame.target != id;
  count(router, frame.action, has_target);

  if (stopping_) {
    std::string msg = json::message("gorgone is stopping/restarting. Cannot proceed request.");
    add_history(&frame.token, code::kActionFinishKo, msg);
    reply(router, identity, "ACK", frame.token, code::kActionFinishKo, msg);
    return;
  }
  RouteContext ctx{router, identity};
  if (has_target) {
    LoadedModule* p = proxy();
    if (!p) {
      std::string msg = error_json("no_proxy", "no proxy configured. cannot manage target.");
      add_history(&frame.token, code::kActionFinishKo, msg);
      reply(router, identity, "ACK", frame.token, code::kActionFinishKo, msg);
      return;
    }
    reply(router, identity, "ACK", frame.token, code::kActionBegin, "null");
    Status s = p->hooks.routing(frame, ctx);
    if (!s) log_error("[core] proxy routing of " + frame.action + " failed: " + s.message());
    return;
  }
  frame.target.clear();
  if (is_internal_action(frame.action)) {
    run_internal_action(router, identity, frame);
    return;
  }
  auto ev = events_.find(frame.action);
  if (ev == events_.end()) {
    std::string msg = error_json("unknown_action", "action '" + frame.action + "' is unknown");
    // Gorgone answers an unknown action with an empty token.
    add_history(&frame.token, code::kActionFinishKo, msg);
    reply(router, identity, "ACK", "", code::kActionFinishKo, msg);
    return;
  }
  reply(router, identity, "ACK", frame.token, code::kActionBegin, "null");
  Status s = ev->second->hooks.routing(frame, ctx);
  if (!s) log_error("[core] module '" + ev->second->name + "' routing of " + frame.action + " failed: " + s.message());
}




void Core::send_internal(std::string_view identity, const Frame& frame) {
  send_router(*internal_, std::string(identity), protocol::build_frame(frame));
}


void Core::send_to_parents(const Frame& frame) {
  // SYNCLOGS (a proxy stored a node's rows) joins the hint of the rows that ended here: the
  // parents get at most one per kSynclogsInterval however many nodes were synced.
  if (frame.action == "SYNCLOGS") {
    rows_ended_.store(true);
    return;
  }
  to_parents(protocol::build_frame(frame));
}

void Core::to_parents(const std::string& text) {
  for (const auto& [identity, parent] : parents_) {
    if (parent.router_type == "external") {
      if (!handshake_) continue;
      auto wire = handshake_->encrypt_for(identity, text);
      if (wire) send_router(*external_, identity, *wire);
    } else {
      send_router(*internal_, identity, text);
    }
  }
}

}  // namespace gorgone
