// The core's own actions (Gorgone's internal actions): PING, CONSTATUS, GETLOG, PUTLOG,
// SYNCLOGS, SETCOREID, GETTHUMBPRINT, INFORMATION, BCAST*, and the counters INFORMATION shows.
// Loop thread only, but for read_log (any thread).
#include <condition_variable>
#include <memory>
#include <utility>

#include "core.hpp"
#include "core_text.hpp"
#include "gorgone/json.hpp"
#include "gorgone/metrics.hpp"
#include "gorgone/status_codes.hpp"
#include "logger.hpp"
#include "rest_server.hpp"

namespace gorgone {
using protocol::Frame;
using namespace internal;

void Core::count(const std::string& router, const std::string& action, bool proxied) {
  // Actions are peer text: past a few hundred distinct names per router they share one
  // counter, so that a peer inventing names cannot grow this map without bound.
  constexpr std::size_t kMaxCounters = 256;
  std::string a = lower(action);
  auto room = [&](const std::string& key) {
    auto it = counters_.find(key);
    return it == counters_.end() || it->second.count(a) || it->second.size() < kMaxCounters;
  };
  if (!room(router) || (proxied && !room("proxy"))) a = "other";
  ++counters_total_;
  if (!router.empty()) {
    ++counters_[router]["total"];
    ++counters_[router][a];
  }
  if (proxied) {
    ++counters_["proxy"]["total"];
    ++counters_["proxy"][a];
  }
}

// GET /api/internal/metrics: the host's families, then each module's (get_metrics hook).
std::string Core::metrics_text() {
  metrics::Text m;
  const HistoryWriter::Stats h = writer_->stats();
  m.family("gorgone_history_queue_length", "gauge", "Rows and jobs waiting for the history thread");
  m.sample("gorgone_history_queue_length", static_cast<double>(h.queued));
  m.family("gorgone_history_rows_written_total", "counter", "History rows written by the history thread");
  m.sample("gorgone_history_rows_written_total", static_cast<double>(h.rows_written));
  m.family("gorgone_history_rows_dropped_total", "counter",
           "History rows lost: the queue was full, or the store failed for longer than the retry window");
  m.sample("gorgone_history_rows_dropped_total", static_cast<double>(h.rows_dropped));
  m.family("gorgone_history_jobs_total", "counter", "Database jobs run by the history thread (GETLOG, SETLOGS pages...)");
  m.sample("gorgone_history_jobs_total", static_cast<double>(h.jobs_run));
  m.family("gorgone_frames_total", "counter", "Frames the core dispatched, by router and action");
  for (const auto& [router, actions] : counters_)
    for (const auto& [action, n] : actions)
      if (action != "total") m.sample("gorgone_frames_total", {{"router", router}, {"action", action}}, static_cast<double>(n));
  m.family("gorgone_parents", "gauge", "Peers that pinged this core within 30 min (its parents)");
  m.sample("gorgone_parents", static_cast<double>(parents_.size()));
  if (rest_) {
    m.family("gorgone_rest_requests_total", "counter", "REST API answers by HTTP status");
    for (const auto& [status, n] : rest_->status_counts())
      m.sample("gorgone_rest_requests_total", {{"status", std::to_string(status)}}, static_cast<double>(n));
  }
  std::string out = m.take();
  for (const auto& mod : modules_) {
    if (!mod->hooks.get_metrics) continue;
    std::string text;
    Status s = mod->hooks.get_metrics(text);
    if (s) out += text;
    else log_error("[core] module '" + mod->name + "' metrics: " + s.message());
  }
  return out;
}

std::string Core::constatus_json() {
  LoadedModule* p = proxy();
  if (!p || !p->hooks.get_constatus_result) return "";
  std::string out;
  Status s = p->hooks.get_constatus_result(out);
  if (!s) return "";
  return out;
}

std::optional<std::pair<int, std::string>> Core::read_log(std::string data, std::chrono::milliseconds timeout) {
  struct Answer {
    std::mutex mu;
    std::condition_variable cv;
    bool ready = false;
    int code = code::kActionFinishKo;
    std::string data;
  };
  auto answer = std::make_shared<Answer>();
  writer_->job(
      [answer, data = std::move(data), id = core_info().id, max_rows = config_.getlog_max_rows,
       max_bytes = config_.getlog_max_bytes](History& h) {
        int c = code::kActionFinishKo;
        std::string reply = getlog_reply(h, data, id, max_rows, max_bytes, c);
        {
          std::lock_guard<std::mutex> lock(answer->mu);
          answer->code = c;
          answer->data = std::move(reply);
          answer->ready = true;
        }
        answer->cv.notify_one();
      },
      nullptr);
  std::unique_lock<std::mutex> lock(answer->mu);
  if (!answer->cv.wait_for(lock, timeout, [&] { return answer->ready; })) return std::nullopt;
  return std::make_pair(answer->code, std::move(answer->data));
}

std::string Core::getlog_reply(History& history, const std::string& data, const std::string& id,
                               std::int64_t max_rows, std::int64_t max_bytes, int& code) {
  json::Document doc;
  GetlogFilter f;
  code = code::kActionFinishKo;
  if (!json::parse(doc, data) || !doc.IsObject()) return json::message("request not well formatted");
  auto text = [&](const char* k) -> std::optional<std::string> {
    auto v = json::member_text(doc, k);
    if (v && v->empty()) return std::nullopt;
    return v;
  };
  try {
    if (auto v = text("id")) f.id = std::stoll(*v);
    if (auto v = text("token")) f.token = *v;
    // A number is taken as is: going through text would round it to 6 decimals and
    // move a log-sync cursor off the node's ctime.
    auto ctime = doc.FindMember("ctime");
    if (ctime != doc.MemberEnd() && ctime->value.IsNumber()) {
      f.ctime = ctime->value.GetDouble();
    } else if (auto v = text("ctime")) {
      std::size_t used = 0;
      f.ctime = std::stod(*v, &used);
      if (used != v->size()) return json::message("request not well formatted");
    }
    if (auto v = text("etime")) f.etime = std::stoll(*v);
    if (auto v = text("code")) f.code = std::stoi(*v);
    if (auto v = text("limit")) {
      f.limit = std::stoll(*v);
      if (*f.limit < 0) return json::message("limit must be a positive integer");
    }
  } catch (const std::exception&) {
    return json::message("request not well formatted");
  }
  if (f.empty()) return json::message("need at least one filter");
  // A parent syncing its cursor (the proxy sends exactly {"ctime": x}) gets the backlog
  // in pages, oldest first; any other request keeps Gorgone's answer.
  if (f.ctime && !f.id && !f.token && !f.etime && !f.code && !f.limit) f.ctime_page = max_rows;
  auto rows = history.getlog(f);
  if (!rows) {
    log_error("[core] getlog: " + rows.error());
    return json::message("database issue");
  }
  auto row_json = [](const HistoryRow& r, const std::string* data) {
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("id");
    w.String(std::to_string(r.id).c_str());
    w.Key("token");
    if (r.token) w.String(r.token->c_str(), static_cast<rapidjson::SizeType>(r.token->size()));
    else w.Null();
    w.Key("code");
    w.Int(r.code);
    w.Key("etime");
    w.Int64(r.etime);
    w.Key("ctime");
    w.Double(r.ctime);
    w.Key("instant");
    w.Int(r.instant);
    w.Key("data");
    if (!data) data = &r.data;
    w.String(data->c_str(), static_cast<rapidjson::SizeType>(data->size()));
    w.EndObject();
    return std::string(sb.GetString(), sb.GetSize());
  };
  // A log-sync page is bounded in bytes too: beyond the parent's max_frame_size its
  // connection is closed and the same page asked again forever. The page is cut only
  // between two ctimes (the parent's next cursor is the last ctime it got, so a row tied
  // with it must come now); a row larger than the bound alone travels as a placeholder
  // with its token, code and times, so that the cursor moves past it.
  std::vector<std::string> page;
  bool cut = false;
  const bool paged = f.ctime_page.has_value();
  const std::size_t cap = static_cast<std::size_t>(max_bytes);
  // {"action":"getlog","result":[],"more":true,"id":"<id>"}
  const std::size_t envelope = 60 + json::quote(id).size();
  std::size_t size = envelope;
  for (std::size_t i = 0; i < rows->size();) {
    std::size_t end = i + 1;  // [i, end): the rows of one ctime
    while (end < rows->size() && (*rows)[end].ctime == (*rows)[i].ctime) ++end;
    std::vector<std::string> group;
    std::size_t group_size = 0;
    for (std::size_t k = i; k < end; ++k) {
      const HistoryRow& r = (*rows)[k];
      std::string text = row_json(r, nullptr);
      // Too large alone, or (the page's first ctime, which cannot be put off) too large
      // for what is left.
      if (paged && (envelope + text.size() + 1 > cap || (page.empty() && size + group_size + text.size() + 1 > cap))) {
        std::string placeholder = json::message("row too large to sync (" + std::to_string(r.data.size()) + " bytes)");
        text = row_json(r, &placeholder);
        log_error("[core] getlog: row " + std::to_string(r.id) + " (token " + r.token.value_or("") + ", " +
                  std::to_string(r.data.size()) + " bytes) exceeds getlog_max_bytes: sent as a placeholder");
      }
      group_size += text.size() + 1;
      group.push_back(std::move(text));
    }
    if (paged && !page.empty() && size + group_size > cap) {
      cut = true;
      break;
    }
    for (auto& text : group) page.push_back(std::move(text));
    size += group_size;
    i = end;
  }
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("action");
  w.String("getlog");
  w.Key("result");
  w.StartArray();
  for (const auto& text : page) w.RawValue(text.c_str(), text.size(), rapidjson::kObjectType);
  w.EndArray();
  // Not in Gorgone (a Perl parent ignores it): the page was full or cut, ask again.
  if (cut || (f.ctime_page && static_cast<std::int64_t>(rows->size()) >= *f.ctime_page)) {
    w.Key("more");
    w.Bool(true);
  }
  w.Key("id");
  w.String(id.c_str());
  w.EndObject();
  code = code::kActionBegin;
  return std::string(sb.GetString(), sb.GetSize());
}

void Core::run_internal_action(const std::string& router, const std::string& identity, Frame& frame) {
  const std::string& a = frame.action;
  const std::string* token = &frame.token;
  // Read-only answers (CONSTATUS, GETTHUMBPRINT, INFORMATION) asked by a REST thread go
  // straight back to it: a history row would only grow the table (Centreon polls them every
  // few seconds). Asked by a parent or a module, they get their row, which is how a parent
  // reads the answer (log sync).
  const bool read_only_row = !(router == "internal" && identity.rfind("gorgone-httpserver-", 0) == 0);
  std::string id = core_info().id;
  LoadedModule* p = proxy();
  if (a == "PING") {
    std::string status = constatus_json();
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("action"); w.String("ping");
    w.Key("message"); w.String("ping ok");
    w.Key("id"); w.String(id.c_str());
    w.Key("hostname"); w.String(config_.hostname.c_str());
    w.Key("data");
    w.RawValue(status.empty() ? "{}" : status.c_str(), status.empty() ? 2 : status.size(), rapidjson::kObjectType);
    w.EndObject();
    if (!router.empty()) {
      parents_[identity] = Parent{now_s(), router};
      if (p && p->hooks.add_parent_ping) (void)p->hooks.add_parent_ping(router, identity);
    }
    reply(router, identity, "PONG", frame.token, code::kActionBegin, std::string(sb.GetString(), sb.GetSize()));
  } else if (a == "CONSTATUS") {
    std::string status = constatus_json();
    std::string data;
    int c;
    if (status.empty()) {
      data = action_json("constatus", "cannot get value");
      c = code::kActionFinishKo;
    } else {
      data = action_json("constatus", "ok", status);
      c = code::kActionFinishOk;
    }
    if (read_only_row) add_history(token, c, data);
    reply(router, identity, "CONSTATUS", frame.token, c, data);
  } else if (a == "GETLOG") {
    // Read and written into its answer on the history thread: a page of 10 000 rows never
    // holds up routing. The answer leaves from the loop once it is ready.
    auto answer = std::make_shared<std::pair<int, std::string>>();
    writer_->job(
        [answer, data = frame.data, id, max_rows = config_.getlog_max_rows,
         max_bytes = config_.getlog_max_bytes](History& h) {
          answer->second = getlog_reply(h, data, id, max_rows, max_bytes, answer->first);
        },
        [this, answer, router, identity, token = frame.token] {
          reply(router, identity, "ACK", token, answer->first, answer->second);
        });
  } else if (a == "PUTLOG") {
    json::Document doc;
    if (!json::parse(doc, frame.data) || !doc.IsObject() || !doc.HasMember("code") || !doc.HasMember("data")) {
      reply(router, identity, "ACK", frame.token, code::kActionFinishKo, json::message("request not well formatted"));
      return;
    }
    HistoryRow row;
    row.token = json::member_text(doc, "token");
    row.code = static_cast<int>(json::as_number(doc["code"]).value_or(0));
    if (doc.HasMember("etime")) row.etime = static_cast<std::int64_t>(json::as_number(doc["etime"]).value_or(0));
    if (doc.HasMember("instant")) row.instant = static_cast<int>(json::as_number(doc["instant"]).value_or(0));
    row.data = json::dump(doc["data"]);
    auto stored = std::make_shared<bool>(false);
    writer_->job([stored, row = std::move(row)](History& h) { *stored = h.add(row).ok(); },
                 [this, stored, router, identity, token = frame.token] {
                   if (*stored) reply(router, identity, "ACK", token, code::kActionBegin, json::message("message inserted"));
                   else reply(router, identity, "ACK", token, code::kActionFinishKo, json::message("database issue"));
                 });
  } else if (a == "SYNCLOGS") {
    reply(router, identity, "ACK", frame.token, code::kActionBegin,
          action_json("synclog", "synclog launched"));
    // A proxy that takes the SYNCLOGS event gets the frame, and with it the node whose rows
    // are new (it syncs that node alone); otherwise its synclog hook syncs every node.
    auto ev = events_.find("SYNCLOGS");
    if (p && ev != events_.end() && ev->second == p) {
      Status s = p->hooks.routing(frame, RouteContext{router, identity});
      if (!s) log_error("[core] proxy SYNCLOGS failed: " + s.message());
    } else if (p && p->hooks.synclog) {
      (void)p->hooks.synclog();
    }
  } else if (a == "SETCOREID") {
    json::Document doc;
    std::optional<std::string> newid;
    if (json::parse(doc, frame.data)) newid = json::member_text(doc, "id");
    if (!newid || newid->empty()) {
      reply(router, identity, "ACK", frame.token, code::kActionFinishKo, json::message("request not well formatted"));
      return;
    }
    if (id.empty()) {
      {
        std::lock_guard<std::mutex> lock(id_mu_);
        config_.id = *newid;
      }
      if (p && p->hooks.setcoreid) (void)p->hooks.setcoreid(*newid);
      log_info("[core] core id set to " + *newid);
    }
    reply(router, identity, "ACK", frame.token, code::kActionFinishOk,
          action_json("setcoreid", "setcoreid changed"));
  } else if (a == "RELOAD") {
    // POST /api/internal/reload, as SIGHUP: the modules' directives and the nodes file again,
    // the log file reopened.
    if (router == "external") {
      reply(router, identity, "ACK", frame.token, code::kActionFinishKo, json::message("reload is for this host's own API"));
      return;
    }
    request_reopen();
    std::string summary;
    const bool ok = reload(summary);
    reply(router, identity, "RELOAD", frame.token, ok ? code::kActionFinishOk : code::kActionFinishKo,
          action_json("reload", ok ? "ok" : "failed", "{\"message\":" + json::quote(summary) + "}"));
  } else if (a == "METRICS") {
    if (router == "external") {
      reply(router, identity, "ACK", frame.token, code::kActionFinishKo, json::message("metrics are for this host's own API"));
      return;
    }
    std::string text = metrics_text();
    reply(router, identity, "METRICS", frame.token, code::kActionFinishOk, "{\"text\":" + json::quote(text) + "}");
  } else if (a == "GETTHUMBPRINT") {
    std::string data = action_json("getthumbprint", "ok", "{\"thumbprint\":" + json::quote(server_key_->jwk_thumbprint()) + "}");
    if (read_only_row) add_history(token, code::kActionFinishOk, data);
    reply(router, identity, "GETTHUMBPRINT", frame.token, code::kActionFinishOk, data);
  } else if (a == "INFORMATION") {
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("action"); w.String("information");
    w.Key("message"); w.String("ok");
    w.Key("data");
    w.StartObject();
    w.Key("counters");
    w.StartObject();
    w.Key("total"); w.Int64(counters_total_);
    for (const auto& [type, map] : counters_) {
      w.Key(type.c_str());
      w.StartObject();
      for (const auto& [k, v] : map) {
        w.Key(k.c_str());
        w.Int64(v);
      }
      w.EndObject();
    }
    w.EndObject();
    w.Key("modules");
    w.StartObject();
    for (const auto& m : modules_) {
      w.Key(m->name.c_str());
      w.String(m->path.c_str());
    }
    w.EndObject();
    w.Key("api_endpoints");
    w.StartObject();
    for (const auto& [k, v] : api_endpoints_) {
      w.Key(k.c_str());
      w.String(v.c_str());
    }
    w.EndObject();
    w.EndObject();
    w.EndObject();
    std::string data(sb.GetString(), sb.GetSize());
    if (read_only_row) add_history(token, code::kActionFinishOk, data);
    reply(router, identity, "INFORMATION", frame.token, code::kActionFinishOk, data);
  } else if (a == "BCASTLOGGER" || a == "BCASTCOREKEY") {
    if (a == "BCASTLOGGER") {
      json::Document doc;
      if (json::parse(doc, frame.data) && doc.IsObject() && doc.HasMember("content") && doc["content"].IsObject()) {
        auto sev = json::member_text(doc["content"], "severity");
        Severity s;
        if (sev && Logger::parse_severity(*sev, s)) Logger::instance().set_severity(s);
      }
    }
    for (auto& m : modules_) (void)m->hooks.broadcast(frame);
    reply(router, identity, "ACK", frame.token, code::kActionBegin, "null");
  } else if (a.rfind("BCAST", 0) == 0) {
    std::string msg = error_json("unknown_action", "action '" + a + "' is unknown");
    reply(router, identity, "ACK", "", code::kActionFinishKo, msg);
  } else {
    // ADDLISTENER, KILL, SETMODULEKEY, LOADMODULE, UNLOADMODULE: not offered by this host.
    std::string msg = json::message("action '" + a + "' is not supported by this core");
    add_history(token, code::kActionFinishKo, msg);
    reply(router, identity, "ACK", frame.token, code::kActionFinishKo, msg);
  }
}

}  // namespace gorgone
