// The link to a push_ssh node: one SSH session (libssh) on a thread of its own, so that a
// slow or dead SSH node never holds up the worker's poll loop nor its other nodes. The
// worker hands frames over (a few at a time: the rest wait in the node's bounded queue) and
// the thread runs them one after the other on the session, writing their history rows on
// this host directly (Gorgone does the same: an SSH node has no log to sync). The thread
// tells the worker through an eventfd the worker polls: session up, frame done (PONG for a
// PING), node away (cannot connect, session cut: back-off, frames not run yet handed back),
// node refused (host key, authentication).
// One session per node, reused; after a failure a fresh session, never the dead one.
// Thread-safety: the NodeLink methods are thread-bound to the worker's thread.
#pragma once

#include <memory>
#include <string>

#include "gorgone/json.hpp"
#include "gorgone/module.hpp"
#include "node_link.hpp"
#include "settings.hpp"

namespace gorgone::proxy {

// The link for push_ssh node `node_id` described by `node` (its PROXYADDNODE JSON), or null
// when its attributes are wrong (logged, naming the node and the attribute).
std::unique_ptr<NodeLink> make_ssh_link(Host& host, const Settings& settings, const std::string& node_id,
                                        const json::Value& node);

}  // namespace gorgone::proxy
