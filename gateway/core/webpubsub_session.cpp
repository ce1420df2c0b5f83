// The reliable subprotocol's per-connection state (see the header).
#include "webpubsub_session.h"

#include "connection_id.h"
#include "webpubsub_protocol.h"

#include <algorithm>

namespace wsgw {

std::shared_ptr<const std::string> WpsReliableOutbox::append(std::string_view message) {
    auto frame = std::make_shared<const std::string>(withSequenceId(message, nextSequenceId_));
    if (bytes_ + frame->size() > maxBytes_) return nullptr;
    kept_.push_back({nextSequenceId_++, frame});
    bytes_ += frame->size();
    return frame;
}

size_t WpsReliableOutbox::acknowledge(uint64_t sequenceId) {
    size_t freed = 0;
    while (!kept_.empty() && kept_.front().sequenceId <= sequenceId) {
        freed += kept_.front().frame->size();
        kept_.pop_front();
    }
    bytes_ -= freed;
    return freed;
}

std::vector<std::shared_ptr<const std::string>> WpsReliableOutbox::unacknowledged() const {
    std::vector<std::shared_ptr<const std::string>> out;
    out.reserve(kept_.size());
    for (const Kept &k : kept_) out.push_back(k.frame);
    return out;
}

bool WpsAckIds::firstUse(uint64_t ackId) {
    bool aboveAll = !any_ || ackId > highest_;
    if (!aboveAll && std::find(ring_.begin(), ring_.end(), ackId) != ring_.end()) return false;
    if (ring_.size() < kRemembered) {
        ring_.push_back(ackId);
    } else {
        ring_[next_] = ackId;
        next_ = (next_ + 1) % kRemembered;
    }
    if (aboveAll) {
        highest_ = ackId;
        any_ = true;
    }
    return true;
}

std::string newWpsReconnectionToken() {
    unsigned char bytes[16];
    fillRandom(bytes, sizeof bytes);
    return base64UrlEncode(bytes, sizeof bytes);
}

bool wpsTokensEqual(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

void WpsRecoveryWindow::eraseDeadline(const std::string &connectionId, int64_t deadlineMs) {
    auto [lo, hi] = byDeadline_.equal_range(deadlineMs);
    for (auto it = lo; it != hi; ++it)
        if (it->second == connectionId) {
            byDeadline_.erase(it);
            return;
        }
}

void WpsRecoveryWindow::detach(const std::string &connectionId, std::string token, int64_t nowMs, int64_t windowMs) {
    forget(connectionId);
    int64_t deadline = nowMs + (windowMs > 0 ? windowMs : 0);
    byId_.emplace(connectionId, Entry{std::move(token), deadline});
    byDeadline_.emplace(deadline, connectionId);
}

WpsRecoveryWindow::Resume WpsRecoveryWindow::resume(const std::string &connectionId, std::string_view token, int64_t nowMs) {
    auto it = byId_.find(connectionId);
    if (it == byId_.end() || it->second.deadlineMs <= nowMs) return Resume::Unknown;
    if (!wpsTokensEqual(it->second.token, token)) return Resume::WrongToken;
    eraseDeadline(connectionId, it->second.deadlineMs);
    byId_.erase(it);
    return Resume::Resumed;
}

std::vector<std::string> WpsRecoveryWindow::expire(int64_t nowMs) {
    std::vector<std::string> out;
    while (!byDeadline_.empty() && byDeadline_.begin()->first <= nowMs) {
        out.push_back(byDeadline_.begin()->second);
        byId_.erase(byDeadline_.begin()->second);
        byDeadline_.erase(byDeadline_.begin());
    }
    return out;
}

bool WpsRecoveryWindow::forget(const std::string &connectionId) {
    auto it = byId_.find(connectionId);
    if (it == byId_.end()) return false;
    eraseDeadline(connectionId, it->second.deadlineMs);
    byId_.erase(it);
    return true;
}

std::optional<int64_t> WpsRecoveryWindow::nextDeadline() const {
    if (byDeadline_.empty()) return std::nullopt;
    return byDeadline_.begin()->first;
}

}  // namespace wsgw
