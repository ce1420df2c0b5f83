// JSON-lines logging: one object per line on stdout, written with a single write(2) so lines from
// different threads never interleave. Every component logs through this. The gateway installs a LineSink
// (obs/background_log.h) that hands lines to a writer thread: a stdout nobody reads (a full pipe, a stalled
// log collector) must not stop the thread that logs. Without one (tools, tests, the plugin host), a line is
// written at once by the thread that logs it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace wsgw::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void setMinLevel(Level level);
bool enabled(Level level);

// A key and a value: a string, an integer, a boolean, or raw JSON.
struct Field {
    enum class Kind { String, Int, Uint, Bool, Raw };
    std::string_view key;
    Kind kind = Kind::String;
    std::string_view text;
    int64_t i = 0;
    uint64_t u = 0;
    bool b = false;

    Field(std::string_view k, std::string_view v) : key(k), kind(Kind::String), text(v) {}
    Field(std::string_view k, const char *v) : key(k), kind(Kind::String), text(v ? v : "") {}
    Field(std::string_view k, const std::string &v) : key(k), kind(Kind::String), text(v) {}
    Field(std::string_view k, int64_t v) : key(k), kind(Kind::Int), i(v) {}
    Field(std::string_view k, int v) : key(k), kind(Kind::Int), i(v) {}
    Field(std::string_view k, uint64_t v) : key(k), kind(Kind::Uint), u(v) {}
    Field(std::string_view k, bool v) : key(k), kind(Kind::Bool), b(v) {}
    static Field rawJson(std::string_view k, std::string_view json) {
        Field f(k, json);
        f.kind = Kind::Raw;
        return f;
    }
};

// Where lines go instead of straight to stdout. take() must not block; it is called from any thread.
class LineSink {
public:
    virtual ~LineSink() = default;
    virtual void take(std::string &&line) = 0;  // one whole line, its newline included
};
// Installs `sink` (nullptr: write to stdout directly again). A sink installed once must outlive every
// thread that may still log: the gateway's lives as long as the process.
void setSink(LineSink *sink);

std::string formatLine(Level level, std::string_view msg, std::initializer_list<Field> fields);
void write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});
inline void debug(std::string_view m, std::initializer_list<Field> f = {}) { if (enabled(Level::Debug)) write(Level::Debug, m, f); }
inline void info(std::string_view m, std::initializer_list<Field> f = {}) { if (enabled(Level::Info)) write(Level::Info, m, f); }
inline void warn(std::string_view m, std::initializer_list<Field> f = {}) { if (enabled(Level::Warn)) write(Level::Warn, m, f); }
inline void error(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::Error, m, f); }

// Appends `v` as a JSON string literal (quotes included); invalid UTF-8 bytes become U+FFFD.
void appendJsonString(std::string &out, std::string_view v);

}  // namespace wsgw::log
