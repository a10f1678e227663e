// The node registry: registered nodes, static and dynamic subnodes, prevail rules, ping
// and log-sync state, and the pathway choice. Pure logic: no sockets, no clock (callers
// pass `now`), no database.
// Thread-bound: owned by the host's loop thread (the proxy hooks).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gorgone/json.hpp"
#include "node_type.hpp"

namespace gorgone::proxy {

struct Node {
  std::string id;
  NodeType type = kDefaultNodeType;  // what it means: kind(type)
  std::string type_name{kind(kDefaultNodeType).name};  // the name it registered with, for display
  std::string identity;  // kind(type).needs_identity only: routing id of the node's connection
  std::string json;      // the node object as registered (handed to workers)
  std::vector<std::pair<std::string, long>> subnodes;  // static: (id, pathscore)
  bool prevail = false;
  // Pull nodes: seconds an unanswered ping is waited for (its `ping_timeout`, default 30).
  long ping_timeout = 30;
  // Defined by this host's configuration (register file, local modules). A node that only
  // announced itself (a pull poller) is not local: nothing it says can change a local node.
  bool local = true;
};

// Where a REGISTERNODES/UNREGISTERNODES came from, when not from this host's configuration.
struct Claimant {
  std::string node;      // the node that sent it, as the connection knows it ("" = not bound yet)
  std::string identity;  // pull: the routing id of its connection ("" for push nodes)
  bool may_register_below = false;  // the node's own config allows it (accept_remote_registration)
};

// A claim on a pull node that another connection holds: only the caller can tell whether that
// connection is still alive (it asks the router), then calls bind_identity() or refuses.
struct Takeover {
  std::string node;
  std::string bound_identity;
  std::string claimed_identity;
};

struct PingStatus {
  NodeType type = kDefaultNodeType;
  std::string type_name{kind(kDefaultNodeType).name};  // constatus shows the name it registered with
  int in_progress_ping = 0;
  std::int64_t in_progress_ping_pull = 0;
  long ping_timeout = 0;
  std::int64_t last_ping_sent = 0;
  std::int64_t last_ping_recv = 0;
  std::int64_t next_ping = 0;
  long ping_ok = 0;
  long ping_failed = 0;
  std::string nodes = "{}";  // the node's own constatus from its last PONG (JSON object)
};

struct SyncState {
  double ctime = 0;            // largest node-side ctime stored
  bool in_progress = false;
  std::int64_t in_progress_time = -1;
  bool position_error = false;  // position could not be read
  bool position_loaded = false;
  bool position_loading = false;  // read on the history thread now
  bool storing = false;           // a page is being stored (in_progress stays true until then)
  std::int64_t last_synced = 0;   // when a sync last ended stored (Unix time; metrics)
  // Syncs started (a series of pages counts once) and ended, stored or not. A sync asked
  // for while one is in flight may miss rows written after that one's snapshot: `again`
  // starts another as soon as it ends.
  std::uint64_t started = 0;
  std::uint64_t ended = 0;
  bool again = false;
  // Modules of this host waiting for a sync of this node (the REST log endpoint): each is
  // answered once sync number `need` has ended.
  struct Waiter {
    std::string identity, token;
    std::uint64_t need;
  };
  std::vector<Waiter> waiters;
};

// What the hooks must do after a registry change.
struct Effect {
  enum class Kind { kAddNode, kDelNode } kind;
  std::string id;
  std::string data;  // JSON handed with the control message
};

struct Pathway {
  bool ok = false;
  std::string error;     // Gorgone's history text when !ok
  bool control = false;  // control-channel passthrough
  std::string parent;    // node we hand the frame to
  std::string target;
  std::string target_complete() const { return parent + "~~" + target; }
};

class Registry {
 public:
  // REGISTERNODES {"nodes":[...]}. `ping` is the ping period (first ping at a random offset).
  // An entry whose type is not a node type (node_type_of) is refused: one line in `log`
  // ("cannot register node ...") naming the node and the type, and nothing changes for it.
  std::vector<Effect> register_nodes(const json::Value& nodes, std::int64_t now, std::int64_t ping,
                                     std::vector<std::string>& log);
  // UNREGISTERNODES {"nodes":[{"id":...}]}.
  std::vector<Effect> unregister_nodes(const json::Value& nodes, std::vector<std::string>& log);

  // The same events sent by a node (doc/security.md): a pull node may announce itself (its id,
  // a pull type and the identity of the connection that sent it), and, when the central's
  // configuration of that node says accept_remote_registration, ids below itself that no local
  // configuration defines (they become its static subnodes). Nothing else: a node never changes
  // another node's definition, and unregisters only itself and the subnodes it registered.
  // Every refusal is one line in `log` ("refused: ..."). Claims on a pull node held by another
  // live-or-not connection come back in `takeovers`.
  std::vector<Effect> register_from_node(const Claimant& from, const json::Value& nodes, std::int64_t now,
                                         std::int64_t ping, std::vector<std::string>& log,
                                         std::vector<Takeover>& takeovers);
  std::vector<Effect> unregister_from_node(const Claimant& from, const json::Value& nodes, std::vector<std::string>& log);
  // Binds a pull-ish node to the routing id of the connection that speaks for it.
  void bind_identity(const std::string& id, const std::string& identity, std::int64_t now);
  // The node a pull connection speaks for; nullptr when it has not registered.
  const Node* node_by_identity(const std::string& identity) const;

  // A PONG from `id` with its own constatus (`status`, may be null).
  bool pong(const std::string& id, const json::Value* status, std::int64_t now);
  bool pong_reset(const std::string& id);
  // Dynamic subnodes learnt from a node's constatus, recursively (any depth).
  void learn_dynamic(const std::string& id, const json::Value& status);

  Pathway pathway(const std::string& action, const std::optional<std::string>& target, std::int64_t now,
                  std::int64_t pong_discard_timeout, std::vector<std::string>* log = nullptr) const;

  const Node* node(const std::string& id) const;
  Node* node(const std::string& id);
  bool known(const std::string& id) const { return nodes_.count(id) || subnodes_.count(id); }
  const std::map<std::string, Node>& nodes() const { return nodes_; }
  std::map<std::string, PingStatus>& status() { return status_; }
  const std::map<std::string, PingStatus>& status() const { return status_; }
  std::map<std::string, SyncState>& sync() { return sync_; }
  const std::map<std::string, SyncState>& sync() const { return sync_; }
  std::map<std::string, std::int64_t>& last_pong() { return last_pong_; }

  // {"<id>":{type,in_progress_ping,...,nodes:{...}},...}
  std::string constatus_json() const;

 private:
  struct Subnode {
    std::map<std::string, long> statics;  // parent -> pathscore
    std::set<std::string> dynamics;       // parents
  };
  void unregister_one(const std::string& id, const json::Value* entry, std::vector<Effect>& effects,
                      std::vector<std::string>& log);
  void drop_parent_everywhere(const std::string& parent, bool statics, bool dynamics);
  void learn_dynamic_rec(const std::string& parent, const json::Value& status, int depth, std::set<std::string>& seen);

  void clear_identity(Node& n);

  std::map<std::string, Node> nodes_;
  std::map<std::string, std::string> by_identity_;      // pull routing id -> node id
  std::map<std::string, std::string> claimed_subnodes_;  // subnode id -> node that registered it
  std::map<std::string, Subnode> subnodes_;
  std::set<std::string> prevails_;
  std::set<std::string> prevails_subnodes_;
  std::map<std::string, std::int64_t> last_pong_;
  std::map<std::string, PingStatus> status_;
  std::map<std::string, SyncState> sync_;
};

}  // namespace gorgone::proxy
