#!/usr/bin/env python3
"""Turns scripts/bench's measurements into the Markdown report (README.md's Performance figures).

    report.py RESULTS FIRST_TICKET SIZES PARSE

RESULTS rows: kind client messages bytes largest round wall_s user_s sys_s maxrss_kb load1.
"""
import os
import platform
import statistics
import sys

NAMES = {
    "wire": "(a) native wire limit (C, OpenSSL)",
    "wire-rs": "(a') wire client in Rust (rustls, benches/wire.rs)",
    "mbsync": "(b) mbsync (isync) to a local maildir",
    "python": "(c) Python imaplib + email.parser",
    "agent": "(d) psa-mail-agent fetch --no-ack > /dev/null",
    "agent-run": "(e) psa-mail-agent run, spool output",
    "graph": "(f) psa-mail-agent fetch, transport graph (Graph stand-in over the same Dovecot mailbox)",
}
ORDER = ("wire", "wire-rs", "mbsync", "python", "agent", "agent-run", "graph")
KINDS = {
    "small": "Small mail (5-50 KB each)",
    "mixed": "Mixed helpdesk mail",
    "big": "One 100 MB message among small ones",
}
MB = 1024 * 1024


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def main():
    results, first, sizes, parse = sys.argv[1:5]
    first, sizes, parse = read(first), read(sizes), read(parse)
    rows = [line.split() for line in read(results).splitlines() if line.strip()]
    runs = {}
    meta = {}
    for kind, client, count, size, largest, _round, wall, user, sys_, rss, load in rows:
        runs.setdefault((kind, client), []).append(
            (float(wall), float(user) + float(sys_), int(rss), float(load)))
        meta[kind] = (int(count), int(size), int(largest))

    cpu = "unknown"
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print(f"Machine: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
          f"{platform.python_implementation()} {platform.python_version()}; "
          "client and Dovecot on the same host (loopback, TLS 1.3).")
    print()

    def med(kind, client, i):
        return statistics.median(r[i] for r in runs[(kind, client)])

    def table(kind):
        count, size, largest = meta[kind]
        rounds = max(len(v) for (k, _), v in runs.items() if k == kind)
        loads = [r[3] for (k, _), v in runs.items() if k == kind for r in v]
        print(f"**{KINDS[kind]}**: {count:,} messages, {size / MB:.0f} MB as sent by IMAP "
              f"(largest {largest / 1024:,.0f} KB); {rounds} timed rounds after a checked warm-up, "
              f"clients alternating; load average {min(loads):.1f} to {max(loads):.1f} during the "
              "runs. Median (best) of the rounds; CPU = user + system seconds of the client "
              "alone; RSS = its peak resident set.")
        print()
        print("| client | messages/s | MB/s | wall s | CPU s | CPU µs/message | peak RSS MB "
              "| speed vs (a) | CPU vs (a) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        wire = runs.get((kind, "wire"))
        for client in ORDER:
            r = runs.get((kind, client))
            if not r:
                continue
            walls = [x[0] for x in r]
            m, best = statistics.median(walls), min(walls)
            c = med(kind, client, 1)
            speed = f"{med(kind, 'wire', 0) / m:.2f}" if wire else "-"
            cpu_ratio = f"{c / med(kind, 'wire', 1):.2f}x" if wire else "-"
            print(f"| {NAMES[client]} | {count / m:,.0f} ({count / best:,.0f}) | "
                  f"{size / MB / m:,.1f} ({size / MB / best:,.1f}) | {m:.2f} | {c:.2f} | "
                  f"{c / count * 1e6:,.0f} | {max(x[2] for x in r) / 1024:.1f} | {speed} | "
                  f"{cpu_ratio} |")
        print()

    for kind in ("small", "mixed", "big"):
        if kind in meta:
            table(kind)

    if first:
        lo, m = first.split()
        print(f"Start-up: process start to the first ticket on stdout (loopback, TLS, LOGIN, "
              f"SELECT, first batch): {lo} ms best, {m} ms median of 10.")
        print()
    if sizes:
        parts = dict(line.split() for line in sizes.splitlines())
        print(f"Footprint (release profile, stripped): binary {int(parts['binary']) / MB:.2f} MB, "
              f"cdylib {int(parts['cdylib']) / MB:.2f} MB.")
        print()
    if parse:
        print("Parse only (`cargo bench --bench parse`, one core, fixtures repeated to 50 MB):")
        print()
        for line in parse.splitlines():
            print(f"    {line}")
        print()

    checks = []

    def have(kind, *clients):
        return all((kind, c) in runs for c in clients)

    if have("small", "wire", "agent"):
        speed = med("small", "wire", 0) / med("small", "agent", 0)
        cpu_ratio = med("small", "agent", 1) / med("small", "wire", 1)
        rss = (max(x[2] for x in runs[("small", "agent")])
               - max(x[2] for x in runs[("small", "wire")])) / 1024
        checks += [f"small mail: (d) speed {speed:.2f} of (a) (target >= 0.80)",
                   f"CPU per message {cpu_ratio:.2f}x (a)'s (target <= 1.6x)",
                   f"peak RSS (a) + {rss:.1f} MB (target <= + 4 MB)"]
    if have("mixed", "wire", "agent"):
        speed = med("mixed", "wire", 0) / med("mixed", "agent", 0)
        checks.append(f"mixed mail: (d) speed {speed:.2f} of (a) (target >= 0.90)")
    for client in ("agent", "agent-run"):
        if have("big", client):
            rss = max(x[2] for x in runs[("big", client)]) / 1024
            checks.append(f"100 MB message: ({'d' if client == 'agent' else 'e'}) peak RSS "
                          f"{rss:.1f} MB (target <= 116)")
    if checks:
        print("Targets: " + "; ".join(checks) + ".")


if __name__ == "__main__":
    main()
