/*
 * Fetches new tickets from one mailbox and stores each as a file, then acknowledges them.
 *
 *   fetch_tickets MAILBOX.json OUTDIR
 *
 * MAILBOX.json holds one entry of the "mailboxes" array (see the README). For OAuth 2.0 set
 * PMA_APPLICATION_ID and PMA_DIRECTORY_ID (and PMA_CLIENT_SECRET for app-only access).
 * Build: cc -std=c99 fetch_tickets.c -Iinclude -Ltarget/release -lpsa_mail_agent
 */
#define _POSIX_C_SOURCE 200809L
#include "psa_mail_agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *text = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            text = (char *)malloc((size_t)size + 1);
            if (text != NULL) {
                size_t n = fread(text, 1, (size_t)size, f);
                text[n] = '\0';
            }
        }
    }
    fclose(f);
    return text;
}

static int write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }
    size_t n = fwrite(data, 1, len, f);
    int closed = fclose(f);
    return (n == len && closed == 0) ? 0 : -1;
}

/* Prints what went wrong and the administrator's fix. agent NULL: a failed pma_init. */
static int fail(const pma_agent *agent, const char *what, pma_result rc) {
    char message[2048];
    size_t n = 0;
    if (pma_last_error(agent, message, sizeof message, &n) != PMA_OK) {
        message[0] = '\0';
    }
    fprintf(stderr, "%s failed: %s: %s\n", what, pma_result_str(rc), message);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MAILBOX.json OUTDIR\n", argv[0]);
        return 2;
    }
    char *json = read_file(argv[1]);
    if (json == NULL) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    pma_agent *agent = NULL;
    pma_result rc = pma_init(json, "./state", &agent);
    free(json);
    if (rc != PMA_OK) {
        return fail(NULL, "pma_init", rc);
    }

    const char *app = getenv("PMA_APPLICATION_ID");
    const char *tenant = getenv("PMA_DIRECTORY_ID");
    if (app != NULL && tenant != NULL) {
        rc = pma_set_oauth_credentials(agent, app, tenant, getenv("PMA_CLIENT_SECRET"));
        if (rc != PMA_OK) {
            int status = fail(agent, "pma_set_oauth_credentials", rc);
            pma_free(agent);
            return status;
        }
    }

    /* Diagnose first: every step, and for a failure its cause and fix. */
    pma_report *report = NULL;
    rc = pma_test_connection(agent, &report);
    if (rc != PMA_OK) {
        int status = fail(agent, "pma_test_connection", rc);
        pma_free(agent);
        return status;
    }
    int healthy = pma_report_healthy(report);
    for (size_t i = 0; i < pma_report_step_count(report); i++) {
        pma_step step;
        if (pma_report_step(report, i, &step) == PMA_OK) {
            printf("%-12s %s  %s\n", step.name,
                   step.status == PMA_STEP_PASSED ? "ok  " :
                   step.status == PMA_STEP_FAILED ? "FAIL" : "skip",
                   step.detail);
            if (step.fix != NULL) {
                printf("             fix: %s\n", step.fix);
            }
        }
    }
    pma_report_free(report);
    if (!healthy) {
        pma_free(agent);
        return 1;
    }

    mkdir(argv[2], 0700);
    size_t stored = 0;
    for (;;) {
        pma_batch *batch = NULL;
        rc = pma_fetch_tickets(agent, 50, &batch);
        if (rc != PMA_OK) {
            int status = fail(agent, "pma_fetch_tickets", rc);
            pma_free(agent);
            return status;
        }
        size_t count = pma_batch_count(batch);
        if (count == 0) {
            pma_batch_free(batch);
            break;
        }
        /* Store every ticket (a PSA creates its tickets here; dedupe_key in the JSON
         * recognises one delivered twice after a crash). */
        int ok = 1;
        for (size_t i = 0; i < count && ok; i++) {
            const char *ticket = NULL;
            size_t len = 0;
            char path[4096];
            size_t number = stored + i + 1;
            ok = pma_batch_ticket_json(batch, i, &ticket, &len) == PMA_OK;
            snprintf(path, sizeof path, "%s/ticket-%zu.json", argv[2], number);
            ok = ok && write_file(path, ticket, len) == 0;
            for (size_t a = 0; ok && a < pma_batch_attachment_count(batch, i); a++) {
                const uint8_t *bytes = NULL;
                size_t size = 0;
                ok = pma_batch_attachment(batch, i, a, &bytes, &size) == PMA_OK;
                snprintf(path, sizeof path, "%s/ticket-%zu-attachment-%zu.bin", argv[2], number, a);
                ok = ok && write_file(path, bytes, size) == 0;
            }
        }
        /* Acknowledge only what was stored: otherwise the tickets come again next time. */
        if (ok) {
            rc = pma_ack(agent, batch);
        }
        pma_batch_free(batch);
        if (!ok) {
            fprintf(stderr, "storing a ticket failed; nothing acknowledged\n");
            pma_free(agent);
            return 1;
        }
        if (rc != PMA_OK) {
            int status = fail(agent, "pma_ack", rc);
            pma_free(agent);
            return status;
        }
        stored += count;
    }
    printf("stored %zu ticket(s) in %s\n", stored, argv[2]);
    pma_free(agent);
    return 0;
}
