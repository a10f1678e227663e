// A push_ssh node through a real central against the OpenSSH clients, in one run, with the
// same server (the private sshd of tests/support/sshd.hpp) and the same client key:
//
//   1. REMOTECOPY of a 50 MiB directory (50 files of 1 MiB of random bytes, 10 of them in a
//      subdirectory)   vs  sftp -b (put -r), scp -r (SFTP protocol, OpenSSH's default), scp -O -r
//   2. the same for 2000 files of 1 KiB in 4 subdirectories
//   3. COMMAND `true`: N requests one after the other (post, wait for the final row), and N
//      posted at once then waited for   vs   ssh `true` N times through one ControlMaster
//
// The node logs in as the fixture's /bin/sh account (the client key is authorized for it
// too): root's login shell may read start-up files for every command sshd runs, which would
// weigh on both sides alike and hide the difference; a last section shows root anyway.
// Our copy is timed from the POST until the final row "send remotecopy succeeded" shows in
// the central's history (GET /api/log/<token> every 20 ms); "by ctime" is the same interval
// ended by the final row's ctime (when the central wrote it), which the polling does not
// blur: ratios use it. Each figure is the median of `reps` runs, each to a fresh destination,
// the tools taking turns; every destination is compared with the source, file by file (size
// and FNV-1a of the content). An OpenSSH figure includes the client's connection and
// authentication (a fresh process each time): "-connect" takes off the cost of an `ssh true`
// run just before it.
//
// Needs root (the sshd fixture) and /usr/bin/{ssh,sftp,scp}; exits 77 (skipped) without.
// Run: GORGONE_SOURCE_ROOT=$PWD GORGONE_HOST_BIN=build/host_api/core/gorgone-host
//      GORGONE_MODULE_PATH=build/plugin/proxy:build/examples/action build/tests/bench/ssh_bench [reps] [commands]
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "fleet.hpp"
#include "proc_stats.hpp"
#include "sshd.hpp"

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

std::string ms(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f ms", seconds * 1000);
  return buf;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}


// Runs a program (no shell), its output to `log`; returns its exit status (-1: not exited).
int run(const std::vector<std::string>& args, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
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

struct Row {
  int code;
  double ctime;
  std::string data;
};

// When a request ended: seen by polling (steady seconds since the POST) and by the final
// row's ctime (wall seconds since the POST).
struct Done {
  bool ok = false;
  double polled = 0, by_ctime = 0;
  double first_ctime = 0;  // the first row's ctime, wall seconds since the POST
  std::string last;
};

class Bench {
 public:
  Bench(int reps, int commands)
      : reps_(reps), commands_(commands), dir_(make_temp_dir("gorgone-sshbench")), user_(sshd_.password_user()) {
    fs::create_directories(dir_ + "/empty-ssh-dir");
    log_ = dir_ + "/clients.log";
    // The client key is authorized for the /bin/sh account too (the fixture's per-user
    // authorized keys file): its commands do not pay for root's shell start-up files.
    const std::string keys = sshd_.dir() + "/authorized_keys/" + user_;
    write_file(keys, read_file(sshd_.client_key() + ".pub"));
    ::chmod(keys.c_str(), 0644);
    struct passwd* pw = ::getpwnam(user_.c_str());
    if (pw == nullptr) throw std::runtime_error("no account " + user_);
    ::chmod(dir_.c_str(), 0755);
    fs::create_directories(dst_root());
    if (::chown(dst_root().c_str(), pw->pw_uid, pw->pw_gid) != 0) throw std::runtime_error("chown " + dst_root());
    auto node = [&](const std::string& id, const std::string& user) {
      return "  - id: " + id + "\n    type: push_ssh\n    address: 127.0.0.1\n    ssh_port: " +
             std::to_string(sshd_.port()) + "\n    ssh_connect_timeout: 3\n    ssh_username: " + user +
             "\n    ssh_identity: " + sshd_.client_key() + "\n    ssh_directory: " + dir_ +
             "/empty-ssh-dir\n    ssh_known_hosts: " + sshd_.known_hosts() + "\n    strict_serverkey_check: true\n";
    };
    fleet_.declare({"1", false, {}, true, "      pool: 2\n      ping: 60\n      synchistory_time: 60\n",
                    node("5", user_) + node("6", sshd_.user()), true});
    fleet_.start("1");
  }
  ~Bench() { fs::remove_all(dir_); }

  // Destinations: a directory the /bin/sh account owns.
  std::string dst_root() const { return dir_ + "/dst"; }

  int main() {
    // The sessions open on their nodes' first request: not part of any figure.
    for (const char* id : {"5", "6"}) {
      Done warm = command_seq(id, 1, std::chrono::milliseconds(20)).front();
      if (!warm.ok) return fail(std::string("the warm-up command on node ") + id + " did not finish: " + warm.last);
    }

    std::mt19937_64 rng(42);
    const std::string big = dir_ + "/src-big", small = dir_ + "/src-small";
    for (int i = 0; i < 50; ++i)
      (void)random_bytes_file(big + (i < 40 ? "" : "/sub") + "/f" + std::to_string(i) + ".bin", 1 << 20, rng);
    for (int i = 0; i < 2000; ++i)
      (void)random_bytes_file(small + "/d" + std::to_string(i % 4) + "/f" + std::to_string(i) + ".cfg", 1024, rng);

    std::printf("ssh bench: OpenSSH server on 127.0.0.1:%d, account '%s' (/bin/sh) unless said, one ed25519 key;\n"
                "median of %d run(s) per figure\n\n",
                sshd_.port(), user_.c_str(), reps_);
    std::printf("%-40s %9s %9s %9s %10s %-7s %8s %8s\n", "figure", "seconds", "by ctime", "-connect", "rate", "",
                "ours/ssh", "(-conn)");

    // An OpenSSH client's connection cost (connect, key exchange, authentication, one exec
    // channel), included in each of its copy figures; "-connect" takes it off (measured
    // again before each copy).
    std::vector<double> connect;
    for (int i = 0; i < std::max(reps_, 5); ++i) {
      double secs = 0;
      if (!ssh_connect(secs)) return 1;
      connect.push_back(secs);
    }
    std::printf("%-40s %9.3f\n", "ssh connect+auth+`true` (no master)", median(connect));

    if (!copies("50 MiB in 50 files", big, 50.0, "MiB/s")) return 1;
    if (!copies("2000 files of 1 KiB", small, 2000.0, "files/s")) return 1;
    if (!commands()) return 1;
    std::printf(
        "\nseconds: ours from the POST until the final row is seen (log polled every 20 ms, or 1 ms where said);\n"
        "by ctime: from the POST until the central wrote the final row (its ctime); ratios use it.\n"
        "ours/ssh > 1: ours is faster. (-conn): against the OpenSSH figure minus its connection cost.\n");
    return 0;
  }

 private:
  int fail(const std::string& why) {
    std::fprintf(stderr, "ssh_bench: %s\n%s\n---- clients\n%s\n---- sshd\n%s", why.c_str(), fleet_.logs().c_str(),
                 read_file(log_).c_str(), sshd_.log().c_str());
    return 1;
  }

  std::vector<std::string> ssh_args(const std::string& tool, bool capital_port, std::vector<std::string> rest,
                                    std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"/usr/bin/" + tool, "-F", "/dev/null", "-i", sshd_.client_key(),
                                  "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + sshd_.known_hosts(),
                                  "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                                  capital_port ? "-P" : "-p", std::to_string(sshd_.port())};
    a.insert(a.end(), extra.begin(), extra.end());
    a.insert(a.end(), rest.begin(), rest.end());
    return a;
  }

  // One `ssh true` without a master: the cost of a fresh OpenSSH client's connection.
  bool ssh_connect(double& secs) {
    auto t = Clock::now();
    if (run(ssh_args("ssh", false, {user_ + "@127.0.0.1", "true"}), log_) != 0) {
      fail("ssh true failed");
      return false;
    }
    secs = since(t);
    return true;
  }

  std::vector<Row> rows(const std::string& token) {
    std::vector<Row> out;
    auto [status, body] = fleet_.get("1", "/api/log/" + token);
    json::Document d;
    if (status != 200 || !json::parse(d, body) || !d.HasMember("data") || !d["data"].IsArray()) return out;
    for (const auto& r : d["data"].GetArray())
      out.push_back({r["code"].GetInt(), r["ctime"].GetDouble(), r["data"].GetString()});
    return out;
  }

  static bool final_row(const Row& r) {
    return (r.code == 1 || r.code == 2) && r.data.rfind(R"({"message":"command has)", 0) != 0;
  }

  // Polls the central's log of `token` every `interval` until a final row (60 s at most).
  Done wait_final(const std::string& token, Clock::time_point t0, double wall0, std::chrono::microseconds interval) {
    Done d;
    auto deadline = t0 + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
      std::vector<Row> all = rows(token);
      for (const Row& r : all) {
        if (!final_row(r)) continue;
        d.first_ctime = all.front().ctime - wall0;
        d.polled = since(t0);
        d.by_ctime = r.ctime - wall0;
        d.ok = r.code == 2;
        d.last = r.data;
        return d;
      }
      std::this_thread::sleep_for(interval);
    }
    d.last = "no final row after 60 s";
    return d;
  }

  std::string post(const std::string& path, const std::string& body) {
    auto [status, answer] = fleet_.post("1", path, body);
    json::Document d;
    if (status != 200 || !json::parse(d, answer) || !d.HasMember("token")) return "";
    return d["token"].GetString();
  }

  Done remotecopy(const std::string& node, const std::string& src, const std::string& dst) {
    auto t0 = Clock::now();
    double wall0 = wall_now();
    std::string token = post("/api/nodes/" + node + "/core/proxy/remotecopy",
                             "{\"source\":" + json::quote(src) + ",\"destination\":" + json::quote(dst) + "}");
    if (token.empty()) return {};
    Done d = wait_final(token, t0, wall0, std::chrono::milliseconds(20));
    if (d.ok && d.last != R"({"message":"send remotecopy succeeded"})") d.ok = false;
    return d;
  }

  bool same_tree(const std::string& src, const std::string& dst, const std::string& who) {
    auto a = tree_digest(src), b = tree_digest(dst);
    if (a == b) return true;
    fail(who + ": '" + dst + "' differs from '" + src + "' (" + std::to_string(b.size()) + " files of " +
         std::to_string(a.size()) + ")");
    return false;
  }

  // One dataset: ours, sftp, scp (SFTP mode, OpenSSH's default), scp -O (legacy protocol).
  bool copies(const std::string& label, const std::string& src, double amount, const char* unit) {
    std::vector<double> ours, ours_ctime, replace;
    std::string cpu_note;
    std::map<std::string, std::vector<double>> tools, net;
    const std::string to = user_ + "@127.0.0.1:";
    for (int i = 0; i < reps_; ++i) {
      const std::string tag = dst_root() + "/" + fs::path(src).filename().string() + "-" + std::to_string(i);
      ::sync();
      auto cpu0 = thread_cpu(fleet_.daemon("1").pid());
      Done d = remotecopy("5", src, tag + "-ours");
      cpu_note = "central " + cpu_between(cpu0, thread_cpu(fleet_.daemon("1").pid()));
      if (!d.ok) {
        fail("our copy failed: " + d.last);
        return false;
      }
      if (!same_tree(src, tag + "-ours", "our copy")) return false;
      ours.push_back(d.polled);
      ours_ctime.push_back(d.by_ctime);
      // Again onto the files just written: each one is replaced.
      ::sync();
      d = remotecopy("5", src, tag + "-ours");
      if (!d.ok) {
        fail("our second copy failed: " + d.last);
        return false;
      }
      if (!same_tree(src, tag + "-ours", "our second copy")) return false;
      replace.push_back(d.by_ctime);

      const std::string batch = dir_ + "/batch";
      write_file(batch, "put -r " + src + " " + tag + "-sftp\n");
      const std::vector<std::pair<std::string, std::vector<std::string>>> runs = {
          {"sftp -b (put -r)", ssh_args("sftp", true, {user_ + "@127.0.0.1"}, {"-b", batch})},
          {"scp -r (SFTP protocol)", ssh_args("scp", true, {"-r", src, to + tag + "-scp"})},
          {"scp -O -r (legacy protocol)", ssh_args("scp", true, {"-O", "-r", src, to + tag + "-scpO"})}};
      const char* dst_of[] = {"-sftp", "-scp", "-scpO"};
      for (std::size_t k = 0; k < runs.size(); ++k) {
        // The connection cost right before, so that a busy moment weighs on both.
        double connect = 0;
        if (!ssh_connect(connect)) return false;
        ::sync();
        auto t = Clock::now();
        if (run(runs[k].second, log_) != 0) {
          fail(runs[k].first + " failed");
          return false;
        }
        tools[runs[k].first].push_back(since(t));
        net[runs[k].first].push_back(std::max(tools[runs[k].first].back() - connect, 1e-3));
        if (!same_tree(src, tag + dst_of[k], runs[k].first)) return false;
      }
      for (const char* suffix : {"-ours", "-sftp", "-scp", "-scpO"}) fs::remove_all(tag + suffix);
    }
    const double oc = median(ours_ctime);
    std::printf("\nREMOTECOPY %s (verified: every file's size and FNV-1a)\n", label.c_str());
    std::printf("  %-38s %9.3f %9.3f %9s %10.1f %-7s\n", "ours (central, push_ssh)", median(ours), oc, "",
                amount / oc, unit);
    std::printf("  %-38s (last run: %s)\n", "", cpu_note.c_str());
    std::printf("  %-38s %9s %9.3f %9s %10.1f %-7s\n", "ours again, replacing every file", "", median(replace), "",
                amount / median(replace), unit);
    for (const char* name : {"sftp -b (put -r)", "scp -r (SFTP protocol)", "scp -O -r (legacy protocol)"}) {
      double t = median(tools[name]), n = median(net[name]);
      std::printf("  %-38s %9.3f %9s %9.3f %10.1f %-7s %8.2f %8.2f\n", name, t, "", n, amount / t, unit, t / oc,
                  n / oc);
    }
    return true;
  }

  // n commands `true` on `node`, each posted once the previous one's final row is seen.
  std::vector<Done> command_seq(const std::string& node, int n, std::chrono::microseconds interval) {
    std::vector<Done> out;
    for (int i = 0; i < n; ++i) {
      auto t0 = Clock::now();
      double wall0 = wall_now();
      std::string token = post("/api/nodes/" + node + "/core/action/command", R"([{"command":"true"}])");
      if (token.empty()) return {Done{}};
      out.push_back(wait_final(token, t0, wall0, interval));
      if (!out.back().ok) break;
    }
    return out;
  }

  // Sequential: (client's wall time, sum of the POST -> final row ctime intervals).
  bool ours_sequential(const std::string& node, int n, int interval_ms, double& wall, double& service) {
    std::vector<double> walls, services, dispatch, work;
    for (int r = 0; r < reps_; ++r) {
      auto t = Clock::now();
      std::vector<Done> done = command_seq(node, n, std::chrono::milliseconds(interval_ms));
      double secs = since(t);
      if (static_cast<int>(done.size()) != n || !done.back().ok) {
        fail("a command failed: " + done.back().last);
        return false;
      }
      double sum = 0;
      for (const Done& d : done) {
        sum += d.by_ctime;
        dispatch.push_back(d.first_ctime);
        work.push_back(d.by_ctime - d.first_ctime);
      }
      walls.push_back(secs);
      services.push_back(sum);
    }
    wall = median(walls);
    service = median(services);
    split_ = "POST -> first row " + ms(median(dispatch)) + ", first -> final row " + ms(median(work)) + " (medians)";
    return true;
  }

  // OpenSSH: one master (not counted), then n clients through it, one after the other.
  bool ssh_sequential(const std::string& user, int n, double& secs) {
    const std::vector<std::string> mux = {"-o", "ControlMaster=auto", "-o", "ControlPath=" + dir_ + "/cm-%r@%h:%p",
                                          "-o", "ControlPersist=60"};
    const std::string to = user + "@127.0.0.1";
    if (run(ssh_args("ssh", false, {to, "true"}, mux), log_) != 0) {
      fail("ssh (master) failed");
      return false;
    }
    std::vector<double> times;
    for (int r = 0; r < reps_; ++r) {
      auto t = Clock::now();
      for (int i = 0; i < n; ++i) {
        if (run(ssh_args("ssh", false, {to, "true"}, mux), log_) != 0) {
          fail("ssh (mux) failed");
          return false;
        }
      }
      times.push_back(since(t));
    }
    run(ssh_args("ssh", false, {"-O", "exit", to}, mux), log_);
    secs = median(times);
    return true;
  }

  bool commands() {
    const int n = commands_;
    double ssh = 0;
    if (!ssh_sequential(user_, n, ssh)) return false;
    double w20, s20, w1, s1;
    if (!ours_sequential("5", n, 20, w20, s20) || !ours_sequential("5", n, 1, w1, s1)) return false;
    // All posted, then waited for.
    std::vector<double> batch_wall, batch_ctime;
    for (int r = 0; r < reps_; ++r) {
      auto t0 = Clock::now();
      double wall0 = wall_now();
      std::vector<std::string> tokens;
      for (int i = 0; i < n; ++i) {
        tokens.push_back(post("/api/nodes/5/core/action/command", R"([{"command":"true"}])"));
        if (tokens.back().empty()) {
          fail("a POST failed");
          return false;
        }
      }
      double last_ctime = 0;
      for (const std::string& token : tokens) {
        Done d = wait_final(token, t0, wall0, std::chrono::milliseconds(20));
        if (!d.ok) {
          fail("a command failed: " + d.last);
          return false;
        }
        last_ctime = std::max(last_ctime, d.by_ctime);
      }
      batch_wall.push_back(since(t0));
      batch_ctime.push_back(last_ctime);
    }
    auto line = [](const std::string& what, double secs, double ctime_secs, int count, double ssh_secs) {
      std::printf("  %-38s %9.3f %9.3f %9s %10.1f %-7s %8.2f\n", what.c_str(), secs, ctime_secs, "", count / ctime_secs,
                  "cmd/s", ssh_secs / ctime_secs);
    };
    std::printf("\nCOMMAND `true` x %d\n", n);
    line("ours sequential (poll 20 ms)", w20, s20, n, ssh);
    line("ours sequential (poll 1 ms)", w1, s1, n, ssh);
    std::printf("  %-38s (per command: %s)\n", "", split_.c_str());
    line("ours all posted, then waited", median(batch_wall), median(batch_ctime), n, ssh);
    std::printf("  %-38s %9.3f %9s %9s %10.1f %-7s\n", "ssh ControlMaster, sequential", ssh, "", "", n / ssh, "cmd/s");
    std::printf("  (ours sequential as the client sees it, 1 ms polling: %.1f cmd/s, x%.2f of ssh)\n", n / w1, ssh / w1);

    // The same as root, whose bash reads ~/.bashrc for commands run by sshd: the remote
    // shell's start-up is part of every figure on both sides. Polled every 20 ms: a tighter
    // loop would take CPU from that start-up on a small machine.
    const int m = std::min(n, 50);
    double rssh = 0, rw, rs;
    if (!ssh_sequential(sshd_.user(), m, rssh) || !ours_sequential("6", m, 20, rw, rs)) return false;
    std::printf("\nCOMMAND `true` x %d as %s (login shell bash, with its ~/.bashrc)\n", m, sshd_.user().c_str());
    line("ours sequential (poll 20 ms)", rw, rs, m, rssh);
    std::printf("  %-38s (per command: %s)\n", "", split_.c_str());
    std::printf("  %-38s %9.3f %9s %9s %10.1f %-7s\n", "ssh ControlMaster, sequential", rssh, "", "", m / rssh, "cmd/s");
    return true;
  }

  int reps_, commands_;
  gorgone_test::Sshd sshd_;
  std::string dir_, log_, user_;
  std::string split_;
  Fleet fleet_;
};

}  // namespace

int main(int argc, char** argv) {
  if (std::string why = gorgone_test::Sshd::unavailable(); !why.empty()) {
    std::fprintf(stderr, "ssh_bench: cannot run: %s\n", why.c_str());
    return 77;
  }
  for (const char* tool : {"/usr/bin/ssh", "/usr/bin/sftp", "/usr/bin/scp"}) {
    if (::access(tool, X_OK) != 0) {
      std::fprintf(stderr, "ssh_bench: cannot run: %s is missing (openssh-client)\n", tool);
      return 77;
    }
  }
  int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  int commands = argc > 2 ? std::max(1, std::atoi(argv[2])) : 200;
  int rc = 0;
  {
    Bench bench(reps, commands);
    rc = bench.main();
  }
  gorgone_test::PgCluster::release_shared();
  return rc;
}
