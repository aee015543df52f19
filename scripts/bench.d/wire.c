/*
 * The native wire limit for scripts/bench: the least work an IMAP client can do to read a folder.
 * OpenSSL over implicit TLS, LOGIN, SELECT, one `UID FETCH 1:* BODY.PEEK[]`, literals followed
 * and their bytes discarded straight out of one 256 KiB buffer: nothing is parsed, copied or
 * kept. Every other client in the benchmark (the agent, benches/wire.rs on rustls, mbsync, the
 * Python script) is measured against it.
 *
 * Built by scripts/bench: cc -O2 -o wire wire.c -lssl -lcrypto (Debian: libssl-dev).
 * Reads PMA_BENCH_HOST PMA_BENCH_PORT PMA_BENCH_CA PMA_BENCH_USER PMA_BENCH_PASSWORD and
 * optionally PMA_BENCH_FOLDER (INBOX); prints `wire: MESSAGES messages BYTES bytes`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (256 * 1024)

static SSL *ssl;
static char buf[BUF];
static size_t start, end;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("wire: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  ERR_print_errors_fp(stderr);
  exit(1);
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) die("%s is not set (scripts/bench sets it)", name);
  return v;
}

/* Reads more bytes after `end`, moving the unread rest to the front when the buffer is full. */
static void fill(void) {
  if (start == end) start = end = 0;
  if (end == BUF) {
    if (start == 0) die("a response line longer than %d bytes", BUF);
    memmove(buf, buf + start, end - start);
    end -= start;
    start = 0;
  }
  int n = SSL_read(ssl, buf + end, (int)(BUF - end));
  if (n <= 0) die("connection closed (SSL_read %d)", SSL_get_error(ssl, n));
  end += (size_t)n;
}

/* The next line (up to and including LF) as [*line, *line + *len), valid until the next read. */
static void read_line(const char **line, size_t *len) {
  size_t scanned = start;
  for (;;) {
    char *lf = memchr(buf + scanned, '\n', end - scanned);
    if (lf) {
      *line = buf + start;
      *len = (size_t)(lf + 1 - (buf + start));
      start += *len;
      return;
    }
    size_t off = end - start;
    fill();
    scanned = start + off;
    if (scanned > end) scanned = end;
  }
}

static void skip(unsigned long long n) {
  while (n > 0) {
    if (start == end) fill();
    size_t have = end - start;
    size_t take = have < n ? have : (size_t)n;
    start += take;
    n -= take;
  }
}

/* The literal length announced at the end of a line (`... {1234}\r\n`), or -1. */
static long long literal_len(const char *line, size_t len) {
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
  if (len == 0 || line[len - 1] != '}') return -1;
  size_t i = len - 1;
  if (i > 0 && line[i - 1] == '+') i--;
  size_t digits_end = i;
  while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9') i--;
  if (i == 0 || line[i - 1] != '{' || i == digits_end) return -1;
  long long n = 0;
  for (size_t k = i; k < digits_end; k++) n = n * 10 + (line[k] - '0');
  return n;
}

/* Reads responses up to the tagged one, skipping literals; counts FETCH responses and bytes. */
static void finish(const char *tag, unsigned long long *fetches, unsigned long long *bytes) {
  size_t tl = strlen(tag);
  for (;;) {
    const char *line;
    size_t len;
    read_line(&line, &len);
    if (len > 2 && line[0] == '*' && memmem(line, len < 64 ? len : 64, " FETCH ", 7)) (*fetches)++;
    long long n = literal_len(line, len);
    if (n >= 0) {
      *bytes += (unsigned long long)n;
      skip((unsigned long long)n);
      continue;
    }
    if (len > tl && memcmp(line, tag, tl) == 0 && line[tl] == ' ') {
      if (len >= tl + 3 && memcmp(line + tl + 1, "OK", 2) == 0) return;
      die("%.*s", (int)len, line);
    }
  }
}

static void send_all(const char *s) {
  int n = SSL_write(ssl, s, (int)strlen(s));
  if (n <= 0) die("write failed");
}

/* A quoted IMAP string. */
static void quote(char *out, size_t cap, const char *s) {
  size_t o = 0;
  out[o++] = '"';
  for (; *s && o + 3 < cap; s++) {
    if (*s == '"' || *s == '\\') out[o++] = '\\';
    out[o++] = *s;
  }
  out[o++] = '"';
  out[o] = 0;
}

int main(void) {
  const char *host = env("PMA_BENCH_HOST"), *port = env("PMA_BENCH_PORT"),
             *ca = env("PMA_BENCH_CA"), *user = env("PMA_BENCH_USER"),
             *password = env("PMA_BENCH_PASSWORD");
  const char *folder = getenv("PMA_BENCH_FOLDER");
  if (!folder || !*folder) folder = "INBOX";

  struct addrinfo hints = {0}, *ai;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, port, &hints, &ai);
  if (rc) die("%s: %s", host, gai_strerror(rc));
  int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
  if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) die("connect: %s", strerror(errno));
  freeaddrinfo(ai);

  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) die("cannot load %s", ca);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, host);
  if (SSL_connect(ssl) != 1) die("TLS handshake with %s:%s failed", host, port);

  const char *line;
  size_t len;
  read_line(&line, &len); /* greeting */
  unsigned long long fetches = 0, bytes = 0;
  char cmd[2200], a[1024], b[1024];
  quote(a, sizeof a, user);
  quote(b, sizeof b, password);
  snprintf(cmd, sizeof cmd, "a1 LOGIN %s %s\r\n", a, b);
  send_all(cmd);
  finish("a1", &fetches, &bytes);
  quote(a, sizeof a, folder);
  snprintf(cmd, sizeof cmd, "a2 SELECT %s\r\n", a);
  send_all(cmd);
  finish("a2", &fetches, &bytes);
  fetches = bytes = 0;
  send_all("a3 UID FETCH 1:* BODY.PEEK[]\r\n");
  finish("a3", &fetches, &bytes);
  send_all("a4 LOGOUT\r\n");
  printf("wire: %llu messages %llu bytes\n", fetches, bytes);
  return 0;
}
