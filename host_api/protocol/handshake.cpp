// External handshake state machines, compatible with gorgone/class/clientzmq.pm (client) and
// gorgone/class/core.pm::handshake + library.pm::is_client_can_connect (server).
//
// The Perl peers use regular expressions on the raw texts; the matchers below reproduce them
// by hand (linear time, no recursion) because std::regex recurses per character and would
// overflow the stack on a hostile multi-megabyte frame.

#include "gorgone/protocol/handshake.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <functional>
#include <utility>

namespace gorgone::protocol {

namespace {

constexpr std::size_t kNone = std::string_view::npos;

// A HELO is three short fields; refuse anything that could not be one before doing RSA work.
constexpr std::size_t kMaxHeloSize = 64 * 1024;
// Log excerpts of peer-controlled text are cut to this many bytes.
constexpr std::size_t kMaxLogExcerpt = 256;

// Perl's \s on byte strings.
bool is_perl_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::size_t skip_spaces(std::string_view s, std::size_t p) {
  while (p < s.size() && is_perl_space(s[p])) ++p;
  return p;
}

// Peer-controlled text made safe for a log line.
std::string excerpt(std::string_view s) {
  std::string out;
  std::size_t n = std::min(s.size(), kMaxLogExcerpt);
  out.reserve(n + 3);
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  if (s.size() > n) out += "...";
  return out;
}

// /^\s*\[GETPUBKEY\]/
bool is_getpubkey(std::string_view s) {
  constexpr std::string_view kTag = "[GETPUBKEY]";
  return s.substr(skip_spaces(s, 0)).substr(0, kTag.size()) == kTag;
}

// /^\s*\[PUBKEY\]\s+\[(.*?)\]/ -> the capture.
std::optional<std::string_view> match_pubkey(std::string_view s) {
  constexpr std::string_view kTag = "[PUBKEY]";
  std::size_t p = skip_spaces(s, 0);
  if (s.substr(p, kTag.size()) != kTag) return std::nullopt;
  p += kTag.size();
  std::size_t q = skip_spaces(s, p);
  if (q == p || q >= s.size() || s[q] != '[') return std::nullopt;
  std::size_t end = s.find_first_of("]\n", q + 1);
  if (end == kNone || s[end] != ']') return std::nullopt;
  return s.substr(q + 1, end - q - 1);
}

// Server acceptance of a decrypted frame, core.pm::external_decrypt_message:
// /^\[[A-Za-z0-9_\-]+?\]/
bool matches_decrypted_frame(std::string_view s) {
  if (s.empty() || s[0] != '[') return false;
  std::size_t p = 1;
  while (p < s.size() && (is_alpha(s[p]) || is_digit(s[p]) || s[p] == '_' || s[p] == '-')) ++p;
  return p > 1 && p < s.size() && s[p] == ']';
}

// Second server check, core.pm::handshake:
// /^(?:[\[a-zA-Z-_]+?\]\s+\[.*?\]|[\[a-zA-Z-_]+?\]\s*$)/
// The class has no digits: "[PING2] ..." fails here and is treated as a new HELO, as in Perl.
bool matches_session_frame(std::string_view s) {
  std::size_t p = 0;
  while (p < s.size() && (s[p] == '[' || is_alpha(s[p]) || s[p] == '-' || s[p] == '_')) ++p;
  if (p == 0 || p >= s.size() || s[p] != ']') return false;
  std::size_t after = p + 1;
  std::size_t q = skip_spaces(s, after);
  if (q == s.size()) return true;  // second branch: only whitespace left
  if (q == after || s[q] != '[') return false;
  std::size_t end = s.find_first_of("]\n", q + 1);  // '.' does not match a newline
  return end != kNone && s[end] == ']';
}

// Client acceptance of a decrypted frame, clientzmq.pm::event: /^\[([a-zA-Z0-9:\-_]+?)\]\s+/
std::optional<std::string_view> client_frame_action(std::string_view s) {
  if (s.empty() || s[0] != '[') return std::nullopt;
  std::size_t p = 1;
  while (p < s.size() && (is_alpha(s[p]) || is_digit(s[p]) || s[p] == ':' || s[p] == '-' || s[p] == '_')) ++p;
  if (p == 1 || p + 1 >= s.size() || s[p] != ']' || !is_perl_space(s[p + 1])) return std::nullopt;
  return s.substr(1, p - 1);
}

struct HeloFields {
  std::string_view identity;
  std::string_view pubkey_b64;
  std::string_view ciphertext_b64;
};

// For "]" + whitespace + "[" at `i`, the index after that "["; kNone otherwise.
std::size_t after_separator(std::string_view s, std::size_t i) {
  if (s[i] != ']' || i + 1 >= s.size() || !is_perl_space(s[i + 1])) return kNone;
  std::size_t m = skip_spaces(s, i + 1);
  return (m < s.size() && s[m] == '[') ? m + 1 : kNone;
}

// library.pm::is_client_can_connect: /\[(.+)\]\s+\[(.+)\]\s+\[(.+)\]$/ms. The match starts at the
// first "[" and the greedy groups take the longest first field, then the longest second field,
// then the longest third one whose "]" ends the text or a line.
std::optional<HeloFields> match_helo(std::string_view s) {
  std::size_t start = s.find('[');
  if (start == kNone) return std::nullopt;
  std::size_t k = kNone;  // closing "]" of the third field
  for (std::size_t p = s.size(); p-- > start;) {
    if (s[p] == ']' && (p + 1 == s.size() || s[p + 1] == '\n')) {
      k = p;
      break;
    }
  }
  if (k == kNone) return std::nullopt;
  std::size_t j = kNone, c0 = kNone;  // closing "]" of the second field, start of the third
  for (std::size_t p = k; p-- > start;) {
    std::size_t next = after_separator(s, p);
    if (next != kNone && next < k) {
      j = p;
      c0 = next;
      break;
    }
  }
  if (j == kNone) return std::nullopt;
  for (std::size_t p = j; p-- > start + 2;) {  // the first field is not empty
    std::size_t next = after_separator(s, p);
    if (next != kNone && next < j) {
      return HeloFields{s.substr(start + 1, p - start - 1), s.substr(next, j - next), s.substr(c0, k - c0)};
    }
  }
  return std::nullopt;
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// A JSON member as text: strings as they are, integers printed; nullopt for anything else.
std::optional<std::string> scalar_text(const rapidjson::Value& v) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  return std::nullopt;
}

Result<std::string> required_text(const rapidjson::Value& obj, const char* name, bool allow_empty) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return make_error(std::string("missing '") + name + "'");
  auto text = scalar_text(it->value);
  if (!text) return make_error(std::string("'") + name + "' is not a string");
  if (!allow_empty && text->empty()) return make_error(std::string("'") + name + "' is empty");
  return std::move(*text);
}

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (!is_digit(c)) return false;
  return true;
}

// "[KEY] " + json, encrypted for the client public key (core.pm::external_core_key_response).
Result<std::string> seal_key_for(const RsaKey& client_key, const KeyMessage& m) {
  auto ct = client_key.encrypt_pkcs1(build_key_message(m));
  if (!ct) return make_error(ct.error());
  return base64_encode(ct.value());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// KEY message

Result<KeyMessage> parse_key_message(std::string_view plaintext) {
  // clientzmq.pm::read_key_protocol: /^\[KEY\]\s+(.*)$/ ('.' stops at a newline; '$' also
  // matches before a final newline).
  constexpr std::string_view kTag = "[KEY]";
  if (plaintext.substr(0, kTag.size()) != kTag) return make_error("KEY message: no [KEY] tag");
  std::size_t p = skip_spaces(plaintext, kTag.size());
  if (p == kTag.size()) return make_error("KEY message: no space after [KEY]");
  std::string_view json = plaintext.substr(p);
  if (!json.empty() && json.back() == '\n') json.remove_suffix(1);
  if (json.find('\n') != kNone) return make_error("KEY message: newline inside the JSON");

  // Iterative parsing: nesting depth cannot exhaust the stack. No UTF-8 validation: JSON::XS
  // without the utf8 option sends a non-ASCII hostname as Latin-1 bytes.
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) return make_error("KEY message: JSON object expected");

  KeyMessage m;
  auto hostname = required_text(doc, "hostname", true);
  if (!hostname) return make_error("KEY message: " + hostname.error());
  m.hostname = std::move(hostname.value());

  auto cipher = required_text(doc, "cipher", false);
  if (!cipher) return make_error("KEY message: " + cipher.error());
  if (!equals_ignore_case(cipher.value(), "AES"))
    return make_error("KEY message: unsupported cipher '" + excerpt(cipher.value()) + "'");
  m.cipher = std::move(cipher.value());

  auto padding = required_text(doc, "padding", false);
  if (!padding) return make_error("KEY message: " + padding.error());
  if (padding.value() != "1")
    return make_error("KEY message: unsupported padding '" + excerpt(padding.value()) + "' (only 1, PKCS#7)");
  m.padding = std::move(padding.value());

  auto key_hex = required_text(doc, "key", false);
  if (!key_hex) return make_error("KEY message: " + key_hex.error());
  auto key = from_hex(key_hex.value());
  if (!key) return make_error("KEY message: 'key' " + key.error());
  if (key->size() != 16 && key->size() != 24 && key->size() != 32)
    return make_error("KEY message: 'key' has " + std::to_string(key->size()) + " bytes (expected 16, 24 or 32)");
  m.key = std::move(key.value());

  auto iv_hex = required_text(doc, "iv", false);
  if (!iv_hex) return make_error("KEY message: " + iv_hex.error());
  auto iv = from_hex(iv_hex.value());
  if (!iv) return make_error("KEY message: 'iv' " + iv.error());
  if (iv->size() != 16) return make_error("KEY message: 'iv' has " + std::to_string(iv->size()) + " bytes (expected 16)");
  m.iv = std::move(iv.value());
  return m;
}

std::string build_key_message(const KeyMessage& m) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("hostname");
  w.String(m.hostname.data(), static_cast<rapidjson::SizeType>(m.hostname.size()));
  w.Key("cipher");
  w.String(m.cipher.data(), static_cast<rapidjson::SizeType>(m.cipher.size()));
  w.Key("padding");
  // Gorgone's default padding is the number 1; a value set in YAML would be a string.
  if (all_digits(m.padding)) w.Int(std::stoi(m.padding));
  else w.String(m.padding.data(), static_cast<rapidjson::SizeType>(m.padding.size()));
  std::string key = to_hex(m.key), iv = to_hex(m.iv);
  w.Key("key");
  w.String(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  w.Key("iv");
  w.String(iv.data(), static_cast<rapidjson::SizeType>(iv.size()));
  w.EndObject();
  return "[KEY] " + std::string(sb.GetString(), sb.GetSize());
}

// ---------------------------------------------------------------------------------------------
// HandshakeClient

HandshakeClient::HandshakeClient(std::string handshake_identity, RsaKey client_key, ServerKeyCheck check)
    : identity_(std::move(handshake_identity)), client_key_(std::move(client_key)), check_(std::move(check)) {}

std::string HandshakeClient::start() {
  server_key_.reset();
  cipher_.reset();
  state_ = State::kWaitPubkey;
  return "[GETPUBKEY]";
}

namespace {

HandshakeClient::Step make_step(HandshakeClient::Step::Kind kind, std::string text = std::string()) {
  return HandshakeClient::Step{kind, std::move(text)};
}

}  // namespace

HandshakeClient::Step HandshakeClient::on_message(std::string_view wire) {
  using Kind = Step::Kind;
  auto failed = [this](std::string why) {
    state_ = State::kFailed;
    cipher_.reset();
    return make_step(Kind::kFailed, std::move(why));
  };

  switch (state_) {
    case State::kIdle:
    case State::kFailed:
      return make_step(Kind::kIgnored);

    case State::kWaitPubkey: {
      // clientzmq.pm::check_server_pubkey
      auto b64 = match_pubkey(wire);
      if (!b64) return failed("cannot read pubkey response from server");
      auto pem = base64_decode(*b64);
      if (!pem) return failed("cannot load pubkey");
      auto key = RsaKey::load_public(pem.value());
      if (!key) return failed("cannot load pubkey");
      if (check_) {
        Status s = check_(key.value());
        if (!s.ok()) return failed(s.message());
      }
      // library.pm::client_helo_encrypt
      auto ct = key->encrypt_pkcs1("HELO");
      if (!ct) return failed("crypt handshake issue");
      server_key_ = std::move(key.value());
      state_ = State::kWaitKey;
      return make_step(Kind::kSend, "[" + identity_ + "] [" + base64_encode(client_key_.public_pem_wire()) + "] [" +
                                        base64_encode(ct.value()) + "]");
    }

    case State::kWaitKey: {
      // A refusing server answers the HELO with a plaintext ACK.
      if (wire.substr(0, 5) == "[ACK]") return failed("issue: " + excerpt(wire));
      auto ct = base64_decode(wire);
      if (!ct) return failed("Decoding issue: " + ct.error());
      auto plaintext = client_key_.decrypt_pkcs1(ct.value());
      if (!plaintext) return failed("Decoding issue: " + plaintext.error());
      auto m = parse_key_message(plaintext.value());
      if (!m) return failed("Wrong protocol");
      auto cipher = SymmetricCipher::create(m->key, m->iv);
      if (!cipher) return failed("Wrong protocol");
      cipher_ = std::move(cipher.value());
      state_ = State::kEstablished;
      // Nothing needs the server's key once the session is up, and a parsed key that has
      // encrypted costs about 2 KB: a central holds one session per node, thousands of them.
      server_key_.reset();
      return make_step(Kind::kEstablished);
    }

    case State::kEstablished: {
      // A plaintext frame here is the server's handshake-issue ACK (it forgot the session).
      if (!wire.empty() && wire[0] == '[') return failed("decrypt issue: " + excerpt(wire));
      auto plaintext = cipher_->decrypt_from_base64(wire);
      if (!plaintext) return failed("decrypt issue: " + plaintext.error());
      auto action = client_frame_action(plaintext.value());
      if (!action) return failed("decrypt issue: " + excerpt(plaintext.value()));
      if (*action != "KEY") return make_step(Kind::kMessage, std::move(plaintext.value()));
      // Rotation: the new key replaces the old one at once (the server keeps the old one).
      auto m = parse_key_message(plaintext.value());
      if (!m) return failed("Wrong protocol");
      auto cipher = SymmetricCipher::create(m->key, m->iv);
      if (!cipher) return failed("Wrong protocol");
      cipher_ = std::move(cipher.value());
      return make_step(Kind::kRotated);
    }
  }
  return make_step(Kind::kIgnored);
}

std::string HandshakeClient::encrypt(std::string_view plaintext) const {
  if (state_ != State::kEstablished || !cipher_) return std::string();
  return cipher_->encrypt_to_base64(plaintext);
}

// ---------------------------------------------------------------------------------------------
// HandshakeServer

namespace {

HandshakeServer::Outcome reply(std::string text, std::string log = std::string()) {
  return HandshakeServer::Outcome{HandshakeServer::Outcome::Kind::kReply, std::move(text), std::string(),
                                  std::move(log)};
}

HandshakeServer::Outcome refuse(std::string log) { return reply(std::string(kHandshakeIssueReply), std::move(log)); }

struct Decrypted {
  std::string plaintext;
  bool old_key = false;
};

// Tries the current key then the previous one; the first plaintext that looks like a frame wins.
std::optional<Decrypted> decrypt_session_message(const HandshakeServer::Session& s, std::string_view wire) {
  auto raw = base64_decode(wire);
  if (!raw) return std::nullopt;
  const std::pair<const std::string*, const std::string*> keys[] = {{&s.key, &s.iv}, {&s.oldkey, &s.oldiv}};
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& [key, iv] = keys[i];
    if (key->empty()) continue;
    auto cipher = SymmetricCipher::create(*key, *iv);
    if (!cipher) continue;
    auto plaintext = cipher->decrypt(raw.value());
    if (plaintext && matches_decrypted_frame(plaintext.value()) && matches_session_frame(plaintext.value()))
      return Decrypted{std::move(plaintext.value()), i == 1};
  }
  return std::nullopt;
}

// Requests that legitimately come again with the same bytes: periodic polls sent without a
// token ("[PING] [] [] {}" every period, a pull poller's REGISTERNODES keep-alive). Repeating
// them changes nothing.
bool idempotent(std::string_view action) {
  for (std::string_view a : {"PING", "GETLOG", "REGISTERNODES", "SYNCLOGS", "CONSTATUS", "GETTHUMBPRINT", "INFORMATION"})
    if (action == a) return true;
  return false;
}


// Whether a decrypted frame may run, remembering what it must. A replay repeats the bytes of a
// frame, so a frame is remembered by a hash of its whole text: Centreon legitimately sends
// several frames under one token (a configuration export's REMOTECOPY series, the commands of
// one request), never the same frame twice. Not remembered: the token-less polls above, which
// repeat byte for byte every period and change nothing, and the chunks of a PROCESSCOPY series,
// which repeat when a file does (a block of zeros); its "end" frame is remembered, so a replayed
// series installs nothing, and a chunk replayed into an open series breaks its MD5 check (KO).
bool admit(ReplayMemory& seen, std::string_view plaintext) {
  // "[ACTION] [TOKEN] ...", read in place: a frame can be megabytes and needs no copy here.
  std::size_t close = plaintext.find(']');
  if (plaintext.empty() || plaintext[0] != '[' || close == kNone) return true;
  std::string_view action = plaintext.substr(1, close - 1);
  std::size_t open = skip_spaces(plaintext, close + 1);
  std::size_t end = open < plaintext.size() && plaintext[open] == '[' ? plaintext.find(']', open) : kNone;
  if (end == kNone) return true;  // not a frame: the core answers it "not well formatted"
  bool tokenless = end == open + 1;
  if (tokenless && idempotent(action)) return true;
  if (action == "PROCESSCOPY" && plaintext.find("\"status\":\"end\"", end) == kNone) return true;
  return seen.insert(std::hash<std::string_view>{}(plaintext));
}

}  // namespace

bool ReplayMemory::contains(std::uint64_t hash) const {
  if (slots_.empty()) return false;
  if (hash == 0) hash = 1;
  std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    if (slots_[i] == 0) return false;
    if (slots_[i] == hash) return true;
  }
}

bool ReplayMemory::insert(std::uint64_t hash) {
  if (hash == 0) hash = 1;
  if (contains(hash)) return false;
  if ((size_ + 1) * 2 > slots_.size()) {  // load factor at most 1/2
    std::vector<std::uint64_t> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, 0);
    size_ = 0;
    for (std::uint64_t h : old)
      if (h != 0) insert(h);
  }
  std::size_t mask = slots_.size() - 1;
  std::size_t i = hash & mask;
  while (slots_[i] != 0) i = (i + 1) & mask;
  slots_[i] = hash;
  ++size_;
  return true;
}

void ReplayMemory::clear() {
  std::vector<std::uint64_t>().swap(slots_);
  size_ = 0;
}

HandshakeServer::HandshakeServer(Config config) : config_(std::move(config)) {
  // AES only has these key sizes; anything else would make every session unusable.
  if (config_.keysize != 16 && config_.keysize != 24 && config_.keysize != 32) config_.keysize = 32;
  if (config_.replay_capacity < 16) config_.replay_capacity = 16;
  pubkey_reply_ = "[PUBKEY] [" + base64_encode(config_.server_key.public_pem_wire()) + "]";
}

HandshakeServer::Outcome HandshakeServer::accept_frame(Session& s, bool old_key, std::string plaintext,
                                                        std::int64_t now, bool promoted) {
  ReplayMemory& seen = old_key ? s.seen_old : s.seen;
  if (!admit(seen, plaintext)) {
    Outcome out{Outcome::Kind::kDropped, std::string(), std::string(),
                "replayed frame refused (this session already received it): " + excerpt(plaintext.substr(0, 64))};
    return out;
  }
  if (s.seen.size() >= config_.replay_capacity) s.rekey = true;
  s.mtime = now;
  Outcome out{Outcome::Kind::kMessage, std::string(), std::move(plaintext), std::string()};
  out.persist = promoted;
  return out;
}

std::optional<HandshakeServer::Outcome> HandshakeServer::over_limits(const std::string& identity, const std::string& peer,
                                                                     std::int64_t now) {
  if (config_.helo_per_minute > 0) {
    Bucket& b = helo_buckets_[peer];
    if (b.window != now / 60) b = Bucket{now / 60, 0, false};
    if (++b.count > config_.helo_per_minute) {
      // One log line per peer and minute, however many HELOs it sends.
      std::string log = b.reported ? std::string()
                                   : "handshake refused: more than " + std::to_string(config_.helo_per_minute) +
                                         " HELO per minute from " + (peer.empty() ? std::string("one peer") : excerpt(peer));
      b.reported = true;
      return refuse(std::move(log));
    }
  }
  bool known = sessions_.count(identity) || pending_.count(identity);
  if (!known && sessions_.size() + pending_.size() >= config_.max_sessions)
    return refuse("handshake refused: " + std::to_string(config_.max_sessions) + " sessions already (max_sessions)");
  if (!pending_.count(identity) && pending_.size() >= config_.max_pending)
    return refuse("handshake refused: " + std::to_string(config_.max_pending) + " handshakes wait for their first frame");
  return std::nullopt;
}

HandshakeServer::Outcome HandshakeServer::on_message(const std::string& identity, std::string_view wire,
                                                     std::int64_t now, const std::string& peer) {
  if (is_getpubkey(wire)) return reply(pubkey_reply_);

  auto it = sessions_.find(identity);
  if (it != sessions_.end()) {
    if (auto d = decrypt_session_message(it->second, wire)) return accept_frame(it->second, d->old_key, std::move(d->plaintext), now, false);
    // Not a session message: maybe the frame of a pending handshake, or a new HELO.
  }
  auto p = pending_.find(identity);
  if (p != pending_.end()) {
    if (auto d = decrypt_session_message(p->second.session, wire)) {
      // The client proved it holds the private key: the handshake becomes its session.
      Session& s = sessions_[identity];
      s = std::move(p->second.session);
      pending_.erase(p);
      return accept_frame(s, false, std::move(d->plaintext), now, true);
    }
  }

  // library.pm::is_client_can_connect, with every check that costs no private-key work first.
  if (wire.size() > kMaxHeloSize) return refuse("Decoding issue. Protocol not good: message too large for a HELO");
  auto fields = match_helo(wire);
  if (!fields) return refuse("Decoding issue. Protocol not good: " + excerpt(wire));
  if (auto limited = over_limits(identity, peer, now)) return std::move(*limited);
  auto pem = base64_decode(fields->pubkey_b64);
  if (!pem) return refuse("Cannot load client pubkey: " + pem.error());
  auto client_key = RsaKey::load_public(pem.value());
  if (!client_key) return refuse("Cannot load client pubkey: " + client_key.error());
  std::string thumbprint = client_key->jwk_thumbprint();
  bool authorized = false;
  for (const auto& allowed : config_.authorized_clients) authorized = authorized || allowed == thumbprint;
  if (!authorized) return refuse("Client pubkey is not authorized. Thumbprint is '" + thumbprint + "'");
  auto ct = base64_decode(fields->ciphertext_b64);
  if (!ct) return refuse("Decoding issue: " + ct.error());
  auto helo = config_.server_key.decrypt_pkcs1(ct.value());
  if (!helo) return refuse("Decoding issue: " + helo.error());
  if (helo.value() != "HELO") return refuse("Encrypted issue for HELO");

  KeyMessage m;
  m.hostname = config_.hostname;
  m.key = random_bytes(config_.keysize);
  m.iv = random_bytes(16);
  auto sealed = seal_key_for(client_key.value(), m);
  if (!sealed) return refuse("core key response encrypt issue: " + sealed.error());

  Pending& pending = pending_[identity];
  pending = Pending{};
  pending.since = now;
  pending.session.key = std::move(m.key);
  pending.session.iv = std::move(m.iv);
  pending.session.ctime = now;
  pending.session.mtime = now;
  return Outcome{Outcome::Kind::kNewSession, std::move(sealed.value()), std::string(),
                 "Connection from " + excerpt(fields->identity)};
}

std::optional<std::string> HandshakeServer::encrypt_for(const std::string& identity,
                                                        std::string_view plaintext) const {
  auto it = sessions_.find(identity);
  if (it == sessions_.end()) return std::nullopt;
  auto cipher = SymmetricCipher::create(it->second.key, it->second.iv);
  if (!cipher) return std::nullopt;
  return cipher->encrypt_to_base64(plaintext);
}

std::vector<HandshakeServer::Rotation> HandshakeServer::rotate(std::int64_t now, std::int64_t rotation_seconds,
                                                               std::int64_t idle_seconds) {
  std::vector<Rotation> out;
  for (auto it = pending_.begin(); it != pending_.end();)
    it = now - it->second.since > config_.pending_seconds ? pending_.erase(it) : std::next(it);
  for (auto it = helo_buckets_.begin(); it != helo_buckets_.end();)
    it = it->second.window != now / 60 ? helo_buckets_.erase(it) : std::next(it);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = it->second;
    // core.pm::check_external_rotate_keys forgets idle sessions from memory only.
    if (now - s.mtime > idle_seconds) {
      it = sessions_.erase(it);
      continue;
    }
    if (s.rekey || (rotation_seconds > 0 && now - s.ctime >= rotation_seconds)) {
      auto current = SymmetricCipher::create(s.key, s.iv);
      if (current) {
        Session before = s;
        KeyMessage m;
        m.hostname = config_.hostname;
        m.key = random_bytes(config_.keysize);
        m.iv = random_bytes(16);
        // Sent under the old key: frames the server sent before it still decrypt in order.
        out.push_back(Rotation{it->first, current->encrypt_to_base64(build_key_message(m)), std::move(before)});
        s.oldkey = std::move(s.key);
        s.oldiv = std::move(s.iv);
        s.key = std::move(m.key);
        s.iv = std::move(m.iv);
        s.ctime = now;
        // Frames under the key before the previous one no longer decrypt: forget them.
        s.seen_old = std::move(s.seen);
        s.seen.clear();
        s.rekey = false;
      }
    }
    ++it;
  }
  return out;
}

void HandshakeServer::restore(const std::string& identity, Session session) {
  sessions_[identity] = std::move(session);
}

const HandshakeServer::Session* HandshakeServer::session(const std::string& identity) const {
  auto it = sessions_.find(identity);
  return it == sessions_.end() ? nullptr : &it->second;
}

void HandshakeServer::forget(const std::string& identity) {
  sessions_.erase(identity);
  pending_.erase(identity);
}

}  // namespace gorgone::protocol
