// wsgw-ctl: post to, describe, close and list connections of a running gateway through its management
// API, from a shell. Exit status: 0 done, 1 the connection is gone (410), 2 usage error, 3 refused by the
// gateway (other 4xx/5xx), 4 the gateway could not be reached.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <netdb.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

const char kUsage[] =
    "usage: wsgw-ctl [--endpoint URL] [--token TOKEN] COMMAND\n"
    "  post ID DATA     send DATA (or '-' for standard input) to connection ID\n"
    "  get ID           print the connection's JSON (connectedAt, identity, lastActiveAt)\n"
    "  delete ID        close the connection (its $disconnect runs)\n"
    "  list [--limit N] print live connections, one JSON object a line (follows every page)\n"
    "options:\n"
    "  --endpoint URL   management API, default http://127.0.0.1:9001 [WSGW_ENDPOINT]\n"
    "  --token TOKEN    bearer token when the gateway requires credentials [WSGW_TOKEN]\n"
    "exit status: 0 ok, 1 connection gone (410), 2 usage, 3 refused by the gateway, 4 unreachable\n";

struct Endpoint {
    std::string host, port, prefix;
};

bool parseEndpoint(const std::string &url, Endpoint &ep) {
    const std::string scheme = "http://";
    if (url.rfind(scheme, 0) != 0) return false;
    std::string rest = url.substr(scheme.size());
    size_t slash = rest.find('/');
    std::string hostPort = rest.substr(0, slash);
    ep.prefix = slash == std::string::npos ? "" : rest.substr(slash);
    while (!ep.prefix.empty() && ep.prefix.back() == '/') ep.prefix.pop_back();
    size_t colon = hostPort.rfind(':');
    ep.host = colon == std::string::npos ? hostPort : hostPort.substr(0, colon);
    ep.port = colon == std::string::npos ? "80" : hostPort.substr(colon + 1);
    return !ep.host.empty();
}

struct Reply {
    int status = 0;
    std::string body;
};

// One request on a fresh connection; false when the gateway cannot be reached.
bool request(const Endpoint &ep, const std::string &method, const std::string &path, const std::string &body,
             const std::string &token, Reply &reply, std::string &error) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (int rc = getaddrinfo(ep.host.c_str(), ep.port.c_str(), &hints, &res); rc != 0) {
        error = std::string("cannot resolve ") + ep.host + ": " + gai_strerror(rc);
        return false;
    }
    int fd = -1;
    for (addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error = "cannot connect to " + ep.host + ":" + ep.port + ": " + std::strerror(errno) + " (is wsgw running? see --endpoint)";
        return false;
    }
    std::string req = method + " " + ep.prefix + path + " HTTP/1.1\r\nHost: " + ep.host + "\r\nConnection: close\r\n";
    if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    for (size_t off = 0; off < req.size();) {
        ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            error = std::string("sending the request failed: ") + std::strerror(errno);
            close(fd);
            return false;
        }
        off += static_cast<size_t>(n);
    }
    std::string in;
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    size_t headEnd = in.find("\r\n\r\n");
    if (in.rfind("HTTP/1.", 0) != 0 || headEnd == std::string::npos || in.size() < 12) {
        error = "the gateway sent no valid HTTP answer";
        return false;
    }
    reply.status = std::atoi(in.c_str() + 9);
    reply.body = in.substr(headEnd + 4);
    return true;
}

// The gateway's {"message": "..."} text, or the whole body.
std::string messageOf(const std::string &body) {
    size_t at = body.find("\"message\":\"");
    if (at == std::string::npos) return body;
    at += 11;
    size_t end = body.find('"', at);
    return body.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

int finish(const Reply &r, const std::string &what) {
    if (r.status >= 200 && r.status < 300) return 0;
    std::fprintf(stderr, "wsgw-ctl: %s: %d %s\n", what.c_str(), r.status, messageOf(r.body).c_str());
    return r.status == 410 ? 1 : 3;
}

}  // namespace

int main(int argc, char **argv) {
    std::string endpoint = std::getenv("WSGW_ENDPOINT") ? std::getenv("WSGW_ENDPOINT") : "http://127.0.0.1:9001";
    std::string token = std::getenv("WSGW_TOKEN") ? std::getenv("WSGW_TOKEN") : "";
    std::vector<std::string> args;
    long limit = 100;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if ((a == "--endpoint" || a == "--token" || a == "--limit") && i + 1 >= argc) {
            std::fprintf(stderr, "wsgw-ctl: %s needs a value\n%s", a.c_str(), kUsage);
            return 2;
        }
        if (a == "--endpoint") endpoint = argv[++i];
        else if (a == "--token") token = argv[++i];
        else if (a == "--limit") limit = std::strtol(argv[++i], nullptr, 10);
        else if (a.rfind("--", 0) == 0) {
            std::fprintf(stderr, "wsgw-ctl: unknown option %s\n%s", a.c_str(), kUsage);
            return 2;
        } else args.push_back(a);
    }
    Endpoint ep;
    if (!parseEndpoint(endpoint, ep)) {
        std::fprintf(stderr, "wsgw-ctl: --endpoint must look like http://HOST:PORT[/stage], got '%s'\n", endpoint.c_str());
        return 2;
    }
    if (args.empty()) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    const std::string &cmd = args[0];
    bool needsId = cmd == "post" || cmd == "get" || cmd == "delete";
    if ((needsId && args.size() != (cmd == "post" ? 3u : 2u)) || (cmd == "list" && args.size() != 1) ||
        (!needsId && cmd != "list") || limit < 1 || limit > 1000) {
        std::fprintf(stderr, "wsgw-ctl: wrong arguments for '%s'\n%s", cmd.c_str(), kUsage);
        return 2;
    }
    Reply reply;
    std::string error;
    auto call = [&](const std::string &method, const std::string &path, const std::string &body) {
        if (!request(ep, method, path, body, token, reply, error)) {
            std::fprintf(stderr, "wsgw-ctl: %s\n", error.c_str());
            return false;
        }
        return true;
    };
    if (cmd == "list") {
        std::string cursor;
        for (int page = 0; page < 100000; ++page) {
            std::string path = "/@connections?limit=" + std::to_string(limit);
            if (!cursor.empty()) path += "&cursor=" + cursor;
            if (!call("GET", path, "")) return 4;
            if (int rc = finish(reply, "list"); rc != 0) return rc;
            rapidjson::Document doc;
            doc.Parse(reply.body.c_str(), reply.body.size());
            if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("items") || !doc["items"].IsArray()) {
                std::fprintf(stderr, "wsgw-ctl: list: the gateway answered something that is not a connection list\n");
                return 3;
            }
            for (const auto &item : doc["items"].GetArray()) {
                rapidjson::StringBuffer buf;
                rapidjson::Writer<rapidjson::StringBuffer> w(buf);
                item.Accept(w);
                std::cout << buf.GetString() << "\n";
            }
            if (!doc.HasMember("nextCursor") || !doc["nextCursor"].IsString()) break;
            cursor = doc["nextCursor"].GetString();
        }
        return 0;
    }
    const std::string path = "/@connections/" + args[1];
    if (cmd == "post") {
        std::string data = args[2];
        if (data == "-") data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
        if (!call("POST", path, data)) return 4;
        return finish(reply, "post " + args[1]);
    }
    if (cmd == "get") {
        if (!call("GET", path, "")) return 4;
        int rc = finish(reply, "get " + args[1]);
        if (rc == 0) std::cout << reply.body << "\n";
        return rc;
    }
    if (!call("DELETE", path, "")) return 4;
    return finish(reply, "delete " + args[1]);
}
