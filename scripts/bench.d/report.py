#!/usr/bin/env python3
"""Turns scripts/bench's measurements into the Markdown report (README.md's Performance figures).

    report.py RESULTS FIRST_TICKET SIZES PARSE N SMALL

RESULTS rows: client messages bytes largest round wall_s user_s sys_s maxrss_kb.
"""
import os
import platform
import statistics
import sys

NAMES = {
    "wire": "(a) wire limit: `UID FETCH 1:* BODY.PEEK[]`, bytes discarded",
    "mbsync": "(b) mbsync (isync) to a local maildir",
    "python": "(c) Python imaplib + email.parser, same ticket fields",
    "agent": "(d) psa-mail-agent fetch --no-ack > /dev/null",
    "graph": "(e) the same, transport graph (Graph stand-in over the same Dovecot mailbox)",
}
MB = 1024 * 1024


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def main():
    results, first, sizes, parse, n, small = sys.argv[1:7]
    n, small = int(n), int(small)
    first, sizes, parse = read(first), read(sizes), read(parse)
    rows = [line.split() for line in read(results).splitlines() if line.strip()]
    runs = {}
    meta = {}
    for client, count, size, largest, _round, wall, user, sys_, rss in rows:
        key = (client, int(count))
        runs.setdefault(key, []).append((float(wall), float(user) + float(sys_), int(rss)))
        meta[int(count)] = (int(size), int(largest))

    cpu = "unknown"
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print(f"Machine: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
          f"{platform.python_implementation()} {platform.python_version()}; "
          "client and Dovecot on the same host (loopback, TLS 1.3).")
    print()

    def table(count):
        size, largest = meta[count]
        rounds = max(len(v) for (c, k), v in runs.items() if k == count)
        print(f"{count} messages, {size / MB:.0f} MB as sent by IMAP (largest {largest / MB:.1f} MB); "
              f"{rounds} timed rounds after a checked warm-up, clients alternating. "
              "Median (best) of the rounds; CPU = user + system seconds of the client alone; "
              "RSS = peak resident set of the client.")
        print()
        print("| client | messages/s | MB/s | wall s | CPU s | peak RSS MB | vs (a) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        wire = runs.get(("wire", count))
        base = count / statistics.median(w for w, _, _ in wire) if wire else None
        for client in ("wire", "mbsync", "python", "agent", "graph"):
            r = runs.get((client, count))
            if not r:
                continue
            walls = [w for w, _, _ in r]
            med, best = statistics.median(walls), min(walls)
            cpus = [c for _, c, _ in r]
            rate = count / med
            ratio = f"{rate / base:.2f}" if base else "-"
            print(f"| {NAMES[client]} | {rate:,.0f} ({count / best:,.0f}) | "
                  f"{size / MB / med:,.1f} ({size / MB / best:,.1f}) | {med:.2f} | "
                  f"{statistics.median(cpus):.2f} | {max(x for _, _, x in r) / 1024:.1f} | {ratio} |")
        print()

    table(n)
    agent_n = runs.get(("agent", n))
    agent_s = runs.get(("agent", small))
    if agent_n:
        print("Memory of (d): peak RSS by mailbox size (max over the rounds):")
        print()
        for count, r in sorted(((small, agent_s), (n, agent_n)), key=lambda x: x[0]):
            if r:
                rss = max(x for _, _, x in r) * 1024
                largest = meta[count][1]
                print(f"- {count} messages: {rss / MB:.1f} MB; largest message {largest / MB:.1f} MB; "
                      f"RSS minus the largest message {(rss - largest) / MB:.1f} MB")
        print()
    if first:
        lo, med = first.split()
        print(f"Start-up: process start to the first ticket on stdout (loopback, TLS, LOGIN, "
              f"SELECT, first batch): {lo} ms best, {med} ms median of 10.")
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
    if agent_n and runs.get(("wire", n)):
        med = lambda c: n / statistics.median(w for w, _, _ in runs[(c, n)])
        d = med("agent")
        checks = [f"(d) / (a) = {d / med('wire'):.2f} (target >= 0.80)"]
        if runs.get(("mbsync", n)):
            checks.append(f"(d) / (b) = {d / med('mbsync'):.2f} (target > 1)")
        if runs.get(("python", n)):
            checks.append(f"(d) / (c) = {d / med('python'):.1f} (target >= 10)")
        rss = max(x for _, _, x in agent_n) * 1024 - meta[n][1]
        checks.append(f"peak RSS minus the largest message {rss / MB:.1f} MB (target < 64)")
        print("Targets: " + "; ".join(checks) + ".")


if __name__ == "__main__":
    main()
