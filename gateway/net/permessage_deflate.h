// Owns: the permessage-deflate extension (RFC 7692) the public listener offers, receive side.
//
// It is libwebsockets' own extension with two changes, both in what its inflater is given.
//
// 1. libwebsockets 4.1.6 inflates a compressed frame in 1 KiB steps and, when a read ends before zlib has
//    consumed its input, leaves zlib pointing into the bytes it was given. Those bytes lie in the network
//    thread's read buffer, which the next connection's read on that thread overwrites before this
//    connection is drained: under concurrency a message inflated garbage ("zlib error inflate -3: invalid
//    block type") and its connection was closed or hung (fixed upstream only in 4.3). Here the compressed
//    input is first copied into the connection's own CompressedInput, which stays where it is until zlib
//    has consumed it.
// 2. When a message's last compressed byte is consumed in the same inflate step that fills the 1 KiB output,
//    zlib can still owe up to a match's length (258 bytes). libwebsockets then appends the sync-flush tail
//    (00 00 FF FF) with 5 spare bytes of output and asserts that some are left: a process abort ("Assertion
//    'priv->rx.avail_out' failed", still so upstream), which any client could cause with one message of
//    the right length (125,000 'a's, compressed by Node's ws). So the last input of every compressed message
//    is given with the tail already appended and one more byte, 00, the header of a second empty stored
//    block: zlib cannot run out of input before it has written out the whole message, and the tail
//    libwebsockets appends then completes that second block, an empty one (no output, no state change).
//    Whether a frame is compressed is not visible to this wrapper: the last input of every frame that
//    ends a message gets the tail, and when the extension does not inflate it (an uncompressed message,
//    a control frame) the input goes back to the caller as it was.
// 3. A client whose data does not end a deflate stream cleanly (a final block, garbage) can still make the
//    tail itself inflate to output and trip that assertion, whatever is appended. The assertion is caught:
//    libwebsockets' __assert_fail lookup finds the executable's own (permessage_deflate.cpp), which, inside
//    this extension's call and for that assertion only, returns to it with longjmp (only C frames of the
//    inflater lie between), and the connection is dropped as for data that does not inflate.
// 4. A message may end its deflate stream with a final block (BFINAL set) instead of a sync flush (RFC 7692
//    7.2.3.3 allows it). zlib then stops at the stream's end with the tail unconsumed, and libwebsockets,
//    which knows only the sync flush, kept asking for more: the message was never delivered, and every
//    message after it was lost too, on a connection that stayed open. Here, once the last input of a
//    message leaves zlib at its stream's end, the message ends there: the inflater is reset with the window
//    it had (the next message may refer to it, as with context takeover) and the rest of the tail dropped.
//    libwebsockets then calls once more, without input, to append its own tail (00 00 FF FF) to what it
//    takes for the same stream: that call is answered as it answers it (the message's end, no output)
//    without giving the new stream those bytes, which would start it with half a block.
//    A stream that ends before the message does (data after the final block) is not a message: the
//    connection is dropped.
#pragma once

#include <libwebsockets.h>

#include <memory>
#include <string>

namespace wsgw {

// A connection's copy of the compressed bytes libwebsockets hands to zlib. Two buffers are alternated, so
// that a new input never overwrites bytes zlib may still hold a pointer to.
class CompressedInput {
public:
    // What ends a message's last input (change 2 above): the sync-flush tail, then a stored block's header.
    static constexpr unsigned char kMessageEnd[5] = {0x00, 0x00, 0xff, 0xff, 0x00};

    // Copies `data` (then `tail`, if any) and returns where the copy lies; valid until the next keep() but one.
    unsigned char *keep(const unsigned char *data, size_t len, const unsigned char *tail = nullptr, size_t tailLen = 0);
    // Frees large buffers; call only when no message is being inflated (at a message's end).
    void trim();
    // Whether the input given last ends its message (it carries the tail): set by keep().
    bool endsMessage() const { return endsMessage_; }
    // Change 4: the inflater was restarted after a final block; libwebsockets' next call without input is its tail's.
    bool restartedAfterFinalBlock = false;
    size_t capacity() const { return buffers_[0].capacity() + buffers_[1].capacity(); }

private:
    std::string buffers_[2];
    int current_ = 0;
    bool endsMessage_ = false;
};

// Where a connection's CompressedInput lives (made on first use); nullptr for a connection that has none.
using CompressedInputSlot = std::unique_ptr<CompressedInput> *(*)(lws *wsi);

// Set once, before any libwebsockets context is made.
void setCompressedInputSlot(CompressedInputSlot slot);

// The extension callback: put it in `lws_extension::callback` under the name "permessage-deflate".
int permessageDeflateExtension(lws_context *context, const lws_extension *ext, lws *wsi,
                               enum lws_extension_callback_reasons reason, void *user, void *in, size_t len);

}  // namespace wsgw
