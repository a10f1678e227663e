// Loads Gorgone configuration files, resolving the `!include` tag.
//
// A scalar tagged `!include` names one or more files, comma-separated:
//   configuration: !include /etc/centreon-gorgone/config.d/*.yaml
//   modules: !include a.yaml, b.yaml
// Each name may hold glob characters (* ? [...]); relative names are resolved against
// the directory of the including file. A glob's matches are sorted; a glob matching
// nothing contributes nothing, while a plain name that does not exist is an error.
// Included files are loaded the same way (recursively, at most kMaxIncludeDepth deep,
// cycles are errors) and their documents merged in order: maps deep-merged (later files
// win on conflicting scalars), lists appended. The merged node replaces the scalar.
//
// Errors name the file (and the including file), and line/column for syntax errors.
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <yaml-cpp/yaml.h>

#include "gorgone/result.hpp"

namespace gorgone {

inline constexpr int kMaxIncludeDepth = 16;
inline constexpr std::uint64_t kMaxYamlFileSize = 16u << 20;  // 16 MiB

Result<YAML::Node> load_yaml_with_includes(const std::string& path);

// Same for a document held in memory; relative includes are resolved against base_dir.
Result<YAML::Node> load_yaml_string_with_includes(const std::string& text, const std::string& base_dir);

// Deep merge used for included documents: maps merged key by key, sequences appended,
// anything else replaced by `later`. Returns a new tree (inputs are not modified).
YAML::Node merge_yaml(const YAML::Node& earlier, const YAML::Node& later);

}  // namespace gorgone
