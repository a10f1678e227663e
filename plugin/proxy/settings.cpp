#include "settings.hpp"

#include <algorithm>
#include <cctype>

namespace gorgone::proxy {
namespace {

Status read_int(const YAML::Node& config, const char* name, std::int64_t min, std::int64_t max, std::int64_t& out) {
  const YAML::Node n = config[name];
  if (!n || n.IsNull()) return Status::success();
  std::string v = n.IsScalar() ? n.Scalar() : std::string("<not a scalar>");
  bool digits = !v.empty() && v.size() <= 12 &&
                std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); });
  std::int64_t value = digits ? std::stoll(v) : -1;
  if (!digits || value < min || value > max)
    return Status::failure(std::string("proxy: directive '") + name + "' must be an integer between " +
                           std::to_string(min) + " and " + std::to_string(max) + ", got '" + v + "'");
  out = value;
  return Status::success();
}

}  // namespace

Result<Settings> parse_settings(const YAML::Node& config) {
  Settings s;
  std::int64_t pool = s.pool, max_queue = static_cast<std::int64_t>(s.max_queue);
  struct Directive {
    const char* name;
    std::int64_t min, max;
    std::int64_t* out;
  } directives[] = {
      {"pool", 1, 256, &pool},
      {"synchistory_time", 1, 86400, &s.synchistory_time},
      {"synchistory_timeout", 1, 86400, &s.synchistory_timeout},
      {"ping", 1, 86400, &s.ping},
      {"pong_discard_timeout", 1, 864000, &s.pong_discard_timeout},
      {"pong_max_timeout", 1, 1000000, &s.pong_max_timeout},
      {"buffer_size", 1, 64 << 20, &s.buffer_size},
      {"handshake_timeout", 1, 3600, &s.handshake_timeout},
      {"max_queue", 0, 10000000, &max_queue},
      {"max_frame_size", 1024, 1LL << 31, &s.max_frame_size},
  };
  if (config && !config.IsNull() && !config.IsMap()) return make_error("proxy: the module configuration must be a map");
  for (auto& d : directives) {
    Status st = read_int(config, d.name, d.min, d.max, *d.out);
    if (!st) return make_error(st.message());
  }
  auto wss = parse_wss_config(config);
  if (!wss) return make_error(wss.error());
  s.wss = std::move(wss.value());
  s.pool = static_cast<int>(pool);
  s.max_queue = static_cast<std::size_t>(max_queue);
  return s;
}

}  // namespace gorgone::proxy
