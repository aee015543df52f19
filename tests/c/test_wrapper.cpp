// The C++ wrapper (bindings/cpp/psa_mail_agent.hpp) over the long-lived host's calls, against
// the harness: password from the host, raw messages and an omitted attachment, partial
// acknowledgement, waiting for mail, cancellation from another thread, device-code sign-in
// refused for Basic, errors as pma::Error with the thread's message. Run by scripts/test-c with
// the environment of test_ffi.c (PMA_TEST_USER holds 3 unread messages, PMA_TEST_USER2 is
// empty, PMA_TEST_STATE is fresh).
#include "psa_mail_agent.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

static int checks = 0;
static int failures = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        checks++;                                                                       \
        if (!(cond)) {                                                                  \
            failures++;                                                                 \
            std::cerr << __FILE__ << ":" << __LINE__ << ": check failed: " #cond "\n";  \
        }                                                                               \
    } while (0)

static std::string env(const char *name) {
    const char *v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
        std::cerr << "missing environment variable " << name << " (run scripts/test-c)\n";
        std::exit(2);
    }
    return v;
}

static std::string mailbox(const std::string &name, const std::string &user,
                           const std::string &extra) {
    return "{\"name\": \"" + name + "\", \"email\": \"" + user +
           "\", \"imap\": {\"server\": \"127.0.0.1\", \"port\": " + env("PMA_IMAPS_PORT") +
           ", \"ca_file\": \"" + env("PMA_CA_FILE") + "\"}" + extra + "}";
}

// The pma_result of what `f` throws (PMA_OK when it throws nothing), and its message.
template <typename F>
static pma_result thrown(F f, std::string *message = nullptr) {
    try {
        f();
    } catch (const pma::Error &e) {
        if (message != nullptr) {
            *message = e.what();
        }
        return e.code();
    }
    return PMA_OK;
}

int main() {
    const std::string state = env("PMA_TEST_STATE");
    {
        pma::Agent agent(mailbox("cpp-raw", env("PMA_TEST_USER"),
                                 ", \"keep_raw\": true, \"max_attachment_bytes\": 10"),
                         state);
        std::string message;
        CHECK(thrown([&] { agent.fetch(1); }, &message) == PMA_CONFIG);
        CHECK(message.find("password") != std::string::npos);
        agent.set_password(env("PMA_PASSWORD"));
        CHECK(agent.test_connection().healthy());
        pma::Batch batch = agent.fetch(10);
        CHECK(batch.size() == 3);
        pma::Bytes raw = batch.raw(0);
        std::string text(reinterpret_cast<const char *>(raw.data), raw.size);
        CHECK(text.find("Message-ID: <c-ffi-1@example.com>") != std::string::npos);
        CHECK(thrown([&] { batch.attachment(1, 0); }, &message) == PMA_ATTACHMENT_OMITTED);
        CHECK(message.find("max_attachment_bytes") != std::string::npos);
        CHECK(batch.ticket_json(1).find("\"omitted\":\"too_large\"") != std::string::npos);
        // Only the first was stored: the other two come again.
        agent.ack_tickets(batch, 1);
        CHECK(thrown([&] { agent.ack(batch); }) == PMA_ALREADY_ACKED);
        pma::Batch rest = agent.fetch(10);
        CHECK(rest.size() == 2);
        CHECK(rest.ticket_json(0).find("c-ffi-2@example.com") != std::string::npos);
        agent.ack(rest);
        CHECK(agent.fetch(10).empty());
        CHECK(thrown([&] { agent.device_login_begin(); }, &message) == PMA_CONFIG);
        CHECK(message.find("oauth") != std::string::npos);
        CHECK(thrown([&] { agent.device_login_complete(); }) == PMA_CONFIG);
        CHECK(agent.last_error().find("oauth") != std::string::npos);
    }
    {
        pma::Agent agent(mailbox("cpp-wait", env("PMA_TEST_USER2"), ""), state);
        agent.set_password(env("PMA_PASSWORD"));
        CHECK(!agent.wait_for_mail(0));
        agent.set_client_secret("unused-by-basic");
        // A wait of a minute, ended from another thread.
        std::atomic<bool> done(false);
        std::thread canceller([&] {
            while (!done) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                agent.cancel();
            }
        });
        pma_result rc = thrown([&] { agent.wait_for_mail(60000); });
        done = true;
        canceller.join();
        CHECK(rc == PMA_CANCELLED);
        CHECK(!agent.wait_for_mail(0)); // works after the cancel
        CHECK(thrown([&] { agent.set_password(""); }) == PMA_INVALID_ARGUMENT);
    }
    std::cout << "test_wrapper: " << checks << " checks, " << failures << " failed\n";
    return failures == 0 ? 0 : 1;
}
