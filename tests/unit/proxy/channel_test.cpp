// The proxy reaches its workers on its own channel, not through the core's router: here there
// is no core at all (the host has no internal endpoint), and a pool still gets ready, takes
// frames and answers.
#include <gtest/gtest.h>

#include "eventually.hpp"
#include "gorgone/status_codes.hpp"
#include "memory_history.hpp"
#include "proxy.hpp"
#include "recording_host.hpp"

namespace gorgone::proxy {
namespace {

using gorgone::testing::eventually;
using gorgone::testing::RecordingHost;

TEST(ProxyChannel, WorkersAndHooksTalkWithoutTheCoresRouter) {
  test::MemoryHistory history;
  RecordingHost host(&history);  // core_info().internal_endpoint is empty: nothing to connect to
  Settings settings;
  settings.pool = 2;
  Proxy proxy(host, settings);
  proxy.init("1");
  // PROXYREADY comes back posted to the loop (played here by run_posted).
  ASSERT_TRUE(eventually([&] {
    host.run_posted();
    return proxy.ready_percent() == 100;
  })) << host.all_logs();
  // A frame for a node goes to its worker through the proxy's router; the node cannot be
  // reached (nothing listens on port 1), and unregistering it makes the worker give the
  // held frame its KO row.
  proxy.routing(protocol::Frame{"REGISTERNODES", "reg", "",
                                R"({"nodes":[{"id":"2","type":"push_zmq","address":"127.0.0.1","port":1}]})"},
                RouteContext{"internal", "gorgone-api"});
  host.run_posted();
  proxy.routing(protocol::Frame{"COMMAND", "held-1", "2", R"({"content":[{"command":"true"}]})"},
                RouteContext{"internal", "gorgone-api"});
  proxy.routing(protocol::Frame{"UNREGISTERNODES", "unreg", "", R"({"nodes":[{"id":"2"}]})"},
                RouteContext{"internal", "gorgone-api"});
  ASSERT_TRUE(eventually([&] {
    host.run_posted();
    return !host.rows_for("held-1").empty();
  })) << host.all_logs();
  EXPECT_EQ(host.rows_for("held-1")[0].code, code::kActionFinishKo);
  proxy.stop();
}

}  // namespace
}  // namespace gorgone::proxy
