// Owns: finding the first client frame whose MASK bit is 0 (RFC 6455 5.1: a server must fail the connection
// on it) in the bytes a client sends after the upgrade, read in arbitrary pieces. Only frame headers are
// looked at: payloads (7-, 16- and 64-bit lengths) are skipped by count, so the cost per read is a few
// steps per frame whatever its size. Pure: the network layer feeds it what each read returned.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wsgw {

class ClientFrameScanner {
public:
    static constexpr size_t kAllMasked = SIZE_MAX;

    // The next `len` bytes from the client, in order. Returns kAllMasked while every frame header so far is
    // masked; else the offset in `data` where the first unmasked frame's header begins (0 when that header
    // began in an earlier piece), and from then on the scanner has failed and ignores further input.
    size_t scan(const uint8_t *data, size_t len);
    bool failed() const { return failed_; }
    // Messages whose last frame (a data frame with FIN set) was wholly seen, before the unmasked frame once
    // failed(): what libwebsockets will deliver of them. Counts modulo 2^32.
    uint32_t messagesEnded() const { return messagesEnded_; }
    // Between frames (no header or payload partly seen): for tests.
    bool atFrameBoundary() const { return headerRead_ == 0 && payloadLeft_ == 0; }

private:
    uint64_t payloadLeft_ = 0;  // in a header: the extended length read so far; after it: payload bytes to skip
    uint8_t headerRead_ = 0;    // bytes of the current frame's header seen (0: none, or skipping its payload)
    uint8_t headerLength_ = 0;  // the current header's full length, known from its second byte
    bool endsMessage_ = false;  // the current frame is a data frame with FIN set
    bool failed_ = false;
    uint32_t messagesEnded_ = 0;
};

}  // namespace wsgw
