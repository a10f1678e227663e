// The external router: handshakes and AES sessions with peers (a parent central, or pull
// nodes on a central), their persistence and key rotation. Loop thread only.
#include "core.hpp"
#include "core_text.hpp"
#include "gorgone/json.hpp"
#include "gorgone/status_codes.hpp"
#include "logger.hpp"

namespace gorgone {
using protocol::Frame;
using namespace internal;

Status Core::setup_external() {
  protocol::HandshakeServer::Config hc{*server_key_, config_.authorized_clients, config_.hostname,
                                       config_.external_com_keysize};
  hc.max_sessions = config_.external_com_max_sessions;
  hc.helo_per_minute = config_.external_com_helo_per_minute;
  handshake_.emplace(std::move(hc));
  auto ids = history_->load_identities();
  if (ids) {
    for (const auto& row : *ids) {
      auto id = protocol::from_hex(row.identity), key = protocol::from_hex(row.key), iv = protocol::from_hex(row.iv);
      if (!id || !key || !iv) continue;
      protocol::HandshakeServer::Session session;
      session.key = *key;
      session.iv = *iv;
      if (auto ok = protocol::from_hex(row.oldkey)) session.oldkey = *ok;
      if (auto oi = protocol::from_hex(row.oldiv)) session.oldiv = *oi;
      session.ctime = row.ctime;
      session.mtime = row.mtime;
      handshake_->restore(*id, session);
    }
  }
  external_.emplace(context_, zmq::socket_type::router);
  external_->set(zmq::sockopt::routing_id, "router-external");
  external_->set(zmq::sockopt::linger, 0);
  // Handover stays on, as in Gorgone: a peer's new connection with its routing id takes the
  // id over. libzmq 4.3 without handover black-holes such a connection for good (its first
  // message is read as the routing id and refused, then nothing it sends arrives), and a
  // DEALER reconnects with the same id after any network cut, often before this side noticed
  // the old connection was dead. A replay over a taken-over id is refused by the session's
  // replay memory, and answers are encrypted for the session's owner.
  external_->set(zmq::sockopt::router_handover, 1);
  external_->set(zmq::sockopt::router_mandatory, 1);
  external_->set(zmq::sockopt::maxmsgsize, config_.max_frame_size);
  // ZMTP heartbeats: a peer that vanished without closing (NAT, cable) is noticed within
  // 90 s, so its routing id is free again for its reconnection.
  external_->set(zmq::sockopt::heartbeat_ivl, 30000);
  external_->set(zmq::sockopt::heartbeat_timeout, 90000);
  if (config_.external_com_type == "tcp") external_->set(zmq::sockopt::tcp_keepalive, 1);
  std::string endpoint = config_.external_com_type + "://" + config_.external_com_path;
  try {
    external_->bind(endpoint);
  } catch (const zmq::error_t& e) {
    return Status::failure("cannot bind the external router on '" + endpoint + "': " + e.what());
  }
  log_info("[core] external router listening on " + endpoint);
  return Status::success();
}

void Core::read_external() {
  for (int batch = 0; batch < 1000; ++batch) {
    zmq::message_t id, body;
    auto r = external_->recv(id, zmq::recv_flags::dontwait);
    if (!r) return;
    if (id.more()) (void)external_->recv(body, zmq::recv_flags::none);
    while (body.more()) {
      zmq::message_t extra;
      (void)external_->recv(extra, zmq::recv_flags::none);
    }
    std::string identity = id.to_string();
    if (identity.rfind("gorgone-", 0) != 0) {
      log_error("[core] unknown identity: " + hex_identity(identity));
      continue;
    }
    std::int64_t now = now_s();
    // The peer's address (TCP) bounds its HELO rate; routing ids are the peer's to choose.
    std::string peer;
    try {
      if (const char* address = body.gets("Peer-Address")) peer = address;
    } catch (const zmq::error_t&) {
    }
    auto out = handshake_->on_message(identity, body.to_string_view(), now, peer);
    using Kind = protocol::HandshakeServer::Outcome::Kind;
    switch (out.kind) {
      case Kind::kReply:
        if (!out.log.empty()) log_info("[core] " + out.log + " [identity " + hex_identity(identity) + "]");
        send_router(*external_, identity, out.reply);
        break;
      case Kind::kNewSession:
        // Stored once the client uses it (its first frame proves it holds the private key).
        log_info("[core] " + (out.log.empty() ? "handshake with " + hex_identity(identity) : out.log) +
                 ": key sent, the session starts at its first frame");
        send_router(*external_, identity, out.reply);
        break;
      case Kind::kDropped:
        log_error("[core] " + hex_identity(identity) + (peer.empty() ? "" : " (" + peer + ")") + ": " + out.log);
        break;
      case Kind::kMessage:
        if (out.persist) {
          log_info("[core] new session for " + hex_identity(identity));
          if (const auto* s = handshake_->session(identity)) {
            IdentityRow row{hex_identity(identity), protocol::to_hex(s->key), protocol::to_hex(s->iv), "", "",
                            s->ctime, s->mtime};
            writer_->job(
                [row](History& h) {
                  Status st = h.save_identity(row);
                  if (!st) log_error("[core] cannot store session of " + row.identity + ": " + st.message());
                },
                nullptr);
          }
        }
        // The session's mtime is written to the database in batches (tick), not once per
        // message: it only matters for purging and for restoring sessions after a restart.
        touched_identities_.insert(identity);
        message_run("external", identity, out.plaintext);
        break;
    }
  }
}

// Session upkeep, from the loop's tick: last-activity times written in batches, idle sessions
// and expired handshakes forgotten, keys rotated.
void Core::external_tick(std::int64_t now) {
  if (!touched_identities_.empty() && (now - last_touch_flush_ >= 30 || stopping_)) {
    last_touch_flush_ = now;
    std::vector<std::pair<std::string, std::int64_t>> touched;
    for (const auto& identity : touched_identities_) {
      const auto* session = handshake_ ? handshake_->session(identity) : nullptr;
      if (session) touched.emplace_back(hex_identity(identity), session->mtime);
    }
    touched_identities_.clear();
    writer_->job(
        [touched = std::move(touched)](History& h) {
          for (const auto& [hex, mtime] : touched) {
            Status st = h.touch_identity(hex, mtime);
            if (!st) log_error("[core] cannot store the activity of session " + hex + ": " + st.message());
          }
        },
        nullptr);
  }
  // Every 5 s as in Gorgone, or more often when the rotation period itself is shorter.
  if (now - last_rotation_check_ >= std::min<std::int64_t>(5, config_.external_com_rotation)) {
    last_rotation_check_ = now;
    for (auto& rot : handshake_->rotate(now, config_.external_com_rotation)) {
      // A peer that is not connected would never get the new key and could not read what we
      // send it next: keep the old one until it is back (Perl switches anyway).
      if (!send_router(*external_, rot.identity, rot.wire, true)) {
        handshake_->restore(rot.identity, std::move(rot.before));
        log_debug("[core] key rotation for " + hex_identity(rot.identity) + " postponed: the peer is not connected");
        continue;
      }
      if (const auto* s = handshake_->session(rot.identity)) {
        IdentityRow row{hex_identity(rot.identity), protocol::to_hex(s->key), protocol::to_hex(s->iv),
                        protocol::to_hex(s->oldkey), protocol::to_hex(s->oldiv), s->ctime, s->mtime};
        writer_->job(
            [row](History& h) {
              Status st = h.update_identity_keys(row);
              if (!st) log_error("[core] cannot store rotated key of " + row.identity + ": " + st.message());
            },
            nullptr);
      }
      log_info("[core] key rotated for " + hex_identity(rot.identity));
    }
  }
}

Status Core::send_external(const std::string& routing_id, const Frame& frame) {
  if (!handshake_) return Status::failure("no external router");
  auto wire = handshake_->encrypt_for(routing_id, protocol::build_frame(frame));
  if (!wire) return Status::failure("no session for " + hex_identity(routing_id));
  if (!send_router(*external_, routing_id, *wire)) return Status::failure("not connected");
  return Status::success();
}

}  // namespace gorgone
