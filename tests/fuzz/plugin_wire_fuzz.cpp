// Fuzz target: the frames an isolated worker process sends the gateway (a plugin shares that process and
// can scribble on its socket). The input is the byte stream as read from the socket; every frame is
// decoded with the field sequence its kind has on each side. Nothing may crash, hang or overread.
#include "plugin_wire.h"

#include <cstdint>
#include <sys/mman.h>
#include <unistd.h>

using namespace wsgw::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("wire", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != static_cast<ssize_t>(size)) {
        close(fd);
        return 0;
    }
    lseek(fd, 0, SEEK_SET);
    for (int frames = 0; frames < 64; ++frames) {
        auto frame = readFrame(fd);
        if (!frame) break;
        Reader r(frame->payload);
        switch (frame->kind) {
        case Kind::Ready: r.u8(), r.bytes(), r.bytes(); break;
        case Kind::Result: r.u64(), r.i64(), r.i64(), r.bytes(), r.u8(), r.bytes(); break;
        case Kind::Call: r.u64(), r.u8(), r.bytes(), r.bytes(), r.i64(); break;
        case Kind::Hello: r.bytes(), r.bytes(); break;
        case Kind::Invoke: r.u64(), r.u8(), r.bytes(), r.bytes(), r.bytes(), r.u8(), r.bytes(); break;
        case Kind::CallReply: r.u64(), r.i64(), r.bytes(); break;
        default: break;
        }
        (void)r.ok();
    }
    close(fd);
    return 0;
}
