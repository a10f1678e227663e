// REMOTECOPY for a ZMQ parent: turns a file or a directory of this host into Gorgone's
// PROCESSCOPY series (buffer_size chunks in MIME base64, then an `end` message with the
// MD5), one message at a time, so that a large file is streamed with the node's answers as
// back-pressure instead of being read into memory at once.
// A directory is archived (gzip tar, libarchive) by a thread of the copy's own, started by
// the first call to available(), into a bounded buffer the owner takes chunks
// from: the owner never waits for the archiver (it polls wake_fd()), and the archiver
// waits while the buffer is full. No archive file is written anywhere.
// Thread-compatible (owned by one worker); the archiver thread is internal.
#pragma once

#include <atomic>
#include <chrono>
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
// Whether a directory's data compresses: the heads of its first regular files (up to 16
// files, 64 KiB of each) shrink by a tenth at least through gzip level 1. A sample under
// 16 KiB counts as compressible (too little to tell, and cheap either way).
bool compresses(const std::string& dir);
}  // namespace copy_rules

class ArchivePipe;

// How a directory is archived.
struct CopyOptions {
  // gzip level 0 to 9, or kAuto: 1, or 0 (stored) when the heads of the first files do not
  // shrink by a tenth at level 1. Chosen by measurement (doc/performance.md, "REMOTECOPY").
  static constexpr int kAuto = -1;
  int gzip_level = kAuto;
  // Bytes the archiver may hold ahead of the owner (0: 4 x buffer_size, at least 256 KiB).
  std::size_t pipe_bytes = 0;
};

class RemoteCopy {
 public:
  using Options = CopyOptions;

  // `request`: the REMOTECOPY frame's JSON data ({"content":{source, destination, cache_dir,
  // type?, owner?, group?, mode?}, "logging"?}). `parent` and `token`: the node and the
  // request the copy is for. Errors are Gorgone's history texts ("remote copy failed",
  // "unknown source", "tar failed", ...), with the reason after a colon for what Gorgone
  // does not check:
  // `mode` must be 1 to 4 octal digits, `owner`/`group` POSIX portable names
  // ([A-Za-z0-9_][A-Za-z0-9_.-]*, at most 32 characters).
  // start() only checks the request and the source: a directory is archived later, on the
  // copy's own thread (see above). `stop` (may be null; must outlive the copy) is read by
  // the archiver between entries and between blocks of a file, and when it is true the
  // archive is abandoned and next() fails with an error, so that a large directory cannot
  // hold up a shutdown.
  static Result<std::unique_ptr<RemoteCopy>> start(const std::string& request, const std::string& parent,
                                                   const std::string& token, std::size_t buffer_size,
                                                   const std::atomic<bool>* stop = nullptr, Options options = {});
  // Stops the archiver (between two blocks at the latest) and joins it.
  ~RemoteCopy();

  bool done() const { return done_; }
  // True when next() has something to give now: the next chunk (buffer_size bytes, or the
  // last ones), the `end` message, or an error. False: the archiver is behind; wake_fd()
  // becomes readable once it may be true. Starts the archiver. REQUIRES: !done().
  bool available();
  // The JSON data of the next PROCESSCOPY message (the last one is the `end` message).
  // REQUIRES: !done() and available(). Errors (a read failure, the archiver failed or was
  // stopped) end the series.
  Result<std::string> next();
  // A descriptor that becomes readable when available() may have turned true (-1 for a
  // regular file: always available); clear_wake() drains it.
  int wake_fd() const;
  void clear_wake();
  // For tests and benches: waits up to `limit` for available().
  bool wait_available(std::chrono::milliseconds limit);
  // For tests: archive bytes made and not taken by next() yet.
  std::size_t held() const;

 private:
  RemoteCopy() = default;
  std::string message(const char* status, const std::string* chunk, std::size_t size, const std::string* md5) const;
  Result<std::string> end_message();

  std::FILE* file_ = nullptr;  // a regular file
  std::unique_ptr<ArchivePipe> pipe_;  // a directory
  EVP_MD_CTX* md5_ = nullptr;
  std::size_t buffer_size_ = 0;
  bool done_ = false;
  std::string type_;  // regular | archive
  std::string source_, destination_, cache_dir_, logging_json_ = "null";
  std::optional<std::string> owner_, group_, mode_;  // validated by start()
};

}  // namespace gorgone::proxy
