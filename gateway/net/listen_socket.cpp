#include "listen_socket.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <set>

namespace wsgw {

namespace {

// The addresses this process has bound with SO_REUSEPORT: the sockets of its own network threads on the
// public port. The kernel lets any process of the same user join such a group, so the first socket of a
// group is bound only after a probe without SO_REUSEPORT found the port free (it fails on any listener);
// the process's later sockets on that port are its own threads and skip the probe.
std::mutex ownReusePortMutex;
std::set<std::string> ownReusePortAddresses;

std::string addressKey(const sockaddr_storage &ss, socklen_t len) {
    return std::string(reinterpret_cast<const char *>(&ss), len);
}

void setPort(sockaddr_storage &ss, int port) {
    if (ss.ss_family == AF_INET) reinterpret_cast<sockaddr_in *>(&ss)->sin_port = htons(static_cast<uint16_t>(port));
    else reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port = htons(static_cast<uint16_t>(port));
}

int portOf(const sockaddr_storage &ss) {
    return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in *>(&ss)->sin_port
                                         : reinterpret_cast<const sockaddr_in6 *>(&ss)->sin6_port);
}

std::string bindError(const HostPort &hp, const std::string &flag, int port, int err) {
    std::string where = flag + ": cannot listen on " + hp.host + ":" + std::to_string(port) + ": ";
    if (err == EADDRINUSE)
        return where + "port " + std::to_string(port) + " is in use by another process (stop it, or choose another port with " +
               flag + ")";
    return where + std::strerror(err) + " (choose another address with " + flag + ")";
}

// The kernel lets any process of the same user join a SO_REUSEPORT group once it exists (a second server
// started on the port with its own SO_REUSEPORT, an nginx "listen ... reuseport"), and would hand it a share
// of new connections. This program chooses the socket for each new connection among the first `count` of
// the group, which are this process's (each bound right after the probe found the port free), by a hash of
// the client's address and TCP source port: a socket that joins later never gets a connection. (Linux hands
// out ephemeral ports in steps of 2, so the port itself modulo the count would leave threads idle.) It reads
// them through the network header, since the kernel runs it with the data past the TCP header; a packet it
// cannot read goes to the first socket.
bool steerToOwnSockets(int fd, unsigned count, std::string *error) {
    const auto net = [](int offset) { return static_cast<uint32_t>(SKF_NET_OFF + offset); };
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, net(0)),             // 0: A = IP version and header length
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),                 // 1: A = IP version
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 5, 0),           // 2: IPv6: to 8
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, net(12)),            // 3: A = IPv4 source address
        BPF_STMT(BPF_ST, 0),                                    // 4: M[0] = A
        BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, net(0)),            // 5: X = IPv4 header length
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, net(0)),             // 6: A = TCP source port
        BPF_JUMP(BPF_JMP | BPF_JA, 3, 0, 0),                    // 7: to 11
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, net(20)),            // 8: A = last word of the IPv6 source address
        BPF_STMT(BPF_ST, 0),                                    // 9: M[0] = A
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, net(40)),            // 10: A = TCP source port
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x9E3779B1u),       // 11: mix the port
        BPF_STMT(BPF_LDX | BPF_MEM, 0),                         // 12: X = the address word
        BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0),                 // 13: A += X
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x85EBCA6Bu),       // 14: mix again
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),                // 15: the well-mixed high bits
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, count),             // 16: A = hash % count
        BPF_STMT(BPF_RET | BPF_A, 0),                           // 17: the index in the group
    };
    sock_fprog program{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) == 0) return true;
    *error = std::string("cannot attach the connection-steering program to the listening socket: ") + std::strerror(errno);
    return false;
}

}  // namespace

int openListeningSocket(const HostPort &hp, const std::string &flag, std::string *boundAddress, std::string *error,
                        unsigned reusePortSockets) {
    const bool reusePort = reusePortSockets > 1;
    sockaddr_storage ss{};
    socklen_t sslen = 0;
    int family = AF_INET;
    auto *a4 = reinterpret_cast<sockaddr_in *>(&ss);
    auto *a6 = reinterpret_cast<sockaddr_in6 *>(&ss);
    if (inet_pton(AF_INET, hp.host.c_str(), &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(static_cast<uint16_t>(hp.port));
        sslen = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, hp.host.c_str(), &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(static_cast<uint16_t>(hp.port));
        sslen = sizeof(sockaddr_in6);
        family = AF_INET6;
    } else if (hp.host == "localhost") {
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a4->sin_port = htons(static_cast<uint16_t>(hp.port));
        sslen = sizeof(sockaddr_in);
    } else {
        *error = flag + ": '" + hp.host + "' is not an IP address: give an IPv4 or IPv6 address, e.g. 0.0.0.0:8080";
        return -1;
    }
    int one = 1;
    std::lock_guard ownLock(ownReusePortMutex);
    if (reusePort && !(hp.port != 0 && ownReusePortAddresses.count(addressKey(ss, sslen)))) {
        int probe = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) {
            *error = flag + ": cannot create a socket: " + std::strerror(errno);
            return -1;
        }
        setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // TIME_WAIT leftovers are no owner
        if (::bind(probe, reinterpret_cast<sockaddr *>(&ss), sslen) != 0) {
            *error = bindError(hp, flag, hp.port, errno);
            ::close(probe);
            return -1;
        }
        if (hp.port == 0) {  // the free port the probe got is the group's
            sockaddr_storage got{};
            socklen_t gotLen = sizeof got;
            getsockname(probe, reinterpret_cast<sockaddr *>(&got), &gotLen);
            setPort(ss, portOf(got));
        }
        ::close(probe);
    }
    int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = flag + ": cannot create a socket: " + std::strerror(errno);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reusePort) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr *>(&ss), sslen) != 0 || ::listen(fd, 1024) != 0) {
        *error = bindError(hp, flag, portOf(ss), errno);
        ::close(fd);
        return -1;
    }
    if (reusePort && !steerToOwnSockets(fd, reusePortSockets, error)) {
        *error = flag + ": " + *error;
        ::close(fd);
        return -1;
    }
    sockaddr_storage bound{};
    socklen_t boundLen = sizeof bound;
    getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &boundLen);
    int port = portOf(bound);
    if (reusePort) {
        setPort(ss, port);
        ownReusePortAddresses.insert(addressKey(ss, sslen));
    }
    std::string host = hp.host == "localhost" ? "127.0.0.1" : hp.host;
    *boundAddress = (family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
    return fd;
}

namespace {
// IPv4-mapped IPv6 addresses are shown as IPv4.
std::string addressText(const sockaddr_storage &ss) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in *>(&ss)->sin_addr, buf, sizeof buf);
    } else if (ss.ss_family == AF_INET6) {
        const auto *a6 = reinterpret_cast<const sockaddr_in6 *>(&ss);
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
            inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], buf, sizeof buf);
        } else {
            inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof buf);
        }
    }
    return buf;
}
}  // namespace

int acceptWithPeer(int listenFd, std::string *peer) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = accept4(listenFd, reinterpret_cast<sockaddr *>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) *peer = addressText(ss);
    return fd;
}

}  // namespace wsgw
