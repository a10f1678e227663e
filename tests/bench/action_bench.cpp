// End-to-end `echo` commands per second through a poller's REST API: a real gorgone-host
// (action module, httpserver, private PostgreSQL) and N clients, each posting
// `[{"command":"echo bench"}]` to /api/core/action/command and polling /api/log/<token>
// until the final row (code 2) is there, then posting the next one.
//
// Runs the same load with the action module's command_concurrency set to 1 (one command at
// a time, as the module ran before its command runners) and at its default, and prints both
// and their ratio. Also prints the same with one slow request (`sleep 5`) in front of the
// load, the case that concurrency is for. Figures only: nothing is asserted.
//
// Run: GORGONE_HOST_BIN=... GORGONE_MODULE_PATH=.../examples/action build/tests/bench/action_bench [seconds] [clients]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "fleet.hpp"

using namespace gorgone;
using namespace gorgone::testing;
using Clock = std::chrono::steady_clock;

namespace {

std::string token_of(const std::string& body) {
  json::Document d;
  if (!json::parse(d, body) || !d.IsObject() || !d.HasMember("token")) return "";
  return d["token"].GetString();
}

bool finished(httplib::Client& c, const std::string& token) {
  auto r = c.Get(("/api/log/" + token).c_str());
  if (!r || r->status != 200) return false;
  json::Document d;
  if (!json::parse(d, r->body) || !d.HasMember("data") || !d["data"].IsArray()) return false;
  for (const auto& row : d["data"].GetArray())
    if (row["code"].GetInt() == 2 || row["code"].GetInt() == 1) return true;
  return false;
}

// Commands completed per second by `clients` clients over `seconds`.
double measure(const std::string& directives, int seconds, int clients, bool slow_first) {
  Fleet fleet;
  HostSpec poller{"2", false, {}, false, "", "", true};
  poller.action_directives = directives;
  fleet.declare(poller);
  fleet.start("2");
  const int port = fleet.http_port("2");
  if (slow_first) {
    httplib::Client c("127.0.0.1", port);
    c.Post("/api/core/action/command", R"([{"command":"sleep 5"}])", "application/json");
  }
  std::atomic<long> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(true);
      c.set_read_timeout(30, 0);
      while (!stop) {
        auto r = c.Post("/api/core/action/command", R"([{"command":"echo bench"}])", "application/json");
        std::string token = r && r->status == 200 ? token_of(r->body) : "";
        if (token.empty()) continue;
        while (!stop && !finished(c, token)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (!stop) ++done;
      }
    });
  }
  auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& t : threads) t.join();
  return static_cast<double>(done.load()) / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = argc > 1 ? std::atoi(argv[1]) : 10;
  int clients = argc > 2 ? std::atoi(argv[2]) : 8;
  if (seconds <= 0) seconds = 10;
  if (clients <= 0) clients = 8;
  std::printf("echo commands/s through the REST API, %d clients, %d s per run\n", clients, seconds);
  for (bool slow : {false, true}) {
    double one = measure("      command_concurrency: 1\n", seconds, clients, slow);
    double pool = measure("", seconds, clients, slow);
    std::printf("%-28s command_concurrency 1: %8.1f/s   default: %8.1f/s   ratio %.2f\n",
                slow ? "behind one `sleep 5`:" : "echo only:", one, pool, one > 0 ? pool / one : 0.0);
  }
  return 0;
}
