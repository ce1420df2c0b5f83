// The framing between the gateway and an isolated plugin's worker process (plugin_host.cpp) over a
// socketpair: [u32 payload length][u8 kind][fields], fields being little-endian integers and
// length-prefixed byte strings. One reader per side; writers hold the side's write mutex. Both ends are
// the same binary, so there is no version negotiation beyond the kind byte.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>

namespace wsgw::wire {

enum class Kind : uint8_t {
    Hello = 1,      // gateway -> worker: instance name, config JSON
    Ready = 2,      // worker -> gateway: ok, error text, descriptor name
    Invoke = 3,     // gateway -> worker: seq, event type, route key, connection ID, body, binary, event JSON
    Result = 4,     // worker -> gateway: seq, rc, status, body, binary, failure text
    Call = 5,       // worker -> gateway: call ID, op, connection ID, data, flag (binary or log level)
    CallReply = 6,  // gateway -> worker: call ID, rc, data
    Shutdown = 7,   // gateway -> worker: call the plugin's shutdown and exit
};

// Join/Leave: connection ID, data = group. SendGroup: connection ID field = group, flag = binary.
enum class CallOp : uint8_t { Post = 1, Delete = 2, Get = 3, Log = 4, Join = 5, Leave = 6, SendGroup = 7, SendAll = 8, SendUser = 9 };

constexpr uint32_t kMaxFrame = 64u << 20;

class Writer {
public:
    explicit Writer(Kind kind) {
        buf_.assign(5, '\0');
        buf_[4] = static_cast<char>(kind);
    }
    Writer &u64(uint64_t v) { return raw(&v, sizeof v); }
    Writer &i64(int64_t v) { return raw(&v, sizeof v); }
    Writer &u8(uint8_t v) { return raw(&v, sizeof v); }
    Writer &bytes(std::string_view s) {
        uint32_t n = static_cast<uint32_t>(s.size());
        raw(&n, sizeof n);
        buf_.append(s.data(), s.size());
        return *this;
    }
    // The finished frame, length prefix filled in.
    const std::string &frame() {
        uint32_t n = static_cast<uint32_t>(buf_.size() - 4);
        std::memcpy(buf_.data(), &n, sizeof n);
        return buf_;
    }

private:
    Writer &raw(const void *p, size_t n) {
        buf_.append(static_cast<const char *>(p), n);
        return *this;
    }
    std::string buf_;
};

// Reads fields of one received payload; any short read marks it bad instead of reading past the end.
class Reader {
public:
    explicit Reader(std::string_view payload) : p_(payload) {}
    uint64_t u64() { return num<uint64_t>(); }
    int64_t i64() { return num<int64_t>(); }
    uint8_t u8() { return num<uint8_t>(); }
    std::string_view bytes() {
        uint32_t n = num<uint32_t>();
        if (!ok_ || n > p_.size()) {
            ok_ = false;
            return {};
        }
        std::string_view s = p_.substr(0, n);
        p_.remove_prefix(n);
        return s;
    }
    bool ok() const { return ok_; }

private:
    template <class T> T num() {
        T v{};
        if (p_.size() < sizeof v) {
            ok_ = false;
            return v;
        }
        std::memcpy(&v, p_.data(), sizeof v);
        p_.remove_prefix(sizeof v);
        return v;
    }
    std::string_view p_;
    bool ok_ = true;
};

inline bool writeAll(int fd, const std::string &data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

inline bool readAll(int fd, char *buf, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = ::read(fd, buf + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

// One frame: its kind and payload (fields after the kind byte); nullopt on EOF, error or a bad length.
struct Frame {
    Kind kind;
    std::string payload;
};
inline std::optional<Frame> readFrame(int fd) {
    uint32_t n = 0;
    if (!readAll(fd, reinterpret_cast<char *>(&n), sizeof n) || n == 0 || n > kMaxFrame) return std::nullopt;
    std::string buf(n, '\0');
    if (!readAll(fd, buf.data(), n)) return std::nullopt;
    Frame f{static_cast<Kind>(static_cast<uint8_t>(buf[0])), buf.substr(1)};
    return f;
}

}  // namespace wsgw::wire
