// Owns: the host API calls of an isolated handler's worker, made and answered (isolated_host_calls.h).
#include "isolated_host_calls.h"

#include "host_api_checks.h"
#include "plugin_wire.h"

namespace wsgw {

bool answerHostCall(HostOperations *ops, std::string_view payload, std::string &replyFrame) {
    replyFrame.clear();
    wire::Reader r(payload);
    uint64_t id = r.u64();
    auto op = static_cast<wire::CallOp>(r.u8());
    std::string connectionId(r.bytes());
    std::string_view data = r.bytes();
    int64_t flag = r.i64();
    if (!r.ok()) return false;
    // The worker checked the plugin's arguments already; making the same checked calls here keeps
    // whatever a plugin scribbles on its worker's socket (an empty group, say) from going further.
    const char *target = connectionId.c_str();  // a connection ID, or the group of SendGroup
    int64_t result = WSGW_ERROR;
    std::string out;
    switch (op) {
    case wire::CallOp::Post: result = checkedPost(ops, target, data.data(), data.size(), flag != 0); break;
    case wire::CallOp::Delete: result = checkedDelete(ops, target); break;
    case wire::CallOp::Get: result = checkedDescribe(ops, target, out) ? 0 : -1; break;
    case wire::CallOp::Join: result = checkedAddToGroup(ops, std::string(data).c_str(), target); break;
    case wire::CallOp::Leave: result = checkedRemoveFromGroup(ops, std::string(data).c_str(), target); break;
    case wire::CallOp::SendGroup: result = checkedSendToGroup(ops, target, data.data(), data.size(), flag != 0); break;
    case wire::CallOp::SendAll: result = checkedSendToAll(ops, data.data(), data.size(), flag != 0); break;
#ifdef WSGW_HOST_API_HAS_USERS
    case wire::CallOp::SendUser: result = checkedSendToUser(ops, target, data.data(), data.size(), flag != 0); break;
#endif
    case wire::CallOp::Log:
        checkedLog(ops, static_cast<int>(flag), std::string(data).c_str());
        return true;  // no reply
    }
    wire::Writer reply(wire::Kind::CallReply);
    reply.u64(id).i64(result).bytes(out);
    replyFrame = reply.frame();
    return true;
}

}  // namespace wsgw
