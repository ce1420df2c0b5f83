// Owns: how often the lines that any client can make the gateway write at will are written: one per request
// it refuses (an upgrade, a $connect, a management request). A flood of bad credentials at thousands a
// second would otherwise write as many lines (about 250 bytes each) and fill a disk. At info level at most
// kLinesPerSecond of them a second per thread that refuses; the others are counted, and the next line written
// says how many were left out ("notLogged"). At debug level every one is written. The access log and the
// metrics still count every refusal. One per owning thread, not shared: no lock on a path a flood takes.
#pragma once

#include <cstdint>

namespace wsgw {

class RefusalLog {
public:
    static constexpr uint32_t kLinesPerSecond = 10;
    // True when this refusal's line is to be written (then `notLogged` is how many were not since the last
    // one written). `nowSeconds` is any monotonic clock in seconds.
    bool admit(double nowSeconds, uint64_t &notLogged);

private:
    double windowStart_ = -1e18;
    uint32_t writtenInWindow_ = 0;
    uint64_t notLogged_ = 0;
};

}  // namespace wsgw
