// What nodes say to each other over Redis pub/sub: a push, a close or a group change for a connection that
// lives on the receiving node (answered with an Ack to the asking node's inbox, carrying the same token),
// or a frame for the members of a group (or everyone). One message is
//   <op char> <len>:<origin node> <len>:<token> <len>:<connection id> <len>:<group> <'0'|'1' binary> <data>
// Pure and fuzzed: a message on a channel is outside input as much as a frame from a client.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsgw::cluster {

enum class Op : char {
    Post = 'P',     // send `data` to connection `connectionId` (on the receiving node)
    Delete = 'D',   // close connection `connectionId`
    Join = 'J',     // add connection `connectionId` to `group`
    Leave = 'L',    // remove connection `connectionId` from `group`
    Deliver = 'M',  // send `data` to this node's members of `group`, or to all its connections when group is ""
    Ack = 'A',      // the answer to the request `token`: `data` is the WSGW_* result code in decimal
};

struct BusMessage {
    Op op = Op::Post;
    std::string origin, token, connectionId, group;
    bool binary = false;
    std::string data;
};

std::string encode(const BusMessage &m);
std::optional<BusMessage> decode(std::string_view bytes);

}  // namespace wsgw::cluster
