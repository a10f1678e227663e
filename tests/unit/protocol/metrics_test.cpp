// The Prometheus text the host and its modules write (gorgone/metrics.hpp).
#include <gtest/gtest.h>

#include "gorgone/metrics.hpp"

namespace gorgone::metrics {
namespace {

TEST(MetricsText, FamiliesSamplesAndEscapedLabels) {
  Text m;
  m.family("gorgone_node_up", "gauge", "1 when the node answered its last ping");
  m.sample("gorgone_node_up", {{"node", "2"}, {"type", "push_zmq"}}, 1);
  // A node id is text a node or a configuration chose: it cannot end the label or the line.
  m.sample("gorgone_node_up", {{"node", "a\"b\\c\nd"}}, 0);
  m.sample("gorgone_history_queue_length", 12.5);
  EXPECT_EQ(m.str(),
            "# HELP gorgone_node_up 1 when the node answered its last ping\n"
            "# TYPE gorgone_node_up gauge\n"
            "gorgone_node_up{node=\"2\",type=\"push_zmq\"} 1\n"
            "gorgone_node_up{node=\"a\\\"b\\\\c\\nd\"} 0\n"
            "gorgone_history_queue_length 12.5\n");
}

}  // namespace
}  // namespace gorgone::metrics
