// clock_shift: an LD_PRELOAD library for the clock tests. It moves this process's wall clock (CLOCK_REALTIME
// and its coarse variant, gettimeofday, time) by an offset that the test writes, as 8 bytes (int64
// nanoseconds, little-endian) at the start of the file named by WSGW_CLOCK_SHIFT_FILE, at any moment: a step
// of the host's clock as `date -s`, an NTP correction or a VM resumed from a snapshot makes it, seen by this
// process only. The monotonic clocks are left alone. Without the variable, or before the file holds 8 bytes,
// the offset is zero.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace {

volatile const int64_t *gOffsetNs = nullptr;  // the file's first 8 bytes, mapped shared: the test's writes show at once

using ClockGettime = int (*)(clockid_t, struct timespec *);
ClockGettime gRealClockGettime = nullptr;

__attribute__((constructor)) void mapOffset() {
    gRealClockGettime = reinterpret_cast<ClockGettime>(dlsym(RTLD_NEXT, "clock_gettime"));
    const char *path = std::getenv("WSGW_CLOCK_SHIFT_FILE");
    if (!path) return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st{};
    if (fstat(fd, &st) == 0 && st.st_size >= 8) {
        void *p = mmap(nullptr, 8, PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) gOffsetNs = static_cast<volatile const int64_t *>(p);
    }
    close(fd);
}

int64_t offsetNs() { return gOffsetNs ? *gOffsetNs : 0; }

void shift(struct timespec *ts) {
    int64_t ns = static_cast<int64_t>(ts->tv_sec) * 1000000000 + ts->tv_nsec + offsetNs();
    ts->tv_sec = static_cast<time_t>(ns / 1000000000);
    ts->tv_nsec = static_cast<long>(ns % 1000000000);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000;
        ts->tv_sec -= 1;
    }
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int clock_gettime(clockid_t id, struct timespec *ts) {
    if (!gRealClockGettime) gRealClockGettime = reinterpret_cast<ClockGettime>(dlsym(RTLD_NEXT, "clock_gettime"));
    int r = gRealClockGettime(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) shift(ts);
    return r;
}

extern "C" __attribute__((visibility("default"))) int gettimeofday(struct timeval *tv, void *) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

extern "C" __attribute__((visibility("default"))) time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
