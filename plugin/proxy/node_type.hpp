// Node types: the one place that says what a node's `type` means. A type is parsed once,
// when a node registers (and when a worker reads the node's configuration); everything
// else asks the table below, never the name.
// Thread-safety: constant data and pure functions; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "gorgone/json.hpp"
#include "gorgone/result.hpp"

namespace gorgone::proxy {

enum class NodeType { kPushZmq, kPushSsh, kPull, kWss };

// Who opens the connection: this proxy (push) or the node (pull).
enum class Connects { kProxy, kNode };

// What carries frames to the node.
enum class Link {
  kZmq,             // a pool worker's DEALER to the node's external ROUTER
  kSsh,             // a pool worker's SSH session to the node's sshd
  kExternalRouter,  // the node's own connection on this host's external ROUTER (a worker holds
                    // its frames; the hooks send them, pull_link.hpp)
  kWebsocket,       // the node's websocket on the proxy's listener (a worker holds its frames,
                    // wss_link.hpp)
};

struct NodeKind {
  NodeType type;
  std::string_view name;  // canonical name (a node may register with another, see parse_node_type)
  Connects connects;
  Link link;
  // GETLOG goes to it (periodic log sync and on demand). When false, a GETLOG whose pathway
  // goes through such a node gets a KO: its results are written on this host directly.
  bool answers_getlog;
  // A pool worker owns its link: the worker gets PROXYADDNODE / PROXYDELNODE for it.
  bool pool_worker;
  // Nothing can be routed to it before a connection is bound to it (its `identity`).
  bool needs_identity;

  // Pulled nodes are pinged on their own connection, and an unanswered ping is given up
  // after the pull timeout without counting as a failure (Gorgone's pull-ish accounting).
  constexpr bool pull() const { return connects == Connects::kNode; }
};

// Indexed by NodeType.
inline constexpr NodeKind kNodeKinds[] = {
    //  type               name        connects          link                   getlog worker identity
    {NodeType::kPushZmq, "push_zmq", Connects::kProxy, Link::kZmq, true, true, false},
    {NodeType::kPushSsh, "push_ssh", Connects::kProxy, Link::kSsh, false, true, false},
    {NodeType::kPull, "pull", Connects::kNode, Link::kExternalRouter, true, true, true},
    {NodeType::kWss, "wss", Connects::kNode, Link::kWebsocket, true, true, true},
};

constexpr const NodeKind& kind(NodeType type) { return kNodeKinds[static_cast<std::size_t>(type)]; }

// Gorgone's default when a node object has no `type`.
inline constexpr NodeType kDefaultNodeType = NodeType::kPushZmq;

// A parsed type and the name the node registered with: "pullwss" is a name of the wss kind,
// and what this host shows (constatus, log lines) is the name it was given.
struct TypeName {
  NodeType type;
  std::string name;
};

// push_zmq, push_ssh, pull, wss, and pullwss (→ kWss), compared exactly. Anything else
// (including "") is an error naming the type and the accepted names.
Result<NodeType> parse_node_type(std::string_view name);

// The `type` member of a node object: absent or null → push_zmq, named "push_zmq"; a string
// → parse_node_type; any other JSON value → an error naming it.
Result<TypeName> node_type_of(const json::Value& node);

}  // namespace gorgone::proxy
