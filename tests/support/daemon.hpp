// Test support: runs gorgone-host processes with generated configurations on loopback.
#pragma once

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <netinet/in.h>
#include <random>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "eventually.hpp"

extern char** environ;

namespace gorgone::testing {

// A TCP port that was free a moment ago on 127.0.0.1.
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) throw std::runtime_error("bind");
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
  return tmpl;
}

inline void write_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

// A file of `size` pseudo-random bytes from `rng` (parents created); returns its content.
inline std::string random_bytes_file(const std::string& path, std::size_t size, std::mt19937_64& rng) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(&data[i], &v, std::min<std::size_t>(8, size - i));
  }
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
  return data;
}
inline std::string random_bytes_file(const std::string& path, std::size_t size, unsigned seed) {
  std::mt19937_64 rng(seed);
  return random_bytes_file(path, size, rng);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every regular file under `root`: relative path -> (size, FNV-1a 64 of its content), to
// compare a copied tree with its source.
inline std::map<std::string, std::pair<std::uintmax_t, std::uint64_t>> tree_digest(const std::string& root) {
  namespace fs = std::filesystem;
  std::map<std::string, std::pair<std::uintmax_t, std::uint64_t>> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file()) continue;
    std::string content = read_file(it->path().string());
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : content) h = (h ^ c) * 1099511628211ull;
    out[it->path().lexically_relative(root).string()] = {content.size(), h};
  }
  return out;
}

// One gorgone-host process. Stopped (SIGTERM, then SIGKILL) on destruction.
class Daemon {
 public:
  Daemon(std::string config_file, std::string log_file) : config_(std::move(config_file)), log_(std::move(log_file)) {}
  ~Daemon() { stop(); }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  void start() {
    const char* bin = std::getenv("GORGONE_HOST_BIN");
    if (!bin) throw std::runtime_error("GORGONE_HOST_BIN is not set");
    std::vector<std::string> args = {bin, "--config", config_, "--logfile", log_, "--severity", "debug"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, bin, nullptr, nullptr, argv.data(), environ) != 0) throw std::runtime_error("spawn");
  }

  // Returns the exit status, or -1 when it had to be killed.
  int stop(std::chrono::seconds grace = std::chrono::seconds(15)) {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    ::kill(pid_, SIGCONT);  // a paused process would not act on SIGTERM
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = 0;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        return status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
    status_ = -1;
    return status_;
  }

  // SIGKILL, as a crash would: no clean-up runs in the process.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
    status_ = -1;
  }

  // SIGSTOP / SIGCONT: the process keeps its sockets but answers nothing meanwhile.
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

  pid_t pid() const { return pid_; }

  bool alive() {
    if (pid_ <= 0) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = 0;
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      return false;
    }
    return true;
  }
  std::string log() const { return read_file(log_); }

 private:
  std::string config_, log_;
  pid_t pid_ = 0;
  int status_ = 0;
};

}  // namespace gorgone::testing
