// Owns: reading an upgrade head from its socket and the answers written before closing it (upgrade_head_io.h).
#include "upgrade_head_io.h"

#include "base64.h"

#include <cerrno>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgw {

HeadRead receiveHeadBytes(int fd, std::string &head) {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return HeadRead::Closed;
    if (n < 0) return HeadRead::Wait;
    head.append(buf, static_cast<size_t>(n));
    return HeadRead::Received;
}

void answerAndClose(int fd, const std::string *response) {
    if (response) {
        size_t off = 0;
        while (off < response->size()) {
            ssize_t n = ::send(fd, response->data() + off, response->size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n <= 0) break;
            off += static_cast<size_t>(n);
        }
    }
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
}

std::string websocketAcceptKey(std::string_view clientKey) {
    std::string input(clientKey);
    input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr) != 1) return {};
    return encodeBase64(digest, len, kBase64Standard, true);
}

std::string renderUpgradeThenClose(std::string_view clientKey, const std::string &subprotocol, int code, std::string_view reason) {
    std::string response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: " + websocketAcceptKey(clientKey) + "\r\n";
    if (!subprotocol.empty()) response += "Sec-WebSocket-Protocol: " + subprotocol + "\r\n";
    response += "\r\n";
    std::string_view why = reason;
    if (why.size() > 123) {  // a control frame carries 125 bytes; cut where a character starts
        size_t n = 123;
        while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
        why = why.substr(0, n);
    }
    response += static_cast<char>(0x88);
    response += static_cast<char>(2 + why.size());
    response += static_cast<char>((code >> 8) & 0xFF);
    response += static_cast<char>(code & 0xFF);
    response.append(why);
    return response;
}

}  // namespace wsgw
