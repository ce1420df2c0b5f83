// Azure Web PubSub's JSON client protocol (docs/webpubsub.md): the two subprotocols
// json.webpubsub.azure.v1 and json.reliable.webpubsub.azure.v1 as Microsoft's public reference defines them.
// Owns parsing what a client sends (joinGroup, leaveGroup, sendToGroup, event, invoke, sequenceAck, ping)
// with errors that say what is wrong and what to send instead, and writing what the gateway sends (ack,
// message from a group or from the server, system connected/disconnected, pong, invokeResponse). The
// reliable subprotocol's sequenceId is put in front of an already written message (withSequenceId), so a
// group send writes its message once and each reliable recipient only adds its own number.
// Pure: no I/O, no state; both subprotocols share the JSON shape.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace wsgw {

enum class WpsSubprotocol { None, Json, ReliableJson };

inline constexpr std::string_view kWpsJsonSubprotocol = "json.webpubsub.azure.v1";
inline constexpr std::string_view kWpsReliableJsonSubprotocol = "json.reliable.webpubsub.azure.v1";

// The subprotocol a Sec-WebSocket-Protocol value names (exact, as Azure matches it), else None.
WpsSubprotocol wpsSubprotocolOf(std::string_view name);
// The first of a comma-separated offer that names one of ours; None when the client offers neither (it is
// then a plain WebSocket client of the hub: it gets raw data and its frames are `message` events).
WpsSubprotocol wpsChooseSubprotocol(std::string_view offeredHeader);
std::string_view wpsSubprotocolName(WpsSubprotocol p);

enum class WpsDataType { Json, Text, Binary };
std::string_view wpsDataTypeName(WpsDataType t);

// A payload as it travels inside the gateway: Json holds compact JSON text (any JSON value), Text the
// string's UTF-8 bytes, Binary the decoded bytes (base64 only on the wire).
struct WpsData {
    WpsDataType type = WpsDataType::Text;
    std::string bytes;
};

struct WpsClientMessage {
    enum class Kind { JoinGroup, LeaveGroup, SendToGroup, Event, Invoke, SequenceAck, Ping };
    Kind kind = Kind::Ping;
    std::optional<uint64_t> ackId;  // joinGroup, leaveGroup, sendToGroup, event: an ack is owed when set
    std::string group;              // joinGroup, leaveGroup, sendToGroup (non-empty)
    bool noEcho = false;            // sendToGroup: not delivered back to the sender
    std::string event;              // event, invoke (non-empty)
    std::string invocationId;       // invoke
    WpsData data;                   // sendToGroup, event, invoke (invoke: may be absent, then Text "")
    uint64_t sequenceId = 0;        // sequenceAck
};

// Why a frame is not a client message. `ackId` is set when the frame named one, so the answer can be an ack
// with error name "BadRequest" (the client SDK rejects that ack's promise with the message).
struct WpsProtocolError {
    std::optional<uint64_t> ackId;
    std::string message;
};

// One text frame of a client on either subprotocol. Binary frames are not part of the JSON subprotocols:
// the caller answers them with wpsBinaryFrameError().
std::variant<WpsClientMessage, WpsProtocolError> parseWpsClientMessage(std::string_view frame);
WpsProtocolError wpsBinaryFrameError();

// Azure's ack error names.
inline constexpr std::string_view kWpsErrorForbidden = "Forbidden";
inline constexpr std::string_view kWpsErrorInternal = "InternalServerError";
inline constexpr std::string_view kWpsErrorDuplicate = "Duplicate";
inline constexpr std::string_view kWpsErrorBadRequest = "BadRequest";  // ours: a malformed request
inline constexpr std::string_view kWpsErrorTooManyRequests = "TooManyRequests";  // ours: over routes.json's throttle

// ---- what the gateway sends ----
std::string wpsAckSuccess(uint64_t ackId);
std::string wpsAckError(uint64_t ackId, std::string_view errorName, std::string_view message);
// {"type":"message","from":"group","fromUserId":...,"group":...,"dataType":...,"data":...}; fromUserId is
// omitted when the sender has no user ID (an AWS-style handler or a REST-less push).
std::string wpsGroupMessage(std::string_view group, std::string_view fromUserId, const WpsData &data);
std::string wpsServerMessage(const WpsData &data);
// reconnectionToken is written only when non-empty (the reliable subprotocol); userId only when non-empty.
std::string wpsConnectedMessage(std::string_view connectionId, std::string_view userId, std::string_view reconnectionToken);
std::string wpsDisconnectedMessage(std::string_view reason);
std::string wpsPongMessage();
std::string wpsInvokeResponse(std::string_view invocationId, const WpsData *data);
std::string wpsInvokeError(std::string_view invocationId, std::string_view errorName, std::string_view message);
// `message` (one of the above, starting with '{') with "sequenceId":N as its first member.
std::string withSequenceId(std::string_view message, uint64_t sequenceId);

// The data of a push that did not come through this protocol (a REST send with its Content-Type, a
// management POST, a handler's send_to_group): application/json -> Json (must parse, else nullopt),
// text/plain -> Text (must be UTF-8, else nullopt), anything else -> Binary.
std::optional<WpsData> wpsDataFromContentType(std::string_view contentType, std::string_view body);
// The same for a frame with no content type: Text when it is valid UTF-8 and not forced binary, else Binary
// (section 9's rule for pushes).
WpsData wpsDataFromFrame(std::string_view bytes, bool forceBinary);

}  // namespace wsgw
