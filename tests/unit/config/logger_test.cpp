// The host's logger: one line per event whatever the message holds, and the file reopened
// after a rotation.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "logger.hpp"

namespace gorgone {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class LoggerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("gorgone-logger-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "gorgone.log").string();
    ASSERT_TRUE(Logger::instance().open(path_));
    Logger::instance().set_severity(Severity::kInfo);
  }
  void TearDown() override {
    Logger::instance().open("");
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(LoggerTest, PeerTextCannotForgeALine) {
  log_info("[core] unknown action 'X\n2026-01-01 00:00:00 - error - [core] forged\r\x01'");
  std::string text = slurp(path_);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("'X\\n2026-01-01 00:00:00 - error - [core] forged\\x0d\\x01'"), std::string::npos) << text;
}

TEST_F(LoggerTest, ReopenFollowsARotation) {
  log_info("before rotation");
  std::filesystem::rename(path_, path_ + ".1");
  log_info("still into the moved file");
  ASSERT_TRUE(Logger::instance().reopen());
  log_info("after rotation");
  EXPECT_NE(slurp(path_ + ".1").find("still into the moved file"), std::string::npos);
  std::string fresh = slurp(path_);
  EXPECT_NE(fresh.find("after rotation"), std::string::npos);
  EXPECT_EQ(fresh.find("before rotation"), std::string::npos);
}

TEST_F(LoggerTest, SeverityChangesWhileThreadsLog) {
  // The level is read by every thread and written by POST /api/internal/logger: an atomic,
  // so this is not a data race (the sanitizer builds would report one).
  std::thread writer([] {
    for (int i = 0; i < 1000; ++i) Logger::instance().set_severity(i % 2 ? Severity::kDebug : Severity::kError);
  });
  for (int i = 0; i < 1000; ++i) log_debug("x");
  writer.join();
  Logger::instance().set_severity(Severity::kError);
  EXPECT_FALSE(Logger::instance().enabled(Severity::kInfo));
  EXPECT_TRUE(Logger::instance().enabled(Severity::kError));
}

}  // namespace
}  // namespace gorgone
