// Owns: copying compressed input out of libwebsockets' shared read buffer before its inflater sees it
// (the why is in permessage_deflate.h).
#include "permessage_deflate.h"

#include <atomic>
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

// What the extension returns when a message's inflation is complete: PMDR_EMPTY_FINAL of libwebsockets'
// private enum pmd_return (lib/core-net/private-lib-core-net.h, the same from 4.0 to 4.3).
constexpr int kEmptyFinal = 4;

// Buffers above this are freed when their message ends, so an idle connection does not keep a large one.
constexpr size_t kKeptCapacity = 4096;

}  // namespace

unsigned char *CompressedInput::keep(const unsigned char *data, size_t len, const unsigned char *tail, size_t tailLen) {
    current_ ^= 1;
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
    // The first frame of a text or binary message says whether it is compressed (RSV1); control frames
    // in between do not change it.
    if (lws_is_first_fragment(wsi)) input.messageCompressed = (lws_get_reserved_bits(wsi) & 0x40) != 0;
    // libwebsockets' private state for this connection begins with its inflater (`z_stream rx`, the first
    // member of struct lws_ext_pm_deflate_priv in 4.1 to 4.3): new input is taken only once zlib has
    // consumed the last (libwebsockets drains it before it reads on).
    const auto *inflater = static_cast<const z_stream *>(user);
    if (buffers->in.token && buffers->in.len > 0 && inflater->avail_in == 0) {
        bool endsMessage = input.messageCompressed && lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
        buffers->in.token = input.keep(buffers->in.token, static_cast<size_t>(buffers->in.len),
                                       endsMessage ? CompressedInput::kMessageEnd : nullptr,
                                       endsMessage ? sizeof CompressedInput::kMessageEnd : 0);
        if (endsMessage) buffers->in.len += static_cast<int>(sizeof CompressedInput::kMessageEnd);
    }  // else zlib still works through the last copy, and the rest of it that libwebsockets passes is ignored
    int n = lws_extension_callback_pm_deflate(context, ext, wsi, reason, user, in, len);
    if (n == kEmptyFinal) input.messageCompressed = false;  // the message ended: a control frame is not of it
    return n;
}

}  // namespace wsgw
