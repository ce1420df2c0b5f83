// Owns: the management API's error answers in AWS's shape (see management_response.h).
#include "management_response.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace wsgw {

namespace {

std::string jsonMessage(std::string_view message) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("message");
    w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

ManagementResponse awsError(int status, const char *errorType, std::string_view message) {
    ManagementResponse r;
    r.status = status;
    r.body = jsonMessage(message);
    r.headers.emplace_back("x-amzn-ErrorType", errorType);
    return r;
}

}  // namespace wsgw
