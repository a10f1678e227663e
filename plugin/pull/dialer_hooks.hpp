// The hooks of a module whose whole job is one connection thread that dials a central (the
// pull and pullwss pollers): register makes the client, init starts its thread, check
// reports it and starts it again if it ended on an error (Gorgone re-forks a dead child),
// gently asks it to unregister and stop, kill also waits for it. No hook blocks on the
// network; every hook is noexcept and turns an exception into a failure Status.
//
// Client needs start(), request_stop(), stop() and live_threads() (see pull/client.hpp).
// One state per Client type, for the life of the loaded library.
// Thread-safety: hooks run on the host's loop thread, one at a time.
#pragma once

#include <memory>
#include <string>

#include "gorgone/module.hpp"

namespace gorgone::pull {

template <class Client>
class DialerHooks {
 public:
  // `name`: the module's name ("pull"); `ready_event`: the event its thread sends when up.
  static void describe(const char* name, const char* ready_event) {
    state().name = name;
    state().ready_event = ready_event;
  }

  template <typename F>
  static Status guarded(const char* hook, F&& f) noexcept {
    try {
      return f();
    } catch (const std::exception& e) {
      return Status::failure("[" + state().name + "] " + hook + ": " + e.what());
    } catch (...) {
      return Status::failure("[" + state().name + "] " + hook + ": unknown error");
    }
  }

  // Replaces the client (a previous one is stopped first) and fills the registration.
  static void install(Host& host, std::unique_ptr<Client> client, Registration& out) {
    State& s = state();
    if (s.client) s.client->stop();
    s.host = &host;
    s.client = std::move(client);
    s.stopping = false;
    out.loaded = true;
    out.ns = "core";
    out.name = s.name;
    out.events = {{s.ready_event, "", ""}};
  }

  static Status init() noexcept {
    return guarded("init", [] {
      State& s = state();
      if (!s.client) return Status::failure("[" + s.name + "] init called before register");
      s.stopping = false;
      s.client->start();
      return Status::success();
    });
  }

  static Status routing(const protocol::Frame& frame) noexcept {
    return guarded("routing", [&] {
      // The ready event is the thread saying it is up; broadcasts have nothing to do here.
      if (frame.action == state().ready_event || frame.action.rfind("BCAST", 0) == 0) return Status::success();
      return Status::failure("unknown event '" + frame.action + "'");
    });
  }

  static Status check(CheckResult& out) noexcept {
    return guarded("check", [&] {
      State& s = state();
      out.keepalive = true;
      out.count = s.client ? s.client->live_threads() : 0;
      if (s.client && out.count == 0 && !s.stopping && s.host && !s.host->stopping()) {
        s.host->log(Severity::kError, "[" + s.name + "] the connection thread had stopped: starting it again");
        s.client->start();
        out.count = 1;
      }
      return Status::success();
    });
  }

  static Status gently() noexcept {
    return guarded("gently", [] {
      State& s = state();
      s.stopping = true;
      if (s.client) s.client->request_stop();
      return Status::success();
    });
  }

  static Status kill() noexcept {
    return guarded("kill", [] {
      State& s = state();
      s.stopping = true;
      if (s.client) s.client->stop();
      return Status::success();
    });
  }

 private:
  struct State {
    std::string name = "module";
    std::string ready_event;
    Host* host = nullptr;
    std::unique_ptr<Client> client;
    bool stopping = false;  // gently/kill was called: check() does not restart the thread
  };
  static State& state() {
    static State instance;
    return instance;
  }
};

}  // namespace gorgone::pull
