// The cluster wire format (cluster_wire.h): encoding and strict decoding of one bus message.
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
           c == static_cast<char>(Op::Leave) || c == static_cast<char>(Op::Deliver) || c == static_cast<char>(Op::Ack) ||
           c == static_cast<char>(Op::CloseAll);
}

constexpr char kWpsForm = 'W';
constexpr char kExcludedPart = 'x';

char dataTypeChar(WpsDataType t) {
    switch (t) {
    case WpsDataType::Json: return 'j';
    case WpsDataType::Text: return 't';
    case WpsDataType::Binary: return 'b';
    }
    return 't';
}

std::optional<WpsDataType> dataTypeOf(char c) {
    if (c == 'j') return WpsDataType::Json;
    if (c == 't') return WpsDataType::Text;
    if (c == 'b') return WpsDataType::Binary;
    return std::nullopt;
}

// The Web PubSub form's part after 'W', up to the data.
bool readWpsRendering(std::string_view &in, WpsRendering &out) {
    if (in.size() < 2) return false;
    auto type = dataTypeOf(in[0]);
    if (!type || (in[1] != 's' && in[1] != 'g')) return false;
    out.dataType = *type;
    out.fromGroup = in[1] == 'g';
    in.remove_prefix(2);
    if (!readField(in, out.fromUserId)) return false;
    return out.fromGroup || out.fromUserId.empty();  // a message from the server has no publisher
}

// The 'x' part's list, after its 'x': one or more non-empty connection IDs, each a field, filling the list.
bool readExcluded(std::string_view &in, std::vector<std::string> &out) {
    std::string list;
    if (!readField(in, list)) return false;
    std::string_view rest(list);
    while (!rest.empty()) {
        std::string id;
        if (!readField(rest, id) || id.empty()) return false;
        out.push_back(std::move(id));
    }
    return !out.empty();
}

}  // namespace

bool plainFormRendersAlike(const WpsRendering &r) { return !r.fromGroup && r.dataType != WpsDataType::Json; }

std::string encode(const BusMessage &m) {
    std::string out;
    size_t excludedBytes = 0;
    for (const auto &id : m.excluded) excludedBytes += 12 + id.size();
    out.reserve(60 + m.origin.size() + m.token.size() + m.connectionId.size() + m.group.size() + m.data.size() +
                (m.wps ? m.wps->fromUserId.size() : 0) + excludedBytes);
    out += static_cast<char>(m.op);
    field(out, m.origin);
    field(out, m.token);
    field(out, m.connectionId);
    field(out, m.group);
    if (!m.excluded.empty()) {
        std::string list;
        list.reserve(excludedBytes);
        for (const auto &id : m.excluded) field(list, id);
        out += kExcludedPart;
        field(out, list);
    }
    if (m.wps) {
        out += kWpsForm;
        out += dataTypeChar(m.wps->dataType);
        out += m.wps->fromGroup ? 'g' : 's';
        field(out, m.wps->fromGroup ? std::string_view(m.wps->fromUserId) : std::string_view());
    } else {
        out += (m.op == Op::Delete ? m.wpsClose : m.binary) ? '1' : '0';
    }
    out += m.data;
    return out;
}

std::optional<BusMessage> decode(std::string_view in) {
    if (in.empty() || !knownOp(in[0])) return std::nullopt;
    BusMessage m;
    m.op = static_cast<Op>(in[0]);
    in.remove_prefix(1);
    if (!readField(in, m.origin) || !readField(in, m.token) || !readField(in, m.connectionId) || !readField(in, m.group)) return std::nullopt;
    if (in.empty()) return std::nullopt;
    if (in[0] == kExcludedPart) {
        if (m.op != Op::Deliver && m.op != Op::CloseAll) return std::nullopt;  // only these reach many connections
        in.remove_prefix(1);
        if (!readExcluded(in, m.excluded) || in.empty()) return std::nullopt;
    }
    if (in[0] == kWpsForm) {
        if (m.op != Op::Post && m.op != Op::Deliver) return std::nullopt;  // only sends have a rendering
        in.remove_prefix(1);
        WpsRendering wps;
        if (!readWpsRendering(in, wps)) return std::nullopt;
        m.binary = wps.dataType == WpsDataType::Binary;
        m.wps = std::move(wps);
    } else {
        if (in[0] != '0' && in[0] != '1') return std::nullopt;
        if (m.op == Op::Delete) m.wpsClose = in[0] == '1';
        else m.binary = in[0] == '1';
        in.remove_prefix(1);
    }
    // A close of every connection names none and is not answered.
    if (m.op == Op::CloseAll && (!m.token.empty() || !m.connectionId.empty() || !m.group.empty() || m.binary)) return std::nullopt;
    m.data.assign(in.data(), in.size());
    return m;
}

}  // namespace wsgw::cluster
