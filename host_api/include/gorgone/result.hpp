// Result<T>: a value or an error message, used instead of exceptions on hot paths
// and across the host/module boundary.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace gorgone {

struct Error {
  std::string message;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}             // NOLINT: implicit on purpose
  Result(Error error) : v_(std::move(error)) {}         // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // REQUIRES: ok()
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  // REQUIRES: !ok()
  const std::string& error() const { return std::get<1>(v_).message; }

 private:
  std::variant<T, Error> v_;
};

// Status: success, or failure with a message.
class Status {
 public:
  Status() = default;
  Status(Error e) : message_(std::move(e.message)), ok_(false) {}  // NOLINT
  static Status success() { return Status(); }
  static Status failure(std::string message) { return Status(Error{std::move(message)}); }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const std::string& message() const { return message_; }

 private:
  std::string message_;
  bool ok_ = true;
};

}  // namespace gorgone
