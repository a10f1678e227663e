// gorgone-host: the reference Gorgone-compatible core.
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <sstream>

#include "config.hpp"
#include "core.hpp"
#include "history_pg.hpp"
#include "history_sqlite.hpp"
#include "logger.hpp"
#include "startup.hpp"
#include "yaml_loader.hpp"

namespace {
int usage() {
  std::cerr << "usage: gorgone-host --config FILE [--logfile FILE] [--severity debug|info|notice|warning|error]\n"
               "       gorgone-host --check-config --config FILE\n"
               "       gorgone-host --version\n";
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  std::string config_file, logfile, severity = "info";
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (a == "--config") { if (!value(config_file)) return usage(); }
    else if (a.rfind("--config=", 0) == 0) config_file = a.substr(9);
    else if (a == "--logfile") { if (!value(logfile)) return usage(); }
    else if (a.rfind("--logfile=", 0) == 0) logfile = a.substr(10);
    else if (a == "--severity") { if (!value(severity)) return usage(); }
    else if (a.rfind("--severity=", 0) == 0) severity = a.substr(11);
    else if (a == "--check-config") check = true;
    else if (a == "--version") {
      std::cout << "gorgone-host " << GORGONE_VERSION << " (module ABI " << gorgone::kAbiMajor << "."
                << gorgone::kAbiMinor << ")\n";
      return 0;
    }
    else return usage();
  }
  if (config_file.empty()) return usage();
  if (check) {
    // Problems and the verdict go to stderr when the configuration is not usable, to stdout
    // when it is; what modules log under the check is collected, not logged.
    std::ostringstream report;
    int rc = gorgone::check_config(config_file, report);
    (rc == 0 ? std::cout : std::cerr) << report.str();
    return rc;
  }
  auto& logger = gorgone::Logger::instance();
  gorgone::Severity sev;
  if (!gorgone::Logger::parse_severity(severity, sev)) {
    std::cerr << "gorgone-host: unknown severity '" << severity << "'\n";
    return 2;
  }
  logger.set_severity(sev);
  if (!logger.open(logfile)) {
    std::cerr << "gorgone-host: cannot open log file '" << logfile << "': " << std::strerror(errno) << "\n";
    return 1;
  }

  auto doc = gorgone::load_yaml_with_includes(config_file);
  if (!doc) {
    gorgone::log_error("[core] " + doc.error());
    return 1;
  }
  auto config = gorgone::parse_core_config(*doc, config_file);
  if (!config) {
    gorgone::log_error("[core] " + config.error());
    return 1;
  }
  if (config->db_type == "Pg" && config->db_name.empty()) {
    gorgone::log_error("[core] " + config_file + ": gorgone.gorgonecore.gorgone_db_name: a libpq connection string is required");
    return 1;
  }
  // SIGTERM/SIGINT (stop) and SIGHUP (reopen the log, for logrotate) are read by the loop
  // from a signalfd; blocked here, before any thread starts, so that every thread modules
  // start inherits the mask and none of them has a blocking call cut short by a signal
  // meant for the process. Children the modules spawn get an empty mask back.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int signal_fd = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    gorgone::log_error(std::string("[core] cannot create a signalfd: ") + std::strerror(errno));
    return 1;
  }
  // The history store: SQLite (a poller, Gorgone's default) or PostgreSQL (a central).
  std::unique_ptr<gorgone::History> store;
  if (config->db_type == "SQLite") {
    auto history = gorgone::SqliteHistory::open(config->db_path);
    if (!history) {
      gorgone::log_error("[core] " + config_file + ": gorgone.gorgonecore.gorgone_db_name: " + history.error());
      return 1;
    }
    gorgone::log_info("[core] history in the SQLite database '" + config->db_path + "'" +
                      (config->db_defaulted ? " (no gorgone_db_* set: Gorgone's default)" : ""));
    store = std::move(history.value());
  } else {
    auto history = gorgone::PgHistory::open(config->db_name);
    if (!history) {
      gorgone::log_error("[core] " + history.error());
      return 1;
    }
    store = std::move(history.value());
  }
  auto core = gorgone::Core::create(std::move(config.value()), std::move(store));
  if (!core) {
    gorgone::log_error("[core] " + core.error());
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  (*core)->watch_signals(signal_fd);
  int rc = (*core)->run();
  core->reset();
  ::close(signal_fd);
  return rc;
}
