#!/usr/bin/env python3
"""latency - time from an SMTP server's "250 ok" to the file in new/.

    python3 bench/latency.py HOST PORT MAILDIR_NEW RCPT [-n 50] [--gap 0.2]

Sends N one-message sessions (smtplib), one at a time with GAP seconds
between them (an idle system between messages), and for each the time
from the 250 reply to DATA until a new file appears in MAILDIR_NEW
(polled every 0.2 ms). Prints `latency n=.. median_ms=.. p90_ms=..
max_ms=..`. Works for any server that delivers into a Maildir (Facteur:
ROOT/domains/DOMAIN/USER/Maildir/new; the Postfix peer:
BENCH_ROOT/domains/DOMAIN/USER/Maildir/new).
"""
import argparse
import os
import smtplib
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("maildir_new")
    ap.add_argument("rcpt")
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--gap", type=float, default=0.2)
    args = ap.parse_args()
    msg = b"Subject: latency\r\n\r\n" + (b"x" * 78 + b"\r\n") * 50
    lat = []
    for i in range(args.n):
        before = set(os.listdir(args.maildir_new))
        s = smtplib.SMTP(args.host, args.port)
        s.ehlo("bench.test")
        s.mail("bench@example.org")
        s.rcpt(args.rcpt)
        code, _ = s.data(msg)
        t0 = time.monotonic()
        assert code == 250, code
        while True:
            if set(os.listdir(args.maildir_new)) - before:
                break
            if time.monotonic() - t0 > 30:
                raise SystemExit("not delivered in 30 s")
            time.sleep(0.0002)
        lat.append((time.monotonic() - t0) * 1000)
        s.quit()
        time.sleep(args.gap)
    lat.sort()
    print("latency n=%d median_ms=%.2f p90_ms=%.2f max_ms=%.2f" % (
        len(lat), statistics.median(lat), lat[int(len(lat) * 0.9) - 1],
        lat[-1]), flush=True)


if __name__ == "__main__":
    main()
