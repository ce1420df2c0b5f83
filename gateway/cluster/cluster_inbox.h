// The answering side: what other nodes send here, arriving on the subscriber thread. Group sends and
// close-alls are carried out on this node's connections; a push, close or group change for one of its
// connections is run and answered with an Ack to the asker's inbox; an Ack completes one of this node's
// own calls (cluster_remote_calls.h).
#pragma once

#include "cluster_executor.h"
#include "cluster_node.h"
#include "cluster_remote_calls.h"
#include "cluster_subscriber.h"

#include <string>
#include <string_view>

namespace wsgw::cluster {

class Inbox {
public:
    Inbox(const ClusterSettings &settings, HostContext &host, Subscriber &subscriber, RemoteCalls &calls,
          BlockingExecutor &executor)
        : settings_(settings), host_(host), subscriber_(subscriber), calls_(calls), executor_(executor) {}

    // One message on a subscribed channel (subscriber thread). A malformed one is logged and dropped.
    void dispatch(const std::string &channel, std::string_view payload);

private:
    void deliver(const BusMessage &m);
    void sendAck(const BusMessage &req, int rc);

    const ClusterSettings &settings_;
    HostContext &host_;
    Subscriber &subscriber_;
    RemoteCalls &calls_;
    BlockingExecutor &executor_;
};

}  // namespace wsgw::cluster
