"""test_relay_ctx - relay forms and SMTP smuggling endings in every client
context (issue 15).

The tables are test_smtpd_security.MATRIX (67 relay forms) and
test_smtpd.SMUGGLE_ENDINGS (6 bare CR / bare LF endings), imported, plus
four endings of the outside checkers' kind (a NUL beside the dot, a dot
followed by CR CR LF, a dot-stuffed line) that are data, not an end.

Contexts that may not relay, each given the whole relay matrix (test_*:
every 22nd form; slow_*: all): a client with no rule (--inetd, IPv4 and
IPv6), a client whose address is one digit off a RELAYCLIENT rule
(10.90.8.7, 110.9.8.7 beside `10.9.`; 2001:db8:10::1 beside
`2001:db8:1:`), an expired POP-before-SMTP grant, and on the network (from a new
127/8 address each session, failed AUTH being slowed per address)
587 and 465 after a failed AUTH and with an AUTH pipelined with MAIL
before its answer (RFC 4954 forbids it), and 25 from a `127.:allow`
rule without RELAYCLIENT.
Proved: 0 relayed (no recipient outside the hosted domains queued).

Every context (test_*: every other ending), those that may relay
included (a RELAYCLIENT rule, AUTH on 587 after STARTTLS, AUTH on 465,
a fresh grant, `sendmail -bs` run by an ordinary user), gets every smuggling ending followed by a smuggled
transaction. Proved: 0 smuggled (no message from the smuggled sender,
never more than the one message the client sent), and in the contexts
that may relay, a legitimate relay goes through (the context is real).

Outside checkers against a running `facteur run` whose rules give
127.0.0.1 no relaying: the endings over TCP, and nmap's smtp-open-relay
script (16 forms), which must report no open relay.
"""
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

from helpers import queued, read_queue_file
from test_smtpd import SMUGGLE_ENDINGS, Server, auth_plain, inetd, tls_ctx
from test_smtpd_security import MATRIX, OUT, S, setup_hosted

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_net import System  # noqa: E402

EXTRA_ENDINGS = [b"\r\n.\x00\r\n", b"\r\n\x00.\r\n", b"\r\n.\r\r\n",
                 b"\r\n..\r\n"]
ENDINGS = SMUGGLE_ENDINGS + EXTRA_ENDINGS
EVIL = "evil@smuggler.example"
BOB = "bob@example.test"


def hosted(addr):
    return re.fullmatch(r"[A-Za-z0-9._+-]+@(example\.test|alias\.test)",
                        addr) is not None


def take(t):
    """(sender, recipients) of every queued file, which are removed"""
    out = []
    for f in queued(t):
        recs, _ = read_queue_file(f)
        d = {}
        for k, v in recs:
            d.setdefault(k, []).append(v.decode(errors="replace"))
        out.append((d.get("F", [""])[0], d.get("R", [])))
        os.unlink(f)
    return out


def relay_script(sender, rcpt):
    return (f"MAIL FROM:{sender}\r\nRCPT TO:{rcpt}\r\n"
            f"RCPT TO:<{BOB}>\r\nDATA\r\nSubject: relay test\r\n\r\n"
            "hello\r\n.\r\n").encode()


def smuggle_script(ending, sender=S):
    return (f"MAIL FROM:{sender}\r\nRCPT TO:<{BOB}>\r\nDATA\r\n"
            "Subject: outer\r\n\r\nhi").encode() + ending + (
        f"MAIL FROM:<{EVIL}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n"
        "Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n").encode()


# --- contexts: each runs a script (the lines after EHLO/AUTH) and gives
# the server's reply lines; the queue is read afterwards

def inetd_ctx(ip):
    def run(t, script):
        lines, _ = inetd(t, b"EHLO probe.example\r\n" + script +
                         b"QUIT\r\n", ip=ip)
        return lines
    return run


def net_session(port, script, tls=False, starttls=False, auth=None,
                pipelined_auth=False, src="127.0.0.1"):
    """one TCP session: optional TLS, AUTH (user, password), the script;
    all reply lines"""
    s = socket.create_connection(("127.0.0.1", port), 30,
                                 source_address=(src, 0))
    if tls:
        s = tls_ctx().wrap_socket(s)
    f = s.makefile("rb")
    lines = []

    def reply():
        while True:
            line = f.readline().decode(errors="replace").rstrip("\r\n")
            lines.append(line)
            if line[3:4] != "-":
                return line
    reply()
    s.sendall(b"EHLO probe.example\r\n")
    reply()
    if starttls:
        s.sendall(b"STARTTLS\r\n")
        reply()
        s = tls_ctx().wrap_socket(s)
        f = s.makefile("rb")
        s.sendall(b"EHLO probe.example\r\n")
        reply()
    if auth and pipelined_auth:
        # AUTH and the transaction in one write: the server must not take
        # the MAIL as authenticated (nor answer it before the AUTH)
        s.sendall(f"AUTH PLAIN {auth_plain(*auth)}\r\n".encode() + script +
                  b"QUIT\r\n")
    else:
        if auth:
            s.sendall(f"AUTH PLAIN {auth_plain(*auth)}\r\n".encode())
            reply()
        s.sendall(script + b"QUIT\r\n")
    try:
        rest = f.read()
    except (OSError, ssl.SSLError):
        rest = b""
    lines += rest.decode(errors="replace").split("\r\n")
    s.close()
    return lines


SOURCES = iter(f"127.0.{i // 250 + 10}.{i % 250 + 1}" for i in range(10**6))


def net_ctx(kind, **kw):
    """a session from a new loopback address each time: failed AUTH is
    slowed per address, and this test is not about that"""
    def run(t, script):
        return net_session(t.srv.ports[kind], script, src=next(SOURCES),
                           **kw)
    return run


WRONG = (BOB, "wrong-password")
RIGHT = (BOB, "secret")

# (name, context, may relay)
IP_CONTEXTS = [
    ("no rule, IPv4", inetd_ctx("192.0.2.7"), False),
    ("no rule, IPv6", inetd_ctx("2001:db8::7"), False),
    ("beside rule 10.9.", inetd_ctx("10.90.8.7"), False),
    ("beside rule 10.9. (110.)", inetd_ctx("110.9.8.7"), False),
    ("beside rule 2001:db8:1:", inetd_ctx("2001:db8:10::1"), False),
    ("expired POP grant", inetd_ctx("192.0.2.8"), False),
    ("relay rule", inetd_ctx("10.9.8.7"), True),
    ("fresh POP grant", inetd_ctx("192.0.2.9"), True),
]
NET_CONTEXTS = [
    ("587 failed AUTH", net_ctx("submission", starttls=True, auth=WRONG),
     False),
    ("587 AUTH pipelined", net_ctx("submission", starttls=True, auth=RIGHT,
                                   pipelined_auth=True), None),
    ("465 failed AUTH", net_ctx("smtps", tls=True, auth=WRONG), False),
    ("25 :allow rule", net_ctx("smtp"), False),
    ("587 AUTH", net_ctx("submission", starttls=True, auth=RIGHT), True),
    ("465 AUTH", net_ctx("smtps", tls=True, auth=RIGHT), True),
]


def prepare(t):
    """example.test with bob (and alias.test); rules: 10.9. and
    2001:db8:1: relay, 127.0.0.1 may connect but not relay; a fresh and an
    expired grant; mta-smtpd on 25, 587, 465"""
    setup_hosted(t)
    with open(t.path("control", "relayrules"), "w") as f:
        f.write('10.9.:allow,RELAYCLIENT=""\n'
                '2001:db8:1::allow,RELAYCLIENT=""\n'
                '127.:allow\n:allow\n')
    t.run("mta-rules", check=0)
    for ip, age in (("192.0.2.8", 4 * 3600), ("192.0.2.9", 0)):
        p = t.path("open-smtp", ip)
        open(p, "w").close()
        when = time.time() - age
        os.utime(p, (when, when))
    t.srv = Server(t, smtp=1, submission=1, smtps=1)


def relay_matrix(t, pairs):
    """every context that may not relay x pairs: [(context, pair, what)]
    of the relayed ones; and the number of tries"""
    relayed, tries = [], 0
    for name, run, may in IP_CONTEXTS + NET_CONTEXTS:
        if may is not False:
            continue
        for sender, rcpt in pairs:
            lines = run(t, relay_script(sender, rcpt))
            tries += 1
            for _, rcpts in take(t):
                bad = [r for r in rcpts if not hosted(r)]
                if bad:
                    relayed.append((name, (sender, rcpt), bad, lines))
    return relayed, tries


def smuggling(t, endings):
    """every context x endings: [(context, ending, files)] of the
    smuggled ones; and the number of tries"""
    smuggled, tries = [], 0
    for name, run, _ in IP_CONTEXTS + NET_CONTEXTS:
        for ending in endings:
            run(t, smuggle_script(ending))
            tries += 1
            files = take(t)
            if any(f == EVIL for f, _ in files) or len(files) > 1:
                smuggled.append((name, ending, files))
    return smuggled, tries


def legit(t):
    """the contexts that may relay really do: [name] of those that did
    not"""
    failed = []
    for name, run, may in IP_CONTEXTS + NET_CONTEXTS:
        if may is not True:
            continue
        lines = run(t, relay_script("<bob@example.test>",
                                    f"<relaytest@{OUT}>"))
        files = take(t)
        if not any(f"relaytest@{OUT}" in r for _, r in files):
            failed.append((name, lines[-8:]))
    return failed


def run_all(t, step):
    prepare(t)
    try:
        pairs = MATRIX[::step]
        relayed, rtries = relay_matrix(t, pairs)
        smuggled, stries = smuggling(t, ENDINGS[::min(step, 2)])
        not_legit = legit(t)
    finally:
        t.srv.stop()
    print(f"relay x contexts: {rtries} tries, {len(relayed)} relayed; "
          f"smuggling x contexts: {stries} tries, {len(smuggled)} smuggled")
    assert relayed == [], relayed[:5]
    assert smuggled == [], smuggled[:5]
    assert not_legit == [], not_legit


def test_relay_ctx_sample(t):
    run_all(t, 22)


def slow_relay_ctx_every_pair(t):
    run_all(t, 1)


# --- sendmail -bs as an ordinary user ---------------------------------------

def test_relay_ctx_sendmail_bs_user_no_smuggling(t):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("SKIP: needs root and setpriv(1) to run sendmail as nobody")
        return
    setup_hosted(t)
    smuggled = []
    for ending in ENDINGS:
        talk = b"EHLO c\r\n" + smuggle_script(ending, "<>") + b"QUIT\r\n"
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                            "--clear-groups", t.bin("sendmail"), "--root",
                            t.root, "-bs"], input=talk, capture_output=True,
                           timeout=60)
        assert b"Sanitizer" not in p.stderr, p.stderr
        drops = [n for n in os.listdir(t.path("drop")) if n != "trigger"]
        for n in drops:
            data = open(t.path("drop", n), "rb").read()
            if EVIL.encode() in data.split(b"\nM")[0] or len(drops) > 1:
                smuggled.append((ending, n))
            os.unlink(t.path("drop", n))
    print(f"sendmail -bs as nobody: {len(ENDINGS)} endings, "
          f"{len(smuggled)} smuggled")
    assert smuggled == [], smuggled


# --- outside checkers against facteur run -------------------------------------

def test_relay_ctx_outside_checkers_on_facteur_run(t):
    if not shutil.which("nmap"):
        print("SKIP: nmap is needed (tools/deps.sh test installs it)")
        return
    setup_hosted(t)
    with open(t.path("control", "relayrules"), "w") as f:
        f.write("127.0.0.1:allow\n:allow\n")
    t.run("mta-rules", check=0)
    sysx = System(t, timeout=10)
    try:
        port = sysx.ports["smtp"]
        p = subprocess.run(
            ["nmap", "-Pn", "-n", "-p", str(port), "--script",
             "+smtp-open-relay", "--script-args",
             f"smtp-open-relay.domain={OUT},smtp-open-relay.ip=192.0.2.25",
             "127.0.0.1"], capture_output=True, text=True, timeout=300)
        smuggled = []
        for ending in ENDINGS:
            lines = net_session(port, smuggle_script(ending))
            if sum(1 for l in lines if l.startswith("250 2.0.0 ok")) > 1:
                smuggled.append((ending, lines))
        time.sleep(1)
        log = sysx.log()
    finally:
        sysx.stop()
    print(f"nmap smtp-open-relay: "
          f"{[l.strip() for l in p.stdout.splitlines() if 'relay' in l]}")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "smtp-open-relay" in p.stdout, p.stdout
    assert "doesn't seem to be an open relay" in p.stdout, p.stdout
    assert "Server is an open relay" not in p.stdout
    assert smuggled == [], smuggled
    assert f"from <{EVIL}>" not in log
