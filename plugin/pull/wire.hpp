// What the pull module says to its central and how it decides when, as pure functions and
// small clock-free state machines (the caller passes the time), so that they are tested
// without a network or waiting. Wire facts from Gorgone's modules/core/pull/class.pm and
// class/clientzmq.pm (doc/protocol.md, doc/configuration.md "pull directives").
// Thread-safety: functions are reentrant; the classes are thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gorgone::pull {

// The routing id of one connection: "gorgone-<core id>-<24 lowercase hex>" (12 random bytes),
// drawn anew for every connection.
std::string draw_routing_id(const std::string& core_id);

// "[REGISTERNODES] [] [] {"nodes":[{"id":"<id>","type":"pull","identity":"<routing id>"}]}":
// sent once a handshake is done, and as the keep-alive. Token-less, like Gorgone's.
std::string register_frame(const std::string& core_id, const std::string& routing_id);
// "[UNREGISTERNODES] [] [] {"nodes":[{"id":"<id>"}]}": sent on a clean stop.
std::string unregister_frame(const std::string& core_id);

// What the central sent, once decrypted: true when it goes to this host's core. The
// central's ACKs (one per frame we send) stay here, as in Gorgone.
bool for_core(std::string_view frame);

// What this host's core answered on the module's internal socket, as it goes back to the
// central, or nullopt when it stays here. Gorgone's transmit_back:
//  * "[ACK] [<token>] <json>" whose data.action is "getlog" -> "[SETLOGS] [<token>] [] <json>"
//    (the json unchanged: {"code":..,"data":{"action":"getlog","result":[...],"id":..}});
//    an ACK whose JSON does not parse is sent as it is; any other ACK stays here;
//  * PONG and SYNCLOGS frames are sent as they are;
//  * anything else stays here.
std::optional<std::string> to_central(std::string_view core_message);

// Reconnection delays after a failure: 1, 2, 4 ... capped at 30 s; a connection that
// completed its handshake starts the series again.
class Backoff {
 public:
  // The delay before the next attempt, in seconds; each call doubles the next.
  std::int64_t next();
  void reset() { next_ = 1; }

 private:
  std::int64_t next_ = 1;
};

// Gorgone's keep-alive for a pull connection (ping > 0 only): at most every 60 s, when
// nothing was received for more than `ping` s, REGISTERNODES is sent again; when nothing at
// all arrives within `ping_timeout` s of it, the connection is dropped and a new one (new
// routing id, new handshake) is opened. Perl looks at the timeout only on its 60 s tick;
// here it is looked at on every round, so a dead connection is noticed ping_timeout s after
// the keep-alive rather than up to 60 s after.
class KeepAlive {
 public:
  static constexpr std::int64_t kMinInterval = 60;  // pull/class.pm::ping

  enum class Action { kNone, kSend, kReconnect };

  KeepAlive(std::int64_t ping, std::int64_t ping_timeout) : ping_(ping), ping_timeout_(ping_timeout) {}

  // A connection was established and registered at `now` (that REGISTERNODES counts as one).
  void connected(std::int64_t now);
  // Anything (an ACK included) arrived from the central.
  void received(std::int64_t now);
  // What to do at `now`. kSend: send REGISTERNODES now (the keep-alive is then in progress).
  Action due(std::int64_t now);
  bool waiting() const { return waiting_; }

 private:
  std::int64_t ping_;
  std::int64_t ping_timeout_;
  std::int64_t last_received_ = 0;
  std::int64_t last_sent_ = 0;  // last keep-alive (or registration)
  std::int64_t sent_at_ = 0;    // when the unanswered keep-alive went
  bool waiting_ = false;
};

}  // namespace gorgone::pull
