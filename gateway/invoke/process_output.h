// Owns: what a child process prints (its stdout or stderr, read from a pipe) turned into the gateway's log
// lines. The gateway's stdout is a stream of JSON log lines; a lambda function's process or an isolated
// handler's worker writing there directly would break it for every reader (jq, a log shipper). Each line
// is logged at info with the owner's name (and the request ID of the invocation it belongs to, when known);
// a line over 16 KiB is split, as CloudWatch splits long events.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wsgw {

class ProcessOutput {
public:
    static constexpr size_t kMaxLineBytes = 16384;

    // `stream`: "stdout" or "stderr"; `fd`: the pipe's read end, owned from here on (made non-blocking).
    ProcessOutput(const char *stream, int fd);
    ~ProcessOutput();
    ProcessOutput(const ProcessOutput &) = delete;
    ProcessOutput &operator=(const ProcessOutput &) = delete;

    int fd() const { return open_ ? fd_ : -1; }  // for poll: -1 once the stream ended
    bool open() const { return open_; }
    // Reads what is there and logs the complete lines, each with {ownerKey: owner} (e.g. "function": name)
    // and the request ID when not empty. At end of file the last, unterminated line too; the stream ends.
    void drain(std::string_view ownerKey, const std::string &owner, const std::string &requestId);
    // Logs a last line that has no newline yet (the process is gone).
    void flush(std::string_view ownerKey, const std::string &owner, const std::string &requestId);

private:
    void emitLines(std::string_view ownerKey, const std::string &owner, const std::string &requestId, bool atEnd);

    const char *stream_;
    int fd_;
    bool open_ = true;
    std::string partial_;
};

}  // namespace wsgw
