#!/usr/bin/env python3
"""hostile_peers.py - issue 15's attacks on Facteur and on Postfix + Dovecot,
side by side in one run: the peers' column of docs/security.md.

    python3 bench/hostile_peers.py --bin build/san/bin \\
        [--sessions 120] [--step 1] [--groups relay,smuggling,nmap,flood,testssl]
    python3 bench/hostile_peers.py --bin /tmp/peers-bin --groups rss,outbound,links
    python3 bench/hostile_peers.py --bin build/san/bin \\
        --groups maxperip,traversal,reply10s

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
Groups that set up each side their own way (not in the default list):
  rss        test_flood's three messages (a 1 MiB header line, 100,000
             header lines, 1,000 recipients x 10 MB relayed to a helpers.MX
             of each side's: Facteur's smtproutes, Postfix's transport_maps)
             and 10 MB to a local user read back by POP3 RETR: peak RSS
             (VmHWM) by process name, the most queue files over 10 MB at
             once, the MX's transactions. Use --bin of the release build.
  outbound   mta-remote (mta-send for nodot) and Postfix's smtp(8) against
             test_outbound's servers (inject, bigehlo, bigrcpt, dribble,
             halftls, nodot): seconds to the end of the attempt, its result
             and reason (Postfix's from its log), sessions and messages each
             server saw; hung: no end within 60 s. Postfix's smtp_*_timeout
             are 3 s and smtp_connect_timeout 2 s, as Facteur's
             timeoutremote and timeoutconnect; Postfix runs twice, with
             its default smtp_per_request_deadline=no (a timeout per
             read) and with yes (per whole reply, as timeoutremote).
  links      test_links's planted-links test on Facteur; on the peers,
             symlinks to victims outside as Maildir tmp/, new/, cur/,
             maildirsize, dovecot-uidlist, dovecot.index.log and a message in
             new/, then mail through virtual(8) and a POP3 session of each
             user through Dovecot: inotify on every victim.
  maxperip   5 connections held from 127.0.0.9 on SMTP and on POP3, then
             a 6th: greeted or refused; then 6 POP3 logins of one user
             from there; meanwhile a normal client (normal()). Facteur:
             maxperip 5; Postfix: smtpd_client_connection_count_limit 5,
             no exempt clients; Dovecot: mail_max_userip_connections 5
             (its nearest: 2.3 has no per-IP limit before login).
  traversal  test_links's traversal test on Facteur; on the peers,
             test_links's names at SMTP MAIL/RCPT and POP3 USER (its
             own functions), through Postfix's sendmail (test_links's
             three argument forms) and as myhostname (control/me's
             nearest), every process of both masters under strace -p:
             path writes outside the peers' root, RCPT taken, logins.
  reply10s   test_outbound's server answering every line 10 s late:
             mta-remote (timeoutremote 15) and Postfix's smtp(8)
             (smtp_*_timeout 15 s): seconds to the end, result, copies.
The output ends with one line per group and server, and the load average.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
sys.path[:0] = [os.path.join(TESTS, "integration"),
                os.path.join(TESTS, "hostile")]
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench"))

import helpers  # noqa: E402
import test_remote  # noqa: E402
import hostile_net as hn  # noqa: E402
from test_flood import (big_header_line, many_header_lines,  # noqa: E402
                        thousand_rcpts)
from test_links import VICTIM, pop_login, victims  # noqa: E402
from test_outbound import (Evil, s_bigehlo, s_bigrcpt,  # noqa: E402
                           s_dribble, s_halftls, s_inject, s_nodot)
from test_relay_ctx import ENDINGS, net_session  # noqa: E402
from test_smtpd_security import MATRIX  # noqa: E402

TIMEOUT = 10
USER, PW = "user1@example.test", "bench-pass"


def note(msg):
    print(msg, file=sys.stderr, flush=True)


class Peers:
    """private Postfix + Dovecot from ../shared/bench/peers/"""

    def __init__(self, tmp, cert, key):
        self.tmp, self.root = tmp, os.path.join(tmp, "peers")
        self.ports = {"smtp": helpers.free_port(), "pop3": helpers.free_port(),
                      "pop3s": helpers.free_port()}
        self.env = dict(os.environ, BENCH_ROOT=self.root, BENCH_USERS="2",
                        BENCH_DOMAINS="example.test",
                        SMTP_PORT=str(self.ports["smtp"]),
                        POP3_PORT=str(self.ports["pop3"]))
        self.conf = os.path.join(self.root, "postfix", "etc")
        self.dpid_file = os.path.join(self.root, "dovecot", "run", "master.pid")
        try:
            self.start(cert, key)
        except BaseException:
            # a half-started pair is stopped here: main() never gets the
            # object, so its finally cannot
            self.stop()
            raise

    def start(self, cert, key):
        """Postfix, then Dovecot with TLS on a second listener"""
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
        # the setup script returns once the port answers, which on a
        # loaded machine can be before the master has written its pid
        helpers.wait_for("Dovecot's master.pid", lambda: os.path.exists(
            self.dpid_file), 30)
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

    def postconf(self, *settings):
        """main.cf settings, then a reload (new processes read them)"""
        for s in settings:
            subprocess.run(["postconf", "-c", self.conf, "-e", s], check=True)
        subprocess.run(["postfix", "-c", self.conf, "reload"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)

    def add_user(self, addr, pw):
        """a mailbox for Postfix's virtual(8) and a login for Dovecot
        (its passwd-file is read again when it changes)"""
        local, dom = addr.split("@")
        with open(os.path.join(self.conf, "vmailbox"), "a") as f:
            f.write(f"{addr} {dom}/{local}/Maildir/\n")
        subprocess.run(["postmap", "-c", self.conf,
                        "cdb:" + os.path.join(self.conf, "vmailbox")],
                       check=True)
        users = os.path.join(self.root, "dovecot", "users")
        first = open(users).readline().split(":")
        with open(users, "a") as f:
            f.write(f"{addr}:{{PLAIN}}{pw}:{first[2]}:{first[3]}::"
                    f"{self.root}/domains/{dom}/{local}\n")

    def pids(self):
        """the master processes of Postfix and Dovecot"""
        out = []
        for f in (os.path.join(self.root, "postfix", "queue", "pid",
                               "master.pid"), self.dpid_file):
            out.append(int(open(f).read().strip()))
        return out

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


# --- rss: peak RSS for the messages of test_flood_peak_rss_under_64mib --

MIB = 1 << 20
BIG = 10_000_000


class BigFiles(threading.Thread):
    """the most files over 10 MB seen at once under a queue directory
    (a copy of the 10 MB message), sampled every 50 ms"""

    def __init__(self, top):
        super().__init__(daemon=True)
        self.top, self.most = top, 0
        self.done = threading.Event()
        self.start()

    def run(self):
        while not self.done.wait(0.05):
            n = 0
            for d, _, files in os.walk(self.top):
                for f in files:
                    try:
                        n += os.lstat(os.path.join(d, f)).st_size > BIG
                    except OSError:
                        pass
            self.most = max(self.most, n)

    def stop(self):
        self.done.set()
        self.join()
        return self.most


def retr_big(ports, user, pw, tag):
    """a 10 MB message to USER by SMTP, then RETR by POP3 (STLS): its size
    as read, or 0 when it never arrived within 120 s"""
    import poplib
    import smtplib
    line = b"0123456789" * 7 + b"\r\n"
    body = (f"Subject: {tag}\r\n\r\n".encode() + line * (BIG // 72 + 1))
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=60,
                      source_address=(hn.NORMAL_IP, 0)) as c:
        c.sendmail("a@remote.example", [user], body)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        c = poplib.POP3("127.0.0.1", ports["pop3"], timeout=60)
        try:
            c.stls(context=hn.tls_ctx())
            c.user(user)
            c.pass_(pw)
            sizes = [int(x.split()[1]) for x in c.list()[1]]
            for i, size in enumerate(sizes, 1):
                if size > BIG:
                    return sum(len(x) + 2 for x in c.retr(i)[1])
        finally:
            c.quit()
        time.sleep(0.5)
    return 0


def rss(side):
    """test_flood's three messages (a 1 MiB header line, 100,000 header
    lines, 1,000 recipients x 10 MB relayed to side.mx), then 10 MB to a
    local user read back by POP3; peak RSS by process name"""
    mx, port = side.mx, side.ports["smtp"]
    samplers = [hn.PeakRSS(pid) for pid in side.pids]
    copies = BigFiles(side.queue)
    res = {}
    t0 = time.monotonic()
    try:
        res["1 MiB header line"] = big_header_line(port)[:60].decode()
        res["100,000 header lines"] = many_header_lines(port)[:60].decode()
        res["1,000 rcpts"] = thousand_rcpts(port, "big.example")[:60].decode()
        helpers.wait_for("1,000 recipients at the MX", lambda: sum(
            len(r) for _, r, _ in mx.got) >= 1000, 600)
        res["MX s"] = round(time.monotonic() - t0, 1)
        res["RETR bytes"] = retr_big(side.ports, hn.USER, hn.PW,
                                     f"rss-{side.name}")
        time.sleep(1)
    finally:
        peak = {}
        for smp in samplers:
            for k, v in smp.stop().items():
                peak[k] = max(v, peak.get(k, 0))
        res["queue copies at once"] = copies.stop()
    res["MX transactions"] = len(mx.got)
    res["MX recipients"] = sum(len(r) for _, r, _ in mx.got)
    res["MX shortest message"] = min((len(d) for _, _, d in mx.got),
                                     default=0)
    res["peak RSS MiB"] = {k: round(v / MIB, 1) for k, v in
                           sorted(peak.items(), key=lambda kv: -kv[1])}
    return res


class RssFacteur:
    """facteur run as test_flood_peak_rss_under_64mib has it: databytes
    20,000,000, big.example routed to an MX of its own"""

    def __init__(self, bindir):
        self.name, self.mx = "facteur", helpers.MX()
        self.t = helpers.Ctx(bindir)
        self.sys = hn.System(self.t, timeout=30, controls=(
            ("databytes", "20000000\n"),
            ("smtproutes", f"big.example:127.0.0.1:{self.mx.port}\n")))
        self.ports, self.pids = self.sys.ports, [self.sys.p.pid]
        self.queue = self.t.path("queue")

    def stop(self):
        try:
            self.sys.stop()
        finally:
            self.mx.close()
            self.t.cleanup()


class RssPeers:
    """the private Postfix given what Facteur's side has: a 20,000,000
    byte limit, big.example sent to an MX of its own by a transport map,
    the user bob@ (Postfix virtual(8), Dovecot)"""

    def __init__(self, peers):
        self.name, self.mx = "postfix+dovecot", helpers.MX()
        self.peers = peers
        peers.add_user(hn.USER, hn.PW)
        peers.postconf("message_size_limit=20000000",
                       "transport_maps=inline:{big.example="
                       f"smtp:[127.0.0.1]:{self.mx.port}}}")
        self.ports, self.pids = peers.ports, peers.pids()
        self.queue = os.path.join(peers.root, "postfix", "queue")

    def stop(self):
        self.peers.postconf("transport_maps=")
        self.mx.close()


def rss_group(bindir, peers):
    """rss on Facteur, then on the peers (one at a time: the figures are
    of memory, not time, but the MX and the machine are shared)"""
    out = {}
    for make in (lambda: RssFacteur(bindir), lambda: RssPeers(peers)):
        side = make()
        note(f"rss {side.name}")
        try:
            out[side.name] = rss(side)
        finally:
            side.stop()
    return out


# --- outbound: the SMTP clients against test_outbound's servers -------

OUT_TIMEOUT = 3         # Facteur's timeoutremote; Postfix's smtp_*_timeout
OUT_WAIT = 60           # a delivery not over by then counts as hung
OUT_CASES = (("inject", s_inject), ("bigehlo", s_bigehlo),
             ("bigrcpt", s_bigrcpt), ("dribble", s_dribble),
             ("halftls", s_halftls), ("nodot", s_nodot))
# Postfix's per-read timeouts set to Facteur's: timeoutconnect 2,
# timeoutremote 3 (Facteur's is of a whole reply, Postfix's of a read)
PF_TIMEOUTS = ["smtp_connect_timeout=2s"] + [
    f"smtp_{x}_timeout={OUT_TIMEOUT}s" for x in (
        "helo", "starttls", "mail", "rcpt", "data_init", "data_xfer",
        "data_done", "rset", "quit")]


def evils(port, ctx):
    """one server of each case, 127.0.0.2 up, all on PORT"""
    return {dom: Evil(f"127.0.0.{i}", port, fn, tls=ctx)
            for i, (dom, fn) in enumerate(OUT_CASES, 2)}


def tally(name, ev, outcome):
    """what each server saw: sessions, messages, and for inject whether
    the first command under TLS was EHLO (the forged 250 not taken)"""
    res = {}
    for dom, e in ev.items():
        r = dict(outcome.get(dom, {}), sessions=len(e.sessions),
                 messages=len(e.messages))
        if dom == "inject" and e.sessions:
            ses = e.sessions[0]
            r["EHLO again under TLS"] = "STARTTLS" in ses and \
                ses.index("STARTTLS") + 1 < len(ses) and \
                ses[ses.index("STARTTLS") + 1].upper().startswith("EHLO")
        res[dom] = r
    hung = sum(1 for r in res.values() if r.get("hung"))
    twice = sum(1 for d, r in res.items() if r["messages"] >
                (2 if d == "nodot" else 1))
    return {"hung": hung, "sent twice beyond the rule": twice,
            "cases": res}


def outbound_facteur(bindir):
    """mta-remote on each server (test_outbound's way); nodot through
    mta-send with retrybase 1"""
    t = helpers.Ctx(bindir)
    port = test_remote.setup(t, timeout=OUT_TIMEOUT, retrybase="1",
                             smtproutes="\n".join(
                                 f"{d}.test:[127.0.0.{i}]" for i, (d, _) in
                                 enumerate(OUT_CASES, 2)))
    ev = evils(port, test_remote.tls_context(t))
    out = {}
    try:
        for dom, _ in OUT_CASES[:-1]:
            res, _, dt = test_remote.remote(t, f"{dom}.test", "a@example.org",
                                            f"x@{dom}.test", timeout=OUT_WAIT)
            out[dom] = {"s": round(dt, 1), "result": res[0][0],
                        "says": res[0][1][:80], "hung": False}
        out["nodot"] = outbound_facteur_nodot(t)
    finally:
        for e in ev.values():
            e.close()
        t.cleanup()
    return tally("facteur", ev, out)


def outbound_facteur_nodot(t):
    s = helpers.Sender(t)
    t0 = time.monotonic()
    try:
        t.run("mta-inject", "-f", "a@example.org", "x@nodot.test",
              input=b"Subject: once\n\nhi\n", check=0)
        s.wait_log(r"delivery \d+: deferral: ", timeout=OUT_WAIT)
        first = time.monotonic() - t0
        s.wait_log(r"delivery \d+: success", timeout=OUT_WAIT)
        time.sleep(OUT_TIMEOUT)
    finally:
        log = s.stop()
    said = [l for l in log.splitlines() if "deferral" in l]
    return {"s": round(first, 1), "result": "T then D",
            "says": said[0][-80:] if said else "", "hung": False,
            "successes": log.count("success")}


def pf_status(logpath, rcpt):
    """[(queue id, status, reason)] of Postfix's delivery lines for rcpt"""
    import re
    out = []
    try:
        text = open(logpath, errors="replace").read()
    except OSError:
        return out
    pat = re.compile(r"postfix/\w+\[\d+\]: (\w+): to=<" + re.escape(rcpt) +
                     r">.*status=(\w+) \((.*)\)$", re.M)
    return [m.groups() for m in pat.finditer(text)]


def outbound_peers(peers, ctx, deadline="no"):
    """the private Postfix's smtp(8) on the same servers: one message
    each at once, each given OUT_WAIT s to end; nodot then retried at
    once (postqueue -i) to see what the retry sends. deadline: Postfix
    3.7's smtp_per_request_deadline (yes: the timeouts bound a whole
    request or reply, as Facteur's timeoutremote does; no, the default:
    each read)"""
    port = helpers.free_port("127.0.0.2")
    ev = evils(port, ctx)
    maps = ", ".join(f"{d}.test=smtp:[127.0.0.{i}]:{port}"
                     for i, (d, _) in enumerate(OUT_CASES, 2))
    # STARTTLS where the case is about TLS; none for bigrcpt and nodot,
    # whose servers offer STARTTLS but answer it 250 (Facteur goes on in
    # plaintext; Postfix would try the handshake and defer, never
    # reaching the reply or the dot the case is about)
    plain = ", ".join(f"[127.0.0.{i}]:{port}=none" for i, (d, _) in
                      enumerate(OUT_CASES, 2) if d in ("bigrcpt", "nodot"))
    peers.postconf(f"transport_maps=inline:{{{maps}}}",
                   "smtp_tls_security_level=may",
                   f"smtp_tls_policy_maps=inline:{{{plain}}}",
                   f"smtp_per_request_deadline={deadline}", *PF_TIMEOUTS)
    log = os.path.join(peers.root, "postfix", "log", "maillog")
    who = "x" if deadline == "no" else "d"     # each pass its recipients
    out = {}
    try:
        t0 = time.monotonic()
        for dom, _ in OUT_CASES:
            net_session(peers.ports["smtp"], (
                f"MAIL FROM:<a@example.org>\r\nRCPT TO:<{who}@{dom}.test>\r\n"
                f"DATA\r\nSubject: {dom}\r\n\r\nhi\r\n.\r\n").encode(),
                src=hn.NORMAL_IP)
        end = t0 + OUT_WAIT
        while time.monotonic() < end and len(out) < len(OUT_CASES):
            for dom, _ in OUT_CASES:
                st = pf_status(log, f"{who}@{dom}.test")
                if dom not in out and st:
                    out[dom] = {"s": round(time.monotonic() - t0, 1),
                                "result": st[0][1], "says": st[0][2][:100],
                                "hung": False, "qid": st[0][0]}
            time.sleep(0.1)
        for dom, _ in OUT_CASES:
            out.setdefault(dom, {"s": f">{OUT_WAIT}", "result": "none",
                                 "hung": True})
        nd = out["nodot"]
        if nd.get("qid") and nd["result"] == "deferred":
            subprocess.run(["postqueue", "-c", peers.conf, "-i", nd["qid"]],
                           check=True)
            helpers.wait_for("the nodot retry", lambda: len(
                pf_status(log, f"{who}@nodot.test")) > 1, OUT_WAIT)
            time.sleep(OUT_TIMEOUT)
            nd["then"] = pf_status(log, f"{who}@nodot.test")[1][1]
    finally:
        for e in ev.values():
            e.close()
        peers.postconf("transport_maps=")
    for r in out.values():
        r.pop("qid", None)
    return tally("postfix", ev, out)


def outbound_group(bindir, peers, ctx):
    out = {}
    note("outbound facteur")
    out["facteur"] = outbound_facteur(bindir)
    note("outbound postfix")
    out["postfix+dovecot"] = outbound_peers(peers, ctx)
    note("outbound postfix, smtp_per_request_deadline=yes")
    out["postfix deadline"] = outbound_peers(peers, ctx, deadline="yes")
    return out


# --- links: links planted in the peers' Maildirs ------------------------

# user -> (what is planted in its Maildir, as what): a symlink to a
# victim outside, owned by the mail user as if that user had made it
PF_LINKS = (("l1", "tmp", "dir"), ("l2", "new", "dir"), ("l3", "cur", "dir"),
            ("l4", "maildirsize", "file"), ("l5", "dovecot-uidlist", "file"),
            ("l6", "dovecot.index.log", "file"),
            ("l7", "new/1700000000.1.evil", "file"))


def links_peers(peers):
    """mail to ok@ and every linked user by SMTP (virtual(8) delivers),
    then a POP3 session of each (Dovecot: list, RETR, DELE, QUIT);
    inotify on every victim: what went through a link"""
    out = victims(peers, [n.replace("/", "_") for _, n, _ in PF_LINKS])
    vic = {}
    vuid, vgid = [int(x) for x in open(os.path.join(
        peers.root, "dovecot", "users")).readline().split(":")[2:4]]
    for user, name, kind in (("ok", "", ""),) + PF_LINKS:
        peers.add_user(f"{user}@example.test", hn.PW)
        md = os.path.join(peers.root, "domains", "example.test", user,
                          "Maildir")
        for d in ("", "tmp", "new", "cur"):
            os.makedirs(os.path.join(md, d), exist_ok=True)
            os.chown(os.path.join(md, d), vuid, vgid)
        if not name:
            continue
        v = os.path.join(out, name.replace("/", "_"))
        if kind == "dir":
            os.unlink(v)
            os.mkdir(v)
            os.chmod(v, 0o777)
            os.rmdir(os.path.join(md, name))
        os.symlink(v, os.path.join(md, name))
        os.lchown(os.path.join(md, name), vuid, vgid)
        vic[user] = v
    peers.postconf()        # the new mailboxes (and a settled Postfix)
    w = hn.Watch([out] + list(vic.values()))
    users = ["ok"] + [u for u, _, _ in PF_LINKS]
    with __import__("smtplib").SMTP("127.0.0.1", peers.ports["smtp"],
                                    timeout=30,
                                    source_address=(hn.NORMAL_IP, 0)) as c:
        c.sendmail("a@remote.example", [f"{u}@example.test" for u in users],
                   b"Subject: linked\r\n\r\nbody\r\n")
    log = os.path.join(peers.root, "postfix", "log", "maillog")
    helpers.wait_for("every delivery logged", lambda: all(
        pf_status(log, f"{u}@example.test") for u in users), 60)
    pop = {u: pop_login(peers.ports["pop3"], u) for u in users}
    time.sleep(1)
    ev = w.events()
    w.close()
    res = {}
    for user, name, _ in PF_LINKS:
        v = vic[user]
        mine = [e for e in ev if e[0] == v or (e[0] == out and
                                               e[1] == os.path.basename(v))]
        # close_write alone: opened to write through the link, no byte
        # changed (IN_MODIFY would say)
        wrote = sorted({n for e in mine if e[3] & (hn.IN_WRITES & ~0x8)
                        for n in e[2]})
        opened = any(e[3] & 0x8 for e in mine)
        res[f"{user} {name}"] = {
            "delivery": pf_status(log, f"{user}@example.test")[0][1],
            "POP3": pop[user] or "ok",
            "written through": wrote,
            "opened to write through": opened and not wrote,
            "read through": bool(mine) and not wrote and not opened,
            "victim": sorted(os.listdir(v)) if os.path.isdir(v)
            else ("unchanged" if open(v, "rb").read() == VICTIM
                  else "changed")}
    through = [k for k, r in res.items() if r["written through"]]
    opened = [k for k, r in res.items() if r["opened to write through"]]
    read = [k for k, r in res.items() if r["read through"]]
    return {"links": len(PF_LINKS), "writes through a link": len(through),
            "which": through, "opened to write, unchanged": opened,
            "reads only through a link": read,
            "ok delivered and read": pop["ok"] is None and pf_status(
                log, "ok@example.test")[0][1] == "sent", "cases": res}


def facteur_test(bindir, name, fn, *args):
    """a test function of tests/hostile itself, fn(t, *args), on a fresh
    root: whether its assertions held, and the line it printed"""
    import contextlib
    import io
    t = helpers.Ctx(bindir)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            fn(t, *args)
        ok = True
    except AssertionError as e:
        ok = f"failed: {str(e)[:300]}"
    finally:
        t.cleanup()
    return {name: ok, "says": buf.getvalue().strip()[:300]}


def sides(group, facteur, peers_side):
    """Facteur's side, then the peers': {side: result}"""
    note(f"{group} facteur")
    out = {"facteur": facteur()}
    note(f"{group} postfix+dovecot")
    out["postfix+dovecot"] = peers_side()
    return out


def links_facteur(bindir):
    """test_links's test itself (nothing through a link)"""
    from test_links import test_links_planted_everywhere_nothing_written_through as tl
    return facteur_test(
        bindir, "test_links_planted_everywhere_nothing_written_through", tl)


def links_group(bindir, peers):
    return sides("links", lambda: links_facteur(bindir),
                 lambda: links_peers(peers))


# --- maxperip, traversal, reply10s: the three cells once "not run" -----

PERIP = 5               # Facteur's maxperip; Postfix's connection count
# the user of the held logins: not the normal client's, whose mailbox
# Facteur's pop3d locks for one session at a time
PERIP_USER = "perip@example.test"


def fresh_facteur(bindir, **kw):
    """a fresh root with `facteur run` (bob@example.test), as the
    hostile tests make it"""
    t = helpers.Ctx(bindir)
    return t, hn.System(t, **kw)


class SrcPOP3(__import__("poplib").POP3):
    """poplib's client from a chosen source address"""

    def __init__(self, port, src, timeout=10):
        self.src = src
        super().__init__("127.0.0.1", port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.src, 0))


def perip_logins(port, user, pw, n, src):
    """n POP3 sessions of user from src logged in, held open: (the held
    connections, what the last one got: "ok" or its -ERR or greeting)"""
    import poplib
    held, got = [], "ok"
    for _ in range(n):
        try:
            c = SrcPOP3(port, src)
            held.append(c)
            c.user(user)
            c.pass_(pw)
            got = "ok"
        except (poplib.error_proto, OSError, EOFError) as e:
            said = e.args[0] if e.args else e
            got = (said.decode(errors="replace") if isinstance(said, bytes)
                   else str(said))[:120]
    return held, got


def perip_side(tg, src="127.0.0.9"):
    """PERIP + 1 connections from src on SMTP, then on POP3 (those
    closed again), then PERIP + 1 POP3 logins of PERIP_USER from src; the
    SMTP connections and the logins held while a normal client sends
    from 127.0.0.2 and reads (normal())"""
    from test_flood import perip_round
    out, smtp, logins = {}, [], []
    try:
        for svc in ("smtp", "pop3"):
            t0 = time.monotonic()
            socks, greets, got = perip_round(tg.ports[svc], PERIP, src,
                                             wait=30)
            (smtp.extend if svc == "smtp" else logins.extend)(socks)
            out[f"{svc}: first {PERIP} greeted"] = sum(
                1 for g in greets if g[:1] in (b"2", b"+"))
            out[f"{svc}: connection {PERIP + 1} got"] = \
                got.decode(errors="replace").strip()[:100]
            out[f"{svc}: s to that"] = round(time.monotonic() - t0, 2)
        for s in logins:
            s.close()
        time.sleep(0.5)         # the server sees them gone
        conns, got = perip_logins(tg.ports["pop3"], PERIP_USER, hn.PW,
                                  PERIP + 1, src)
        logins = [c.sock for c in conns]
        out[f"pop3: login {PERIP + 1} of one user got"] = got
        worst, through = normal(tg, f"perip-{tg.name}")
        out["normal client: slowest greeting s"] = round(worst, 3)
        out["normal client: mail through"] = through
    finally:
        for s in smtp + logins:
            s.close()
    return out


def dovecot_conf(peers, add=None, drop=None):
    """a line added to or taken from dovecot.conf, then SIGHUP: its
    master reads the file again"""
    dconf = os.path.join(peers.root, "dovecot", "dovecot.conf")
    text = open(dconf).read()
    if add:
        text += add + "\n"
    if drop:
        text = text.replace(drop + "\n", "")
    open(dconf, "w").write(text)
    os.kill(peers.pids()[1], signal.SIGHUP)
    time.sleep(2)


def maxperip_group(bindir, peers):
    """Facteur with maxperip 5; Postfix with anvil's connection count 5
    for every client (no exception: the default exempts mynetworks) and
    Dovecot with mail_max_userip_connections 5 (per user and IP, after
    login: Dovecot 2.3 has no per-IP limit before login)"""
    out = {}
    note("maxperip facteur")
    t, sys_ = fresh_facteur(bindir, timeout=TIMEOUT,
                            controls=(("maxperip", f"{PERIP}\n"),))
    try:
        t.run("vadmin", "adduser", PERIP_USER, hn.PW, check=0)
        out["facteur"] = perip_side(Target("facteur", sys_.ports, hn.USER,
                                           hn.PW, None))
    finally:
        sys_.stop()
        t.cleanup()
    note("maxperip postfix+dovecot")
    line = f"mail_max_userip_connections = {PERIP}"
    peers.postconf(f"smtpd_client_connection_count_limit={PERIP}",
                   "smtpd_client_event_limit_exceptions=")
    dovecot_conf(peers, add=line)
    peers.add_user(PERIP_USER, hn.PW)
    try:
        out["postfix+dovecot"] = perip_side(
            Target("postfix+dovecot", peers.ports, USER, PW, None))
        log = os.path.join(peers.root, "postfix", "log", "maillog")
        out["postfix+dovecot"]["postfix log, 127.0.0.9"] = [
            l.split(": ", 1)[-1][:120].strip()
            for l in open(log, errors="replace")
            if "127.0.0.9" in l and ("warning" in l or "many" in l)][-3:]
    finally:
        peers.postconf("smtpd_client_connection_count_limit=1000",
                       "smtpd_client_event_limit_exceptions=$mynetworks")
        dovecot_conf(peers, drop=line)
    return out


def traversal_facteur(bindir):
    """test_links's traversal test itself, every name"""
    from test_links import TRAV, traversal
    return facteur_test(bindir, "slow_links_traversal_every_name",
                        traversal, TRAV)


def pf_sendmail(peers, logdir, trav):
    """Postfix's sendmail(1) with test_links's three argument forms for
    each name, each run under strace: the logs"""
    logs = []
    for x in trav:
        for args in (["-f", f"{x}@{hn.DOMAIN}", f"bob@{hn.DOMAIN}"],
                     ["--", f"{x}@{hn.DOMAIN}"], ["-f", x, "--", x]):
            lp = os.path.join(logdir, f"st-sendmail-{len(logs)}.log")
            logs.append(lp)
            subprocess.run(hn.strace_prefix(lp) + [
                "/usr/sbin/sendmail", "-C", peers.conf, *args],
                input=b"Subject: trav\n\nx\n", capture_output=True,
                timeout=60)
    return logs


def pf_me(peers, logdir):
    """Facteur's control/me as Postfix's nearest, myhostname, set to a
    traversal and read by Postfix's sendmail under strace: (what it
    said, its exit code, the strace log); main.cf restored after"""
    main = os.path.join(peers.conf, "main.cf")
    saved = open(main).read()
    lp = os.path.join(logdir, "st-myhostname.log")
    try:
        subprocess.run(["postconf", "-c", peers.conf, "-e",
                        "myhostname=../../outside"], check=True)
        p = subprocess.run(hn.strace_prefix(lp) + [
            "/usr/sbin/sendmail", "-C", peers.conf, f"bob@{hn.DOMAIN}"],
            input=b"Subject: me\n\nx\n", capture_output=True, timeout=60)
    finally:
        open(main, "w").write(saved)
    said = p.stderr.decode(errors="replace").strip().splitlines()
    return (said[-1][:120] if said else ""), p.returncode, lp


def pf_queue_empty(peers):
    p = subprocess.run(["postqueue", "-c", peers.conf, "-p"],
                       capture_output=True, text=True)
    return "Mail queue is empty" in p.stdout


def traversal_peers(peers):
    """test_links's names at SMTP MAIL/RCPT and POP3 USER, and through
    Postfix's sendmail, with every process of both masters under strace
    (attached with -p, children followed): path writes outside the
    peers' root, names taken at RCPT, logins"""
    from collections import Counter
    from test_links import TRAV, pop_traversal, send, smtp_traversal
    peers.add_user(f"bob@{hn.DOMAIN}", hn.PW)
    # test_links sends every name in one pipelined session: Postfix
    # would end it at its 20th error (smtpd_hard_error_limit) and sleep
    # a second per error after the 10th
    peers.postconf("smtpd_soft_error_limit=1000",
                   "smtpd_hard_error_limit=1000")
    out = os.path.join(peers.tmp, "outside")
    os.mkdir(out)
    os.chmod(out, 0o777)
    lp = os.path.join(peers.tmp, "st-peers.log")
    pids = [p for m in peers.pids() for p in hn.tree(m)]
    st = subprocess.Popen(hn.strace_prefix(lp) + [
        x for p in pids for x in ("-p", str(p))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = [lp]
    try:
        time.sleep(2)           # strace attached to every process
        replies = smtp_traversal(peers.ports["smtp"], TRAV)
        # Dovecot's auth penalty grows with each failure from one IP
        # (to 15 s): the names' logins side by side, not one by one
        with ThreadPoolExecutor(len(TRAV)) as ex:
            pops = [p for r in ex.map(
                lambda x: pop_traversal(peers.ports["pop3"], [x]), TRAV)
                for p in r]
        sent = pf_sendmail(peers, peers.tmp, TRAV)
        logs += sent
        me_said, me_rc, me_log = pf_me(peers, peers.tmp)
        logs.append(me_log)
        send(peers.ports["smtp"], [f"bob@{hn.DOMAIN}"], "trav")
        log = os.path.join(peers.root, "postfix", "log", "maillog")
        helpers.wait_for("bob's mail delivered", lambda: pf_status(
            log, f"bob@{hn.DOMAIN}"), 30)
        end = time.monotonic() + 60
        while not pf_queue_empty(peers) and time.monotonic() < end:
            time.sleep(1)
        empty = pf_queue_empty(peers)
        time.sleep(1)
    finally:
        st.send_signal(signal.SIGINT)     # detaches; the peers go on
        st.wait(30)
        peers.postconf("smtpd_soft_error_limit=10",
                       "smtpd_hard_error_limit=20")
    writes = [w for p in logs for w in hn.strace_writes(p)]
    bad = hn.outside(writes, peers.root)
    rcpt = [l for l in replies if l.startswith("250 2.1.5")]
    mail = [l for l in replies if l.startswith("250 2.1.0")]
    return {"names": len(TRAV), "processes attached": len(pids),
            "straced sendmail runs": len(sent),
            "myhostname=../../outside": f"exit {me_rc}: {me_said}",
            "path writes": len(writes),
            "writes into Maildir new/": sum(
                1 for _, p in writes if "/Maildir/new/" in p),
            "outside the root": len(bad), "which": sorted(set(bad))[:20],
            # Postfix's daemons chdir to the queue and name its files
            # relative to it: outside() cannot place them, so they are
            # counted apart, by first component (incoming/, active/...)
            "relative": Counter(p.split("/")[0] for _, p in writes
                                if not p.startswith("/")),
            "devices and /proc": sum(1 for _, p in writes
                                     if p.startswith(("/dev/", "/proc/"))),
            "outside/ now": os.listdir(out),
            "RCPT accepted": len(rcpt), "MAIL accepted": len(mail),
            "POP3 logins": pops, "queue empty after": empty,
            "refusals": Counter(l[:9] for l in replies if l[:1] in "45"),
            "writes under": Counter("/".join(os.path.relpath(
                p, peers.root).split("/")[:2]) for _, p in writes
                if p.startswith(peers.root + "/"))}


def traversal_group(bindir, peers):
    return sides("traversal", lambda: traversal_facteur(bindir),
                 lambda: traversal_peers(peers))


SLOW_TIMEOUT = 15      # timeoutremote of slow_outbound_reply_every_10s
SLOW_WAIT = 200         # its mta-remote's time limit


def reply10s_facteur(bindir):
    """mta-remote against test_outbound's server answering every line
    10 s late, timeoutremote 15 (slow_outbound_reply_every_10s's run)"""
    from test_outbound import s_slow
    t = helpers.Ctx(bindir)
    port = test_remote.setup(t, timeout=SLOW_TIMEOUT,
                             smtproutes="slow.test:[127.0.0.2]")
    e = Evil("127.0.0.2", port, s_slow)
    try:
        res, _, dt = test_remote.remote(t, "slow.test", "a@example.org",
                                        "x@slow.test", timeout=SLOW_WAIT)
        return {"s": round(dt, 1), "result": res[0][0],
                "says": res[0][1][:80], "sessions": len(e.sessions),
                "copies": len(e.messages)}
    finally:
        e.close()
        t.cleanup()


def reply10s_peers(peers):
    """Postfix's smtp(8) against the same server, every smtp_*_timeout
    15 s (its default smtp_per_request_deadline=no: each read)"""
    from test_outbound import s_slow
    port = helpers.free_port("127.0.0.2")
    e = Evil("127.0.0.2", port, s_slow)
    peers.postconf(f"transport_maps=inline:{{slow.test=smtp:[127.0.0.2]:"
                   f"{port}}}", "smtp_per_request_deadline=no",
                   "smtp_connect_timeout=2s", *[
                       f"smtp_{x}_timeout={SLOW_TIMEOUT}s" for x in (
                           "helo", "starttls", "mail", "rcpt", "data_init",
                           "data_xfer", "data_done", "rset", "quit")])
    log = os.path.join(peers.root, "postfix", "log", "maillog")
    rcpt = "x@slow.test"
    try:
        t0 = time.monotonic()
        net_session(peers.ports["smtp"], (
            f"MAIL FROM:<a@example.org>\r\nRCPT TO:<{rcpt}>\r\n"
            "DATA\r\nSubject: slow\r\n\r\nhi\r\n.\r\n").encode(),
            src=hn.NORMAL_IP)
        end = t0 + SLOW_WAIT
        while time.monotonic() < end and not pf_status(log, rcpt):
            time.sleep(0.1)
        dt = time.monotonic() - t0
        st = pf_status(log, rcpt)
        time.sleep(SLOW_TIMEOUT)        # a second attempt would show
        return {"s": round(dt, 1) if st else f">{SLOW_WAIT}",
                "result": st[0][1] if st else "none",
                "says": st[0][2][:100] if st else "",
                "sessions": len(e.sessions), "copies": len(e.messages)}
    finally:
        e.close()
        peers.postconf("transport_maps=")


def reply10s_group(bindir, peers):
    return sides("reply10s", lambda: reply10s_facteur(bindir),
                 lambda: reply10s_peers(peers))


# groups that set up their own side
OWN = ("rss", "outbound", "links", "maxperip", "traversal", "reply10s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sessions", type=int, default=120)
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--groups", default="relay,smuggling,nmap,flood,testssl",
                    help="comma-separated subset of the groups, or of "
                    "rss,outbound,links,maxperip,traversal,reply10s")
    a = ap.parse_args()
    groups = a.groups.split(",")
    bindir = os.path.abspath(a.bin)
    t = helpers.Ctx(bindir)
    t.init()
    t.run("vadmin", "adddomain", "example.test", input="pm\n", check=0)
    t.run("vadmin", "adduser", USER, PW, check=0)
    with open(t.path("control", "relayrules"), "w") as f:
        f.write("127.0.0.1:allow\n:allow\n")
    t.run("mta-rules", check=0)
    cert, key = t.path("control", "tls", "cert.pem"), \
        t.path("control", "tls", "key.pem")
    fac = peers = None
    res = {}
    try:
        if any(g not in OWN for g in groups):
            fac = hn.System(t, timeout=TIMEOUT)
        peers = Peers(t.tmp, cert, key)
        sides = [Target("facteur", fac.ports if fac else {}, USER, PW, None),
                 Target("postfix+dovecot", peers.ports, USER, PW, None)]
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
        own = {"rss": lambda: rss_group(bindir, peers),
               "links": lambda: links_group(bindir, peers),
               "outbound": lambda: outbound_group(bindir, peers,
                                                  test_remote.tls_context(t)),
               "maxperip": lambda: maxperip_group(bindir, peers),
               "traversal": lambda: traversal_group(bindir, peers),
               "reply10s": lambda: reply10s_group(bindir, peers)}
        for group in OWN:
            if group in groups:
                for name, r in own[group]().items():
                    res[(group, name)] = r
    finally:
        if fac:
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
