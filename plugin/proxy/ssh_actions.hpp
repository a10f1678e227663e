// What a push_ssh node does with a frame, run on its SSH session (Gorgone's sshclient
// actions, with their history rows and codes): PING, COMMAND, ACTIONENGINE, ENGINECOMMAND,
// REMOTECOPY, PROCESSCOPY and the centcore command file.
// Paths of a request go to SFTP calls only and must be absolute without "..": no shell
// command is built from a request except the user's own `command`.
// Thread-safety: thread-bound (the node's SSH thread).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "gorgone/module.hpp"
#include "ssh_session.hpp"

namespace gorgone::proxy {

class SshActions {
 public:
  // A history row for the frame's token: code, JSON data, instant flag.
  using RowSink = std::function<void(int code, const std::string& data, int instant)>;

  struct Outcome {
    bool pong = false;          // PING: the node answered
    bool session_lost = false;  // the session broke during the action (rows already say so)
  };

  SshActions(Host& host, std::string node_id);
  ~SshActions();

  // `action`, `target` (the node the frame is for: this node or one behind it), `data` (the
  // frame's JSON). Never throws for bad input: a KO row says what was wrong.
  Outcome run(SshSession& session, const std::string& action, const std::string& token, const std::string& target,
              const std::string& data, const RowSink& row, const std::atomic<bool>* stop);

  // Where centcore command files are written on the node.
  static constexpr const char* kCentcoreDir = "/var/lib/centreon/centcore";

 private:
  struct Copy;  // a PROCESSCOPY series being received, by token
  Outcome command(SshSession& s, const json::Value& content, const std::string& target, const RowSink& row,
                  const std::atomic<bool>* stop);
  Outcome enginecommand(SshSession& s, const json::Value& content, const std::string& target, const RowSink& row);
  Outcome remotecopy(SshSession& s, const json::Value& content, const std::string& target, const RowSink& row,
                     const std::atomic<bool>* stop);
  Outcome processcopy(SshSession& s, const std::string& token, const json::Value& content, const RowSink& row,
                      const std::atomic<bool>* stop);
  Status centcore(SshSession& s, const std::string& command, const std::string& target, const std::string& param);

  Host& host_;
  std::string id_;
  std::map<std::string, std::unique_ptr<Copy>> copies_;
};

}  // namespace gorgone::proxy
