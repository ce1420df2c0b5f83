// Small RapidJSON helpers (see the header).
#include "json_text.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace wsgw {

std::string compactJson(const rapidjson::Value &v) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

bool jsonDepthWithin(std::string_view s, int maxDepth) {
    int depth = 0;
    bool inString = false;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (inString) {
            if (c == '\\') ++i;
            else if (c == '"') inString = false;
            continue;
        }
        if (c == '"') inString = true;
        else if (c == '[' || c == '{') {
            if (++depth > maxDepth) return false;
        } else if (c == ']' || c == '}') --depth;
    }
    return true;
}

const rapidjson::Value *findMember(const rapidjson::Value &obj, const char *name) {
    auto it = obj.FindMember(name);
    return it == obj.MemberEnd() ? nullptr : &it->value;
}

}  // namespace wsgw
