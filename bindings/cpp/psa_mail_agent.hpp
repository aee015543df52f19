// Header-only C++17 RAII wrapper over the psa-mail-agent C API (include/psa_mail_agent.h).
//
// Handles are owned by std::unique_ptr with the library's free functions; every failed call
// throws pma::Error carrying the pma_result code and the library's message (cause and fix),
// read from the calling thread's last error (never another thread's). Thread safety is the C
// API's: an Agent may be used from several threads (calls are serialised), Agent::cancel()
// from any thread ends the blocking call in progress (it throws pma::Error with
// PMA_CANCELLED); Batch and Report are immutable.
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

/// The last error recorded for `agent` (nullptr: the calling thread's last failed call).
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

/// Throws for a failed call, with the calling thread's last error (exact even when other
/// threads use the same agent).
inline void check(pma_result rc) {
    if (rc != PMA_OK) {
        throw Error(rc, last_error(nullptr));
    }
}

/// Accessors of batches and reports: the call's name and the thread's last error.
inline void check_accessor(pma_result rc, const char *what) {
    if (rc != PMA_OK) {
        throw Error(rc, std::string(what) + ": " + last_error(nullptr));
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

    /// Decoded bytes of attachment `a` of ticket `i`. Throws pma::Error with
    /// PMA_ATTACHMENT_OMITTED for one over max_attachment_bytes (the ticket JSON marks it
    /// "omitted": "too_large").
    Bytes attachment(size_t i, size_t a) const {
        const uint8_t *p = nullptr;
        size_t len = 0;
        detail::check_accessor(pma_batch_attachment(raw_.get(), i, a, &p, &len),
                               "pma_batch_attachment");
        return Bytes{p, len};
    }

    /// The safe, unique file name to store attachment `a` of ticket `i` under (its
    /// "save_as"); the sender's own name is the JSON's "filename".
    std::string_view attachment_save_as(size_t i, size_t a) const {
        const char *p = nullptr;
        size_t len = 0;
        detail::check_accessor(pma_batch_attachment_save_as(raw_.get(), i, a, &p, &len),
                               "pma_batch_attachment_save_as");
        return std::string_view(p, len);
    }

    /// The raw RFC 822 message of ticket `i` (mailbox option "keep_raw": true; else throws
    /// PMA_RAW_NOT_KEPT).
    Bytes raw(size_t i) const {
        const uint8_t *p = nullptr;
        size_t len = 0;
        detail::check_accessor(pma_batch_raw(raw_.get(), i, &p, &len), "pma_batch_raw");
        return Bytes{p, len};
    }

    const pma_batch *get() const noexcept { return raw_.get(); }

private:
    std::unique_ptr<pma_batch, detail::BatchDeleter> raw_;
};

/// What the person signing in with a device code must do (copied from the agent's prompt).
struct DevicePrompt {
    std::string verification_uri;
    std::string user_code;
    std::string message;
    uint64_t expires_in_secs;
};

/// The agent for one mailbox. Movable, not copyable; freed (logged out, lock released,
/// secrets wiped) when destroyed.
class Agent {
public:
    /// One entry of the configuration's "mailboxes" array; state_dir defaults to "./state".
    explicit Agent(const std::string &mailbox_json,
                   const std::optional<std::string> &state_dir = std::nullopt) {
        pma_agent *raw = nullptr;
        detail::check(pma_init(mailbox_json.c_str(), detail::c_str_or_null(state_dir), &raw));
        raw_.reset(raw);
    }

    /// Registers a mail the PSA sent for a ticket, so replies to it are threaded to that ticket.
    void register_sent(const std::string &message_id, const std::string &ticket_number) {
        detail::check(pma_register_sent(raw_.get(), message_id.c_str(), ticket_number.c_str()));
    }

    /// Enables OAuth 2.0 with the app registration's IDs (and client secret for app-only).
    void set_oauth_credentials(const std::string &application_id, const std::string &directory_id,
                               const std::optional<std::string> &client_secret = std::nullopt) {
        detail::check(pma_set_oauth_credentials(raw_.get(), application_id.c_str(),
                                                directory_id.c_str(),
                                                detail::c_str_or_null(client_secret)));
    }

    /// Sets the mailbox password from the host's own store (copied; wiped when replaced or
    /// freed). A different password drops the tokens obtained with the old one.
    void set_password(const std::string &password) {
        detail::check(pma_set_password(raw_.get(), password.c_str()));
    }

    /// Sets the OAuth client secret from the host's own store, like set_password.
    void set_client_secret(const std::string &client_secret) {
        detail::check(pma_set_client_secret(raw_.get(), client_secret.c_str()));
    }

    /// Tests the connection step by step; a failing step is in the report, not thrown.
    Report test_connection() {
        pma_report *raw = nullptr;
        detail::check(pma_test_connection(raw_.get(), &raw));
        return Report(raw);
    }

    /// Fetches up to `max` new tickets.
    Batch fetch(size_t max = 50) {
        pma_batch *raw = nullptr;
        detail::check(pma_fetch_tickets(raw_.get(), max, &raw));
        return Batch(raw);
    }

    /// Acknowledges a stored batch (marks its mail processed on the server).
    void ack(const Batch &batch) { detail::check(pma_ack(raw_.get(), batch.get())); }

    /// Acknowledges the first `count` tickets of a batch (what was stored); the others come
    /// again with the next fetch.
    void ack_tickets(const Batch &batch, size_t count) {
        detail::check(pma_ack_tickets(raw_.get(), batch.get(), count));
    }

    /// Waits (IMAP IDLE) until mail arrives or `timeout_ms` passes; true when there is mail
    /// to fetch.
    bool wait_for_mail(uint64_t timeout_ms) {
        bool arrived = false;
        detail::check(pma_wait_for_mail(raw_.get(), timeout_ms, &arrived));
        return arrived;
    }

    /// From any thread: ends the blocking call in progress on this agent (it throws
    /// pma::Error with PMA_CANCELLED). Never blocks.
    void cancel() noexcept { (void)pma_cancel(raw_.get()); }

    /// Begins a device-code sign-in: what the person must do, to show in the host's UI.
    DevicePrompt device_login_begin() {
        pma_device_prompt p;
        detail::check(pma_device_login_begin(raw_.get(), &p));
        return DevicePrompt{p.verification_uri, p.user_code, p.message, p.expires_in_secs};
    }

    /// Waits until the person signed in (cancellable); the tokens are then cached.
    void device_login_complete() { detail::check(pma_device_login_complete(raw_.get())); }

    /// The message of the last failed call on this agent, from any thread.
    std::string last_error() const { return detail::last_error(raw_.get()); }

    pma_agent *get() const noexcept { return raw_.get(); }

private:
    std::unique_ptr<pma_agent, detail::AgentDeleter> raw_;
};

}  // namespace pma

#endif  // PSA_MAIL_AGENT_HPP
