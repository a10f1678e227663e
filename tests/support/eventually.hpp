// Test support: waiting for something to become true, with a limit.
// Reentrant.
#pragma once

#include <chrono>
#include <thread>

namespace gorgone::testing {

// Polls `probe` until it returns true or `timeout` passes; true when it did.
template <typename F>
bool eventually(F probe, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (probe()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return probe();
}

}  // namespace gorgone::testing
