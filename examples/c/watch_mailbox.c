/*
 * A long-lived host: turns mail into ticket files as it arrives, until told to stop.
 *
 *   watch_mailbox MAILBOX.json OUTDIR
 *
 * - The password comes from the host (here the environment variable PMA_MAILBOX_PASSWORD stands
 *   in for the PSA's vault) through pma_set_password, not from the JSON.
 * - Between fetches it waits for new mail with pma_wait_for_mail (IMAP IDLE), not by polling.
 * - When storing a ticket fails, only the tickets stored before are acknowledged
 *   (pma_ack_tickets); the others come again with the next fetch.
 * - SIGINT/SIGTERM, or a file OUTDIR/STOP, stop it: another thread calls pma_cancel, which ends
 *   the wait (or fetch, or ack) in progress at once with PMA_CANCELLED.
 *
 * Build: cc -std=c99 watch_mailbox.c -Iinclude -Ltarget/release -lpsa_mail_agent -lpthread
 */
#define _POSIX_C_SOURCE 200809L
#include "psa_mail_agent.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_requested = 0; /* set by the stopper thread */
static int main_done = 0;      /* set by the main thread when its loop ended */

static int get_flag(const int *flag) {
    pthread_mutex_lock(&stop_lock);
    int v = *flag;
    pthread_mutex_unlock(&stop_lock);
    return v;
}

static void set_flag(int *flag) {
    pthread_mutex_lock(&stop_lock);
    *flag = 1;
    pthread_mutex_unlock(&stop_lock);
}

static int stopping(void) { return get_flag(&stop_requested); }

typedef struct {
    pma_agent *agent;
    const char *stop_file;
    sigset_t signals;
} stopper_arg;

/* Waits for SIGINT/SIGTERM or the stop file, then cancels the agent's blocking call. */
static void *stopper(void *p) {
    stopper_arg *a = (stopper_arg *)p;
    while (!get_flag(&main_done)) {
        struct timespec poll_every = {0, 200 * 1000000L};
        siginfo_t info;
        int sig = sigtimedwait(&a->signals, &info, &poll_every);
        if (sig > 0 || access(a->stop_file, F_OK) == 0) {
            set_flag(&stop_requested);
            break;
        }
    }
    /* From this thread, while the main thread blocks in the library. A cancel ends only the
     * call in progress, so repeat it until the main loop saw the stop (it may have been
     * between two calls). */
    while (!get_flag(&main_done)) {
        pma_cancel(a->agent);
        struct timespec pause = {0, 100 * 1000000L};
        nanosleep(&pause, NULL);
    }
    return NULL;
}

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

/* The calling thread's last error: exact even when other threads share the agent. */
static const char *last_error(void) {
    static char message[2048];
    size_t n = 0;
    if (pma_last_error(NULL, message, sizeof message, &n) != PMA_OK) {
        message[0] = '\0';
    }
    return message;
}

/* Stores ticket `i` of the batch as OUTDIR/ticket-NUMBER.json; 0 on success. */
static int store_ticket(const pma_batch *batch, size_t i, const char *outdir, size_t number) {
    const char *ticket = NULL;
    size_t len = 0;
    char path[4096];
    if (pma_batch_ticket_json(batch, i, &ticket, &len) != PMA_OK) {
        return -1;
    }
    snprintf(path, sizeof path, "%s/ticket-%zu.json", outdir, number);
    return write_file(path, ticket, len);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MAILBOX.json OUTDIR\n", argv[0]);
        return 2;
    }
    /* Signals go to the stopper thread only (blocked here, inherited by every thread). */
    stopper_arg stop;
    sigemptyset(&stop.signals);
    sigaddset(&stop.signals, SIGINT);
    sigaddset(&stop.signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop.signals, NULL);

    char *json = read_file(argv[1]);
    if (json == NULL) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    pma_agent *agent = NULL;
    pma_result rc = pma_init(json, "./state", &agent);
    free(json);
    if (rc != PMA_OK) {
        fprintf(stderr, "pma_init: %s: %s\n", pma_result_str(rc), last_error());
        return 1;
    }
    const char *password = getenv("PMA_MAILBOX_PASSWORD");
    if (password != NULL && (rc = pma_set_password(agent, password)) != PMA_OK) {
        fprintf(stderr, "pma_set_password: %s: %s\n", pma_result_str(rc), last_error());
        pma_free(agent);
        return 1;
    }
    mkdir(argv[2], 0700);
    char stop_file[4096];
    snprintf(stop_file, sizeof stop_file, "%s/STOP", argv[2]);
    stop.agent = agent;
    stop.stop_file = stop_file;
    pthread_t stopper_thread;
    pthread_create(&stopper_thread, NULL, stopper, &stop);

    size_t stored = 0;
    int status = 0;
    while (!stopping()) {
        pma_batch *batch = NULL;
        rc = pma_fetch_tickets(agent, 50, &batch);
        if (rc == PMA_CANCELLED) {
            break;
        }
        if (rc != PMA_OK) {
            fprintf(stderr, "pma_fetch_tickets: %s: %s\n", pma_result_str(rc), last_error());
            status = 1;
            break;
        }
        size_t count = pma_batch_count(batch);
        size_t done = 0;
        while (done < count && store_ticket(batch, done, argv[2], stored + done + 1) == 0) {
            done++;
        }
        /* Acknowledge exactly what was stored: the rest comes again with the next fetch. */
        rc = done == count ? pma_ack(agent, batch) : pma_ack_tickets(agent, batch, done);
        pma_batch_free(batch);
        if (rc == PMA_CANCELLED) {
            break; /* not acknowledged: those tickets come again next time */
        }
        if (rc != PMA_OK) {
            fprintf(stderr, "acknowledging: %s: %s\n", pma_result_str(rc), last_error());
            status = 1;
            break;
        }
        stored += done;
        if (done < count) {
            printf("stored %zu of %zu ticket(s); acknowledged those, the rest comes again\n",
                   done, count);
            fflush(stdout);
            struct timespec pause = {1, 0};
            nanosleep(&pause, NULL); /* e.g. the PSA's database is down: try again later */
            continue;
        }
        if (count > 0) {
            printf("stored %zu ticket(s), %zu in all\n", count, stored);
            fflush(stdout);
            continue; /* more may be waiting */
        }
        /* Nothing waiting: wait for new mail (IDLE), at most 25 minutes, then look again. */
        bool arrived = false;
        rc = pma_wait_for_mail(agent, 25 * 60 * 1000, &arrived);
        if (rc == PMA_CANCELLED) {
            break;
        }
        if (rc != PMA_OK) {
            fprintf(stderr, "pma_wait_for_mail: %s: %s\n", pma_result_str(rc), last_error());
            status = 1;
            break;
        }
    }
    if (status == 0) {
        printf("stopped: %zu ticket(s) stored\n", stored);
    }
    set_flag(&main_done);
    pthread_join(stopper_thread, NULL);
    pma_free(agent);
    return status;
}
