// Test support (benchmarks): N push_zmq nodes played by one thread of this process, one
// external ROUTER each on 127.0.0.1, with the real server side of the handshake. They answer
// PING with PONG and GETLOG with an empty page, ACK everything else, and can report each
// frame they receive. The thread waits on the sockets through epoll (see run()). Each node
// costs this process three descriptors (its listener, its
// connection, its socket's mailbox): ForkedNodeSims plays a large fleet from child processes.
// Thread-safety: construct, read ports() and set_ids() on one thread before frames arrive;
// the callback runs on the simulator's thread. ForkedNodeSims: one thread.
#pragma once

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <stdexcept>
#include <functional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"

namespace gorgone::testing {

class ZmqNodeSim {
 public:
  using OnFrame = std::function<void(const protocol::Frame&)>;

  // The nodes listen on `address` (random ports).
  ZmqNodeSim(zmq::context_t& ctx, int nodes, protocol::RsaKey key, std::string authorized, OnFrame on_frame = {},
             const std::string& address = "127.0.0.1")
      : server_(config(std::move(key), std::move(authorized))), on_frame_(std::move(on_frame)) {
    for (int i = 0; i < nodes; ++i) {
      sockets_.emplace_back(ctx, zmq::socket_type::router);
      sockets_.back().set(zmq::sockopt::linger, 0);
      sockets_.back().bind("tcp://" + address + ":0");
      std::string ep = sockets_.back().get(zmq::sockopt::last_endpoint);
      ports_.push_back(std::atoi(ep.substr(ep.rfind(':') + 1).c_str()));
      ids_.push_back(std::to_string(i + 2));
    }
    thread_ = std::thread([this] { run(); });
  }
  ~ZmqNodeSim() {
    stop_ = true;
    thread_.join();
  }
  const std::vector<int>& ports() const { return ports_; }
  // The node ids the answers carry (default "2", "3", ...), before any frame arrives.
  void set_ids(std::vector<std::string> ids) { ids_ = std::move(ids); }
  int undecryptable() const { return undecryptable_.load(); }

 private:
  // One handshake server plays every node: no per-address HELO limit (they all come from the
  // central's one address).
  static protocol::HandshakeServer::Config config(protocol::RsaKey key, std::string authorized) {
    protocol::HandshakeServer::Config c{std::move(key), {std::move(authorized)}, "sim", 32};
    c.helo_per_minute = 0;
    return c;
  }
  // The sockets' ZMQ_FDs in one epoll set: a wake costs the sockets that have something,
  // not a zmq_poll over every node (thousands a process), which had made the simulators, not
  // the central, what a fleet bench measured. A ZMQ_FD only says that the socket's state may
  // have changed: each socket it names is read until it has nothing, and every socket is read
  // once at the start and after each idle second, so nothing waits on a signal consumed
  // unseen.
  void run() {
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) throw std::runtime_error("epoll_create1 failed");
    for (std::size_t i = 0; i < sockets_.size(); ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      const int fd = sockets_[i].get(zmq::sockopt::fd);
      if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) throw std::runtime_error("epoll_ctl failed");
    }
    std::vector<epoll_event> ready(256);
    for (std::size_t i = 0; i < sockets_.size(); ++i) drain(i);
    while (!stop_) {
      const int n = ::epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), 1000);
      if (n <= 0) {
        for (std::size_t i = 0; i < sockets_.size() && !stop_; ++i) drain(i);
        continue;
      }
      for (int k = 0; k < n; ++k) drain(static_cast<std::size_t>(ready[static_cast<std::size_t>(k)].data.u64));
    }
    ::close(ep);
  }
  void drain(std::size_t i) {
    zmq::message_t id, body;
    while (sockets_[i].recv(id, zmq::recv_flags::dontwait)) {
      (void)sockets_[i].recv(body, zmq::recv_flags::none);
      answer(sockets_[i], id.to_string(), body.to_string_view(), i);
    }
  }
  void answer(zmq::socket_t& s, const std::string& id, std::string_view body, std::size_t index) {
    auto out = server_.on_message(id, body, ::time(nullptr));
    std::string reply;
    if (out.kind != protocol::HandshakeServer::Outcome::Kind::kMessage) {
      if (out.reply.empty()) return;
      reply = out.reply;
    } else {
      auto f = protocol::parse_frame(out.plaintext);
      if (!f) {
        ++undecryptable_;
        return;
      }
      if (on_frame_) on_frame_(*f);
      std::string token = f->token.empty() ? "t" : f->token;
      const std::string& node = ids_[index];
      if (f->action == "PING")
        reply = protocol::build_response("PONG", token, 0,
                                         R"({"action":"ping","message":"ping ok","id":")" + node + R"(","data":{}})");
      else if (f->action == "GETLOG")
        reply = protocol::build_response("ACK", token, 0, R"({"action":"getlog","result":[],"id":")" + node + "\"}");
      else
        reply = protocol::build_response("ACK", token, 0, "null");
      reply = *server_.encrypt_for(id, reply);
    }
    s.send(zmq::buffer(id), zmq::send_flags::sndmore);
    s.send(zmq::buffer(reply), zmq::send_flags::none);
  }

  protocol::HandshakeServer server_;
  OnFrame on_frame_;
  std::vector<zmq::socket_t> sockets_;
  std::vector<int> ports_;
  std::vector<std::string> ids_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> undecryptable_{0};
};

// N nodes ("2", "3", ...) played by child processes, each a ZmqNodeSim with at most
// `per_process` of them, listening on 127.0.0.2 (ForkedNodeSims::kAddress): thousands of
// random ports there cannot take one another process picked as free on 127.0.0.1. The children are forked by the constructor, which must run before
// this process starts any thread; they wait for start() to say which key they answer with.
class ForkedNodeSims {
 public:
  static constexpr const char* kAddress = "127.0.0.2";
  ForkedNodeSims(int nodes, int per_process) {
    for (int first = 0; first < nodes; first += per_process) {
      const int count = std::min(per_process, nodes - first);
      int to_child[2], from_child[2];
      // Close-on-exec: processes this one starts later (the central, PostgreSQL) must not hold
      // the pipes open, or a child would never see the end of its input.
      if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
      pid_t pid = ::fork();
      if (pid < 0) throw std::runtime_error("fork failed");
      if (pid == 0) {
        ::close(to_child[1]);
        ::close(from_child[0]);
        for (const auto& c : children_) {
          ::close(c.to);
          ::close(c.from);
        }
        ::_exit(child(to_child[0], from_child[1], first, count));
      }
      ::close(to_child[0]);
      ::close(from_child[1]);
      children_.push_back({pid, to_child[1], from_child[0], count});
    }
  }
  ~ForkedNodeSims() {
    for (auto& c : children_) {
      ::close(c.to);  // end of input: the child stops
      ::close(c.from);
      int status = 0;
      ::waitpid(c.pid, &status, 0);
    }
  }
  int processes() const { return static_cast<int>(children_.size()); }
  std::vector<pid_t> pids() const {
    std::vector<pid_t> out;
    for (const auto& c : children_) out.push_back(c.pid);
    return out;
  }
  // Every child loads `key_file` and authorizes `authorized`; the nodes' ports, in order.
  std::vector<int> start(const std::string& key_file, const std::string& authorized) {
    const std::string line = key_file + "\n" + authorized + "\n";
    for (auto& c : children_)
      if (::write(c.to, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        throw std::runtime_error("cannot reach a simulator process");
    std::vector<int> ports;
    for (auto& c : children_) {
      std::string text = read_line(c.from);
      std::istringstream in(text);
      int port = 0;
      int n = 0;
      while (in >> port) {
        ports.push_back(port);
        ++n;
      }
      if (n != c.count) throw std::runtime_error("a simulator process failed to start its nodes: " + text);
    }
    return ports;
  }

 private:
  struct Child {
    pid_t pid;
    int to, from;
    int count;
  };
  static std::string read_line(int fd) {
    std::string out;
    char ch;
    while (::read(fd, &ch, 1) == 1 && ch != '\n') out += ch;
    return out;
  }
  static int child(int in, int out, int first, int count) {
    std::string key_file = read_line(in);
    std::string authorized = read_line(in);
    auto key = protocol::RsaKey::load_private_file(key_file);
    if (!key) return 1;
    zmq::context_t ctx;
    ctx.set(zmq::ctxopt::max_sockets, count + 64);
    std::string ports;
    {
      ZmqNodeSim sim(ctx, count, std::move(*key), authorized, {}, kAddress);
      std::vector<std::string> ids;
      for (int i = 0; i < count; ++i) ids.push_back(std::to_string(first + i + 2));
      sim.set_ids(std::move(ids));
      for (int p : sim.ports()) ports += std::to_string(p) + " ";
      ports += "\n";
      if (::write(out, ports.data(), ports.size()) != static_cast<ssize_t>(ports.size())) return 1;
      char ch;
      while (::read(in, &ch, 1) > 0) {
      }
    }
    return 0;
  }
  std::vector<Child> children_;
};

}  // namespace gorgone::testing
