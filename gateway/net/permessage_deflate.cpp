// Owns: copying compressed input out of libwebsockets' shared read buffer before its inflater sees it
// (the why is in permessage_deflate.h).
#include "permessage_deflate.h"

#include <atomic>
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

// Buffers above this are freed when their message ends, so an idle connection does not keep a large one.
constexpr size_t kKeptCapacity = 4096;

}  // namespace

unsigned char *CompressedInput::keep(const unsigned char *data, size_t len) {
    current_ ^= 1;
    std::string &buffer = buffers_[current_];
    buffer.assign(reinterpret_cast<const char *>(data), len);
    return reinterpret_cast<unsigned char *>(buffer.data());
}

void CompressedInput::trim() {
    for (auto &buffer : buffers_)
        if (buffer.capacity() > kKeptCapacity) std::string().swap(buffer);
}

void setCompressedInputSlot(CompressedInputSlot slot) { g_slot.store(slot, std::memory_order_release); }

int permessageDeflateExtension(lws_context *context, const lws_extension *ext, lws *wsi,
                               enum lws_extension_callback_reasons reason, void *user, void *in, size_t len) {
    if (reason == LWS_EXT_CB_PAYLOAD_RX && in) {
        auto *buffers = static_cast<InflateBuffers *>(in);
        CompressedInputSlot slotOf = g_slot.load(std::memory_order_acquire);
        std::unique_ptr<CompressedInput> *slot = slotOf && wsi ? slotOf(wsi) : nullptr;
        // New input (len > 0) is what zlib will point at; a call with none continues from the last copy.
        if (slot && buffers->in.token && buffers->in.len > 0) {
            if (!*slot) *slot = std::make_unique<CompressedInput>();
            buffers->in.token = (*slot)->keep(buffers->in.token, static_cast<size_t>(buffers->in.len));
        }
    }
    return lws_extension_callback_pm_deflate(context, ext, wsi, reason, user, in, len);
}

}  // namespace wsgw
