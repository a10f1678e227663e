#pragma once
// Names for the proxy's in-process ZMQ endpoints. A name must be unique in the host's ZMQ
// context for as long as the socket bound to it may still be closing: libzmq releases an
// inproc name on its reaper thread, after close() returned, so a name built from an object's
// address clashes (EADDRINUSE) when a new object is made at the address of one just destroyed.
// A process-wide counter never gives a name twice.
#include <atomic>
#include <string>
#include <string_view>

namespace gorgone::proxy {

inline std::string unique_inproc_address(std::string_view what) {
  static std::atomic<unsigned long long> counter{0};
  return "inproc://gorgone-proxy-" + std::string(what) + "-" + std::to_string(++counter);
}

}  // namespace gorgone::proxy
