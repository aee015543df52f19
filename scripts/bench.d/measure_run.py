#!/usr/bin/env python3
"""Times `psa-mail-agent run` for scripts/bench: starts it, waits until the spool holds COUNT
tickets, stops it with SIGTERM and writes "wall user sys maxrss_kb" of the agent alone to OUT.

    measure_run.py SPOOL COUNT OUT AGENT ARGS...

The wall time ends when the last ticket appeared (the daemon then idles until stopped). The
spool is looked at every 20 ms from this process, so the polling is not counted in the agent's
CPU time.
"""
import os
import signal
import subprocess
import sys
import time


def tickets(spool):
    try:
        return sum(1 for n in os.listdir(spool) if n.endswith(".json"))
    except FileNotFoundError:
        return 0


def main():
    spool, count, out, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd)
    deadline = t0 + 1800
    while tickets(spool) < count:
        if p.poll() is not None:
            sys.exit(f"measure_run: the agent exited ({p.returncode}) with "
                     f"{tickets(spool)} of {count} tickets")
        if time.perf_counter() > deadline:
            p.kill()
            sys.exit(f"measure_run: {tickets(spool)} of {count} tickets after 30 minutes")
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    p.send_signal(signal.SIGTERM)
    _, status, ru = os.wait4(p.pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        sys.exit(f"measure_run: the agent ended with status {status:#x} after SIGTERM")
    with open(out, "w") as f:
        f.write(f"{wall:.2f} {ru.ru_utime:.2f} {ru.ru_stime:.2f} {ru.ru_maxrss}\n")
    print(f"agent-run: {count} tickets")


if __name__ == "__main__":
    main()
