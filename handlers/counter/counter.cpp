// counter: the sample handler written with the C++ wrapper <wsgw/handler.hpp>. Each message is a whole
// number (empty counts as 1) added to the sender's count and to the instance's total; the reply is
// {"mine":M,"total":T}. Anything else is thrown as an exception, which the wrapper turns into an
// integration error and a log line. $connect joins the connection to a group (config "group", default
// "counter"), $disconnect logs what the connection counted. One object serves every connection of the
// instance, in parallel: the counts are under a mutex.
#include <wsgw/handler.hpp>

#include <rapidjson/document.h>

#include <charconv>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

class Counter : public wsgw::Handler {
public:
    Counter(wsgw::Host host, std::string_view configJson) : Handler(host) {
        rapidjson::Document config;
        config.Parse(configJson.data(), configJson.size());
        if (config.HasParseError() || !config.IsObject()) throw std::invalid_argument("counter: config is not a JSON object");
        if (auto it = config.FindMember("group"); it != config.MemberEnd()) {
            if (!it->value.IsString() || it->value.GetStringLength() == 0)
                throw std::invalid_argument("counter: config \"group\" must be a non-empty string");
            group_ = it->value.GetString();
        }
    }

    void onConnect(const wsgw::Event &event, wsgw::Response &) override {
        if (host().hasGroups() && host().addToGroup(group_, event.connectionId()) != wsgw::Result::Ok)
            throw std::runtime_error("counter: cannot join group " + group_);  // refused with 502 rather than left out
        std::lock_guard lock(mutex_);
        counts_.emplace(event.connectionId(), 0);
    }

    void onMessage(const wsgw::Event &event, std::string_view body, wsgw::Response &response) override {
        int64_t add = parseWholeNumber(body);
        int64_t mine, total;
        {
            std::lock_guard lock(mutex_);
            mine = counts_[std::string(event.connectionId())] += add;
            total = total_ += add;
        }
        response.send("{\"mine\":" + std::to_string(mine) + ",\"total\":" + std::to_string(total) + "}");
    }

    void onDisconnect(const wsgw::Event &event) override {
        int64_t mine = 0;
        {
            std::lock_guard lock(mutex_);
            auto it = counts_.find(std::string(event.connectionId()));
            if (it == counts_.end()) return;
            mine = it->second;
            counts_.erase(it);
        }
        host().log(wsgw::LogLevel::Info, "counter: " + std::string(event.connectionId()) + " left having counted " + std::to_string(mine));
    }

private:
    static int64_t parseWholeNumber(std::string_view body) {
        if (body.empty()) return 1;
        int64_t value = 0;
        std::string_view digits = body.front() == '+' ? body.substr(1) : body;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
        if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() ||
            value > 1'000'000'000 || value < -1'000'000'000)
            throw std::invalid_argument("counter: send a whole number from -1000000000 to 1000000000, got \"" +
                                        std::string(body.substr(0, 40)) + "\"");
        return value;
    }

    std::string group_ = "counter";
    std::mutex mutex_;
    std::unordered_map<std::string, int64_t> counts_;  // by connection ID
    int64_t total_ = 0;
};

}  // namespace

WSGW_HANDLER_CLASS(Counter, "counter")
