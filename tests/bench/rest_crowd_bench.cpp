// The REST API under a crowd: N clients at once (default 1 000) against a central with the
// proxy and one of our pollers, each from its own connection, spread over 32 source
// addresses (127.0.0.2 ... 127.0.0.33: the server serves at most 32 requests per address at
// a time), each sending K requests (default 3) of
//   GET /api/nodes/2/internal/thumbprint   (routed to the poller; answered with a token)
// on a fresh connection each. Prints requests/s, latency percentiles, answers by status
// (0: no answer), and the central's RSS and threads at the peak.
// Run: GORGONE_HOST_BIN=... GORGONE_MODULE_PATH=... ./build/tests/bench/rest_crowd_bench [N] [K]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "fleet.hpp"
#include "proc_stats.hpp"

using namespace gorgone;
using namespace gorgone::testing;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kSources = 32;

// One request on its own connection from `source`; the HTTP status, 0 when none came.
int request(const std::string& source, int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  int status = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0 &&
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      std::string answer;
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, static_cast<std::size_t>(n));
      if (answer.rfind("HTTP/1.1 ", 0) == 0 && answer.size() > 12) status = std::atoi(answer.c_str() + 9);
    }
  }
  ::close(fd);
  return status;
}

int threads_of(pid_t pid) {
  std::string status = read_proc("/proc/" + std::to_string(pid) + "/status");
  auto at = status.find("Threads:");
  return at == std::string::npos ? -1 : std::atoi(status.c_str() + at + 8);
}

}  // namespace

int main(int argc, char** argv) {
  const int clients = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int per_client = argc > 2 ? std::atoi(argv[2]) : 3;
  Fleet fleet;
  start_central_and_poller(fleet);
  if (!eventually([&] { return fleet.get("1", "/api/nodes/2/internal/thumbprint").first == 200; })) {
    std::fprintf(stderr, "the central does not answer\n%s", fleet.logs().c_str());
    return 1;
  }
  const int port = fleet.http_port("1");
  const pid_t central = fleet.daemon("1").pid();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const long idle = rss_kib(central);
  const int idle_threads = threads_of(central);

  std::mutex mu;
  std::condition_variable go;
  bool started = false;
  std::vector<double> latencies;  // ms
  std::map<int, int> statuses;
  std::vector<std::thread> crowd;
  crowd.reserve(static_cast<std::size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    crowd.emplace_back([&, c] {
      const std::string source = "127.0.0." + std::to_string(2 + c % kSources);
      {
        std::unique_lock<std::mutex> lock(mu);
        go.wait(lock, [&] { return started; });
      }
      for (int i = 0; i < per_client; ++i) {
        auto t0 = Clock::now();
        int status = request(source, port, "/api/nodes/2/internal/thumbprint");
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        std::lock_guard<std::mutex> lock(mu);
        latencies.push_back(ms);
        ++statuses[status];
      }
    });
  }
  std::atomic<bool> done{false};
  long peak_rss = 0;
  int peak_threads = 0;
  std::thread watch([&] {
    while (!done) {
      peak_rss = std::max(peak_rss, rss_kib(central));
      peak_threads = std::max(peak_threads, threads_of(central));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto start = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu);
    started = true;
  }
  go.notify_all();
  for (auto& t : crowd) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  done = true;
  watch.join();
  std::this_thread::sleep_for(std::chrono::seconds(12));  // the trim runs once traffic calmed
  const long later = rss_kib(central);

  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) { return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, static_cast<std::size_t>(p * latencies.size()))]; };
  std::printf("REST under a crowd: %d clients at once from %d addresses, %d routed requests each\n", clients, kSources,
              per_client);
  std::printf("  %d requests in %.2f s: %.1f /s\n", clients * per_client, seconds, clients * per_client / seconds);
  std::printf("  latency ms: p50 %.1f, p90 %.1f, p99 %.1f, max %.1f\n", pct(0.50), pct(0.90), pct(0.99),
              latencies.empty() ? 0.0 : latencies.back());
  std::printf("  answers:");
  for (const auto& [status, count] : statuses) std::printf(" %d x %d", count, status);
  std::printf("\n  central: RSS idle %ld KiB, peak %ld KiB, 12 s later %ld KiB; threads idle %d, peak %d\n", idle,
              peak_rss, later, idle_threads, peak_threads);
  int ok = statuses.count(200) ? statuses[200] : 0;
  return ok == clients * per_client ? 0 : 1;
}
