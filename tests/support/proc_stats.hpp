// Test support (tests and benchmarks): what /proc says about a process.
// Reentrant.
#pragma once

#include <sys/types.h>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <sstream>
#include <utility>
#include <vector>
#include <string>

namespace gorgone::testing {

// A process we started (even through a shell, so not our child) is gone, or at worst a
// zombie waiting for init to reap it.
inline std::string read_proc(const std::string& path);

inline bool process_gone(pid_t pid) {
  std::string line = read_proc("/proc/" + std::to_string(pid) + "/stat");
  if (line.empty()) return true;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

// Resident memory of `pid` in KiB (VmRSS), -1 when it cannot be read.
inline long rss_kib(pid_t pid) {
  std::istringstream in(read_proc("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

// A /proc file, empty when it cannot be read. Not through std::ifstream: a process that
// ends while its file is open makes read() fail with ESRCH, and libstdc++'s filebuf throws
// on a failed read whatever the stream's exception mask says.
inline std::string read_proc(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// utime + stime from a /proc stat line.
inline long stat_ticks(const std::string& stat) {
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::atol(field.c_str());
    if (i == 15) stime = std::atol(field.c_str());
  }
  return utime + stime;
}

// Open descriptors of a process, -1 when its /proc entry cannot be read.
inline int open_fds(pid_t pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  int n = 0;
  while (auto* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

// utime + stime of a process, in seconds.
inline double cpu_seconds(pid_t pid) {
  return double(stat_ticks(read_proc("/proc/" + std::to_string(pid) + "/stat"))) / double(::sysconf(_SC_CLK_TCK));
}

// CPU ticks of each thread of a process: tid -> (name, utime + stime); tid 0: the whole
// process, threads that ended included (a copy's archiver thread ends with its copy).
inline std::map<int, std::pair<std::string, long>> thread_cpu(pid_t pid) {
  std::map<int, std::pair<std::string, long>> out;
  out[0] = {"", stat_ticks(read_proc("/proc/" + std::to_string(pid) + "/stat"))};
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::string stat = read_proc(e.path().string() + "/stat");
    std::size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    out[std::atoi(e.path().filename().c_str())] = {stat.substr(open + 1, close - open - 1), stat_ticks(stat)};
  }
  return out;
}

// "x.xx s CPU (a 0.50, b 0.20)": the process's CPU between two snapshots, its busiest live
// threads.
inline std::string cpu_between(const std::map<int, std::pair<std::string, long>>& before,
                        const std::map<int, std::pair<std::string, long>>& after) {
  const double tick = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  long total = 0;
  std::vector<std::pair<long, std::string>> used;
  for (const auto& [tid, v] : after) {
    auto it = before.find(tid);
    long n = v.second - (it == before.end() ? 0 : it->second.second);
    if (tid == 0) total = n;
    else if (n > 0) used.emplace_back(n, v.first);
  }
  std::sort(used.rbegin(), used.rend());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f s CPU", total * tick);
  std::string out = buf;
  for (std::size_t i = 0; i < used.size() && i < 3; ++i) {
    std::snprintf(buf, sizeof buf, "%s'%s' %.2f", i ? ", " : " (", used[i].second.c_str(), used[i].first * tick);
    out += buf;
  }
  return used.empty() ? out : out + ")";
}

}  // namespace gorgone::testing
