/*
 * Tests of the C API against the real Dovecot harness: every export, every misuse (NULL
 * arguments, invalid UTF-8, too-small buffers, wrong handle kinds, a foreign batch, calls after
 * a failed init), eight threads sharing one handle, and the log callback never seeing a secret.
 *
 * Run by scripts/test-c, which seeds the mailbox and sets the environment:
 *   PMA_TEST_USER   a fresh mailbox holding exactly 3 unread messages (one with hello.txt)
 *   PMA_TEST_USER2  another fresh mailbox (for the foreign-batch test)
 *   PMA_TEST_STATE  a fresh state directory
 *   and the harness's PMA_CA_FILE, PMA_IMAPS_PORT, PMA_PASSWORD, PMA_IDP_URL.
 *
 * Written in the common subset of C99 and C++ so scripts/test-c also compiles it with g++
 * (proving the header's extern "C"), and links it once against the static library.
 */
#define _POSIX_C_SOURCE 200809L
#include "psa_mail_agent.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                       \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                 \
    } while (0)

#define CHECK_RC(expr, want)                                              \
    do {                                                                  \
        pma_result rc_ = (expr);                                          \
        checks++;                                                         \
        if (rc_ != (want)) {                                              \
            failures++;                                                   \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__, __LINE__, #expr, \
                    pma_result_str(rc_), pma_result_str(want));           \
        }                                                                 \
    } while (0)

static const char *env(const char *name) {
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        fprintf(stderr, "missing environment variable %s (run scripts/test-c)\n", name);
        exit(2);
    }
    return v;
}

/* The last error of `agent` (NULL: this thread's handle-less error) in a static buffer. */
static const char *last_error(const pma_agent *agent) {
    static char buf[4096];
    size_t n = 0;
    if (pma_last_error(agent, buf, sizeof buf, &n) != PMA_OK) {
        return "(pma_last_error failed)";
    }
    return buf;
}

static char *mailbox_json(const char *name, const char *user, const char *password_key,
                          const char *password_value, const char *extra) {
    static char buf[8][2048];
    static int next = 0;
    char *out = buf[next++ % 8];
    snprintf(out, sizeof buf[0],
             "{\"name\": \"%s\", \"email\": \"%s\", \"username\": \"%s\", \"%s\": \"%s\","
             " \"imap\": {\"server\": \"127.0.0.1\", \"port\": %s, \"encryption\": \"ssl\","
             " \"ca_file\": \"%s\", \"timeout_secs\": 20}%s}",
             name, user, user, password_key, password_value, env("PMA_IMAPS_PORT"),
             env("PMA_CA_FILE"), extra);
    return out;
}

static void test_static_functions(void) {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", PMA_VERSION_MAJOR, PMA_VERSION_MINOR,
             PMA_VERSION_PATCH);
    CHECK(strcmp(pma_version(), want) == 0);
    CHECK(strcmp(pma_result_str(PMA_OK), "PMA_OK") == 0);
    CHECK(strcmp(pma_result_str(PMA_LOGIN_FAILED), "PMA_LOGIN_FAILED") == 0);
    CHECK(strcmp(pma_result_str(PMA_OAUTH_GRANT_REVOKED), "PMA_OAUTH_GRANT_REVOKED") == 0);
    CHECK(strcmp(pma_result_str(4242), "PMA_UNKNOWN") == 0);
    CHECK(PMA_OK == 0);
}

static void test_init_misuse(void) {
    pma_agent *sentinel = (pma_agent *)(void *)&failures; /* must stay untouched */
    pma_agent *agent = sentinel;
    const char *good = mailbox_json("misuse", "misuse@contoso.test", "password_env", "PMA_PASSWORD", "");
    char bad_utf8[] = {'{', '"', (char)0xff, (char)0xfe, '"', '}', 0};
    char bad_dir[] = {'/', 't', 'm', 'p', '/', (char)0xc3, (char)0x28, 0};

    CHECK_RC(pma_init(NULL, NULL, &agent), PMA_NULL_ARGUMENT);
    CHECK(agent == sentinel);
    CHECK(strstr(last_error(NULL), "mailbox_json") != NULL);
    CHECK_RC(pma_init(good, NULL, NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_init(bad_utf8, NULL, &agent), PMA_INVALID_UTF8);
    CHECK(agent == sentinel);
    CHECK_RC(pma_init(good, bad_dir, &agent), PMA_INVALID_UTF8);
    CHECK(strstr(last_error(NULL), "state_dir") != NULL);
    CHECK(agent == sentinel);

    /* A configuration error names the key. */
    CHECK_RC(pma_init("{\"name\": \"x\", \"email\": \"x@contoso.test\", \"username\": \"x\","
                      " \"password\": \"p\", \"imap\": {\"port\": \"abc\"}}",
                      env("PMA_TEST_STATE"), &agent),
             PMA_CONFIG);
    CHECK(agent == sentinel);
    CHECK(strstr(last_error(NULL), "imap.port") != NULL);
    CHECK_RC(pma_init("not json", NULL, &agent), PMA_CONFIG);
    CHECK(agent == sentinel);

    /* Calls after the failed init: the handle was never written, so it is still NULL. */
    agent = NULL;
    CHECK_RC(pma_init("{}", NULL, &agent), PMA_CONFIG);
    CHECK(agent == NULL);
    pma_batch *batch = NULL;
    pma_report *report = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_NULL_ARGUMENT);
    CHECK(batch == NULL);
    CHECK_RC(pma_test_connection(agent, &report), PMA_NULL_ARGUMENT);
    CHECK(report == NULL);
    CHECK_RC(pma_ack(agent, batch), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_set_oauth_credentials(agent, "app", "tenant", NULL), PMA_NULL_ARGUMENT);
    CHECK(strstr(last_error(NULL), "agent is NULL") != NULL);
    CHECK_RC(pma_register_sent(agent, "<a@b>", "T-1"), PMA_NULL_ARGUMENT);
    pma_free(agent);
    pma_batch_free(NULL);
    pma_report_free(NULL);
}

/* examples/mailbox.example.json, the file the docs show, is a valid entry for pma_init
 * (credentials completed later by pma_set_oauth_credentials). */
static void test_example_mailbox(const char *state) {
    const char *path = env("PMA_EXAMPLE_MAILBOX");
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    static char json[8192];
    size_t n = fread(json, 1, sizeof json - 1, f);
    fclose(f);
    json[n] = '\0';
    pma_agent *agent = NULL;
    CHECK_RC(pma_init(json, state, &agent), PMA_OK);
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_CONFIG); /* no Application ID yet */
    CHECK(strstr(last_error(agent), "oauth.application_id") != NULL);
    pma_free(agent);
}

static void test_last_error_buffers(void) {
    pma_agent *agent = NULL;
    CHECK_RC(pma_init("{\"name\": 5}", NULL, &agent), PMA_CONFIG);
    size_t n = 12345;
    char small[4] = {'x', 'x', 'x', 'x'};
    char big[1024];

    CHECK_RC(pma_last_error(NULL, NULL, 0, &n), PMA_BUFFER_TOO_SMALL); /* size query */
    size_t needed = n;
    CHECK(needed > 1 && needed < sizeof big);
    n = 0;
    CHECK_RC(pma_last_error(NULL, small, sizeof small, &n), PMA_BUFFER_TOO_SMALL);
    CHECK(n == needed);
    CHECK(small[0] == 'x'); /* nothing written */
    CHECK_RC(pma_last_error(NULL, big, needed - 1, &n), PMA_BUFFER_TOO_SMALL);
    CHECK_RC(pma_last_error(NULL, big, needed, &n), PMA_OK); /* exactly enough */
    CHECK(n == needed - 1 && strlen(big) == n);
    CHECK(strstr(big, "name") != NULL);
    CHECK_RC(pma_last_error(NULL, big, sizeof big, NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_last_error(NULL, NULL, 10, &n), PMA_NULL_ARGUMENT);
    /* Reading the error does not change it. */
    CHECK_RC(pma_last_error(NULL, big, sizeof big, &n), PMA_OK);
    CHECK(n == needed - 1);
}

static void test_null_accessors(void) {
    const char *p = "untouched";
    const uint8_t *b = (const uint8_t *)"untouched";
    size_t n = 777;
    pma_step step;
    memset(&step, 0, sizeof step);

    CHECK(pma_batch_count(NULL) == 0);
    CHECK_RC(pma_batch_json(NULL, &p, &n), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_batch_ticket_json(NULL, 0, &p, &n), PMA_NULL_ARGUMENT);
    CHECK(pma_batch_attachment_count(NULL, 0) == 0);
    CHECK_RC(pma_batch_attachment(NULL, 0, 0, &b, &n), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_batch_attachment_save_as(NULL, 0, 0, &p, &n), PMA_NULL_ARGUMENT);
    CHECK(!pma_report_healthy(NULL));
    CHECK_RC(pma_report_json(NULL, &p, &n), PMA_NULL_ARGUMENT);
    CHECK(pma_report_step_count(NULL) == 0);
    CHECK_RC(pma_report_step(NULL, 0, &step), PMA_NULL_ARGUMENT);
    CHECK(strcmp(p, "untouched") == 0 && n == 777);
    CHECK_RC(pma_set_log_callback(NULL, NULL, 99), PMA_INVALID_ARGUMENT);
    CHECK_RC(pma_set_log_callback(NULL, NULL, PMA_LOG_OFF), PMA_OK);
}

static void test_report(pma_agent *agent) {
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(agent, NULL), PMA_NULL_ARGUMENT);
    CHECK(strstr(last_error(agent), "out") != NULL);
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    if (report == NULL) {
        return;
    }
    CHECK(pma_report_healthy(report));
    if (!pma_report_healthy(report)) {
        const char *j = NULL;
        size_t l = 0;
        if (pma_report_json(report, &j, &l) == PMA_OK) {
            fprintf(stderr, "unhealthy report: %s\n", j);
        }
    }
    size_t steps = pma_report_step_count(report);
    CHECK(steps == 5); /* connect, tls, capabilities, authenticate, select (no token: Basic) */
    const char *names[] = {"connect", "tls", "capabilities", "authenticate", "select"};
    for (size_t i = 0; i < steps && i < 5; i++) {
        pma_step s;
        CHECK_RC(pma_report_step(report, i, &s), PMA_OK);
        CHECK(strcmp(s.name, names[i]) == 0);
        CHECK(s.status == PMA_STEP_PASSED);
        CHECK(s.result == PMA_OK);
        CHECK(s.fix == NULL);
        CHECK(s.detail != NULL && s.detail[0] != '\0');
    }
    pma_step s;
    CHECK_RC(pma_report_step(report, steps, &s), PMA_INDEX_OUT_OF_RANGE);
    CHECK_RC(pma_report_step(report, 0, NULL), PMA_NULL_ARGUMENT);
    const char *json = NULL;
    size_t len = 0;
    CHECK_RC(pma_report_json(report, &json, NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_report_json(report, &json, &len), PMA_OK);
    CHECK(json != NULL && strlen(json) == len);
    CHECK(json != NULL && strncmp(json, "{\"healthy\":true,\"steps\":[", 25) == 0);
    CHECK(json != NULL && strstr(json, "\"name\":\"select\"") != NULL);
    /* A report is not an agent. */
    CHECK_RC(pma_fetch_tickets((pma_agent *)(void *)report, 1, NULL), PMA_INVALID_HANDLE);
    pma_report_free(report);
    /* Freed handles are refused, never read; a second free is ignored. */
    CHECK(pma_report_step_count(report) == 0);
    CHECK_RC(pma_report_json(report, &json, &len), PMA_INVALID_HANDLE);
    pma_report_free(report);
}

/* The ticket JSON of the message carrying hello.txt, if any. */
static void check_batch(const pma_batch *batch, size_t expected) {
    size_t count = pma_batch_count(batch);
    CHECK(count == expected);
    if (count != expected) {
        const char *j = NULL;
        size_t l = 0;
        pma_batch_json(batch, &j, &l);
        fprintf(stderr, "batch of %zu tickets, expected %zu: %s\n", count, expected, j);
    }
    const char *json = NULL;
    size_t len = 0;
    CHECK_RC(pma_batch_json(batch, &json, &len), PMA_OK);
    CHECK(json != NULL && strlen(json) == len && json[0] == '[' && json[len - 1] == ']');
    CHECK_RC(pma_batch_json(batch, NULL, &len), PMA_NULL_ARGUMENT);
    int found_attachment = 0;
    for (size_t i = 0; i < count; i++) {
        const char *t = NULL;
        size_t tlen = 0;
        CHECK_RC(pma_batch_ticket_json(batch, i, &t, &tlen), PMA_OK);
        CHECK(t != NULL && strlen(t) == tlen && t[0] == '{' && t[tlen - 1] == '}');
        CHECK(t != NULL && strstr(t, "\"delivery_id\":\"INBOX:") != NULL);
        CHECK(t != NULL && strstr(t, "\"dedupe_key\":\"") != NULL);
        CHECK(t != NULL && strstr(json, t) != NULL); /* the array holds the same objects */
        size_t atts = pma_batch_attachment_count(batch, i);
        for (size_t a = 0; a < atts; a++) {
            const uint8_t *bytes = NULL;
            size_t blen = 0;
            CHECK_RC(pma_batch_attachment(batch, i, a, &bytes, &blen), PMA_OK);
            const char *save_as = NULL;
            size_t slen = 0;
            CHECK_RC(pma_batch_attachment_save_as(batch, i, a, &save_as, &slen), PMA_OK);
            CHECK(save_as != NULL && strlen(save_as) == slen && slen > 0);
            if (t != NULL && strstr(t, "\"filename\":\"hello.txt\"") != NULL && blen == 17 &&
                memcmp(bytes, "Hello attachment\n", 17) == 0 && strcmp(save_as, "hello.txt") == 0) {
                found_attachment = 1;
            }
        }
        const uint8_t *bytes = NULL;
        size_t blen = 0;
        CHECK_RC(pma_batch_attachment(batch, i, atts, &bytes, &blen), PMA_INDEX_OUT_OF_RANGE);
        const char *no_name = NULL;
        CHECK_RC(pma_batch_attachment_save_as(batch, i, atts, &no_name, &blen), PMA_INDEX_OUT_OF_RANGE);
        CHECK(no_name == NULL);
        CHECK(bytes == NULL);
    }
    const char *t = NULL;
    size_t tlen = 0;
    CHECK_RC(pma_batch_ticket_json(batch, count, &t, &tlen), PMA_INDEX_OUT_OF_RANGE);
    CHECK(t == NULL);
    CHECK(pma_batch_attachment_count(batch, count) == 0);
    if (expected == 3) {
        /* Decoded bytes, no base64: the seeded attachment comes back as its text. */
        CHECK(found_attachment);
    }
}

static void test_fetch_and_ack(pma_agent *agent, pma_agent *other) {
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 0, &batch), PMA_INVALID_ARGUMENT);
    CHECK_RC(pma_fetch_tickets(agent, 10, NULL), PMA_NULL_ARGUMENT);
    CHECK(batch == NULL);

    /* A batch freed without ack is fetched again. */
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 1);
    pma_batch_free(batch);
    batch = NULL;

    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    if (batch == NULL) {
        return;
    }
    check_batch(batch, 3);

    /* A batch is not an agent, an agent is not a batch. */
    CHECK_RC(pma_ack((pma_agent *)(void *)batch, batch), PMA_INVALID_HANDLE);
    CHECK(pma_batch_count((const pma_batch *)(const void *)agent) == 0);
    CHECK_RC(pma_ack(agent, NULL), PMA_NULL_ARGUMENT);

    /* Another agent may not acknowledge it. */
    CHECK_RC(pma_ack(other, batch), PMA_FOREIGN_BATCH);
    CHECK(strstr(last_error(other), "another agent") != NULL);

    CHECK_RC(pma_ack(agent, batch), PMA_OK);
    CHECK_RC(pma_ack(agent, batch), PMA_ALREADY_ACKED);
    pma_batch_free(batch);
    CHECK_RC(pma_ack(agent, batch), PMA_INVALID_HANDLE); /* freed: refused, never read */
    CHECK(pma_batch_count(batch) == 0);
    pma_batch_free(batch); /* a second free is ignored */

    /* Sent mail registered for threading: misuse, then a real registration. */
    CHECK_RC(pma_register_sent(agent, NULL, "T-1"), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_register_sent(agent, "<a@b>", NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_register_sent(agent, "<a@b>", "\xff\xfe"), PMA_INVALID_UTF8);
    CHECK_RC(pma_register_sent(agent, "", "T-1"), PMA_CONFIG);
    CHECK_RC(pma_register_sent(agent, "<notify-1@helpdesk.example>", "T-1"), PMA_OK);

    /* Acknowledged mail does not come again. */
    batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 0);
    check_batch(batch, 0);
    CHECK_RC(pma_ack(agent, batch), PMA_OK);
    pma_batch_free(batch);
}

static void test_failures(const char *state) {
    /* Wrong password: the report says which step failed, why and what to do. */
    pma_agent *bad = NULL;
    CHECK_RC(pma_init(mailbox_json("wrong-password", env("PMA_TEST_USER"), "password",
                                   "not-the-password", ""),
                      state, &bad),
             PMA_OK);
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(bad, &report), PMA_OK);
    CHECK(!pma_report_healthy(report));
    pma_step s;
    memset(&s, 0, sizeof s);
    CHECK_RC(pma_report_step(report, 3, &s), PMA_OK);
    CHECK(s.name != NULL && strcmp(s.name, "authenticate") == 0);
    CHECK(s.status == PMA_STEP_FAILED);
    CHECK(s.result == PMA_LOGIN_FAILED);
    CHECK(s.fix != NULL);
    CHECK_RC(pma_report_step(report, 4, &s), PMA_OK);
    CHECK(s.status == PMA_STEP_SKIPPED);
    pma_report_free(report);
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(bad, 5, &batch), PMA_LOGIN_FAILED);
    CHECK(batch == NULL);
    CHECK(strlen(last_error(bad)) > 0);
    CHECK(strstr(last_error(bad), "not-the-password") == NULL); /* never a secret */

    /* The same mailbox name in the same state directory is locked. */
    pma_agent *twin = NULL;
    CHECK_RC(pma_init(mailbox_json("wrong-password", env("PMA_TEST_USER"), "password", "x", ""),
                      state, &twin),
             PMA_IO);
    CHECK(twin == NULL);
    CHECK(strstr(last_error(NULL), "already") != NULL);
    pma_free(bad);
    CHECK_RC(pma_fetch_tickets(bad, 1, &batch), PMA_INVALID_HANDLE); /* freed: refused */
    CHECK(strstr(last_error(NULL), "not a live pma_agent") != NULL);
    pma_free(bad); /* a second free is ignored */
    /* Freed: the lock is released. */
    CHECK_RC(pma_init(mailbox_json("wrong-password", env("PMA_TEST_USER"), "password", "x", ""),
                      state, &twin),
             PMA_OK);
    pma_free(twin);
}

static void test_oauth_credentials(const char *state, pma_agent *basic) {
    char extra[512];
    snprintf(extra, sizeof extra,
             ", \"oauth\": {\"enabled\": true, \"shared_mailbox\": false, \"authority\": \"%s\"}",
             env("PMA_IDP_URL"));
    pma_agent *agent = NULL;
    /* Application and directory come later: init succeeds, use fails naming the key. */
    CHECK_RC(pma_init(mailbox_json("oauth-later", env("PMA_TEST_USER2"), "password_env",
                                   "PMA_PASSWORD", extra),
                      state, &agent),
             PMA_OK);
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_CONFIG);
    CHECK(strstr(last_error(agent), "application_id") != NULL);

    char bad_utf8[] = {'a', (char)0x80, 0};
    CHECK_RC(pma_set_oauth_credentials(agent, NULL, "tenant", NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_set_oauth_credentials(agent, "app", NULL, NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_set_oauth_credentials(agent, bad_utf8, "tenant", NULL), PMA_INVALID_UTF8);
    CHECK_RC(pma_set_oauth_credentials(agent, "app", "tenant", bad_utf8), PMA_INVALID_UTF8);
    CHECK_RC(pma_set_oauth_credentials(agent, "app id", "tenant", NULL), PMA_CONFIG);
    CHECK(strstr(last_error(agent), "application_id") != NULL);
    CHECK_RC(pma_set_oauth_credentials(agent, "11111111-2222-3333-4444-555555555555",
                                       "contoso.test", "client-secret-value"),
             PMA_OK);
    /* Now complete: the connection test starts with the token step, and the identity
     * platform's refusal (AADSTS700016: unknown application) comes back as its own code. */
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    pma_step s;
    memset(&s, 0, sizeof s);
    CHECK_RC(pma_report_step(report, 0, &s), PMA_OK);
    CHECK(s.name != NULL && strcmp(s.name, "token") == 0);
    CHECK(s.status == PMA_STEP_FAILED);
    CHECK(s.result == PMA_OAUTH_APPLICATION_NOT_FOUND);
    CHECK(s.fix != NULL);
    CHECK(pma_report_step_count(report) == 6);
    CHECK(!pma_report_healthy(report));
    pma_report_free(report);
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_OAUTH_APPLICATION_NOT_FOUND);
    CHECK(strstr(last_error(agent), "client-secret-value") == NULL);

    /* A client secret given once stays (NULL keeps it): the public client app refuses it. */
    CHECK_RC(pma_set_oauth_credentials(agent, "app-public", "contoso-tenant", NULL), PMA_OK);
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_OAUTH_INVALID_CLIENT_SECRET);
    pma_free(agent);

    /* The test tenant's public client app: XOAUTH2 into the user's own mailbox works. */
    agent = NULL;
    CHECK_RC(pma_init(mailbox_json("oauth-own", env("PMA_TEST_USER2"), "password_env",
                                   "PMA_PASSWORD", extra),
                      state, &agent),
             PMA_OK);
    CHECK_RC(pma_set_oauth_credentials(agent, "app-public", "contoso-tenant", NULL), PMA_OK);
    report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    CHECK(pma_report_healthy(report));
    CHECK_RC(pma_report_step(report, 4, &s), PMA_OK);
    CHECK(s.name != NULL && strcmp(s.name, "authenticate") == 0);
    CHECK(s.detail != NULL && strstr(s.detail, "XOAUTH2") != NULL);
    pma_report_free(report);
    batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 5, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 0); /* this mailbox holds no mail */
    pma_batch_free(batch);

    /* A batch fetched before the agent was rebuilt can no longer be acknowledged. */
    pma_agent *regen = NULL;
    CHECK_RC(pma_init(mailbox_json("regen", env("PMA_TEST_USER2"), "password_env", "PMA_PASSWORD", ""),
                      state, &regen),
             PMA_OK);
    pma_batch *old = NULL;
    CHECK_RC(pma_fetch_tickets(regen, 1, &old), PMA_OK);
    CHECK_RC(pma_set_oauth_credentials(regen, "11111111-2222-3333-4444-555555555555", "contoso.test", NULL), PMA_OK);
    CHECK_RC(pma_ack(regen, old), PMA_FOREIGN_BATCH);
    CHECK(strstr(last_error(regen), "rebuilt") != NULL);
    pma_batch_free(old);
    pma_free(regen);

    /* A failed set keeps the previous, working settings of a Basic agent. */
    CHECK_RC(pma_set_oauth_credentials(basic, "app id", "tenant", NULL), PMA_CONFIG);
    report = NULL;
    CHECK_RC(pma_test_connection(basic, &report), PMA_OK);
    CHECK(pma_report_healthy(report));
    pma_report_free(report);
    pma_free(agent);
}

/* ---- Exchange Online's refusals (the harness's stand-in, tools/test-exchange) ---- */

/* Connection test of `json` against the stand-in: the "select" step fails with `want`, its fix
 * naming `fix_part`. */
static void check_exchange_refusal(const char *state, const char *json, pma_result want,
                                   const char *fix_part) {
    pma_agent *agent = NULL;
    CHECK_RC(pma_init(json, state, &agent), PMA_OK);
    if (agent == NULL) {
        return;
    }
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    CHECK(!pma_report_healthy(report));
    pma_step s;
    memset(&s, 0, sizeof s);
    CHECK_RC(pma_report_step(report, 5, &s), PMA_OK);
    CHECK(s.name != NULL && strcmp(s.name, "select") == 0);
    CHECK(s.status == PMA_STEP_FAILED);
    CHECK(s.result == want);
    CHECK(s.detail != NULL && strstr(s.detail, "authenticated but not connected") != NULL);
    CHECK(s.fix != NULL && strstr(s.fix, fix_part) != NULL);
    if (s.fix != NULL && strstr(s.fix, fix_part) == NULL) {
        fprintf(stderr, "fix without \"%s\": %s\n", fix_part, s.fix);
    }
    pma_report_free(report);
    pma_free(agent);
}

static void test_exchange_diagnosis(const char *state) {
    const char *port = getenv("PMA_EXCHANGE_PORT");
    if (port == NULL || *port == '\0') {
        fprintf(stderr, "skipping the Exchange diagnosis: the harness runs no Exchange stand-in\n");
        return;
    }
    static char shared[512], json[4096], fix[1024];
    /* A delegate without Full Access to a shared mailbox. */
    snprintf(shared, sizeof shared, "c-nofa-%s", env("PMA_TEST_USER"));
    snprintf(json, sizeof json,
             "{\"name\": \"exch-nofa\", \"email\": \"%s\", \"username\": \"%s\","
             " \"password_env\": \"PMA_PASSWORD\", \"imap\": {\"server\": \"127.0.0.1\", \"port\": %s,"
             " \"ca_file\": \"%s\", \"timeout_secs\": 20}, \"oauth\": {\"enabled\": true,"
             " \"application_id\": \"app-public\", \"directory_id\": \"contoso-tenant\","
             " \"shared_mailbox\": true, \"authority\": \"%s\"}}",
             shared, env("PMA_TEST_USER2"), port, env("PMA_CA_FILE"), env("PMA_IDP_URL"));
    snprintf(fix, sizeof fix, "Add-MailboxPermission -Identity %s -User %s -AccessRights FullAccess",
             shared, env("PMA_TEST_USER2"));
    check_exchange_refusal(state, json, PMA_SHARED_MAILBOX_DENIED, fix);
    /* An app-only principal without a grant on the mailbox. */
    snprintf(shared, sizeof shared, "c-app-%s", env("PMA_TEST_USER"));
    snprintf(json, sizeof json,
             "{\"name\": \"exch-app\", \"email\": \"%s\", \"imap\": {\"server\": \"127.0.0.1\","
             " \"port\": %s, \"ca_file\": \"%s\", \"timeout_secs\": 20}, \"oauth\": {\"enabled\": true,"
             " \"application_id\": \"app-confidential\", \"directory_id\": \"contoso-tenant\","
             " \"flow\": \"client_credentials\", \"client_secret\": \"s3cret-app\", \"authority\": \"%s\"}}",
             shared, port, env("PMA_CA_FILE"), env("PMA_IDP_URL"));
    check_exchange_refusal(state, json, PMA_APP_NOT_GRANTED,
                           "New-ServicePrincipal -AppId app-confidential -ObjectId");
    CHECK(strcmp(pma_result_str(PMA_APP_NOT_GRANTED), "PMA_APP_NOT_GRANTED") == 0);
    CHECK(strcmp(pma_result_str(PMA_MAILBOX_NOT_CONNECTED), "PMA_MAILBOX_NOT_CONNECTED") == 0);
}

/* ---- logging ---- */

typedef struct {
    pthread_mutex_t lock;
    int records;
    int secret_seen;
    int bad_level;
    const char *password;
} log_sink;

static void on_log(void *userdata, pma_log_level level, const char *target, const char *message) {
    log_sink *sink = (log_sink *)userdata;
    if (getenv("PMA_TEST_SHOW_LOG") != NULL) {
        fprintf(stderr, "log %u %s: %s\n", (unsigned)level, target, message);
    }
    pthread_mutex_lock(&sink->lock);
    sink->records++;
    if (strstr(message, sink->password) != NULL || strstr(target, sink->password) != NULL) {
        sink->secret_seen = 1;
    }
    if (level < PMA_LOG_ERROR || level > PMA_LOG_TRACE) {
        sink->bad_level = 1;
    }
    pthread_mutex_unlock(&sink->lock);
}

/* ---- eight threads, one handle ---- */

typedef struct {
    pma_agent *agent;
    int ok;
} worker_arg;

static void *worker(void *p) {
    worker_arg *w = (worker_arg *)p;
    int ok = 1;
    for (int round = 0; round < 3; round++) {
        pma_batch *batch = NULL;
        if (pma_fetch_tickets(w->agent, 1, &batch) != PMA_OK || pma_batch_count(batch) > 1) {
            ok = 0;
        }
        pma_batch_free(batch);
        pma_report *report = NULL;
        if (pma_test_connection(w->agent, &report) != PMA_OK || !pma_report_healthy(report)) {
            ok = 0;
        }
        pma_report_free(report);
        char buf[256];
        size_t n = 0;
        pma_result r = pma_last_error(w->agent, buf, sizeof buf, &n);
        if (r != PMA_OK && r != PMA_BUFFER_TOO_SMALL) {
            ok = 0;
        }
    }
    w->ok = ok;
    return NULL;
}

static void test_threads(pma_agent *agent) {
    pthread_t threads[8];
    worker_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i].agent = agent;
        args[i].ok = 0;
        CHECK(pthread_create(&threads[i], NULL, worker, &args[i]) == 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].ok);
    }
}

int main(void) {
    const char *state = env("PMA_TEST_STATE");
    test_static_functions();
    test_init_misuse();
    test_last_error_buffers();
    test_null_accessors();
    test_example_mailbox(state);

    log_sink sink;
    pthread_mutex_init(&sink.lock, NULL);
    sink.records = 0;
    sink.secret_seen = 0;
    sink.bad_level = 0;
    sink.password = env("PMA_PASSWORD");
    CHECK_RC(pma_set_log_callback(on_log, &sink, PMA_LOG_TRACE), PMA_OK);

    pma_agent *agent = NULL;
    pma_agent *other = NULL;
    CHECK_RC(pma_init(mailbox_json("c-main", env("PMA_TEST_USER"), "password_env", "PMA_PASSWORD", ""),
                      state, &agent),
             PMA_OK);
    CHECK_RC(pma_init(mailbox_json("c-other", env("PMA_TEST_USER2"), "password_env", "PMA_PASSWORD", ""),
                      state, &other),
             PMA_OK);
    if (agent == NULL || other == NULL) {
        fprintf(stderr, "cannot continue: %s\n", last_error(NULL));
        return 1;
    }
    CHECK(strcmp(last_error(agent), "") == 0); /* nothing failed yet */
    test_report(agent);
    test_fetch_and_ack(agent, other);
    test_failures(state);
    test_oauth_credentials(state, agent);
    test_exchange_diagnosis(state);
    test_threads(agent);

    pthread_mutex_lock(&sink.lock);
    int records = sink.records;
    CHECK(records > 0);
    CHECK(!sink.secret_seen);
    CHECK(!sink.bad_level);
    pthread_mutex_unlock(&sink.lock);
    CHECK_RC(pma_set_log_callback(NULL, NULL, PMA_LOG_TRACE), PMA_OK);
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    pma_report_free(report);
    CHECK(sink.records == records); /* uninstalled: no more records */
    pthread_mutex_destroy(&sink.lock);

    pma_free(agent);
    pma_free(other);
    printf("test_ffi: %d checks, %d failed (log records seen: %d)\n", checks, failures, records);
    return failures == 0 ? 0 : 1;
}
