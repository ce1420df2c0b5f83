// Owns: which refusal lines are written (refusal_log.h).
#include "refusal_log.h"

#include "log.h"

namespace wsgw {

bool RefusalLog::admit(double nowSeconds, uint64_t &notLogged) {
    if (!log::enabled(log::Level::Info)) return false;
    if (!log::enabled(log::Level::Debug)) {
        if (nowSeconds - windowStart_ >= 1.0 || nowSeconds < windowStart_) {
            windowStart_ = nowSeconds;
            writtenInWindow_ = 0;
        }
        if (writtenInWindow_ >= kLinesPerSecond) {
            ++notLogged_;
            return false;
        }
        ++writtenInWindow_;
    }
    notLogged = notLogged_;
    notLogged_ = 0;
    return true;
}

}  // namespace wsgw
