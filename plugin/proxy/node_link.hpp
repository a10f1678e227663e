// What a worker needs from its link to one node, whatever carries it (a connection of a
// ZMQ ROUTER with Gorgone's handshake, zmq_link.hpp; an SSH session on a thread, ssh_link.hpp). The worker keeps each node's bounded queue,
// the back-off and the KO rules; the link owns the transport session: it opens and closes
// it, gives the worker something to poll (a socket, or a file descriptor the link's own
// thread signals), takes frames when it can (back-pressure), says
// until when it waits for the node, and tells what became of the frames it was given:
// answered (retired), or lost with the session (handed back to be sent again).
// Thread-safety: thread-bound to the worker's thread.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "gorgone/protocol/response.hpp"

namespace gorgone::proxy {

using Clock = std::chrono::steady_clock;

class NodeLink {
 public:
  // A frame handed to the link, kept by it until the node answers it.
  struct Frame {
    std::string action;
    std::string token;
    std::string target;
    std::string text;  // the frame as sent
  };

  // What receive() found.
  struct Event {
    enum class Kind {
      kNone,         // nothing more to read now
      kIgnored,      // a message that needs nothing from the worker; read on
      kEstablished,  // the session is usable: held frames may go
      kRotated,      // the node rotated the session key
      kResponse,     // `response` came from the node (an answer retired the oldest frame in flight)
      kLost,         // the node lost our session (`reason`); the session is closed and
                     // `unanswered` (oldest first) never ran there: send them again
      kRefused,      // the node refused the session (`reason`); the session is closed and
                     // `unanswered` (oldest first) never ran there
      kAway,         // the node cannot be reached now (`reason`): the session is closed,
                     // `unanswered` (oldest first) never ran there; try again after a back-off
    };
    Kind kind = Kind::kNone;
    std::string reason;
    protocol::Response response;
    std::deque<Frame> unanswered;
  };

  virtual ~NodeLink() = default;

  // A session exists (open() succeeded and nothing closed it since).
  virtual bool is_open() const = 0;
  // Starts a session. False when it cannot start now (logged, naming the node); the
  // worker tries again after a back-off. An exception is an internal error, as false.
  virtual bool open(Clock::time_point now) = 0;
  // Ends the session; frames in flight are forgotten (the node has them or lost them).
  virtual void close() = 0;
  // What to poll for this link, or none. `frames_waiting`: the worker holds frames for the
  // node, so the item asks for writability once frames can go.
  virtual std::optional<zmq::pollitem_t> poll_item(bool frames_waiting) const = 0;
  // Moves the session along (sends what the session itself needs to send). True when
  // frames can be sent now.
  virtual bool ready(Clock::time_point now) = 0;
  // REQUIRES: ready(). Hands one frame over; false when the transport cannot take it now
  // (keep it and try again when the link is writable). Throws when this frame cannot be
  // sent at all.
  virtual bool send(const Frame& frame) = 0;
  // Reads one message from the node. An exception costs that message only.
  virtual Event receive(Clock::time_point now) = 0;
  // The link waits for the node until then (no answer by then: the node is away).
  virtual std::optional<Clock::time_point> deadline() const = 0;
  // The transport could not take a frame for a moment and has nothing to poll that would say
  // when it can (a ROUTER's full pipe to the node): the worker offers frames again then.
  virtual std::optional<Clock::time_point> retry_at() const { return std::nullopt; }
  // Frames sent on this session and not answered yet, oldest first.
  virtual const std::deque<Frame>& in_flight() const = 0;
};

}  // namespace gorgone::proxy
