#include "yaml_loader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace gorgone {
namespace {
namespace fs = std::filesystem;

constexpr const char* kIncludeTag = "!include";

// Where the node being resolved comes from.
struct Context {
  std::string file;                 // display name of the current document
  std::string dir;                  // base for relative include names
  int depth = 0;                    // include hops from the top-level document
  std::vector<std::string>* chain;  // canonical paths of the files being loaded
};

Result<YAML::Node> resolve(const YAML::Node& node, const Context& ctx);

std::string included_from(const std::string& including) {
  return including.empty() ? std::string() : " (included from '" + including + "')";
}

// Closes the descriptor on every return path.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads a whole configuration file. O_NONBLOCK keeps a FIFO from hanging the open; the
// type and size checks run on the opened descriptor so the file cannot be swapped between
// check and read.
Result<std::string> read_file(const std::string& path, const std::string& including) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return make_error("cannot open '" + path + "': " + std::strerror(errno) + included_from(including));
  FdCloser closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return make_error("cannot stat '" + path + "': " + std::strerror(errno) + included_from(including));
  if (!S_ISREG(st.st_mode)) return make_error("'" + path + "' is not a regular file" + included_from(including));
  auto too_large = [&] {
    return make_error("'" + path + "' is too large (more than " + std::to_string(kMaxYamlFileSize) +
                      " bytes)" + included_from(including));
  };
  if (static_cast<std::uint64_t>(st.st_size) > kMaxYamlFileSize) return too_large();

  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error("cannot read '" + path + "': " + std::strerror(errno) + included_from(including));
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxYamlFileSize) return too_large();  // grew while reading
  }
  return text;
}

Result<YAML::Node> parse(const std::string& text, const std::string& name, const std::string& including) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    std::string where = name;
    if (!e.mark.is_null())
      where += ": line " + std::to_string(e.mark.line + 1) + ", column " + std::to_string(e.mark.column + 1);
    return make_error(where + ": " + e.msg + included_from(including));
  }
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  std::size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return std::string();
  std::size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_names(const std::string& spec) {
  std::vector<std::string> names;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = spec.find(',', start);
    std::string name = trim(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (!name.empty()) names.push_back(name);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return names;
}

bool has_glob(const std::string& name) { return name.find_first_of("*?[") != std::string::npos; }

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Expands a glob pattern into the sorted regular files it matches. Directories that
// match (config.d/* may hit one) are skipped rather than reported.
Result<std::vector<std::string>> expand_glob(const std::string& pattern, const std::string& including) {
  glob_t g;
  std::memset(&g, 0, sizeof g);
  int rc = ::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g);
  std::vector<std::string> files;
  if (rc == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i)
      if (is_regular_file(g.gl_pathv[i])) files.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  if (rc != 0 && rc != GLOB_NOMATCH)
    return make_error("cannot expand '" + pattern + "'" + included_from(including));
  // Byte order, independent of the locale, so the merge order is predictable.
  std::sort(files.begin(), files.end());
  return files;
}

// The files one include name stands for.
Result<std::vector<std::string>> expand_name(const std::string& name, const Context& ctx) {
  fs::path p(name);
  std::string path = p.is_absolute() ? name : (fs::path(ctx.dir) / p).lexically_normal().string();
  if (has_glob(name)) return expand_glob(path, ctx.file);
  return std::vector<std::string>{path};
}

std::string chain_text(const std::vector<std::string>& chain, const std::string& last) {
  std::string out;
  for (const auto& f : chain) out += f + " -> ";
  return out + last;
}

// Loads one included file and resolves its own includes.
Result<YAML::Node> load_included(const std::string& path, const Context& parent) {
  std::error_code ec;
  std::string canonical = fs::weakly_canonical(path, ec).string();
  if (ec) canonical = path;
  std::vector<std::string>& chain = *parent.chain;
  if (std::find(chain.begin(), chain.end(), canonical) != chain.end())
    return make_error("include cycle: " + chain_text(chain, canonical));
  if (parent.depth + 1 > kMaxIncludeDepth)
    return make_error("'" + path + "': includes nested more than " + std::to_string(kMaxIncludeDepth) +
                      " levels deep" + included_from(parent.file));

  auto text = read_file(path, parent.file);
  if (!text) return make_error(text.error());
  auto doc = parse(*text, path, parent.file);
  if (!doc) return doc;

  chain.push_back(canonical);
  Context ctx{path, fs::path(path).parent_path().string(), parent.depth + 1, &chain};
  auto resolved = resolve(*doc, ctx);
  chain.pop_back();
  return resolved;
}

Result<YAML::Node> resolve_include(const YAML::Node& node, const Context& ctx) {
  std::vector<std::string> names = split_names(node.Scalar());
  if (names.empty()) return make_error(ctx.file + ": !include without a file name");
  YAML::Node merged(YAML::NodeType::Null);
  for (const auto& name : names) {
    auto files = expand_name(name, ctx);
    if (!files) return make_error(files.error());
    for (const auto& file : *files) {
      auto doc = load_included(file, ctx);
      if (!doc) return doc;
      merged = merge_yaml(merged, *doc);
    }
  }
  return merged;
}

// Rebuilds the tree with every !include scalar replaced; the input is left untouched.
Result<YAML::Node> resolve(const YAML::Node& node, const Context& ctx) {
  if (node.IsScalar() && node.Tag() == kIncludeTag) return resolve_include(node, ctx);
  if (node.IsMap()) {
    YAML::Node out(YAML::NodeType::Map);
    for (auto it = node.begin(); it != node.end(); ++it) {
      auto value = resolve(it->second, ctx);
      if (!value) return value;
      out.force_insert(it->first, *value);
    }
    return out;
  }
  if (node.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& item : node) {
      auto value = resolve(item, ctx);
      if (!value) return value;
      out.push_back(*value);
    }
    return out;
  }
  return node;
}

bool is_empty(const YAML::Node& n) { return !n.IsDefined() || n.IsNull(); }

// The value stored under `key` in `map`, or an undefined node. Const access so that a
// lookup never inserts.
YAML::Node lookup(const YAML::Node& map, const YAML::Node& key) {
  if (!key.IsScalar()) return YAML::Node(YAML::NodeType::Undefined);
  for (auto it = map.begin(); it != map.end(); ++it)
    if (it->first.IsScalar() && it->first.Scalar() == key.Scalar()) return it->second;
  return YAML::Node(YAML::NodeType::Undefined);
}

YAML::Node merge_maps(const YAML::Node& earlier, const YAML::Node& later) {
  // Built afresh with force_insert: assigning through operator[] would rebind nodes that
  // are shared with the inputs.
  YAML::Node out(YAML::NodeType::Map);
  for (auto it = earlier.begin(); it != earlier.end(); ++it) {
    YAML::Node other = lookup(later, it->first);
    out.force_insert(it->first, other.IsDefined() ? merge_yaml(it->second, other) : it->second);
  }
  for (auto it = later.begin(); it != later.end(); ++it)
    if (!lookup(earlier, it->first).IsDefined()) out.force_insert(it->first, it->second);
  return out;
}

}  // namespace

YAML::Node merge_yaml(const YAML::Node& earlier, const YAML::Node& later) {
  // An empty document (or `key:` with no value) adds nothing; it never erases.
  if (is_empty(later)) return earlier;
  if (is_empty(earlier)) return later;
  if (earlier.IsMap() && later.IsMap()) return merge_maps(earlier, later);
  if (earlier.IsSequence() && later.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& item : earlier) out.push_back(item);
    for (const auto& item : later) out.push_back(item);
    return out;
  }
  return later;
}

Result<YAML::Node> load_yaml_with_includes(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  std::string file = ec ? path : absolute.lexically_normal().string();
  auto text = read_file(file, "");
  if (!text) return make_error(text.error());
  auto doc = parse(*text, file, "");
  if (!doc) return doc;

  std::string canonical = fs::weakly_canonical(file, ec).string();
  std::vector<std::string> chain{ec ? file : canonical};
  Context ctx{file, fs::path(file).parent_path().string(), 0, &chain};
  return resolve(*doc, ctx);
}

Result<YAML::Node> load_yaml_string_with_includes(const std::string& text, const std::string& base_dir) {
  auto doc = parse(text, "<string>", "");
  if (!doc) return doc;
  std::vector<std::string> chain;
  Context ctx{"<string>", base_dir, 0, &chain};
  return resolve(*doc, ctx);
}

}  // namespace gorgone
