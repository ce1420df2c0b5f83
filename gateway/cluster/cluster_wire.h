// What nodes say to each other over Redis pub/sub: a push, a close or a group change for a connection that
// lives on the receiving node (answered with an Ack to the asking node's inbox, carrying the same token),
// or a frame for the members of a group (or everyone). One message is, in the plain form,
//   <op char> <len>:<origin node> <len>:<token> <len>:<connection id> <len>:<group> <'0'|'1' binary> <data>
// and, for a Web PubSub send (Post or Deliver) that the plain form would render differently, the Web PubSub
// form, whose flag 'W' takes the binary flag's place:
//   ... <len>:<group> 'W' <'j'|'t'|'b' data type> <'s' server|'g' group> <len>:<fromUserId> <data>
// (binary is the data type being 'b'; fromUserId is empty unless from a group). Compatibility: every node
// reads the plain form; a node sends the Web PubSub form only when needed (plainFormRendersAlike), so in a
// cluster mid-upgrade only JSON sends and clients' publishes miss older nodes, which log them as malformed.
// Pure and fuzzed: a message on a channel is outside input as much as a frame from a client.
#pragma once

#include "cluster_bus.h"

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
    bool binary = false;  // with `wps` set, encode writes and decode sets it as wps->dataType == Binary
    std::string data;
    std::optional<WpsRendering> wps;  // Post and Deliver only: the Web PubSub form
};

// True when a receiver of the plain form renders this send as the sender did (a server's text or binary:
// the receiver takes valid UTF-8 as text, the rest as binary), so `wps` need not travel.
bool plainFormRendersAlike(const WpsRendering &r);

std::string encode(const BusMessage &m);
std::optional<BusMessage> decode(std::string_view bytes);

}  // namespace wsgw::cluster
