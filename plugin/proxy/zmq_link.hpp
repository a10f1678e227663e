// The link to a push_zmq node: a connection of one of the worker's ROUTERs (zmq_routers.hpp)
// with fresh routing ids per session and Gorgone's handshake (client side) on it. Each answer of the node retires the oldest frame in flight
// (a node's core answers every frame it could decrypt, in order); when the node says it lost
// our session, what is still in flight never ran there and goes back to the worker.
// Thread-safety: thread-bound to the worker's thread.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "gorgone/json.hpp"
#include "gorgone/module.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "node_link.hpp"
#include "settings.hpp"
#include "zmq_routers.hpp"

namespace gorgone::proxy {

// The link for node `node_id` described by `node` (its PROXYADDNODE JSON), or null when it
// cannot be made (logged, naming the node). `client_keys` caches parsed private keys per
// file for the whole worker: nodes share them. The link's sessions are connections of
// `routers`, which must outlive it.
std::unique_ptr<NodeLink> make_zmq_link(Host& host, const Settings& settings, ZmqRouters& routers,
                                        const std::string& node_id, const json::Value& node,
                                        std::map<std::string, protocol::RsaKey>& client_keys);

}  // namespace gorgone::proxy
