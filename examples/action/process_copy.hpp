// The PROCESSCOPY event of the action module: receives a file or a tar.gz archive sent in
// base64 chunks by a parent's proxy (REMOTECOPY), then installs it.
//
// Message content (frame data {"content":{...}}):
//   inprogress: {"status":"inprogress","cache_dir":..,"chunk":{"data":"<base64>","size":n},...}
//     -> appends the chunk to <cache_dir>/copy_<token>; row 101 "process copy inprogress".
//   end: {"status":"end","type":"regular"|"archive","md5":"<hex>","destination":..,
//         "owner":..,"group":..,"mode":"0640"}
//     -> checks the MD5, then copies (regular) or extracts (archive) to destination,
//        creating missing folders;
//        row 2 "process copy finished successfully".
// Errors write one row with code 1 and a message (Gorgone's texts where it has one).
//
// Differences from Gorgone, on purpose: the token must be safe for a file name; cache_dir
// and destination must be absolute without '..'; an end without md5 or a chunk without
// data is an error instead of a silent success.
//
// Archives are extracted below the destination (its real path) and nowhere else:
//  * only regular files, directories, symlinks and hard links are extracted. Device
//    nodes, FIFOs and sockets are refused;
//  * names must be relative without '..'; symlink targets too; a hard link must name a
//    regular file below the destination reached without going through a symlink; no
//    entry is written through a symlink (ARCHIVE_EXTRACT_SECURE_SYMLINKS and
//    SECURE_NODOTDOT). ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS cannot be used: entries are
//    renamed to absolute paths below the destination because a threaded host must not
//    chdir; absolute member names are refused before that, which is the same check;
//  * the first refused entry stops the extraction: entries before it stay in place, none
//    after it is written, and the copy's final row (code 1) is
//    "untar failed: refusing <kind> '<name>' (<why>)";
//  * set-user-id, set-group-id and sticky bits are cleared unless keep_setid is set (the
//    same applies to a regular file's requested or inherited mode); owners are restored
//    only when the module runs as root;
//  * CopyOptions::abort is read between entries: a module being killed stops a long
//    extraction with "untar failed: the action module is stopping".
//
// Thread-safety: not thread-safe; one instance is used by the module's worker thread,
// which also keeps the chunks of one transfer in order.
#pragma once

#include <atomic>
#include <set>
#include <string>
#include <string_view>

#include "gorgone/json.hpp"
#include "gorgone/result.hpp"
#include "output.hpp"

namespace gorgone::action {

struct CopyOptions {
  bool keep_setid = false;                 // the module's keep_setid directive
  const std::atomic<bool>* abort = nullptr;  // true: stop extracting (module kill)
};

class ProcessCopy {
 public:
  ProcessCopy() = default;
  explicit ProcessCopy(CopyOptions options) : options_(options) {}
  void handle(const std::string& token, std::string_view data, const Output& out);

 private:
  void write_chunk(const json::Value& content, const std::string& cache_file, const Output& out);
  void finish(const json::Value& content, const std::string& cache_file, const Output& out);
  Status install(const json::Value& content, const std::string& cache_file, const Output& out);

  CopyOptions options_;
  // Cache files whose open failure was already reported: one row per file, not per chunk.
  std::set<std::string> open_failed_;
};

// Decodes base64, ignoring whitespace (the sender wraps lines). False on bad input.
bool decode_base64(std::string_view in, std::string& out);

// Absolute, no ".." component, no NUL: safe to hand to the file system as given.
bool is_confined_path(const std::string& path);

}  // namespace gorgone::action
