// What nodes say to each other over Redis pub/sub: a push, a close or a group change for a connection that
// lives on the receiving node (answered with an Ack to the asking node's inbox, carrying the same token),
// a frame for the members of a group (or everyone), or a close of every connection. One message is, in the
// plain form,
//   <op char> <len>:<origin node> <len>:<token> <len>:<connection id> <len>:<group> <'0'|'1' binary> <data>
// and, for a Web PubSub send (Post or Deliver) that the plain form would render differently, the Web PubSub
// form, whose flag 'W' takes the binary flag's place:
//   ... <len>:<group> 'W' <'j'|'t'|'b' data type> <'s' server|'g' group> <len>:<fromUserId> <data>
// (binary is the data type being 'b'; fromUserId is empty unless from a group). A Deliver or CloseAll that
// leaves connections out (REST `excluded`) carries them between the group and the flag:
//   ... <len>:<group> 'x' <len>:<list> <flag as above> <data>      (list: one or more <len>:<connection id>)
// A Delete with the flag '1' is a Web PubSub close: its data is the reason the client is told (the plain
// Delete's flag is '0' and its data empty). CloseAll ('C') closes every connection of the receiving node
// but those listed; its token, connection and group are empty, its flag '0' and its data the reason.
// Compatibility: every node reads the plain form; a node sends a newer form only when needed, so in a cluster
// mid-upgrade older nodes log what they cannot read as malformed and drop it: JSON sends and clients'
// publishes ('W'), sends that exclude a connection of another node ('x'), and close-all ('C'); a Web PubSub
// close reaches them as a plain Delete (they close without telling the reason).
// Pure and fuzzed: a message on a channel is outside input as much as a frame from a client.
#pragma once

#include "cluster_bus.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw::cluster {

enum class Op : char {
    Post = 'P',     // send `data` to connection `connectionId` (on the receiving node)
    Delete = 'D',   // close connection `connectionId`
    Join = 'J',     // add connection `connectionId` to `group`
    Leave = 'L',    // remove connection `connectionId` from `group`
    Deliver = 'M',  // send `data` to this node's members of `group`, or to all its connections when group is ""
    Ack = 'A',      // the answer to the request `token`: `data` is the WSGW_* result code in decimal
    CloseAll = 'C', // close every connection of the receiving node but `excluded`; `data` is the reason
};

struct BusMessage {
    Op op = Op::Post;
    std::string origin, token, connectionId, group;
    bool binary = false;  // with `wps` set, encode writes and decode sets it as wps->dataType == Binary
    std::string data;
    std::optional<WpsRendering> wps;  // Post and Deliver only: the Web PubSub form
    std::vector<std::string> excluded;  // Deliver and CloseAll only: connections left out (none empty)
    bool wpsClose = false;              // Delete only: a Web PubSub close, `data` its reason
};

// True when a receiver of the plain form renders this send as the sender did (a server's text or binary:
// the receiver takes valid UTF-8 as text, the rest as binary), so `wps` need not travel.
bool plainFormRendersAlike(const WpsRendering &r);

std::string encode(const BusMessage &m);
std::optional<BusMessage> decode(std::string_view bytes);

}  // namespace wsgw::cluster
