#!/usr/bin/env python3
"""hostile_peers.py - issue 15's attacks on Facteur and on Postfix + Dovecot,
side by side in one run: the peers' column of docs/security.md.

    python3 bench/hostile_peers.py --bin build/san/bin \\
        [--sessions 120] [--step 1] [--groups relay,smuggling,nmap,flood,testssl]

Run as root with Debian's postfix, dovecot-pop3d, nmap and testssl.sh
installed (../shared/bench/peers/install.sh, tools/deps.sh test). Facteur is
`facteur run` on a scratch root (tests/hostile/hostile_net.System); the peers
are private instances from ../shared/bench/peers/ on free loopback ports,
then given what the comparison needs: Postfix smtpd_timeout 10s, STARTTLS
with Facteur's test certificate, mynetworks 127.0.0.2/32 (so that 127.0.0.1,
where nmap and the relay matrix come from, may not relay, as Facteur's
`127.0.0.1:allow` rule says); Dovecot POP3 with STLS and a 995-style
listener. Everything is stopped by PID at the end.

Groups, each counted the same way for both:
  flood      SESSIONS hostile sessions at once (hostile_net.KINDS) on SMTP
             and POP3 (plain and implicit TLS; Facteur's 587 and 465 too),
             while a normal client sends one message and reads it back by
             POP3: its slowest greeting, whether its mail came through,
             and the hostile sessions still open 5 s past the timeout
             (10 s; Dovecot's pre-login timeout is fixed at 3 minutes).
  relay      test_smtpd_security.MATRIX (every STEP-th pair) from
             127.0.0.1: a trick RCPT answered 2xx counts as relayed.
  smuggling  test_relay_ctx.ENDINGS, each followed by a smuggled
             transaction: more than one `250 2.0.0` to the dots counts as
             smuggled.
  nmap       nmap --script +smtp-open-relay: "open relay" or not.
  testssl    testssl.sh --fast on every TLS service: findings rated HIGH or
             CRITICAL other than those about the self-signed certificate.
The output ends with one line per group and server, and the load average.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
sys.path[:0] = [os.path.join(TESTS, "integration"),
                os.path.join(TESTS, "hostile")]
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench"))

import helpers  # noqa: E402
import hostile_net as hn  # noqa: E402
from test_relay_ctx import ENDINGS, net_session  # noqa: E402
from test_smtpd_security import MATRIX  # noqa: E402

TIMEOUT = 10
USER, PW = "user1@example.test", "bench-pass"


def note(msg):
    print(msg, file=sys.stderr, flush=True)


class Peers:
    """private Postfix + Dovecot from ../shared/bench/peers/"""

    def __init__(self, tmp, cert, key):
        self.root = os.path.join(tmp, "peers")
        self.ports = {"smtp": helpers.free_port(), "pop3": helpers.free_port(),
                      "pop3s": helpers.free_port()}
        self.env = dict(os.environ, BENCH_ROOT=self.root, BENCH_USERS="2",
                        BENCH_DOMAINS="example.test",
                        SMTP_PORT=str(self.ports["smtp"]),
                        POP3_PORT=str(self.ports["pop3"]))
        self.conf = os.path.join(self.root, "postfix", "etc")
        peers = os.path.join(SHARED, "peers")
        subprocess.run([os.path.join(peers, "postfix-setup.sh"), self.root],
                       env=self.env, check=True, stdout=sys.stderr)
        for s in ("smtpd_timeout=10s", f"smtpd_tls_cert_file={cert}",
                  f"smtpd_tls_key_file={key}", "smtpd_tls_security_level=may",
                  "mynetworks=127.0.0.2/32", "smtpd_client_connection_count_limit=1000",
                  "default_process_limit=1000"):
            subprocess.run(["postconf", "-c", self.conf, "-e", s], check=True)
        subprocess.run(["postfix", "-c", self.conf, "reload"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([os.path.join(peers, "dovecot-setup.sh"), self.root],
                       env=self.env, check=True, stdout=sys.stderr)
        # TLS for Dovecot: its config gets ssl and a second listener, then
        # it is started again on it
        dconf = os.path.join(self.root, "dovecot", "dovecot.conf")
        self.dpid_file = os.path.join(self.root, "dovecot", "run", "master.pid")
        self.kill(self.dpid_file)
        text = open(dconf).read().replace("ssl = no", (
            f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n"
            "default_client_limit = 2000\n"
            "service pop3-login {\n  process_limit = 1000\n"
            f"  inet_listener pop3s {{\n    address = 127.0.0.1\n"
            f"    port = {self.ports['pop3s']}\n    ssl = yes\n  }}\n}}"))
        open(dconf, "w").write(text)
        subprocess.run(["dovecot", "-c", dconf], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        hn_wait([self.ports["pop3"], self.ports["pop3s"]])
        time.sleep(1)

    @staticmethod
    def kill(pidfile):
        try:
            pid = int(open(pidfile).read().strip())
        except (OSError, ValueError):
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def stop(self):
        peers = os.path.join(SHARED, "peers")
        subprocess.run([os.path.join(peers, "postfix-stop.sh"), self.root],
                       env=self.env, stdout=sys.stderr)
        self.kill(self.dpid_file)


def hn_wait(ports):
    for port in ports:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)


class Target:
    """what the groups need of one side: its ports and normal client"""

    def __init__(self, name, ports, user, pw, relay_rcpt):
        self.name, self.ports, self.user, self.pw = name, ports, user, pw
        self.relay_rcpt = relay_rcpt
        self.timeout = TIMEOUT


def normal(tg, tag):
    """greeting times of one SMTP send and two POP3 reads; mail through?"""
    import poplib
    import smtplib
    times = []
    t0 = time.monotonic()
    with smtplib.SMTP("127.0.0.1", tg.ports["smtp"], timeout=30,
                      source_address=(hn.NORMAL_IP, 0)) as c:
        times.append(time.monotonic() - t0)
        c.sendmail("alice@remote.example", [tg.user],
                   f"Subject: {tag}\r\n\r\nhi\r\n".encode())
    end, seen = time.monotonic() + 30, False
    while not seen and time.monotonic() < end:
        for svc in ("pop3", "pop3s"):
            t0 = time.monotonic()
            if svc == "pop3s":
                c = poplib.POP3_SSL("127.0.0.1", tg.ports[svc], timeout=30,
                                    context=hn.tls_ctx())
            else:
                c = poplib.POP3("127.0.0.1", tg.ports[svc], timeout=30)
            times.append(time.monotonic() - t0)
            try:
                c.user(tg.user)
                c.pass_(tg.pw)
                for i in range(1, len(c.list()[1]) + 1):
                    if any(tag.encode() in l for l in c.top(i, 0)[1]):
                        seen = True
            finally:
                c.quit()
        if not seen:
            time.sleep(0.5)
    return max(times), seen


def flood(tg, n):
    svcs = [s for s in hn.PORTS if s in tg.ports]
    combos = [(k, s) for k in hn.KINDS for s in svcs]
    hs = []
    for i in range(n):
        kind, svc = combos[i % len(combos)]
        h = hn.Hostile(tg.ports[svc], svc, kind, hn.source(i),
                       hold=TIMEOUT + 20)
        h.start()
        hs.append(h)
    time.sleep(1.5)
    worst, through = normal(tg, f"flood-{tg.name}")
    end = time.monotonic() + TIMEOUT + 40
    for h in hs:
        h.join(timeout=max(0.0, end - time.monotonic()))
    for h in hs:
        h.closing.set()
    hung = {}
    for h in hs:
        if h.closed_at is None or h.closed_at - (
                h.t0 if h.kind == "trickle" else h.last_sent) > TIMEOUT + 5:
            key = f"{h.service}/{h.kind}"
            hung[key] = hung.get(key, 0) + 1
    return {"sessions": n, "slowest greeting s": round(worst, 3),
            "mail through": through, "hung": sum(hung.values()),
            "hung by service/kind": hung}


def relay(tg, step):
    tries, relayed = 0, []
    for sender, rcpt in MATRIX[::step]:
        script = (f"MAIL FROM:{sender}\r\nRCPT TO:{rcpt}\r\n").encode()
        lines = net_session(tg.ports["smtp"], script, src="127.0.0.1")
        tries += 1
        replies = [l for l in lines if len(l) > 3 and l[3] == " "]
        # greeting, EHLO, MAIL, RCPT
        if len(replies) > 3 and replies[3].startswith("2"):
            relayed.append(f"{sender} {rcpt}: {replies[3]}")
    return {"tries": tries, "relayed": len(relayed), "cases": relayed}


def smuggle(tg):
    tries, smuggled = 0, []
    for ending in ENDINGS:
        script = (f"MAIL FROM:<a@remote.example>\r\nRCPT TO:<{tg.user}>\r\n"
                  "DATA\r\nSubject: outer\r\n\r\nhi").encode() + ending + (
            f"MAIL FROM:<evil@smuggler.example>\r\nRCPT TO:<{tg.user}>\r\n"
            "DATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n").encode()
        lines = net_session(tg.ports["smtp"], script, src="127.0.0.1")
        tries += 1
        if sum(1 for l in lines if l.startswith("250 2.0.0")) > 1:
            smuggled.append(repr(ending))
    return {"tries": tries, "smuggled": len(smuggled), "cases": smuggled}


def nmap(tg):
    p = subprocess.run(["nmap", "-Pn", "-n", "-p", str(tg.ports["smtp"]),
                        "--script", "+smtp-open-relay", "--script-args",
                        "smtp-open-relay.domain=relay.example.org,"
                        "smtp-open-relay.ip=192.0.2.25", "127.0.0.1"],
                       capture_output=True, text=True, timeout=300)
    line = [l.strip("|_ ") for l in p.stdout.splitlines() if "relay" in l]
    return {"open relay": "Server is an open relay" in p.stdout,
            "says": line[-1] if line else p.stdout[-200:]}


def testssl(tg, tmp):
    targets = {"smtps": [], "submission": ["-t", "smtp"], "pop3s": [],
               "pop3": ["-t", "pop3"]}
    if tg.name != "facteur":
        targets = {"smtp": ["-t", "smtp"], "pop3s": [], "pop3": ["-t", "pop3"]}

    def one(svc):
        out = os.path.join(tmp, f"testssl-{tg.name}-{svc}.json")
        subprocess.run(["testssl", "--quiet", "--warnings", "off", "--fast",
                        "--color", "0", "--severity", "HIGH", "-oj", out,
                        *targets[svc], f"127.0.0.1:{tg.ports[svc]}"],
                       capture_output=True, timeout=900)
        try:
            found = json.load(open(out))
        except (OSError, ValueError):
            return svc, ["no result"]
        return svc, [f"{x['id']} ({x['severity']})" for x in found
                     if x["severity"] in ("HIGH", "CRITICAL")
                     and not x["id"].startswith("cert")]
    with ThreadPoolExecutor(len(targets)) as ex:
        return dict(ex.map(one, targets))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sessions", type=int, default=120)
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--groups", default="relay,smuggling,nmap,flood,testssl",
                    help="comma-separated subset of the groups")
    a = ap.parse_args()
    t = helpers.Ctx(os.path.abspath(a.bin))
    t.init()
    t.run("vadmin", "adddomain", "example.test", input="pm\n", check=0)
    t.run("vadmin", "adduser", USER, PW, check=0)
    with open(t.path("control", "relayrules"), "w") as f:
        f.write("127.0.0.1:allow\n:allow\n")
    t.run("mta-rules", check=0)
    cert, key = t.path("control", "tls", "cert.pem"), \
        t.path("control", "tls", "key.pem")
    fac = hn.System(t, timeout=TIMEOUT)
    peers = None
    res = {}
    try:
        peers = Peers(t.tmp, cert, key)
        sides = [Target("facteur", fac.ports, USER, PW, None),
                 Target("postfix+dovecot", peers.ports, USER, PW, None)]
        groups = a.groups.split(",")
        for group, fn in (("relay", lambda s: relay(s, a.step)),
                          ("smuggling", smuggle), ("nmap", nmap),
                          ("flood", lambda s: flood(s, a.sessions)),
                          ("testssl", lambda s: testssl(s, t.tmp))):
            if group not in groups:
                continue
            # the two take turns, Facteur first
            for s in sides:
                note(f"{group} {s.name}")
                res[(group, s.name)] = fn(s)
    finally:
        fac.stop()
        if peers:
            peers.stop()
        t.cleanup()
    load = open("/proc/loadavg").read().split()[:3]
    for (group, name), r in res.items():
        print(f"{group:10} {name:16} {r}")
    print(f"load average {' '.join(load)}")


if __name__ == "__main__":
    main()
