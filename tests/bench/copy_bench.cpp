// REMOTECOPY of a directory, end to end: a central (our proxy) and our poller (push_zmq,
// the action module), in one run, against `tar czf` of the same data:
//
//   1. a 50 MiB incompressible directory (50 files of 1 MiB of random bytes, 10 of them in a
//      subdirectory)
//   2. 2000 files of 1 KiB of random bytes in 4 subdirectories
//
// Each copy is timed from the POST until the poller wrote its final row ("process copy
// finished successfully", its ctime, read from the poller's own history: no GETLOG in the
// way), and the destination is compared with the source, file by file (size and FNV-1a).
// With COPY_BENCH_BEFORE_MODULE_PATH set (a GORGONE_MODULE_PATH whose proxy plugin is an
// earlier build), a second central runs that plugin against the same poller, the two taking
// turns: before/after in one run.
// Then the archiver alone (RemoteCopy in this process, every chunk taken as fast as it
// comes): gzip levels 0 (stored), 1, 6 and the default (1, or stored when a sample does not
// compress) on the incompressible set and on a compressible one (2000 configuration-like
// text files, 8 MiB): time, and the size of the messages made.
//
// Run: GORGONE_SOURCE_ROOT=$PWD GORGONE_HOST_BIN=build/host_api/core/gorgone-host
//      GORGONE_MODULE_PATH=build/plugin/proxy:build/examples/action build/tests/bench/copy_bench [reps]
#include <fcntl.h>
#include <libpq-fe.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "fleet.hpp"
#include "proc_stats.hpp"
#include "remote_copy.hpp"

extern char** environ;

using namespace gorgone;
using namespace gorgone::testing;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}


// Text like a poller's configuration: repeated directives with varying names and numbers.
void text_file(const std::string& path, std::size_t size, std::mt19937_64& rng) {
  std::string data;
  while (data.size() < size) {
    auto n = rng();
    data += "define service {\n  host_name srv-" + std::to_string(n % 500) + "\n  service_description check-" +
            std::to_string(n % 97) + "\n  check_interval " + std::to_string(n % 10 + 1) + "\n}\n";
  }
  data.resize(size);
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

int run(const std::vector<std::string>& args) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class Bench {
 public:
  explicit Bench(int reps) : reps_(reps), dir_(make_temp_dir("gorgone-copybench")) {
    const char* before = std::getenv("COPY_BENCH_BEFORE_MODULE_PATH");
    if (before && *before) before_path_ = before;
    fleet_.declare({"2", true, {"1", "3"}});
    fleet_.start("2");
    auto node = "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(fleet_.port("2")) + "\n";
    const std::string proxy = "      pool: 1\n      ping: 60\n      synchistory_time: 60\n";
    fleet_.declare({"1", false, {}, true, proxy, node, true});
    fleet_.start("1");
    centrals_.push_back({"after (this build)", "1"});
    if (!before_path_.empty()) {
      std::string after_path = std::getenv("GORGONE_MODULE_PATH") ? std::getenv("GORGONE_MODULE_PATH") : "";
      ::setenv("GORGONE_MODULE_PATH", before_path_.c_str(), 1);
      fleet_.declare({"3", false, {}, true, proxy, node, true});
      fleet_.start("3");
      ::setenv("GORGONE_MODULE_PATH", after_path.c_str(), 1);
      centrals_.insert(centrals_.begin(), {"before (the earlier plugin)", "3"});
    }
    fs::create_directories(dir_ + "/cache");
  }
  ~Bench() { fs::remove_all(dir_); }

  int main() {
    std::mt19937_64 rng(42);
    const std::string big = dir_ + "/src-big", small = dir_ + "/src-small", text = dir_ + "/src-text";
    for (int i = 0; i < 50; ++i)
      (void)random_bytes_file(big + (i < 40 ? "" : "/sub") + "/f" + std::to_string(i) + ".bin", 1 << 20, rng);
    for (int i = 0; i < 2000; ++i)
      (void)random_bytes_file(small + "/d" + std::to_string(i % 4) + "/f" + std::to_string(i) + ".cfg", 1024, rng);
    for (int i = 0; i < 2000; ++i)
      text_file(text + "/d" + std::to_string(i % 4) + "/f" + std::to_string(i) + ".cfg", 4096, rng);

    // The session opens on the first request: not part of any figure.
    for (const auto& [label, id] : centrals_)
      if (!copy(id, small, dir_ + "/warm-" + id).ok) return fail("the warm-up copy through central " + id + " failed");

    std::printf("copy bench: REMOTECOPY central -> our poller (push_zmq, loopback), buffer_size 150000;\n"
                "median of %d run(s); seconds from the POST until the poller's final row (its ctime)\n\n",
                reps_);
    if (!dataset("50 MiB incompressible, 50 files", big, 50.0, "MiB/s")) return 1;
    if (!dataset("2000 files of 1 KiB", small, 2000.0, "files/s")) return 1;
    levels({{"50 MiB incompressible", big}, {"8 MiB text, 2000 files", text}});
    return 0;
  }

 private:
  struct Done {
    bool ok = false;
    double seconds = 0;
    double first = 0;  // until the poller's first row (the first chunk written)
    double last_chunk = 0;  // until its last "inprogress" row
    std::string last;
  };

  int fail(const std::string& why) {
    std::fprintf(stderr, "copy_bench: %s\n%s\n", why.c_str(), fleet_.logs().c_str());
    return 1;
  }

  // The poller's own rows for `token`: (code, ctime, data).
  std::vector<std::tuple<int, double, std::string>> poller_rows(const std::string& token) {
    std::vector<std::tuple<int, double, std::string>> out;
    PGconn* c = PQconnectdb(fleet_.db("2").c_str());
    const char* params[] = {token.c_str()};
    PGresult* r = PQexecParams(c, "SELECT code, ctime, data FROM gorgone_history WHERE token = $1 ORDER BY id", 1,
                               nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
      for (int i = 0; i < PQntuples(r); ++i)
        out.emplace_back(std::atoi(PQgetvalue(r, i, 0)), std::atof(PQgetvalue(r, i, 1)), PQgetvalue(r, i, 2));
    PQclear(r);
    PQfinish(c);
    return out;
  }

  Done copy(const std::string& central, const std::string& src, const std::string& dst) {
    Done d;
    double wall0 = wall_now();
    auto t0 = Clock::now();
    auto [status, body] = fleet_.post(central, "/api/nodes/2/core/proxy/remotecopy",
                                      "{\"source\":" + json::quote(src) + ",\"destination\":" + json::quote(dst) +
                                          ",\"cache_dir\":" + json::quote(dir_ + "/cache") + "}");
    json::Document doc;
    if (status != 200 || !json::parse(doc, body) || !doc.HasMember("token")) {
      d.last = "POST refused: " + std::to_string(status) + " " + body;
      return d;
    }
    const std::string token = doc["token"].GetString();
    while (since(t0) < 300) {
      auto rows = poller_rows(token);
      for (const auto& [code, ctime, data] : rows) {
        if (code != 1 && code != 2) {
          if (d.first == 0) d.first = ctime - wall0;
          d.last_chunk = ctime - wall0;
          continue;
        }
        d.ok = code == 2;
        d.seconds = ctime - wall0;
        d.last = data;
        return d;
      }
      // The central's own KO rows (a copy refused before it left).
      for (const auto& [code, data] : fleet_.rows(central, token))
        if (code == 1) {
          d.last = data;
          return d;
        }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    d.last = "no final row after 300 s";
    return d;
  }

  bool dataset(const std::string& label, const std::string& src, double amount, const char* unit) {
    std::map<std::string, std::vector<double>> times;
    std::map<std::string, std::string> cpu;  // last run
    std::map<std::string, std::vector<double>> firsts, chunks_done;
    std::vector<double> tar;
    // Destinations stay until the dataset is done (files just deleted make the next
    // creations slower on ext4), and the centrals take turns in both orders.
    std::vector<std::string> made;
    for (int i = 0; i < reps_; ++i) {
      auto order = centrals_;
      if (i % 2) std::reverse(order.begin(), order.end());
      for (const auto& [name, id] : order) {
        const std::string dst = dir_ + "/dst-" + id + "-" + std::to_string(i);
        made.push_back(dst);
        ::sync();
        auto central0 = thread_cpu(fleet_.daemon(id).pid()), poller0 = thread_cpu(fleet_.daemon("2").pid());
        Done d = copy(id, src, dst);
        cpu[name] = "central " + cpu_between(central0, thread_cpu(fleet_.daemon(id).pid())) + "; poller " +
                    cpu_between(poller0, thread_cpu(fleet_.daemon("2").pid()));
        if (!d.ok) return fail(name + ": the copy of '" + src + "' failed: " + d.last) == 0;
        if (tree_digest(src) != tree_digest(dst)) return fail(name + ": '" + dst + "' differs from '" + src + "'") == 0;
        times[name].push_back(d.seconds);
        firsts[name].push_back(d.first);
        chunks_done[name].push_back(d.last_chunk);
      }
      ::sync();
      auto t = Clock::now();
      if (run({"/bin/tar", "czf", dir_ + "/baseline.tar.gz", "-C", src, "."}) != 0)
        return fail("tar czf failed") == 0;
      tar.push_back(since(t));
      fs::remove(dir_ + "/baseline.tar.gz");
    }
    for (const auto& dst : made) fs::remove_all(dst);
    std::printf("REMOTECOPY %s (verified: every file's size and FNV-1a)\n", label.c_str());
    for (const auto& [name, id] : centrals_) {
      double s = median(times[name]);
      std::printf("  %-44s %8.3f s %9.1f %s\n", name.c_str(), s, amount / s, unit);
      std::printf("  %-44s first chunk written at %.3f s, last at %.3f s (medians)\n", "", median(firsts[name]),
                  median(chunks_done[name]));
      std::printf("  %-44s last run: %s\n", "", cpu[name].c_str());
    }
    double t = median(tar);
    std::printf("  %-44s %8.3f s %9.1f %s\n\n", "baseline: tar czf of the same data", t, amount / t, unit);
    return true;
  }

  // The archiver alone: every chunk taken as soon as it is there.
  void levels(const std::vector<std::pair<std::string, std::string>>& sets) {
    std::printf("archiver alone (RemoteCopy, buffer_size 150000, chunks taken as they come)\n");
    for (const auto& [label, src] : sets) {
      std::uintmax_t input = 0;
      for (const auto& [path, v] : tree_digest(src)) input += v.first;
      for (int level : {0, 1, 6, proxy::CopyOptions::kAuto}) {
        std::vector<double> secs;
        std::size_t bytes = 0;
        for (int i = 0; i < reps_; ++i) {
          proxy::RemoteCopy::Options options;
          options.gzip_level = level;
          auto t = Clock::now();
          auto job = proxy::RemoteCopy::start(
              "{\"content\":{\"source\":" + json::quote(src) + ",\"destination\":\"/tmp/x\",\"cache_dir\":\"/tmp\"}}",
              "2", "bench", 150000, nullptr, options);
          if (!job) {
            std::printf("  %s: %s\n", label.c_str(), job.error().c_str());
            return;
          }
          bytes = 0;
          while (!(*job)->done()) {
            (*job)->wait_available(std::chrono::seconds(60));
            auto m = (*job)->next();
            if (!m) break;
            bytes += m->size();
          }
          secs.push_back(since(t));
        }
        double s = median(secs);
        std::string name = level == proxy::CopyOptions::kAuto ? "auto (default)" : "gzip " + std::to_string(level);
        std::printf("  %-26s %-14s %7.3f s %8.1f MiB/s in, messages %6.1f MiB\n", label.c_str(), name.c_str(), s,
                    static_cast<double>(input) / (1 << 20) / s, static_cast<double>(bytes) / (1 << 20));
      }
    }
  }

  int reps_;
  std::string dir_;
  std::string before_path_;
  std::vector<std::pair<std::string, std::string>> centrals_;  // label, host id
  Fleet fleet_;
};

}  // namespace

int main(int argc, char** argv) {
  int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  try {
    Bench bench(reps);
    return bench.main();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "copy_bench: %s\n", e.what());
    return 1;
  }
}
