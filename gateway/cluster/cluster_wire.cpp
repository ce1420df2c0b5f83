#include "cluster_wire.h"

namespace wsgw::cluster {

namespace {

void field(std::string &out, std::string_view v) {
    out += std::to_string(v.size());
    out += ':';
    out.append(v.data(), v.size());
}

bool readField(std::string_view &in, std::string &out) {
    size_t len = 0, i = 0;
    for (; i < in.size() && i < 10 && in[i] >= '0' && in[i] <= '9'; ++i) len = len * 10 + static_cast<size_t>(in[i] - '0');
    if (i == 0 || i >= in.size() || in[i] != ':') return false;
    in.remove_prefix(i + 1);
    if (len > in.size()) return false;
    out.assign(in.data(), len);
    in.remove_prefix(len);
    return true;
}

bool knownOp(char c) {
    return c == static_cast<char>(Op::Post) || c == static_cast<char>(Op::Delete) || c == static_cast<char>(Op::Join) ||
           c == static_cast<char>(Op::Leave) || c == static_cast<char>(Op::Deliver) || c == static_cast<char>(Op::Ack);
}

}  // namespace

std::string encode(const BusMessage &m) {
    std::string out;
    out.reserve(40 + m.origin.size() + m.token.size() + m.connectionId.size() + m.group.size() + m.data.size());
    out += static_cast<char>(m.op);
    field(out, m.origin);
    field(out, m.token);
    field(out, m.connectionId);
    field(out, m.group);
    out += m.binary ? '1' : '0';
    out += m.data;
    return out;
}

std::optional<BusMessage> decode(std::string_view in) {
    if (in.empty() || !knownOp(in[0])) return std::nullopt;
    BusMessage m;
    m.op = static_cast<Op>(in[0]);
    in.remove_prefix(1);
    if (!readField(in, m.origin) || !readField(in, m.token) || !readField(in, m.connectionId) || !readField(in, m.group)) return std::nullopt;
    if (in.empty() || (in[0] != '0' && in[0] != '1')) return std::nullopt;
    m.binary = in[0] == '1';
    in.remove_prefix(1);
    m.data.assign(in.data(), in.size());
    return m;
}

}  // namespace wsgw::cluster
