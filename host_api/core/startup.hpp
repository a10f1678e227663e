// What the daemon reads at start, shared by the daemon (core.cpp) and by
// `gorgone-host --check-config`, which validates all of it and serves nothing.
// Thread-safety: reentrant.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

#include "config.hpp"
#include "gorgone/result.hpp"

namespace gorgone {

// Where module shared objects are looked for: gorgonecore.modules_path, then the folders of
// GORGONE_MODULE_PATH (colon-separated), then the installed modules folder relative to the
// running gorgone-host (../<libdir>/gorgone/modules: a DESTDIR or moved tree works), then
// the installed modules folder of the configured prefix.
std::vector<std::string> module_search_path(const CoreConfig& config);

// The register module's nodes file as Gorgone's register module sends it:
// {"nodes":[...]} with every YAML scalar as a JSON string; `count` gets the number of nodes.
Result<std::string> nodes_file_json(const std::string& path, std::size_t& count);

// --check-config: loads the configuration as the daemon would (includes, every gorgonecore
// key, the database connection string's syntax or the SQLite file's location, the key pair, the REST API's TLS files),
// loads every module and runs its register hook on its directives, and hands the nodes file
// to the proxy as the daemon does at start; it opens no database, no socket and no thread
// of its own. Writes each problem on `out` (naming the file and key) and a last line saying
// whether the configuration is usable. Returns the exit code: 0 usable, 1 not.
int check_config(const std::string& file, std::ostream& out);

}  // namespace gorgone
