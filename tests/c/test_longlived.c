/*
 * Tests of the C API a long-lived host builds on, against the real Dovecot harness and the
 * local identity endpoint: the connection test tells the truth about the configured
 * password, secrets from the host (pma_set_password, pma_set_client_secret), partial
 * acknowledgement (pma_ack_tickets), waiting for mail (pma_wait_for_mail), cancellation from
 * another thread (pma_cancel) of every blocking call, device-code sign-in in two halves,
 * raw messages (keep_raw, pma_batch_raw), attachments over the limit
 * (PMA_ATTACHMENT_OMITTED), errors per thread, and the log records of a fetch-and-ack run and
 * of a failed sign-in. Every new function also with its misuse: NULL, wrong handle kinds,
 * calls after cancel.
 *
 * Run by scripts/test-c (under valgrind), which seeds the mailbox and sets the environment:
 *   PMA_TEST_USER   a fresh mailbox holding exactly 3 unread messages (the second with hello.txt)
 *   PMA_TEST_USER2  another fresh, empty mailbox
 *   PMA_TEST_STATE  a fresh state directory
 *   and the harness's PMA_CA_FILE, PMA_IMAPS_PORT, PMA_PASSWORD, PMA_IDP_URL, PMA_DOMAIN.
 * Mail is delivered during the wait test with curl (IMAP APPEND), as scripts/test-c seeds.
 *
 * Cancellation is tested without timing assumptions: a TCP proxy between the agent and
 * Dovecot can be frozen (it then swallows traffic), so a blocking call is known to be in
 * progress once the proxy saw its bytes; calls that wait on purpose are cancelled repeatedly
 * until they return. C99; POSIX threads and sockets.
 */
#define _POSIX_C_SOURCE 200809L
#include "psa_mail_agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        checks++;                                                                         \
        if (!(cond)) {                                                                    \
            failures++;                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                                 \
    } while (0)

#define CHECK_RC(expr, want)                                                              \
    do {                                                                                  \
        pma_result rc_ = (expr);                                                          \
        checks++;                                                                         \
        if (rc_ != (want)) {                                                              \
            failures++;                                                                   \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, \
                    #expr, pma_result_str(rc_), pma_result_str(want), thread_error());    \
        }                                                                                 \
    } while (0)

static const char *env(const char *name) {
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        fprintf(stderr, "missing environment variable %s (run scripts/test-c)\n", name);
        exit(2);
    }
    return v;
}

/* The calling thread's last error (thread-local buffer). */
static __thread char thread_error_buf[4096];
static const char *thread_error(void) {
    size_t n = 0;
    if (pma_last_error(NULL, thread_error_buf, sizeof thread_error_buf, &n) != PMA_OK) {
        return "(pma_last_error failed)";
    }
    return thread_error_buf;
}

static void sleep_ms(long ms) {
    struct timespec t;
    t.tv_sec = ms / 1000;
    t.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&t, NULL);
}

static char run_id[64];

/* A fresh user of the harness (every <name>@domain exists, with an empty mailbox). */
static void fresh_user(char *out, size_t size, const char *prefix) {
    static int n = 0;
    snprintf(out, size, "%s-%s-%d@%s", prefix, run_id, n++, env("PMA_DOMAIN"));
}

/* One mailbox entry; `extra` is appended inside the object (", \"keep_raw\": true"). */
static void mailbox_json(char *out, size_t size, const char *name, const char *user, int port,
                         const char *extra) {
    snprintf(out, size,
             "{\"name\": \"%s\", \"email\": \"%s\", \"username\": \"%s\","
             " \"imap\": {\"server\": \"127.0.0.1\", \"port\": %d, \"encryption\": \"ssl\","
             " \"ca_file\": \"%s\", \"timeout_secs\": 60}%s}",
             name, user, user, port, env("PMA_CA_FILE"), extra);
}

static int imaps_port(void) { return atoi(env("PMA_IMAPS_PORT")); }

static pma_agent *make_agent(const char *name, const char *user, int port, const char *extra,
                             const char *password) {
    char json[4096];
    mailbox_json(json, sizeof json, name, user, port, extra);
    pma_agent *agent = NULL;
    pma_result rc = pma_init(json, env("PMA_TEST_STATE"), &agent);
    if (rc != PMA_OK) {
        fprintf(stderr, "pma_init(%s): %s: %s\n", name, pma_result_str(rc), thread_error());
        exit(1);
    }
    if (password != NULL) {
        rc = pma_set_password(agent, password);
        if (rc != PMA_OK) {
            fprintf(stderr, "pma_set_password(%s): %s\n", name, thread_error());
            exit(1);
        }
    }
    return agent;
}

static const char *oauth_extra(const char *flow) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             ", \"oauth\": {\"enabled\": true, \"application_id\": \"app-public\","
             " \"directory_id\": \"contoso-tenant\", \"flow\": \"%s\", \"authority\": \"%s\"}",
             flow, env("PMA_IDP_URL"));
    return buf;
}

/* ---- the identity endpoint's control API (plain HTTP on loopback) ---- */

static int idp_port(void) {
    const char *url = env("PMA_IDP_URL"); /* http://127.0.0.1:PORT */
    const char *colon = strrchr(url, ':');
    return colon == NULL ? 0 : atoi(colon + 1);
}

/* POSTs `path` to the identity endpoint; returns the HTTP status, the body in `body`. */
static int idp(const char *path, char *body, size_t size) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)idp_port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    char req[2048];
    int len = snprintf(req, sizeof req,
                       "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n",
                       path);
    if (write(fd, req, (size_t)len) != len) {
        close(fd);
        return -1;
    }
    static char resp[16384];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof resp - 1 && (n = read(fd, resp + got, sizeof resp - 1 - got)) > 0) {
        got += (size_t)n;
    }
    resp[got] = '\0';
    close(fd);
    int status = 0;
    sscanf(resp, "HTTP/1.1 %d", &status);
    const char *b = strstr(resp, "\r\n\r\n");
    if (body != NULL && size > 0) {
        snprintf(body, size, "%s", b != NULL ? b + 4 : "");
    }
    return status;
}

/* ---- delivering mail with curl (IMAP APPEND), as scripts/test-c seeds ---- */

static int run_curl(const char *const argv[]) {
    pid_t pid = fork();
    if (pid == 0) {
        execvp("curl", (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Delivers a mail to `user`'s INBOX. curl's APPEND marks it \Seen; `unread` clears the flag
 * of every message there (as new mail is, for an agent's first contact). */
static int append_mail_as(const char *user, const char *subject, int unread) {
    char path[256], url[256], login[512];
    snprintf(path, sizeof path, "/tmp/pma-longlived-%s.eml", run_id);
    FILE *f = fopen(path, "wb");
    if (f == NULL) return -1;
    fprintf(f,
            "From: Waiting Customer <wait@example.com>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s-%s@example.com>\r\n\r\nNew mail while the agent waits.\r\n",
            user, subject, subject, run_id);
    fclose(f);
    snprintf(url, sizeof url, "imaps://127.0.0.1:%s/INBOX", env("PMA_IMAPS_PORT"));
    snprintf(login, sizeof login, "%s:%s", user, env("PMA_PASSWORD"));
    const char *append[] = {"curl", "-sS", "--cacert", env("PMA_CA_FILE"), "--user", login,
                            "-T", path, url, NULL};
    int rc = run_curl(append);
    unlink(path);
    if (rc == 0 && unread) {
        const char *store[] = {"curl", "-sS", "-o", "/dev/null", "--cacert", env("PMA_CA_FILE"),
                               "--user", login, url, "-X", "STORE 1:* -FLAGS (\\Seen)", NULL};
        rc = run_curl(store);
    }
    return rc;
}

static int append_mail(const char *user, const char *subject) {
    return append_mail_as(user, subject, 0);
}

/* ---- a TCP proxy to Dovecot that can be frozen ---- */

#define MAX_PAIRS 16

typedef struct {
    int listen_fd;
    int port;
    int stop_pipe[2];
    pthread_t thread;
    pthread_mutex_t lock;
    int frozen;                  /* swallow traffic in both directions */
    unsigned long frozen_bytes;  /* client bytes swallowed while frozen */
    int client[MAX_PAIRS];
    int upstream[MAX_PAIRS];
} proxy;

static void proxy_close_pair(proxy *p, int i) {
    close(p->client[i]);
    close(p->upstream[i]);
    p->client[i] = p->upstream[i] = -1;
}

static void *proxy_main(void *arg) {
    proxy *p = (proxy *)arg;
    for (;;) {
        struct pollfd fds[2 + 2 * MAX_PAIRS];
        int n = 0;
        fds[n].fd = p->stop_pipe[0];
        fds[n++].events = POLLIN;
        fds[n].fd = p->listen_fd;
        fds[n++].events = POLLIN;
        for (int i = 0; i < MAX_PAIRS; i++) {
            fds[n].fd = p->client[i];
            fds[n++].events = POLLIN;
            fds[n].fd = p->upstream[i];
            fds[n++].events = POLLIN;
        }
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents) break;
        if (fds[1].revents & POLLIN) {
            int c = accept(p->listen_fd, NULL, NULL);
            int slot = -1;
            for (int i = 0; i < MAX_PAIRS && c >= 0; i++) {
                if (p->client[i] < 0) {
                    slot = i;
                    break;
                }
            }
            int u = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a;
            memset(&a, 0, sizeof a);
            a.sin_family = AF_INET;
            a.sin_port = htons((unsigned short)imaps_port());
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (c >= 0 && slot >= 0 && u >= 0 && connect(u, (struct sockaddr *)&a, sizeof a) == 0) {
                p->client[slot] = c;
                p->upstream[slot] = u;
            } else {
                if (c >= 0) close(c);
                if (u >= 0) close(u);
            }
        }
        for (int i = 0; i < MAX_PAIRS; i++) {
            struct pollfd *fc = &fds[2 + 2 * i], *fu = &fds[3 + 2 * i];
            if (p->client[i] < 0) continue;
            char buf[16384];
            int closed = 0;
            if (fc->revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = read(p->client[i], buf, sizeof buf);
                pthread_mutex_lock(&p->lock);
                int frozen = p->frozen;
                if (frozen && r > 0) p->frozen_bytes += (unsigned long)r;
                pthread_mutex_unlock(&p->lock);
                if (r <= 0) {
                    closed = 1;
                } else if (!frozen && write(p->upstream[i], buf, (size_t)r) != r) {
                    closed = 1;
                }
            }
            if (!closed && (fu->revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t r = read(p->upstream[i], buf, sizeof buf);
                pthread_mutex_lock(&p->lock);
                int frozen = p->frozen;
                pthread_mutex_unlock(&p->lock);
                if (r <= 0) {
                    closed = 1;
                } else if (!frozen && write(p->client[i], buf, (size_t)r) != r) {
                    closed = 1;
                }
            }
            if (closed) proxy_close_pair(p, i);
        }
    }
    for (int i = 0; i < MAX_PAIRS; i++) {
        if (p->client[i] >= 0) proxy_close_pair(p, i);
    }
    return NULL;
}

static void proxy_start(proxy *p) {
    memset(p, 0, sizeof *p);
    for (int i = 0; i < MAX_PAIRS; i++) p->client[i] = p->upstream[i] = -1;
    pthread_mutex_init(&p->lock, NULL);
    if (pipe(p->stop_pipe) != 0) exit(1);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->listen_fd, 16) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &len) != 0) {
        perror("proxy");
        exit(1);
    }
    p->port = ntohs(a.sin_port);
    pthread_create(&p->thread, NULL, proxy_main, p);
}

static void proxy_freeze(proxy *p, int frozen) {
    pthread_mutex_lock(&p->lock);
    p->frozen = frozen;
    p->frozen_bytes = 0;
    pthread_mutex_unlock(&p->lock);
}

/* Waits until the frozen proxy swallowed client bytes: the call under test is on the wire. */
static void proxy_await_traffic(proxy *p) {
    for (int i = 0; i < 600; i++) {
        pthread_mutex_lock(&p->lock);
        unsigned long n = p->frozen_bytes;
        pthread_mutex_unlock(&p->lock);
        if (n > 0) return;
        sleep_ms(100);
    }
    fprintf(stderr, "the proxy saw no traffic within a minute\n");
    exit(1);
}

static void proxy_stop(proxy *p) {
    if (write(p->stop_pipe[1], "x", 1) != 1) exit(1);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->stop_pipe[0]);
    close(p->stop_pipe[1]);
    pthread_mutex_destroy(&p->lock);
}

/* ---- running a blocking call on another thread ---- */

typedef enum { OP_TEST, OP_FETCH, OP_ACK, OP_WAIT, OP_DEVICE_COMPLETE } op_kind;

typedef struct {
    pma_agent *agent;
    op_kind kind;
    pma_batch *batch;      /* OP_ACK */
    uint64_t timeout_ms;   /* OP_WAIT */
    pma_result rc;
    int arrived;
    int touched;           /* an out-parameter was written although the call failed */
    char error[1024];      /* the thread's own last error */
    pthread_mutex_t lock;
    int done;
    pthread_t thread;
} op;

static void *op_main(void *arg) {
    op *o = (op *)arg;
    pma_report *report = NULL;
    pma_batch *batch = NULL;
    bool arrived = false;
    switch (o->kind) {
    case OP_TEST:
        o->rc = pma_test_connection(o->agent, &report);
        o->touched = o->rc != PMA_OK && report != NULL;
        pma_report_free(report);
        break;
    case OP_FETCH:
        o->rc = pma_fetch_tickets(o->agent, 10, &batch);
        o->touched = o->rc != PMA_OK && batch != NULL;
        pma_batch_free(batch);
        break;
    case OP_ACK:
        o->rc = pma_ack(o->agent, o->batch);
        break;
    case OP_WAIT:
        o->rc = pma_wait_for_mail(o->agent, o->timeout_ms, &arrived);
        o->arrived = arrived;
        break;
    case OP_DEVICE_COMPLETE:
        o->rc = pma_device_login_complete(o->agent);
        break;
    }
    snprintf(o->error, sizeof o->error, "%s", thread_error());
    pthread_mutex_lock(&o->lock);
    o->done = 1;
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

/* Starts the call; `o->batch` and `o->timeout_ms` are set by the caller beforehand. */
static void op_start(op *o, pma_agent *agent, op_kind kind) {
    o->agent = agent;
    o->kind = kind;
    o->rc = PMA_OK;
    o->done = 0;
    o->touched = 0;
    o->arrived = 0;
    pthread_mutex_init(&o->lock, NULL);
    pthread_create(&o->thread, NULL, op_main, o);
}

static int op_done(op *o) {
    pthread_mutex_lock(&o->lock);
    int d = o->done;
    pthread_mutex_unlock(&o->lock);
    return d;
}

static void op_join(op *o) {
    pthread_join(o->thread, NULL);
    pthread_mutex_destroy(&o->lock);
}

/* Cancels from this thread until the call on `o` returned: a call that waits on purpose (IDLE,
 * a device-code sign-in nobody completes) ends only by cancellation, whenever it started. */
static void cancel_until_done(op *o) {
    while (!op_done(o)) {
        CHECK_RC(pma_cancel(o->agent), PMA_OK);
        sleep_ms(100);
    }
    op_join(o);
}

/* ---- the tests ---- */

static void test_misuse_of_new_functions(void) {
    pma_agent *agent = make_agent("misuse-new", env("PMA_TEST_USER2"), imaps_port(), "", NULL);
    pma_agent *bad = (pma_agent *)(void *)&failures; /* not a handle */
    char bad_utf8[] = {'a', (char)0xc3, (char)0x28, 0};
    pma_device_prompt prompt;
    memset(&prompt, 0, sizeof prompt);
    bool arrived = true;

    CHECK_RC(pma_set_password(NULL, "x"), PMA_NULL_ARGUMENT);
    CHECK(strstr(thread_error(), "agent is NULL") != NULL);
    CHECK_RC(pma_set_password(agent, NULL), PMA_NULL_ARGUMENT);
    CHECK(strstr(thread_error(), "password") != NULL);
    CHECK_RC(pma_set_password(agent, bad_utf8), PMA_INVALID_UTF8);
    CHECK_RC(pma_set_password(agent, ""), PMA_INVALID_ARGUMENT);
    CHECK_RC(pma_set_password(bad, "x"), PMA_INVALID_HANDLE);
    CHECK_RC(pma_set_client_secret(NULL, "x"), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_set_client_secret(agent, NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_set_client_secret(agent, bad_utf8), PMA_INVALID_UTF8);
    CHECK_RC(pma_set_client_secret(agent, ""), PMA_INVALID_ARGUMENT);
    CHECK_RC(pma_set_client_secret(bad, "x"), PMA_INVALID_HANDLE);
    CHECK_RC(pma_ack_tickets(NULL, NULL, 0), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_ack_tickets(agent, NULL, 0), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_ack_tickets(agent, (pma_batch *)(void *)agent, 0), PMA_INVALID_HANDLE);
    CHECK_RC(pma_wait_for_mail(NULL, 0, &arrived), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_wait_for_mail(agent, 0, NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_wait_for_mail(bad, 0, &arrived), PMA_INVALID_HANDLE);
    CHECK(arrived); /* untouched */
    CHECK_RC(pma_cancel(NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_cancel(bad), PMA_INVALID_HANDLE);
    CHECK_RC(pma_device_login_begin(NULL, &prompt), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_device_login_begin(agent, NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_device_login_complete(NULL), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_device_login_complete(bad), PMA_INVALID_HANDLE);
    /* The mailbox lacks its password: the calls that need the agent say so. */
    CHECK_RC(pma_device_login_complete(agent), PMA_CONFIG);
    CHECK(strstr(thread_error(), "password") != NULL);
    const uint8_t *p = (const uint8_t *)"untouched";
    size_t n = 7;
    CHECK_RC(pma_batch_raw(NULL, 0, &p, &n), PMA_NULL_ARGUMENT);
    CHECK_RC(pma_batch_raw((pma_batch *)(void *)agent, 0, &p, &n), PMA_INVALID_HANDLE);
    CHECK(n == 7);

    /* A cancel with nothing in progress has no effect: the next calls run normally. */
    CHECK_RC(pma_set_password(agent, env("PMA_PASSWORD")), PMA_OK);
    CHECK_RC(pma_cancel(agent), PMA_OK);
    CHECK_RC(pma_cancel(agent), PMA_OK);
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 0);
    CHECK_RC(pma_ack(agent, batch), PMA_OK);
    /* Basic sign-in: no device-code sign-in. */
    CHECK_RC(pma_device_login_begin(agent, &prompt), PMA_CONFIG);
    CHECK(strstr(thread_error(), "oauth") != NULL);
    CHECK(prompt.user_code == NULL);
    CHECK_RC(pma_device_login_complete(agent), PMA_CONFIG);
    pma_batch_free(batch);
    pma_free(agent);
    /* Freed: refused, never read. */
    CHECK_RC(pma_cancel(agent), PMA_INVALID_HANDLE);
    CHECK_RC(pma_set_password(agent, "x"), PMA_INVALID_HANDLE);
    CHECK_RC(pma_wait_for_mail(agent, 0, &arrived), PMA_INVALID_HANDLE);
}

/* The mailbox's lock is taken by pma_init whether or not its JSON is complete. */
static void test_lock_without_credentials(void) {
    char json[4096];
    mailbox_json(json, sizeof json, "lock-early", env("PMA_TEST_USER2"), imaps_port(),
                 ", \"oauth\": {\"enabled\": true}");
    pma_agent *first = NULL, *second = NULL;
    CHECK_RC(pma_init(json, env("PMA_TEST_STATE"), &first), PMA_OK);
    CHECK_RC(pma_init(json, env("PMA_TEST_STATE"), &second), PMA_IO);
    CHECK(second == NULL);
    CHECK(strstr(thread_error(), "already being processed") != NULL);
    pma_free(first);
    CHECK_RC(pma_init(json, env("PMA_TEST_STATE"), &second), PMA_OK);
    pma_free(second);
}

/* Basic sign-in with the password from the host: missing, right, wrong, right again. */
static void test_set_password_basic(void) {
    pma_agent *agent = make_agent("set-password", env("PMA_TEST_USER2"), imaps_port(), "", NULL);
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_CONFIG);
    CHECK(strstr(thread_error(), "password") != NULL);
    CHECK_RC(pma_set_password(agent, env("PMA_PASSWORD")), PMA_OK);
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    CHECK(pma_report_healthy(report));
    pma_report_free(report);
    /* A wrong one replaces it at once, also for the open connection. */
    CHECK_RC(pma_set_password(agent, "Not-The-Pa55word"), PMA_OK);
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_LOGIN_FAILED);
    CHECK(strstr(thread_error(), "Not-The-Pa55word") == NULL);
    CHECK_RC(pma_set_password(agent, env("PMA_PASSWORD")), PMA_OK);
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_OK);
    CHECK_RC(pma_ack(agent, batch), PMA_OK);
    pma_batch_free(batch);
    pma_free(agent);
}

static const pma_step *failed_step(pma_report *report, pma_step *s) {
    for (size_t i = 0; i < pma_report_step_count(report); i++) {
        if (pma_report_step(report, i, s) == PMA_OK && s->status == PMA_STEP_FAILED) return s;
    }
    return NULL;
}

/* A wrong password fails the connection test although a token is cached; the right one with
 * a cached token stays healthy. */
static void test_wrong_password_fails_the_test(void) {
    char user[256];
    fresh_user(user, sizeof user, "c-truth");
    pma_agent *agent = make_agent("truth", user, imaps_port(), oauth_extra("password"),
                                  env("PMA_PASSWORD"));
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    CHECK(pma_report_healthy(report));
    pma_report_free(report);
    pma_free(agent); /* the token is cached in the state directory */

    agent = make_agent("truth", user, imaps_port(), oauth_extra("password"), env("PMA_PASSWORD"));
    report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    CHECK(pma_report_healthy(report));
    pma_report_free(report);

    CHECK_RC(pma_set_password(agent, "Not-The-Pa55word"), PMA_OK);
    report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    CHECK(!pma_report_healthy(report));
    pma_step s;
    memset(&s, 0, sizeof s);
    CHECK(failed_step(report, &s) != NULL);
    CHECK(s.name != NULL && strcmp(s.name, "token") == 0);
    CHECK(s.result == PMA_OAUTH_INVALID_CREDENTIALS);
    CHECK(s.detail != NULL && strstr(s.detail, "the password of") != NULL &&
          strstr(s.detail, user) != NULL && strstr(s.detail, "AADSTS50126") != NULL);
    CHECK(s.fix != NULL && strstr(s.fix, "re-enter the mailbox password") != NULL);
    pma_report_free(report);
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_OAUTH_INVALID_CREDENTIALS);
    CHECK(strstr(thread_error(), "the password of") != NULL);
    CHECK(strstr(thread_error(), "Not-The-Pa55word") == NULL);
    pma_free(agent);

    /* A new handle with the wrong password does not use the token cached for the right one. */
    agent = make_agent("truth", user, imaps_port(), oauth_extra("password"), "Not-The-Pa55word");
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_OAUTH_INVALID_CREDENTIALS);
    CHECK_RC(pma_set_password(agent, env("PMA_PASSWORD")), PMA_OK);
    report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    CHECK(pma_report_healthy(report));
    pma_report_free(report);
    pma_free(agent);
}

/* App-only sign-in with the client secret from the host. */
static void test_set_client_secret(void) {
    char user[256], extra[1024];
    fresh_user(user, sizeof user, "c-app");
    snprintf(extra, sizeof extra,
             ", \"oauth\": {\"enabled\": true, \"application_id\": \"app-confidential\","
             " \"directory_id\": \"contoso-tenant\", \"flow\": \"client_credentials\","
             " \"authority\": \"%s\"}",
             env("PMA_IDP_URL"));
    pma_agent *agent = make_agent("app-only", user, imaps_port(), extra, NULL);
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_CONFIG);
    CHECK(strstr(thread_error(), "client_secret") != NULL);
    CHECK_RC(pma_set_client_secret(agent, "not-the-s3cret"), PMA_OK);
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    pma_step s;
    memset(&s, 0, sizeof s);
    CHECK(failed_step(report, &s) != NULL);
    CHECK(s.name != NULL && strcmp(s.name, "token") == 0);
    CHECK(s.result == PMA_OAUTH_INVALID_CLIENT_SECRET);
    CHECK(s.detail != NULL && strstr(s.detail, "the client secret of application app-confidential") != NULL);
    CHECK(s.detail != NULL && strstr(s.detail, "not-the-s3cret") == NULL);
    pma_report_free(report);
    report = NULL;
    CHECK_RC(pma_set_client_secret(agent, "s3cret-app"), PMA_OK);
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    CHECK_RC(pma_report_step(report, 0, &s), PMA_OK);
    CHECK(strcmp(s.name, "token") == 0 && s.status == PMA_STEP_PASSED);
    CHECK(strstr(s.detail, "client secret") != NULL);
    pma_report_free(report);
    pma_free(agent);
}

static int ticket_has(const pma_batch *batch, size_t i, const char *needle) {
    const char *json = NULL;
    size_t len = 0;
    return pma_batch_ticket_json(batch, i, &json, &len) == PMA_OK && strstr(json, needle) != NULL;
}

/* keep_raw, and an attachment over max_attachment_bytes. Nothing is acknowledged here. */
static void test_raw_and_omitted(void) {
    pma_agent *agent = make_agent("raw", env("PMA_TEST_USER"), imaps_port(),
                                  ", \"keep_raw\": true, \"max_attachment_bytes\": 10",
                                  env("PMA_PASSWORD"));
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 3);
    for (size_t i = 0; i < pma_batch_count(batch); i++) {
        const uint8_t *raw = NULL;
        size_t len = 0;
        char id[64];
        snprintf(id, sizeof id, "Message-ID: <c-ffi-%zu@example.com>", i + 1);
        CHECK_RC(pma_batch_raw(batch, i, &raw, &len), PMA_OK);
        CHECK(raw != NULL && len > 100 && memcmp(raw, "From: ", 6) == 0);
        /* The message as sent, byte for byte (the seed is LF; IMAP delivers CRLF). */
        char *copy = (char *)malloc(len + 1);
        memcpy(copy, raw, len);
        copy[len] = '\0';
        CHECK(strstr(copy, id) != NULL);
        free(copy);
    }
    const uint8_t *raw = NULL;
    size_t len = 0;
    CHECK_RC(pma_batch_raw(batch, 3, &raw, &len), PMA_INDEX_OUT_OF_RANGE);
    CHECK_RC(pma_batch_raw(batch, 0, NULL, &len), PMA_NULL_ARGUMENT);
    CHECK(raw == NULL);

    /* hello.txt (17 bytes) is over the limit of 10: listed, marked, no bytes. */
    CHECK(ticket_has(batch, 1, "\"filename\":\"hello.txt\""));
    CHECK(ticket_has(batch, 1, "\"size\":17"));
    CHECK(ticket_has(batch, 1, "\"omitted\":\"too_large\""));
    CHECK(!ticket_has(batch, 0, "omitted"));
    CHECK(pma_batch_attachment_count(batch, 1) == 1);
    const uint8_t *bytes = (const uint8_t *)"untouched";
    size_t blen = 99;
    CHECK_RC(pma_batch_attachment(batch, 1, 0, &bytes, &blen), PMA_ATTACHMENT_OMITTED);
    CHECK(blen == 99 && memcmp(bytes, "untouched", 9) == 0);
    CHECK(strstr(thread_error(), "max_attachment_bytes") != NULL);
    CHECK(strstr(thread_error(), "hello.txt") != NULL);
    pma_batch_free(batch);
    pma_free(agent);

    /* Without keep_raw (the default) raw messages are not kept. */
    agent = make_agent("no-raw", env("PMA_TEST_USER"), imaps_port(), "", env("PMA_PASSWORD"));
    batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 1, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 1);
    CHECK_RC(pma_batch_raw(batch, 0, &raw, &len), PMA_RAW_NOT_KEPT);
    CHECK(strstr(thread_error(), "keep_raw") != NULL);
    pma_batch_free(batch);
    pma_free(agent);
}

/* Partial acknowledgement: the rest is delivered again. Acknowledges all three at the end. */
static void test_ack_tickets(void) {
    pma_agent *agent = make_agent("partial", env("PMA_TEST_USER"), imaps_port(), "",
                                  env("PMA_PASSWORD"));
    pma_agent *other = make_agent("partial-other", env("PMA_TEST_USER2"), imaps_port(), "",
                                  env("PMA_PASSWORD"));
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 3);
    CHECK_RC(pma_ack_tickets(agent, batch, 4), PMA_INVALID_ARGUMENT);
    CHECK(strstr(thread_error(), "count 4") != NULL);
    CHECK_RC(pma_ack_tickets(other, batch, 1), PMA_FOREIGN_BATCH);
    /* The PSA stored the first ticket, then failed. */
    CHECK_RC(pma_ack_tickets(agent, batch, 1), PMA_OK);
    CHECK_RC(pma_ack_tickets(agent, batch, 1), PMA_ALREADY_ACKED);
    CHECK_RC(pma_ack(agent, batch), PMA_ALREADY_ACKED);
    pma_batch_free(batch);

    /* The next fetch delivers the other two, not the first. */
    batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 2);
    CHECK(ticket_has(batch, 0, "c-ffi-2@example.com"));
    CHECK(ticket_has(batch, 1, "c-ffi-3@example.com"));
    /* Nothing stored: 0 hands the whole batch out again. */
    CHECK_RC(pma_ack_tickets(agent, batch, 0), PMA_OK);
    pma_batch_free(batch);
    batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 2);
    CHECK_RC(pma_ack_tickets(agent, batch, pma_batch_count(batch)), PMA_OK);
    pma_batch_free(batch);
    batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 0);
    pma_batch_free(batch);
    pma_free(agent);
    pma_free(other);
}

/* Waiting for mail: timeout, mail already waiting, mail arriving during the wait. */
static void *deliver_later(void *user) {
    sleep_ms(500);
    if (append_mail((const char *)user, "arrived-during-wait") != 0) {
        fprintf(stderr, "curl could not deliver the mail\n");
    }
    return NULL;
}

static void test_wait_for_mail(void) {
    pma_agent *agent = make_agent("waiter", env("PMA_TEST_USER2"), imaps_port(), "",
                                  env("PMA_PASSWORD"));
    bool arrived = true;
    CHECK_RC(pma_wait_for_mail(agent, 0, &arrived), PMA_OK);
    CHECK(!arrived);
    arrived = true;
    CHECK_RC(pma_wait_for_mail(agent, 300, &arrived), PMA_OK);
    CHECK(!arrived);

    pthread_t t;
    pthread_create(&t, NULL, deliver_later, (void *)env("PMA_TEST_USER2"));
    arrived = false;
    /* A minute at most; the mail comes much sooner and ends the wait. */
    CHECK_RC(pma_wait_for_mail(agent, 60000, &arrived), PMA_OK);
    pthread_join(t, NULL);
    CHECK(arrived);
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 1);
    CHECK(ticket_has(batch, 0, "arrived-during-wait"));
    pma_batch_free(batch); /* not acknowledged: it is waiting again */
    arrived = false;
    CHECK_RC(pma_wait_for_mail(agent, 60000, &arrived), PMA_OK);
    CHECK(arrived);
    batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 1);
    CHECK_RC(pma_ack(agent, batch), PMA_OK);
    pma_batch_free(batch);
    pma_free(agent);
}

/* Cancellation of every blocking call from another thread. */
static void test_cancel(void) {
    proxy px;
    proxy_start(&px);
    pma_agent *agent = make_agent("cancel", env("PMA_TEST_USER2"), px.port, "",
                                  env("PMA_PASSWORD"));
    op o;
    memset(&o, 0, sizeof o);

    /* wait: in IDLE for a minute unless cancelled. */
    o.timeout_ms = 60000;
    op_start(&o, agent, OP_WAIT);
    cancel_until_done(&o);
    CHECK(o.rc == PMA_CANCELLED);
    CHECK(strstr(o.error, "pma_cancel") != NULL);
    /* The next call works normally (it reconnects). */
    bool arrived = true;
    CHECK_RC(pma_wait_for_mail(agent, 0, &arrived), PMA_OK);
    CHECK(!arrived);

    /* test, fetch: the proxy is frozen, the call is known to be on the wire, then cancelled. */
    op_kind kinds[2] = {OP_TEST, OP_FETCH};
    for (int k = 0; k < 2; k++) {
        CHECK_RC(pma_set_password(agent, env("PMA_PASSWORD")), PMA_OK); /* drops the connection */
        proxy_freeze(&px, 1);
        op_start(&o, agent, kinds[k]);
        proxy_await_traffic(&px);
        CHECK(!op_done(&o));
        CHECK_RC(pma_cancel(agent), PMA_OK);
        op_join(&o);
        CHECK(o.rc == PMA_CANCELLED);
        CHECK(!o.touched);
        proxy_freeze(&px, 0);
        pma_report *report = NULL;
        CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
        CHECK(pma_report_healthy(report));
        pma_report_free(report);
    }

    /* ack: a delivered mail, fetched; the acknowledgement hangs on the frozen connection. */
    CHECK(append_mail(env("PMA_TEST_USER2"), "to-acknowledge") == 0);
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 1);
    proxy_freeze(&px, 1);
    o.batch = batch;
    op_start(&o, agent, OP_ACK);
    proxy_await_traffic(&px);
    CHECK_RC(pma_cancel(agent), PMA_OK);
    op_join(&o);
    CHECK(o.rc == PMA_CANCELLED);
    proxy_freeze(&px, 0);
    /* Not acknowledged: it may be acknowledged again, and then the mail does not come back. */
    CHECK_RC(pma_ack(agent, batch), PMA_OK);
    pma_batch_free(batch);
    batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 0);
    pma_batch_free(batch);

    /* A call waiting for its turn is cancelled too: one thread's wait hangs on the frozen
     * connection (holding the handle), another thread's fetch waits for the handle (or, if it
     * comes later, hangs on the frozen proxy itself); cancelling ends both. */
    op waiting, queued;
    memset(&waiting, 0, sizeof waiting);
    memset(&queued, 0, sizeof queued);
    proxy_freeze(&px, 1);
    waiting.timeout_ms = 60000;
    op_start(&waiting, agent, OP_WAIT);
    proxy_await_traffic(&px);
    op_start(&queued, agent, OP_FETCH);
    while (!op_done(&waiting) || !op_done(&queued)) {
        CHECK_RC(pma_cancel(agent), PMA_OK);
        sleep_ms(100);
    }
    op_join(&waiting);
    op_join(&queued);
    CHECK(waiting.rc == PMA_CANCELLED);
    CHECK(queued.rc == PMA_CANCELLED);
    CHECK(!queued.touched);
    proxy_freeze(&px, 0);
    arrived = true;
    CHECK_RC(pma_wait_for_mail(agent, 0, &arrived), PMA_OK);
    CHECK(!arrived);
    pma_free(agent);
    proxy_stop(&px);
}

/* Device-code sign-in in the host's UI: begin, a cancelled wait, the person signs in, done. */
static void test_device_login(void) {
    char user[256], path[512], body[4096];
    fresh_user(user, sizeof user, "c-device");
    CHECK(idp("/_test/set?device_interval=1", NULL, 0) == 200);
    pma_agent *agent = make_agent("device", user, imaps_port(), oauth_extra("device_code"), NULL);
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    pma_step s;
    memset(&s, 0, sizeof s);
    CHECK(failed_step(report, &s) != NULL && s.result == PMA_OAUTH_SIGN_IN_REQUIRED);
    pma_report_free(report);
    CHECK_RC(pma_device_login_complete(agent), PMA_DEVICE_LOGIN_NOT_STARTED);
    CHECK(strstr(thread_error(), "pma_device_login_begin") != NULL);

    pma_device_prompt prompt;
    memset(&prompt, 0, sizeof prompt);
    CHECK_RC(pma_device_login_begin(agent, &prompt), PMA_OK);
    CHECK(prompt.user_code != NULL && strlen(prompt.user_code) > 0);
    CHECK(prompt.verification_uri != NULL && strncmp(prompt.verification_uri, "http", 4) == 0);
    CHECK(prompt.message != NULL && strstr(prompt.message, prompt.user_code) != NULL);
    CHECK(prompt.expires_in_secs > 0);

    /* Nobody signs in yet: the host cancels the wait (a user closed the dialog). */
    op o;
    memset(&o, 0, sizeof o);
    op_start(&o, agent, OP_DEVICE_COMPLETE);
    cancel_until_done(&o);
    CHECK(o.rc == PMA_CANCELLED);

    /* The person signs in; the pending sign-in completes. */
    snprintf(path, sizeof path, "/_test/approve_device?user=%s&user_code=%s", user,
             prompt.user_code);
    CHECK(idp(path, body, sizeof body) == 200);
    CHECK_RC(pma_device_login_complete(agent), PMA_OK);
    CHECK_RC(pma_device_login_complete(agent), PMA_DEVICE_LOGIN_NOT_STARTED);
    report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    CHECK(pma_report_healthy(report));
    pma_report_free(report);
    pma_free(agent);
    idp("/_test/set?device_interval=5", NULL, 0);
}

/* Errors per thread: two threads sharing a handle never read each other's message. */
typedef struct {
    pma_agent *agent;
    pthread_barrier_t *barrier;
    int which;
    int own_ok;
} err_arg;

static void *err_main(void *p) {
    err_arg *a = (err_arg *)p;
    pma_batch *batch = NULL;
    if (a->which == 0) {
        pma_fetch_tickets(a->agent, 0, &batch); /* "max is 0" */
    }
    pthread_barrier_wait(a->barrier);
    if (a->which == 1) {
        pma_register_sent(a->agent, "", "T-1"); /* empty Message-ID */
    }
    pthread_barrier_wait(a->barrier);
    const char *mine = thread_error();
    a->own_ok = a->which == 0 ? strstr(mine, "max is 0") != NULL
                              : strstr(mine, "register_sent") != NULL;
    return NULL;
}

static void test_errors_per_thread(void) {
    pma_agent *agent = make_agent("errors", env("PMA_TEST_USER2"), imaps_port(), "",
                                  env("PMA_PASSWORD"));
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    err_arg args[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        args[i].agent = agent;
        args[i].barrier = &barrier;
        args[i].which = i;
        args[i].own_ok = 0;
        pthread_create(&t[i], NULL, err_main, &args[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK(args[0].own_ok);
    CHECK(args[1].own_ok);
    /* The handle keeps the last failure on it, from whichever thread. */
    char buf[1024];
    size_t n = 0;
    CHECK_RC(pma_last_error(agent, buf, sizeof buf, &n), PMA_OK);
    CHECK(strstr(buf, "register_sent") != NULL);
    pthread_barrier_destroy(&barrier);
    pma_free(agent);
}

/* ---- logging ---- */

#define MAX_RECORDS 2000

typedef struct {
    pthread_mutex_t lock;
    int count;
    int levels[MAX_RECORDS];
    char *texts[MAX_RECORDS];
} log_store;

static log_store records;

static void on_log(void *userdata, pma_log_level level, const char *target, const char *message) {
    log_store *s = (log_store *)userdata;
    (void)target;
    if (getenv("PMA_TEST_SHOW_LOG") != NULL) {
        fprintf(stderr, "log %u %s: %s\n", (unsigned)level, target, message);
    }
    pthread_mutex_lock(&s->lock);
    if (s->count < MAX_RECORDS) {
        size_t len = strlen(message);
        char *copy = (char *)malloc(len + 1);
        memcpy(copy, message, len + 1);
        s->levels[s->count] = (int)level;
        s->texts[s->count] = copy;
        s->count++;
    }
    pthread_mutex_unlock(&s->lock);
}

static void clear_records(void) {
    pthread_mutex_lock(&records.lock);
    for (int i = 0; i < records.count; i++) free(records.texts[i]);
    records.count = 0;
    pthread_mutex_unlock(&records.lock);
}

/* Whether a record of `level` contains every one of the NULL-terminated needles. */
static int has_record(int level, const char *a, const char *b, const char *c) {
    int found = 0;
    pthread_mutex_lock(&records.lock);
    for (int i = 0; i < records.count && !found; i++) {
        const char *t = records.texts[i];
        found = records.levels[i] == level && strstr(t, a) != NULL &&
                (b == NULL || strstr(t, b) != NULL) && (c == NULL || strstr(t, c) != NULL);
    }
    pthread_mutex_unlock(&records.lock);
    return found;
}

static int any_record_has(const char *needle) {
    int found = 0;
    pthread_mutex_lock(&records.lock);
    for (int i = 0; i < records.count && !found; i++) found = strstr(records.texts[i], needle) != NULL;
    pthread_mutex_unlock(&records.lock);
    return found;
}

static void test_log_records(void) {
    /* A fetch-and-ack run: connection, sign-in, the batch (count, bytes), the ack. */
    char user[256];
    fresh_user(user, sizeof user, "c-log");
    CHECK(append_mail_as(user, "logged-1", 1) == 0);
    CHECK(append_mail_as(user, "logged-2", 1) == 0);
    clear_records();
    pma_agent *agent = make_agent("logged", user, imaps_port(), oauth_extra("password"),
                                  env("PMA_PASSWORD"));
    pma_batch *batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OK);
    CHECK(pma_batch_count(batch) == 2);
    CHECK_RC(pma_ack(agent, batch), PMA_OK);
    pma_batch_free(batch);
    CHECK(has_record(PMA_LOG_INFO, "signed in as", user, "password flow"));
    CHECK(has_record(PMA_LOG_INFO, "connected to 127.0.0.1:", "XOAUTH2 as", user));
    CHECK(has_record(PMA_LOG_INFO, "fetched 2 ticket(s) from 2 message(s)", "bytes", NULL));
    CHECK(has_record(PMA_LOG_INFO, "acknowledged 2 message(s)", "mark_read", NULL));
    CHECK(has_record(PMA_LOG_DEBUG, "UID FETCH of 2 message(s)", NULL, NULL));
    CHECK(!any_record_has(env("PMA_PASSWORD")));
    pma_free(agent);

    /* A failed sign-in: the failure reaching the caller is logged with its cause. */
    clear_records();
    agent = make_agent("logged", user, imaps_port(), oauth_extra("password"), "Not-The-Pa55word");
    pma_report *report = NULL;
    CHECK_RC(pma_test_connection(agent, &report), PMA_OK);
    pma_report_free(report);
    batch = NULL;
    CHECK_RC(pma_fetch_tickets(agent, 10, &batch), PMA_OAUTH_INVALID_CREDENTIALS);
    CHECK(has_record(PMA_LOG_WARN, "connection test failed at step token", "the password of", user));
    CHECK(has_record(PMA_LOG_ERROR, "pma_fetch_tickets: PMA_OAUTH_INVALID_CREDENTIALS",
                     "the password of", "AADSTS50126"));
    CHECK(!any_record_has("Not-The-Pa55word"));
    CHECK(!any_record_has(env("PMA_PASSWORD")));
    pma_free(agent);
    clear_records();
}

int main(void) {
    snprintf(run_id, sizeof run_id, "%ld-%ld", (long)getpid(), (long)time(NULL));
    pthread_mutex_init(&records.lock, NULL);
    CHECK_RC(pma_set_log_callback(on_log, &records, PMA_LOG_DEBUG), PMA_OK);

    test_misuse_of_new_functions();
    test_lock_without_credentials();
    test_set_password_basic();
    test_wrong_password_fails_the_test();
    test_set_client_secret();
    test_raw_and_omitted();
    test_ack_tickets();
    test_wait_for_mail();
    test_cancel();
    test_device_login();
    test_errors_per_thread();
    test_log_records();

    CHECK_RC(pma_set_log_callback(NULL, NULL, PMA_LOG_OFF), PMA_OK);
    clear_records();
    pthread_mutex_destroy(&records.lock);
    printf("test_longlived: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
