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

const rapidjson::Value *findMember(const rapidjson::Value &obj, const char *name) {
    auto it = obj.FindMember(name);
    return it == obj.MemberEnd() ? nullptr : &it->value;
}

}  // namespace wsgw
