/*
 * The C API under concurrent misuse: 16 threads at once on one handle, and 16 threads each on
 * its own handle, mixing real calls (fetch, ack, test connection, batch accessors, last error)
 * with NULL arguments and invalid UTF-8 in every string parameter. Run by scripts/test-c under
 * valgrind (QUICK=1: without), with the environment of test_ffi.c:
 *   PMA_TEST_USER   a fresh mailbox holding exactly 3 unread messages
 *   PMA_TEST_USER2  another fresh (empty) mailbox
 *   PMA_TEST_STATE  a fresh state directory
 * Use-after-free and double free of live handles are documented undefined behaviour and not
 * tested. C99 and C++ compatible.
 */
#define _POSIX_C_SOURCE 200809L
#include "psa_mail_agent.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 16

static const char *env(const char *name) {
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        fprintf(stderr, "missing environment variable %s (run scripts/test-c)\n", name);
        exit(2);
    }
    return v;
}

static void mailbox_json(char *out, size_t size, const char *name, const char *user) {
    snprintf(out, size,
             "{\"name\": \"%s\", \"email\": \"%s\", \"username\": \"%s\", \"password\": \"%s\","
             " \"batch_size\": 1,"
             " \"imap\": {\"server\": \"127.0.0.1\", \"port\": %s, \"encryption\": \"ssl\","
             " \"ca_file\": \"%s\", \"timeout_secs\": 60}}",
             name, user, user, env("PMA_PASSWORD"), env("PMA_IMAPS_PORT"), env("PMA_CA_FILE"));
}

static const char BAD_UTF8[] = "\xff\xfe not utf-8 \xc3\x28";

typedef struct {
    pma_agent *agent;   /* shared handle, or NULL: the thread makes its own */
    int index;
    int tickets;        /* tickets fetched and acknowledged */
    int failures;       /* unexpected results */
    char why[256];
} job;

static void fail(job *j, const char *what, pma_result rc) {
    j->failures++;
    if (j->why[0] == '\0') {
        snprintf(j->why, sizeof j->why, "thread %d: %s returned %s", j->index, what,
                 pma_result_str(rc));
    }
}

#define EXPECT(j, expr, want)                                        \
    do {                                                             \
        pma_result rc_ = (expr);                                     \
        if (rc_ != (want)) fail((j), #expr, rc_);                    \
    } while (0)

/* Every string parameter NULL or not UTF-8, every out-parameter NULL. */
static void misuse(job *j, pma_agent *agent) {
    pma_agent *out = NULL;
    pma_batch *batch = NULL;
    pma_report *report = NULL;
    char buf[64];
    size_t n = 0;
    EXPECT(j, pma_init(NULL, NULL, &out), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_init(BAD_UTF8, NULL, &out), PMA_INVALID_UTF8);
    EXPECT(j, pma_init("{}", BAD_UTF8, &out), PMA_INVALID_UTF8);
    EXPECT(j, pma_init("{}", NULL, NULL), PMA_NULL_ARGUMENT);
    if (out != NULL) fail(j, "pma_init wrote *out on failure", PMA_OK);
    EXPECT(j, pma_set_oauth_credentials(agent, NULL, "tenant", NULL), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_set_oauth_credentials(agent, BAD_UTF8, "tenant", NULL), PMA_INVALID_UTF8);
    EXPECT(j, pma_set_oauth_credentials(agent, "app", BAD_UTF8, NULL), PMA_INVALID_UTF8);
    EXPECT(j, pma_set_oauth_credentials(agent, "app", "tenant", BAD_UTF8), PMA_INVALID_UTF8);
    EXPECT(j, pma_set_oauth_credentials(NULL, "app", "tenant", NULL), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_fetch_tickets(NULL, 1, &batch), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_fetch_tickets(agent, 1, NULL), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_test_connection(NULL, &report), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_test_connection(agent, NULL), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_ack(agent, NULL), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_ack(NULL, NULL), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_last_error(agent, NULL, 0, &n), PMA_BUFFER_TOO_SMALL);
    EXPECT(j, pma_last_error(agent, buf, sizeof buf, NULL), PMA_NULL_ARGUMENT);
    if (batch != NULL || report != NULL) fail(j, "an out-parameter was written on failure", PMA_OK);
    const char *p = NULL;
    size_t len = 0;
    EXPECT(j, pma_batch_json(NULL, &p, &len), PMA_NULL_ARGUMENT);
    EXPECT(j, pma_report_json(NULL, &p, &len), PMA_NULL_ARGUMENT);
    if (pma_batch_count(NULL) != 0) fail(j, "pma_batch_count(NULL)", PMA_OK);
    if (pma_result_str(0xFFFFFFFFu) == NULL) fail(j, "pma_result_str(unknown)", PMA_OK);
    if (pma_version() == NULL) fail(j, "pma_version", PMA_OK);
    pma_batch_free(NULL);
    pma_report_free(NULL);
    pma_free(NULL);
}

/* One real round: fetch at most one ticket, read it through every accessor, acknowledge it. */
static void round_trip(job *j, pma_agent *agent) {
    pma_batch *batch = NULL;
    pma_result rc = pma_fetch_tickets(agent, 1, &batch);
    if (rc != PMA_OK) {
        fail(j, "pma_fetch_tickets", rc);
        return;
    }
    size_t count = pma_batch_count(batch);
    const char *p = NULL;
    size_t len = 0;
    EXPECT(j, pma_batch_json(batch, &p, &len), PMA_OK);
    if (p == NULL || len < 2 || p[0] != '[') fail(j, "batch JSON is not an array", PMA_OK);
    for (size_t i = 0; i < count; i++) {
        EXPECT(j, pma_batch_ticket_json(batch, i, &p, &len), PMA_OK);
        size_t attachments = pma_batch_attachment_count(batch, i);
        for (size_t a = 0; a < attachments; a++) {
            const uint8_t *bytes = NULL;
            EXPECT(j, pma_batch_attachment(batch, i, a, &bytes, &len), PMA_OK);
        }
    }
    EXPECT(j, pma_batch_ticket_json(batch, count + 5, &p, &len), PMA_INDEX_OUT_OF_RANGE);
    EXPECT(j, pma_ack(agent, batch), PMA_OK);
    j->tickets += (int)count;
    pma_batch_free(batch);
    char buf[8];
    size_t n = 0;
    rc = pma_last_error(agent, buf, sizeof buf, &n);
    if (rc != PMA_OK && rc != PMA_BUFFER_TOO_SMALL) fail(j, "pma_last_error", rc);
}

static void *shared_worker(void *arg) {
    job *j = (job *)arg;
    for (int r = 0; r < 2; r++) {
        misuse(j, j->agent);
        round_trip(j, j->agent);
    }
    return NULL;
}

static void *own_worker(void *arg) {
    job *j = (job *)arg;
    char json[2048], name[64], state[1024];
    snprintf(name, sizeof name, "own-%d", j->index);
    snprintf(state, sizeof state, "%s/own-%d", env("PMA_TEST_STATE"), j->index);
    mailbox_json(json, sizeof json, name, env("PMA_TEST_USER2"));
    pma_agent *agent = NULL;
    pma_result rc = pma_init(json, state, &agent);
    if (rc != PMA_OK) {
        fail(j, "pma_init", rc);
        return NULL;
    }
    misuse(j, agent);
    pma_report *report = NULL;
    EXPECT(j, pma_test_connection(agent, &report), PMA_OK);
    if (report != NULL && !pma_report_healthy(report)) fail(j, "report not healthy", PMA_OK);
    pma_report_free(report);
    round_trip(j, agent);
    pma_free(agent);
    return NULL;
}

static int run(job *jobs, void *(*fn)(void *)) {
    pthread_t threads[THREADS];
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        if (pthread_create(&threads[i], NULL, fn, &jobs[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        if (jobs[i].failures) {
            fprintf(stderr, "%s (%d unexpected results)\n", jobs[i].why, jobs[i].failures);
            failures += jobs[i].failures;
        }
    }
    return failures;
}

int main(void) {
    job jobs[THREADS];
    char json[2048], state[1024];
    int failures = 0;

    /* 16 threads, one handle: calls are serialised, each of the 3 messages is handed out once. */
    memset(jobs, 0, sizeof jobs);
    snprintf(state, sizeof state, "%s/shared", env("PMA_TEST_STATE"));
    mailbox_json(json, sizeof json, "shared", env("PMA_TEST_USER"));
    pma_agent *agent = NULL;
    pma_result rc = pma_init(json, state, &agent);
    if (rc != PMA_OK) {
        fprintf(stderr, "pma_init: %s\n", pma_result_str(rc));
        return 1;
    }
    for (int i = 0; i < THREADS; i++) {
        jobs[i].agent = agent;
        jobs[i].index = i;
    }
    failures += run(jobs, shared_worker);
    int tickets = 0;
    for (int i = 0; i < THREADS; i++) tickets += jobs[i].tickets;
    if (tickets != 3) {
        fprintf(stderr, "16 threads on one handle fetched %d tickets, expected 3\n", tickets);
        failures++;
    }
    pma_free(agent);

    /* 16 threads, 16 handles (each its own mailbox name and state directory). */
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < THREADS; i++) jobs[i].index = i;
    failures += run(jobs, own_worker);

    if (failures) {
        fprintf(stderr, "test_threads16: %d failures\n", failures);
        return 1;
    }
    printf("test_threads16: 16 threads on one handle (3 tickets, each once) and on 16 handles: ok\n");
    return 0;
}
