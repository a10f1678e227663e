// REMOTECOPY for a ZMQ parent: turns a file or a directory of this host into Gorgone's
// PROCESSCOPY series (buffer_size chunks in MIME base64, then an `end` message with the
// MD5), one message at a time, so that a large file is streamed with the node's queue as
// back-pressure instead of being read into memory at once.
// Thread-compatible (owned by one worker).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "gorgone/result.hpp"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace gorgone::proxy {

// Rules every copy applies to request fields, whatever carries it.
namespace copy_rules {
// Absolute, and no ".." component: request paths never climb out of where they point.
bool safe_path(const std::string& path);
// 1 to 4 octal digits ("0640", "755", "4755"): the permission bits and nothing more.
std::optional<unsigned> parse_mode(const std::string& text);
// A POSIX portable user or group name: [A-Za-z0-9_][A-Za-z0-9_.-]*, at most 32 characters
// (so never an option such as "-x", never a path, never empty).
bool portable_name(const std::string& name);
}  // namespace copy_rules

class RemoteCopy {
 public:
  // `request`: the REMOTECOPY frame's JSON data ({"content":{source, destination, cache_dir,
  // type?, owner?, group?, mode?}, "logging"?}). `parent`: the node the archive is named
  // after. Errors are Gorgone's history texts ("remote copy failed", "unknown source",
  // "tar failed", ...), with the reason after a colon for what Gorgone does not check:
  // `mode` must be 1 to 4 octal digits, `owner`/`group` POSIX portable names
  // ([A-Za-z0-9_][A-Za-z0-9_.-]*, at most 32 characters).
  // A directory is archived here, on the caller's thread: `stop` (may be null) is read
  // between entries and between blocks of a file, and when it is true the archive is
  // abandoned with an error, so that a large directory cannot hold up a shutdown.
  static Result<std::unique_ptr<RemoteCopy>> start(const std::string& request, const std::string& parent,
                                                   const std::string& token, std::size_t buffer_size,
                                                   const std::atomic<bool>* stop = nullptr);
  ~RemoteCopy();

  bool done() const { return done_; }
  // The JSON data of the next PROCESSCOPY message (the last one is the `end` message).
  // REQUIRES: !done(). Errors (a read failure) end the series.
  Result<std::string> next();

 private:
  RemoteCopy() = default;
  std::string message(const char* status, const std::string* chunk, std::size_t size, const std::string* md5) const;

  std::FILE* file_ = nullptr;
  std::string local_path_;
  bool remove_local_ = false;  // a temporary archive
  EVP_MD_CTX* md5_ = nullptr;
  std::size_t buffer_size_ = 0;
  bool done_ = false;
  std::string type_;  // regular | archive
  std::string destination_, cache_dir_, logging_json_ = "null";
  std::optional<std::string> owner_, group_, mode_;  // validated by start()
};

}  // namespace gorgone::proxy
