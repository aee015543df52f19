#!/usr/bin/env python3
"""Drives a program on a pseudo-terminal, as a person at a terminal would (tests only).

Usage: pty_drive.py SCRIPT PROGRAM [ARGS...]

SCRIPT holds one step per line, a keyword, a tab and a text:
  expect<TAB>TEXT   wait (up to 90 s) until the output after the previous match contains TEXT
  send<TAB>TEXT     type TEXT and Enter
  ctrl-c<TAB>       type Ctrl-C
  touch<TAB>PATH    create the file PATH (tells the test a point was reached)
  waitfile<TAB>PATH wait (up to 90 s) until the file PATH exists (the test did its part)
The whole transcript (everything the program wrote, with the terminal's echo) goes to stdout.
Exit code: the program's, or 90 when an expectation was not met (stderr says which).
"""
import os
import pty
import select
import sys
import time


def main():
    steps = [l for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l]
    argv = sys.argv[2:]
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    transcript = bytearray()
    pos = 0

    def read(timeout):
        """Some output (b'' when none within timeout), None at the end."""
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(fd, 65536)
        except OSError:
            return None
        return data or None

    def finish(code, why=None):
        sys.stdout.buffer.write(bytes(transcript))
        sys.stdout.flush()
        if why:
            sys.stderr.write(why + "\n")
        sys.exit(code)

    for step in steps:
        kind, _, text = step.partition("\t")
        if kind == "expect":
            want = text.encode()
            deadline = time.time() + 90
            while True:
                at = transcript.find(want, pos)
                if at >= 0:
                    pos = at + len(want)
                    break
                if time.time() > deadline:
                    os.kill(pid, 9)
                    finish(90, "pty_drive: timed out waiting for %r" % text)
                data = read(0.5)
                if data is None:
                    os.waitpid(pid, 0)
                    finish(90, "pty_drive: the program ended before %r" % text)
                transcript.extend(data)
        elif kind == "send":
            os.write(fd, text.encode() + b"\r")
        elif kind == "ctrl-c":
            os.write(fd, b"\x03")
        elif kind == "touch":
            open(text, "w").close()
        elif kind == "waitfile":
            deadline = time.time() + 90
            while not os.path.exists(text):
                if time.time() > deadline:
                    os.kill(pid, 9)
                    finish(90, "pty_drive: timed out waiting for the file %r" % text)
                data = read(0.2)
                if data:
                    transcript.extend(data)
        else:
            finish(91, "pty_drive: unknown step %r" % step)
    deadline = time.time() + 120
    while time.time() < deadline:
        data = read(1)
        if data is None:
            break
        transcript.extend(data)
    else:
        os.kill(pid, 9)
        finish(90, "pty_drive: the program did not end")
    _, status = os.waitpid(pid, 0)
    finish(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
