#!/usr/bin/env python3
"""auth_inbound.py - the cost of the MX path's checks (SPF, DKIM, DMARC).

    python3 bench/auth_inbound.py --bin build/bench/bin [--rounds 3]
        [--settle 5] [-m 2000] [--sessions 20,1] [--bits 2048] [--ttl 300]
        [--out FILE]

Run as root (mta-smtpd binds as root and becomes the mail user). Issue
13's figure: the accept rate with all inbound checks on against all off,
with the DNS answers cached locally, and the server's CPU per message.

A scratch Facteur root made as smtp_compare.py makes it (its Facteur
class: example.test, user1..user1000, mta-smtpd alone, no scheduler) and
dnsmasq on a free loopback port, named in control/resolvers, serving for
the sender domain sender.test an SPF record (v=spf1 ip4:127.0.0.1 -all),
a DMARC record (v=DMARC1; p=reject) and a DKIM key (RSA, --bits) at
bench._domainkey.sender.test; every other name under .test is answered
NXDOMAIN by dnsmasq itself (--local=/test/). One message, From:
a@sender.test, about 4 KiB, is DKIM-signed once (dkimpy, relaxed/relaxed,
rsa-sha256, d=sender.test) and smtp-source sends it as it is (-F) with
MAIL FROM:<bench@sender.test> to user1@example.test, one connection per
message: so every checked message costs an SPF check (one TXT), a DKIM
verification (one key TXT, one RSA verify, the body hash) and DMARC (one
or two TXT), all aligned and passing.

dnsmasq gives its records the TTL --ttl (its --local-ttl; 300 s by
default, what real SPF, DKIM and DMARC records carry, minutes to hours).
mta-smtpd's session processes keep answers for their TTL (lib/dnscache),
so with --ttl 300 the checks of a process's later messages ask no
question at all; --ttl 0 makes every message ask dnsmasq its three
questions, the cost of mail from senders not seen in the last TTL.

ON   control/relayrules `:allow` only: 127.0.0.1 is an ordinary client,
     the MX path (inbound_mx() in mta/smtpd/inbound.c is true).
OFF  control/relayrules `127.:allow,RELAYCLIENT=""` (init's default):
     a relay client; inbound_mx() is false, so no SPF at MAIL, no
     verifier, no A-R room and no DMARC; the bytes go through lib/qsign,
     which signs nothing because sender.test is not hosted. The rules CDB
     is read at every connection (mta-rules recompiles it): one
     mta-smtpd process serves every run.

Before the timed runs, one message of each kind is sent and its queued
file read: ON must carry spf=pass, dkim=pass and dmarc=pass in our
Authentication-Results header, OFF none. Then ROUNDS rounds; in each,
for every session count, ON and OFF take turns (the order flips every
round), each after --settle seconds of quiet. A run's rate is -m / the
wall time until smtp-source got its last reply; the server's CPU is
mta-smtpd's and its reaped sessions' (smtp_compare.tree_cpu). Ends with
medians, the ratio ON / OFF, and ON - OFF in CPU ms per message.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smtp_compare as sc  # noqa: E402  (Facteur, tree_cpu, emit, note)

sys.path.insert(0, sc.SHARED)
import benchlib as bl  # noqa: E402  (smtp_source_path, CpuMeter, settle)

# the tests' helpers: dnsmasq's TXT option and a DKIM RSA key
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from helpers import rsa_key, txt_opt  # noqa: E402

sys.path.append("/usr/lib/python3/dist-packages")
import dkim  # noqa: E402

DOMAIN = "sender.test"
SELECTOR = "bench"
SENDER = f"bench@{DOMAIN}"
RCPT = "user1@example.test"
DNSMASQ = "/usr/sbin/dnsmasq"
RULES = {"on": ":allow\n", "off": '127.:allow,RELAYCLIENT=""\n:allow\n'}


def message(pem, size):
    """the signed message, LF line ends (smtp-source -F adds the CR)"""
    body = []
    n = 0
    i = 0
    while n < size:
        line = f"line {i:05d} " + "abcdefghij" * 6
        body.append(line)
        n += len(line) + 2
        i += 1
    msg = (f"From: Bench <a@{DOMAIN}>\r\nTo: <{RCPT}>\r\n"
           f"Subject: inbound checks bench\r\n"
           f"Date: Sun, 6 Dec 2026 07:00:00 +0000\r\n"
           f"Message-ID: <bench@{DOMAIN}>\r\n\r\n" +
           "\r\n".join(body) + "\r\n").encode()
    sig = dkim.sign(msg, SELECTOR.encode(), DOMAIN.encode(), pem,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date",
                                     b"message-id"])
    return (sig + msg).replace(b"\r\n", b"\n")


class Dnsmasq:
    def __init__(self, tmp, records):
        self.tmp = tmp
        self.records = records
        self.port = None
        self.proc = None

    def start(self, log_queries=False):
        if self.port is None:
            self.port = free_dns_port()
        log = os.path.join(self.tmp, f"dnsmasq-{time.monotonic_ns()}.log")
        self.log = log
        extra = ["--log-queries", f"--log-facility={log}"] if log_queries else []
        out = open(log + ".out", "wb")
        self.proc = subprocess.Popen([
            DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts",
            "--conf-file=/dev/null", "--pid-file=", f"--port={self.port}",
            "--listen-address=127.0.0.1", "--bind-interfaces",
            "--user=root", *extra, *self.records],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        end = time.monotonic() + 10
        while b"started, version" not in open(log + ".out", "rb").read() + (
                open(log, "rb").read() if log_queries and os.path.exists(log)
                else b""):
            if self.proc.poll() is not None or time.monotonic() > end:
                sys.exit("auth_inbound: dnsmasq did not start: " +
                         open(log + ".out").read())
            time.sleep(0.05)

    def queries(self):
        with open(self.log) as f:
            return [ln.split("query[", 1)[1].replace("]", " ").split()[1]
                    for ln in f if "query[" in ln]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def free_dns_port():
    import socket
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    sys.exit("auth_inbound: no port free for UDP and TCP")


def set_mode(fac, mode):
    fac.ctl("relayrules", RULES[mode].rstrip("\n"))
    subprocess.run([f"{fac.bin}/mta-rules", "--root", fac.root], check=True,
                   stdout=subprocess.DEVNULL)


def newest(fac):
    fs = [os.path.join(fac.new, f) for f in os.listdir(fac.new)]
    return max(fs, key=os.path.getmtime) if fs else None


def inject(a, fac, sessions, count, msgfile):
    """smtp-source as benchlib.start_injection runs it, but -F instead
    of -l (smtp-source refuses both)"""
    cmd = [bl.smtp_source_path(), "-s", str(sessions), "-m", str(count),
           "-f", SENDER, "-t", RCPT, "-F", msgfile, f"127.0.0.1:{fac.port}"]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL).returncode


def sanity(a, fac, dns, msgfile):
    """one message each way; the ON one's A-R header and DNS questions"""
    got = {}
    for mode in ("on", "off"):
        set_mode(fac, mode)
        before = set(os.listdir(fac.new))
        rc = inject(a, fac, 1, 1, msgfile)
        new = sorted(set(os.listdir(fac.new)) - before)
        if rc != 0 or len(new) != 1:
            sys.exit(f"auth_inbound: {mode}: smtp-source rc={rc}, {len(new)} queued")
        with open(os.path.join(fac.new, new[0]), "rb") as f:
            # a binary envelope, then the message; the A-R room is padded
            text = f.read().replace(b"\0", b"").decode(errors="replace")
        ar = [re.sub(r"\s+", " ", m) for m in re.findall(
            r"(?i)Authentication-Results:[^\n]*(?:\n[ \t][^\n]*)*", text)]
        got[mode] = ar
        sc.note(f"{mode}: {len(ar)} Authentication-Results: {ar}")
    on = " ".join(got["on"])
    ok = all(f"{m}=pass" in on for m in ("spf", "dkim", "dmarc")) and not got["off"]
    q = dns.queries()
    sc.note(f"DNS questions for the ON message: {q}")
    return ok, on, q


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--shared", default=sc.SHARED)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("-m", "--count", type=int, default=2000)
    ap.add_argument("--sessions", default="20,1")
    ap.add_argument("--bits", type=int, default=2048)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--out")
    ap.add_argument("--ttl", type=int, default=300)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("auth_inbound: run as root (mta-smtpd binds as root)")
    if a.rounds < 1:
        sys.exit("auth_inbound: --rounds must be at least 1")
    a.sessions = [int(x) for x in a.sessions.split(",")]
    tmp = tempfile.mkdtemp(prefix="auth-inbound.", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    sc.note(f"scratch {tmp}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    fac = dns = None
    try:
        fac = sc.Facteur(a, tmp)
        pem, p = rsa_key(a.bits)
        records = [
            "--local=/test/", f"--local-ttl={a.ttl}",
            txt_opt(DOMAIN, "v=spf1 ip4:127.0.0.1 -all"),
            txt_opt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject"),
            txt_opt(f"{SELECTOR}._domainkey.{DOMAIN}", f"v=DKIM1; k=rsa; p={p}"),
        ]
        msgfile = os.path.join(tmp, "signed.eml")
        with open(msgfile, "wb") as f:
            f.write(message(pem, a.size))
        msg_bytes = os.path.getsize(msgfile)
        dns = Dnsmasq(tmp, records)
        dns.start(log_queries=True)
        fac.ctl("resolvers", f"127.0.0.1:{dns.port}")
        fac.start()
        ok, ar, q = sanity(a, fac, dns, msgfile)
        # the timed runs without query logging
        dns.stop()
        dns.start()
        print(f"# auth_inbound {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
              f"cores={os.cpu_count()} settle={a.settle} n={a.count} "
              f"msg_bytes={msg_bytes} rsa_bits={a.bits} dns_ttl={a.ttl} "
              f"checks_pass={int(ok)} "
              f"dns_questions_per_msg={len(q)} ({','.join(q)})", flush=True)
        print(f"# ON header: {ar}", flush=True)
        if not ok:
            sys.exit("auth_inbound: the ON message did not pass all three checks")
        res = {}
        for rnd in range(1, a.rounds + 1):
            for s in a.sessions:
                order = ["on", "off"] if rnd % 2 else ["off", "on"]
                for mode in order:
                    set_mode(fac, mode)
                    bl.settle(a.settle)
                    q0 = fac.queued()
                    cpu = bl.CpuMeter().start()
                    c0 = sc.tree_cpu(fac.proc.pid)
                    t0 = time.monotonic()
                    rc = inject(a, fac, s, a.count, msgfile)
                    wall = time.monotonic() - t0
                    srv = sc.tree_cpu(fac.proc.pid) - c0
                    usage = cpu.stop()
                    queued = fac.queued() - q0
                    ok = int(rc == 0 and queued == a.count)
                    rate = a.count / wall if ok else 0.0
                    ms = srv * 1000 / a.count
                    sc.emit(f"auth_inbound msgs_per_s={rate:.1f} sessions={s} "
                            f"n={a.count} wall_s={wall:.2f} ok={ok} "
                            f"queued={queued} cpu_busy_pct={usage['cpu_busy_pct']}",
                            a.out, checks=mode, round=rnd,
                            server_cpu_ms_per_msg=f"{ms:.3f}")
                    res.setdefault((s, mode), []).append((rate, ms))
        print("\nsummary: accepted msgs/s [server CPU ms/msg] per round, "
              "median; ratio = ON / OFF", flush=True)
        for s in a.sessions:
            med = {}
            for mode in ("on", "off"):
                r = res[(s, mode)]
                med[mode] = (statistics.median(x for x, _ in r),
                             statistics.median(c for _, c in r))
                print(f"-s {s} checks {mode.upper():3}: "
                      + " / ".join(f"{x:.0f} [{c:.2f}]" for x, c in r)
                      + f" (median {med[mode][0]:.0f} [{med[mode][1]:.2f}])",
                      flush=True)
            ratios = [x / y if y else 0 for (x, _), (y, _) in
                      zip(res[(s, 'on')], res[(s, 'off')])]
            rr = med["on"][0] / med["off"][0] if med["off"][0] else 0
            dcpu = med["on"][1] - med["off"][1]
            verdict = "within 15 %" if rr >= 0.85 else "OVER 15 %"
            print(f"-s {s} ratio per round " + " / ".join(f"{x:.2f}" for x in ratios)
                  + f"; ratio of medians {rr:.2f} ({(1 - rr) * 100:.1f} % fewer, "
                  f"{verdict}); CPU ON - OFF {dcpu:.2f} ms/msg "
                  f"(x{med['on'][1] / med['off'][1]:.2f})", flush=True)
    finally:
        if fac:
            fac.stop()
        if dns:
            dns.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
