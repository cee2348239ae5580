"""test_send_fair - one sender cannot freeze the scheduler for everyone
(docs/queue.md, "Fairness"): many messages of 1,000 recipients each, to
1,000 domains routed to a tarpit (accepts, never answers), from one user;
another user's local message is still delivered within seconds. And a
message of 45,000 recipients on as many domains is cut into jobs in a
moment (the grouping by domain used to be quadratic)."""
import datetime
import os
import re
import time

from helpers import MX, Sender, alone, qf_new
from test_send import DOMAIN, maildir, setup
from test_send_faults import mailuser
from test_sendmail_user import can_switch, user_sendmail

BIG = 40            # messages: over the old 20,000 waiting jobs, and
                    # over the 30 busy messages a user may have
RCPTS = 1000        # the most a message may have (SPEC.md, entry limits)


def tarpit_routes(t, mx):
    """every domain to the tarpit (a catch-all line)"""
    with open(t.path("control", "smtproutes"), "w") as f:
        f.write(f":{mx.sock.getsockname()[0]}:{mx.port}\n")
    for k, v in (("timeoutremote", "60"), ("timeoutconnect", "5")):
        with open(t.path("control", k), "w") as f:
            f.write(f"{v}\n")


def inject_big(t, s):
    """BIG messages of RCPTS recipients on as many domains, from root"""
    rcpts = [f"u@dead{k}.test" for k in range(RCPTS)]
    s.wait_log(r"queue check done: ")
    for i in range(BIG):
        p = t.run("mta-inject", "-f", "root@" + DOMAIN, *rcpts,
                  input=f"Subject: big {i}\n\nmany\n")
        assert p.returncode == 0, p.err


def test_big_sender_does_not_delay_local_mail(t):
    if not can_switch():
        return
    setup(t, users=("bob",))
    mx = MX("127.0.0.2", mode="silent")
    tarpit_routes(t, mx)
    s = Sender(t)
    try:
        inject_big(t, s)
        s.wait_log(r"new msg ", count=BIG, timeout=60)
        s.wait_log(r"starting delivery \d+: msg \S+ to remote ", timeout=30)
        # another user's local mail, through sendmail and drop/
        t0 = time.monotonic()
        p = user_sendmail(t, f"bob@{DOMAIN}",
                          input=b"Subject: small\n\nunrelated\n")
        assert p.returncode == 0, p.err
        end = t0 + 10
        while not maildir(t, "bob") and time.monotonic() < end:
            time.sleep(0.01)
        took = time.monotonic() - t0
        assert maildir(t, "bob"), f"not delivered in 10 s\n{s.log()[-3000:]}"
        print(f"figure: local message delivered {took:.3f} s after "
              f"sendmail exited, while {BIG} x {RCPTS} recipients to "
              f"tarpitted domains were in flight")
        # and one by SMTP, timed from the start of its session, so an
        # upper bound of the time from its 250
        t0 = time.monotonic()
        p = t.run("mta-smtpd", "--inetd", env={"TCPREMOTEIP": "127.0.0.1"},
                  input=(f"HELO c\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:"
                         f"<bob@{DOMAIN}>\r\nDATA\r\nSubject: smtp\r\n\r\n"
                         f"hi\r\n.\r\nQUIT\r\n"))
        assert "\r\n250 2.0.0 ok " in p.out, p.out
        while len(maildir(t, "bob")) < 2 and time.monotonic() < t0 + 10:
            time.sleep(0.01)
        took2 = time.monotonic() - t0
        assert len(maildir(t, "bob")) == 2, "SMTP mail not delivered in 10 s"
        print(f"figure: SMTP message delivered at most {took2:.3f} s after "
              f"its 250")
        log = s.log()
        # the big ones really were in flight: none ended, the tarpit held
        # every remote slot that one user may hold (three quarters)
        big = re.findall(r"new msg (\S+)", log)[:BIG]
        assert not any("end msg " + b in log for b in big), log
        assert len(mx.conns) >= 1, "the tarpit saw no connection"
        assert re.search(r"status: local \d+/10 remote 15/20", log), log
    finally:
        mx.close()
        s.stop()


def stamp(log, pattern):
    """the time of the first log line matching pattern"""
    m = re.search(r"^(\S+)Z mta-send\[\d+\]: " + pattern, log, re.M)
    assert m, f"no {pattern!r} in the log"
    return datetime.datetime.fromisoformat(m.group(1)).timestamp()


def plant(t, rcpts):
    """a queue file written straight into queue/new/, as mta-inject would
    leave it (no entry limit applies to what is already queued)"""
    body = b"Subject: huge\n\nhello\n"
    tmp = t.path("queue", "tmp", "plant")
    with open(tmp, "wb") as f:
        f.write(qf_new("root@" + DOMAIN, rcpts, body))
        f.flush()
        os.fsync(f.fileno())
    ino = os.stat(tmp).st_ino
    name = f"{int(time.time() * 1e6):016x}.{ino:016x}"
    pw = mailuser()
    if pw:
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
    os.rename(tmp, t.path("queue", "new", name))
    return name


@alone
def test_45000_domains_cut_into_jobs_quickly(t):
    setup(t)
    mx = MX("127.0.0.2", mode="silent")
    tarpit_routes(t, mx)
    n = 45000
    s = Sender(t)
    try:
        s.wait_log(r"queue check done: ")
        plant(t, [f"u@[127.{k >> 16}.{(k >> 8) & 255}.{k & 255}]"
                  for k in range(1, n + 1)])
        with open(t.path("queue", "trigger"), "wb", buffering=0) as f:
            f.write(b"x")
        s.wait_log(r"starting delivery \d+: msg \S+ to remote ", timeout=60)
        log = s.log()
        took = stamp(log, r"starting delivery ") - stamp(log, r"new msg ")
        print(f"figure: first job of a 45,000-domain message {took:.3f} s "
              f"after its pickup")
        assert took < 3, took
    finally:
        mx.close()
        s.stop()


def test_remote_mail_is_not_queued_behind_a_big_sender(t):
    """hundreds of one user's jobs to a tarpit wait for a remote slot, and
    that user's jobs hold at most 15 of the 20 (three quarters): another
    user's remote job takes a free one at once, although the tarpit holds
    each of its slots for timeoutremote (60 s); and were none free, it
    would take the next that frees, not the place after them (slots are
    given to owners in turn)"""
    if not can_switch():
        return
    setup(t, users=("bob",))
    tarpit = MX("127.0.0.2", mode="silent")
    good = MX("127.0.0.3")
    with open(t.path("control", "smtproutes"), "w") as f:
        f.write(f"good.test:127.0.0.3:{good.port}\n"
                f":127.0.0.2:{tarpit.port}\n")
    # a tarpit session holds its slot for a minute
    for k, v in (("timeoutremote", "60"), ("timeoutconnect", "3")):
        with open(t.path("control", k), "w") as f:
            f.write(f"{v}\n")
    s = Sender(t)
    try:
        inject_big(t, s)
        s.wait_log(r"status: local \d+/10 remote 15/20", timeout=60)
        time.sleep(1)
        assert not re.search(r"remote (1[6-9]|20)/20", s.log()), \
            "one user's jobs held more than 15 of the 20 remote slots"
        t0 = time.monotonic()
        p = user_sendmail(t, "someone@good.test",
                          input=b"Subject: out\n\nto a live host\n")
        assert p.returncode == 0, p.err
        while not good.got and time.monotonic() < t0 + 10:
            time.sleep(0.02)
        took = time.monotonic() - t0
        assert good.got, f"not relayed in 10 s\n{s.log()[-3000:]}"
        print(f"figure: another user's remote message relayed {took:.2f} s "
              f"after sendmail exited, behind {BIG} x {RCPTS} recipients "
              f"to a tarpit holding 15 of the 20 remote slots for 60 s "
              f"a try")
    finally:
        tarpit.close()
        good.close()
        s.stop()
