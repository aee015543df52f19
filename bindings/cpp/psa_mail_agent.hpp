// Header-only C++17 RAII wrapper over the psa-mail-agent C API (include/psa_mail_agent.h).
//
// Handles are owned by std::unique_ptr with the library's free functions; every failed call
// throws pma::Error carrying the pma_result code and the library's message (cause and fix).
// Thread safety is the C API's: an Agent may be used from several threads (calls are
// serialised), Batch and Report are immutable.
#ifndef PSA_MAIL_AGENT_HPP
#define PSA_MAIL_AGENT_HPP

#include "psa_mail_agent.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pma {

/// A failed call: the code (pma_result) and the message with the administrator's fix.
class Error : public std::runtime_error {
public:
    Error(pma_result code, const std::string &message)
        : std::runtime_error(std::string(pma_result_str(code)) + ": " + message), code_(code) {}

    /// The pma_result of the failed call.
    pma_result code() const noexcept { return code_; }

private:
    pma_result code_;
};

namespace detail {

struct AgentDeleter {
    void operator()(pma_agent *p) const noexcept { pma_free(p); }
};
struct BatchDeleter {
    void operator()(pma_batch *p) const noexcept { pma_batch_free(p); }
};
struct ReportDeleter {
    void operator()(pma_report *p) const noexcept { pma_report_free(p); }
};

/// The last error recorded for `agent` (nullptr: this thread's failed pma_init).
inline std::string last_error(const pma_agent *agent) {
    size_t needed = 0;
    if (pma_last_error(agent, nullptr, 0, &needed) != PMA_BUFFER_TOO_SMALL) {
        return std::string();
    }
    std::vector<char> buf(needed);
    size_t n = 0;
    if (pma_last_error(agent, buf.data(), buf.size(), &n) != PMA_OK) {
        return std::string();
    }
    return std::string(buf.data(), n);
}

inline void check(pma_result rc, const pma_agent *agent) {
    if (rc != PMA_OK) {
        throw Error(rc, last_error(agent));
    }
}

/// Accessors of batches and reports record no message: name the call instead.
inline void check_accessor(pma_result rc, const char *what) {
    if (rc != PMA_OK) {
        throw Error(rc, what);
    }
}

inline const char *c_str_or_null(const std::optional<std::string> &s) {
    return s ? s->c_str() : nullptr;
}

}  // namespace detail

/// The library's version, "MAJOR.MINOR.PATCH".
inline std::string version() { return pma_version(); }

/// One step of a connection test.
struct Step {
    std::string name;
    pma_step_status status;
    pma_result result;
    uint64_t duration_ms;
    std::string detail;
    std::optional<std::string> fix;
};

/// The result of Agent::test_connection.
class Report {
public:
    explicit Report(pma_report *raw) : raw_(raw) {}

    /// Whether every step passed.
    bool healthy() const noexcept { return pma_report_healthy(raw_.get()); }

    /// Every step in order.
    std::vector<Step> steps() const {
        std::vector<Step> out;
        size_t n = pma_report_step_count(raw_.get());
        for (size_t i = 0; i < n; i++) {
            pma_step s;
            detail::check_accessor(pma_report_step(raw_.get(), i, &s), "pma_report_step");
            out.push_back(Step{s.name, s.status, s.result, s.duration_ms, s.detail,
                               s.fix ? std::optional<std::string>(s.fix) : std::nullopt});
        }
        return out;
    }

    /// The report as JSON (valid while the Report lives).
    std::string_view json() const {
        const char *p = nullptr;
        size_t len = 0;
        detail::check_accessor(pma_report_json(raw_.get(), &p, &len), "pma_report_json");
        return std::string_view(p, len);
    }

private:
    std::unique_ptr<pma_report, detail::ReportDeleter> raw_;
};

/// Raw bytes owned by a Batch (valid while the Batch lives).
struct Bytes {
    const uint8_t *data;
    size_t size;
};

/// The tickets of one fetch. Acknowledge with Agent::ack after storing them.
class Batch {
public:
    explicit Batch(pma_batch *raw) : raw_(raw) {}

    /// Number of tickets (0: nothing was waiting).
    size_t size() const noexcept { return pma_batch_count(raw_.get()); }
    bool empty() const noexcept { return size() == 0; }

    /// All tickets as one JSON array (valid while the Batch lives).
    std::string_view json() const {
        const char *p = nullptr;
        size_t len = 0;
        detail::check_accessor(pma_batch_json(raw_.get(), &p, &len), "pma_batch_json");
        return std::string_view(p, len);
    }

    /// Ticket `i` as a JSON object (valid while the Batch lives).
    std::string_view ticket_json(size_t i) const {
        const char *p = nullptr;
        size_t len = 0;
        detail::check_accessor(pma_batch_ticket_json(raw_.get(), i, &p, &len),
                               "pma_batch_ticket_json");
        return std::string_view(p, len);
    }

    /// Number of attachments of ticket `i`.
    size_t attachment_count(size_t i) const noexcept {
        return pma_batch_attachment_count(raw_.get(), i);
    }

    /// Decoded bytes of attachment `a` of ticket `i`.
    Bytes attachment(size_t i, size_t a) const {
        const uint8_t *p = nullptr;
        size_t len = 0;
        detail::check_accessor(pma_batch_attachment(raw_.get(), i, a, &p, &len),
                               "pma_batch_attachment");
        return Bytes{p, len};
    }

    const pma_batch *get() const noexcept { return raw_.get(); }

private:
    std::unique_ptr<pma_batch, detail::BatchDeleter> raw_;
};

/// The agent for one mailbox. Movable, not copyable; freed (logged out, lock released,
/// secrets wiped) when destroyed.
class Agent {
public:
    /// One entry of the configuration's "mailboxes" array; state_dir defaults to "./state".
    explicit Agent(const std::string &mailbox_json,
                   const std::optional<std::string> &state_dir = std::nullopt) {
        pma_agent *raw = nullptr;
        detail::check(pma_init(mailbox_json.c_str(), detail::c_str_or_null(state_dir), &raw),
                      nullptr);
        raw_.reset(raw);
    }

    /// Registers a mail the PSA sent for a ticket, so replies to it are threaded to that ticket.
    void register_sent(const std::string &message_id, const std::string &ticket_number) {
        detail::check(pma_register_sent(raw_.get(), message_id.c_str(), ticket_number.c_str()),
                      raw_.get());
    }

    /// Enables OAuth 2.0 with the app registration's IDs (and client secret for app-only).
    void set_oauth_credentials(const std::string &application_id, const std::string &directory_id,
                               const std::optional<std::string> &client_secret = std::nullopt) {
        detail::check(pma_set_oauth_credentials(raw_.get(), application_id.c_str(),
                                                directory_id.c_str(),
                                                detail::c_str_or_null(client_secret)),
                      raw_.get());
    }

    /// Tests the connection step by step; a failing step is in the report, not thrown.
    Report test_connection() {
        pma_report *raw = nullptr;
        detail::check(pma_test_connection(raw_.get(), &raw), raw_.get());
        return Report(raw);
    }

    /// Fetches up to `max` new tickets.
    Batch fetch(size_t max = 50) {
        pma_batch *raw = nullptr;
        detail::check(pma_fetch_tickets(raw_.get(), max, &raw), raw_.get());
        return Batch(raw);
    }

    /// Acknowledges a stored batch (marks its mail processed on the server).
    void ack(const Batch &batch) { detail::check(pma_ack(raw_.get(), batch.get()), raw_.get()); }

    pma_agent *get() const noexcept { return raw_.get(); }

private:
    std::unique_ptr<pma_agent, detail::AgentDeleter> raw_;
};

}  // namespace pma

#endif  // PSA_MAIL_AGENT_HPP
