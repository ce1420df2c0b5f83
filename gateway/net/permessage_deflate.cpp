// Owns: copying compressed input out of libwebsockets' shared read buffer before its inflater sees it
// (the why is in permessage_deflate.h).
#include "permessage_deflate.h"

#include "log.h"

#include <atomic>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <sys/socket.h>
#include <zlib.h>
#include <cstring>

namespace wsgw {
namespace {

// What libwebsockets passes with LWS_EXT_CB_PAYLOAD_RX (its `struct lws_ext_pm_deflate_rx_ebufs`, the same
// in 3.x and 4.x): the input to inflate and, on return, the output. Only eb_in is touched here.
struct InflateBuffers {
    lws_tokens in;
    lws_tokens out;
};

std::atomic<CompressedInputSlot> g_slot{nullptr};

// Set while this thread is inside libwebsockets' inflater (change 3 in the header).
thread_local std::jmp_buf *t_inflateEscape = nullptr;

// What the extension returns when it did not inflate the input: PMDR_DID_NOTHING and
// PMDR_NOTHING_WE_SHOULD_DO of libwebsockets' private enum pmd_return (lib/core-net/private-lib-core-net.h,
// the same from 4.0 to 4.3).
constexpr int kDidNothing = 1;
constexpr int kHasPending = 2;
constexpr int kEmptyFinal = 4;
constexpr int kNothingWeShouldDo = 5;

// Buffers above this are freed when their message ends, so an idle connection does not keep a large one.
constexpr size_t kKeptCapacity = 4096;

// True when zlib stopped at the end of its deflate stream (a final block was decoded): inflate() reports
// Z_STREAM_END again, without input or room for output, only then. A call with neither changes nothing zlib
// would not do the same way on its next call (its decoding resumes at any bit), and what the fields say is
// put back.
bool atStreamEnd(z_stream *z) {
    const z_stream kept = *z;
    unsigned char none = 0;
    z->next_in = &none;
    z->avail_in = 0;
    z->next_out = &none;
    z->avail_out = 0;
    int rc = inflate(z, Z_NO_FLUSH);
    z->next_in = kept.next_in;
    z->avail_in = kept.avail_in;
    z->next_out = kept.next_out;
    z->avail_out = kept.avail_out;
    z->total_in = kept.total_in;
    z->total_out = kept.total_out;
    z->data_type = kept.data_type;
    z->msg = kept.msg;
    return rc == Z_STREAM_END;
}

// Change 4: the message ended its stream with a final block. The inflater starts a new stream that keeps the
// window (a raw inflater takes a dictionary right after a reset), and what is left of the tail is dropped.
bool restartAfterFinalBlock(z_stream *z) {
    std::unique_ptr<unsigned char[]> window(new unsigned char[32768]);
    uInt windowLen = 32768;
    if (inflateGetDictionary(z, window.get(), &windowLen) != Z_OK || inflateReset(z) != Z_OK) return false;
    if (windowLen && inflateSetDictionary(z, window.get(), windowLen) != Z_OK) return false;
    z->avail_in = 0;
    return true;
}

// Drops a connection from inside the extension: libwebsockets closes a connection whose extension failed
// only at its next event, and the socket's shutdown is that event, now, so its $disconnect runs at once.
int dropConnection(lws *wsi, const char *detail) {
    log::info("a client sent compressed data that does not end as a message must; its connection is dropped",
              {log::Field("detail", detail)});
    if (lws_sockfd_type fd = lws_get_socket_fd(wsi); fd >= 0) ::shutdown(fd, SHUT_RDWR);
    return -1;
}

}  // namespace

unsigned char *CompressedInput::keep(const unsigned char *data, size_t len, const unsigned char *tail, size_t tailLen) {
    current_ ^= 1;
    endsMessage_ = tail != nullptr;
    std::string &buffer = buffers_[current_];
    buffer.assign(reinterpret_cast<const char *>(data), len);
    if (tail) buffer.append(reinterpret_cast<const char *>(tail), tailLen);
    return reinterpret_cast<unsigned char *>(buffer.data());
}

void CompressedInput::trim() {
    for (auto &buffer : buffers_)
        if (buffer.capacity() > kKeptCapacity) std::string().swap(buffer);
}

void setCompressedInputSlot(CompressedInputSlot slot) { g_slot.store(slot, std::memory_order_release); }

int permessageDeflateExtension(lws_context *context, const lws_extension *ext, lws *wsi,
                               enum lws_extension_callback_reasons reason, void *user, void *in, size_t len) {
    if (reason != LWS_EXT_CB_PAYLOAD_RX || !in || !user || !wsi)
        return lws_extension_callback_pm_deflate(context, ext, wsi, reason, user, in, len);
    auto *buffers = static_cast<InflateBuffers *>(in);
    CompressedInputSlot slotOf = g_slot.load(std::memory_order_acquire);
    std::unique_ptr<CompressedInput> *slot = slotOf ? slotOf(wsi) : nullptr;
    if (!slot) return lws_extension_callback_pm_deflate(context, ext, wsi, reason, user, in, len);
    if (!*slot) *slot = std::make_unique<CompressedInput>();
    CompressedInput &input = **slot;
    // libwebsockets' private state for this connection begins with its inflater (`z_stream rx`, the first
    // member of struct lws_ext_pm_deflate_priv in 4.1 to 4.3): new input is taken only once zlib has
    // consumed the last (libwebsockets drains it before it reads on).
    auto *inflater = static_cast<z_stream *>(user);
    if (input.restartedAfterFinalBlock) {
        input.restartedAfterFinalBlock = false;
        if ((!buffers->in.token || buffers->in.len == 0) && inflater->avail_in == 0) {
            buffers->out.token = buffers->in.token ? buffers->in.token : inflater->next_out;
            buffers->out.len = 0;
            return kEmptyFinal;  // what libwebsockets' own call answers once its tail is inflated
        }
    }
    const auto original = buffers->in;
    bool tailed = false;
    if (buffers->in.token && buffers->in.len > 0 && inflater->avail_in == 0) {
        // The last input of a frame that ends a message gets the tail (change 2). Whether the message is
        // compressed at all is the extension's to say (the first frame's RSV1, a control frame's opcode, which
        // are not visible here): when it does not inflate this input, the tail is taken back below.
        tailed = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
        buffers->in.token = input.keep(buffers->in.token, static_cast<size_t>(buffers->in.len),
                                       tailed ? CompressedInput::kMessageEnd : nullptr,
                                       tailed ? sizeof CompressedInput::kMessageEnd : 0);
        if (tailed) buffers->in.len += static_cast<int>(sizeof CompressedInput::kMessageEnd);
    }  // else zlib still works through the last copy, and the rest of it that libwebsockets passes is ignored
    int n;
    std::jmp_buf escape;
    if (setjmp(escape) == 0) {
        t_inflateEscape = &escape;
        n = lws_extension_callback_pm_deflate(context, ext, wsi, reason, user, in, len);
        t_inflateEscape = nullptr;
    } else {
        // Its assertion failed (the tail inflated to output: data no deflate stream ends with). The frame
        // it left is not returned to; the connection is dropped, as for any data that does not inflate.
        t_inflateEscape = nullptr;
        return dropConnection(wsi, "libwebsockets' inflater ran out of output space at the message's end");
    }
    // Change 4: zlib reached the end of the deflate stream and libwebsockets waits for input it will never take.
    // zlib leaves input and output space both unused only at a stream's end (or an error, failed above).
    if (n == kHasPending && inflater->avail_in && inflater->avail_out && atStreamEnd(inflater)) {
        // Only the tail may be left: anything more is the client's data after its stream's end.
        if (!input.endsMessage() || inflater->avail_in != sizeof CompressedInput::kMessageEnd)
            return dropConnection(wsi, "data after the final deflate block of a message");
        if (!restartAfterFinalBlock(inflater)) return dropConnection(wsi, "the inflater could not be restarted");
        buffers->in.len = 0;  // the tail's rest: nothing more to inflate for this message
        input.restartedAfterFinalBlock = true;
        return kEmptyFinal;
    }
    // Not inflated (an uncompressed message, a PONG between the fragments of a compressed one, a message
    // whose tail was applied already): the caller goes on with the input as it gave it, which it takes as
    // the payload itself. Left with the tail, it read 5 bytes more than it had, over and over.
    if (tailed && (n == kNothingWeShouldDo || n == kDidNothing)) buffers->in = original;
    return n;
}

}  // namespace wsgw

// libwebsockets' assertions end in this function (it is looked up in the executable before libc). The one
// its inflater makes at a message's end ("priv->rx.avail_out") is reachable by a client's data (change 3 in
// permessage_deflate.h): inside permessageDeflateExtension it returns there instead of aborting the process.
// Every other assertion, anywhere, does what glibc's does.
extern "C" [[noreturn]] void __assert_fail(const char *assertion, const char *file, unsigned int line, const char *function) noexcept {
    if (wsgw::t_inflateEscape && assertion && file && std::strcmp(assertion, "priv->rx.avail_out") == 0 &&
        std::strstr(file, "extension-permessage-deflate")) {
        std::jmp_buf *escape = wsgw::t_inflateEscape;
        wsgw::t_inflateEscape = nullptr;
        std::longjmp(*escape, 1);
    }
    std::fprintf(stderr, "%s: %s:%u: %s: Assertion `%s' failed.\n", program_invocation_short_name, file ? file : "?", line,
                 function ? function : "?", assertion ? assertion : "?");
    std::abort();
}
