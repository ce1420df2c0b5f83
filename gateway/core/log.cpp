#include "log.h"

#include "event.h"
#include "utf8.h"

#include <atomic>
#include <cstdio>
#include <unistd.h>

namespace wsgw::log {

namespace {
std::atomic<int> minLevel{static_cast<int>(Level::Info)};
std::atomic<LineSink *> sink{nullptr};
const char *kLevelNames[] = {"debug", "info", "warn", "error"};

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid.
size_t utf8SequenceLength(std::string_view s, size_t i) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    return isValidUtf8(s.data() + i, n) ? n : 0;
}
}  // namespace

void setSink(LineSink *s) { sink.store(s, std::memory_order_release); }
void setMinLevel(Level level) { minLevel.store(static_cast<int>(level)); }
bool enabled(Level level) { return static_cast<int>(level) >= minLevel.load(std::memory_order_relaxed); }

void appendJsonString(std::string &out, std::string_view v) {
    out.reserve(out.size() + v.size() + 2);
    out += '"';
    for (size_t i = 0; i < v.size();) {
        // Runs of bytes that need no escaping (most of any text) are appended whole: one bounds check and
        // one copy per run instead of per byte. Every log line, access log and table row passes here.
        size_t plain = i;
        while (plain < v.size()) {
            auto p = static_cast<unsigned char>(v[plain]);
            if (p < 0x20 || p >= 0x80 || p == '"' || p == '\\') break;
            ++plain;
        }
        if (plain != i) {
            out.append(v.data() + i, plain - i);
            i = plain;
            continue;
        }
        auto c = static_cast<unsigned char>(v[i]);
        if (c >= 0x80) {
            size_t n = utf8SequenceLength(v, i);
            if (n == 0) {
                out += "\xEF\xBF\xBD";
                ++i;
            } else {
                out.append(v.data() + i, n);
                i += n;
            }
            continue;
        }
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                char b[8];
                std::snprintf(b, sizeof b, "\\u%04x", c);
                out += b;
            } else {
                out += static_cast<char>(c);
            }
        }
        ++i;
    }
    out += '"';
}

std::string formatLine(Level level, std::string_view msg, std::initializer_list<Field> fields) {
    std::string line;
    line.reserve(128);
    line += "{\"time\":\"";
    line += formatIso8601Millis(nowEpochMs());
    line += "\",\"level\":\"";
    line += kLevelNames[static_cast<int>(level)];
    line += "\",\"msg\":";
    appendJsonString(line, msg);
    for (const Field &f : fields) {
        line += ',';
        appendJsonString(line, f.key);
        line += ':';
        switch (f.kind) {
        case Field::Kind::String: appendJsonString(line, f.text); break;
        case Field::Kind::Int: line += std::to_string(f.i); break;
        case Field::Kind::Uint: line += std::to_string(f.u); break;
        case Field::Kind::Bool: line += f.b ? "true" : "false"; break;
        case Field::Kind::Raw: line += f.text.empty() ? std::string_view("null") : f.text; break;
        }
    }
    line += "}\n";
    return line;
}

void write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
    if (!enabled(level)) return;
    std::string line = formatLine(level, msg, fields);
    if (LineSink *s = sink.load(std::memory_order_acquire)) {
        s->take(std::move(line));
        return;
    }
    size_t off = 0;
    while (off < line.size()) {
        ssize_t n = ::write(STDOUT_FILENO, line.data() + off, line.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
    }
}

}  // namespace wsgw::log
