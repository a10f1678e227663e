// What the pullwss module says to its central over the websocket and how it decides when, as
// pure functions and a clock-free keep-alive (the caller passes the time), tested without a
// network. Wire facts from Gorgone's modules/core/pullwss/class.pm and a captured exchange
// between a Perl pullwss poller and a Perl central (doc/configuration.md "pullwss
// directives"). What the core's answers become (SETLOGS from a getlog ACK, PONG, SYNCLOGS,
// nothing else) is the pull module's rule (plugin/pull/wire.hpp), shared.
// Thread-safety: functions are reentrant; KeepAlive is thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gorgone::pullwss {

// "[REGISTERNODES] [] [] {"nodes":[{"type":"wss","identity":"<id>","id":"<id>"}]}": the
// first message of a connection (the central refuses any other first message) and the
// keep-alive. Sent as it is (not entity-encoded), as Gorgone's.
std::string register_frame(const std::string& core_id);
// "[UNREGISTERNODES] [] [] {"nodes":[{"id":"<id>","type":"wss","identity":"<id>"}]}": a
// clean stop's last message, sent as it is.
std::string unregister_frame(const std::string& core_id);

// HTML entities for what the poller relays from its core (PONG, SETLOGS, SYNCLOGS): the
// central decodes entities of every message it receives first. Byte by byte as Gorgone's Perl
// poller writes them (plugin/proxy/html_entities.hpp): " & ' < > and every byte outside
// printable ASCII (UTF-8 "é" is "&Atilde;&copy;"), so that a Perl central reads the same.
std::string encode_entities(std::string_view text);

// A message of the central that goes to this host's core: a Gorgone frame ("[ACTION] ...")
// other than an ACK (the central's ACKs stay here, as in Gorgone).
bool for_core(std::string_view message);

// The reason of a refusal: the central's `{"code":<n>,"message":"<reason>"}` (sent before it
// closes), or nullopt when the message is not one.
std::optional<std::string> refusal_reason(std::string_view message);

// What the core answered, as it goes on the websocket (encoded), or nullopt when it stays
// here (plugin/pull's to_central rule, then encode_entities).
std::optional<std::string> to_central(std::string_view core_message);

// "ACTION token <token>" for log lines about a frame, without its data.
std::string describe(std::string_view frame);

// The keep-alive: REGISTERNODES again every `ping` s (Gorgone: every 60 s); a connection on
// which nothing at all arrived for more than `ping_timeout` s (0: never) is dropped and a
// new one opened (the central pings and syncs every node regularly, so silence means a dead
// link that TCP has not noticed yet).
class KeepAlive {
 public:
  enum class Action { kNone, kSend, kReconnect };

  KeepAlive(std::int64_t ping, std::int64_t ping_timeout) : ping_(ping), ping_timeout_(ping_timeout) {}

  // Registered at `now` (that REGISTERNODES counts as a keep-alive).
  void connected(std::int64_t now) { last_received_ = last_sent_ = now; }
  void received(std::int64_t now) { last_received_ = now; }
  Action due(std::int64_t now);

 private:
  std::int64_t ping_;
  std::int64_t ping_timeout_;
  std::int64_t last_received_ = 0;
  std::int64_t last_sent_ = 0;
};

}  // namespace gorgone::pullwss
