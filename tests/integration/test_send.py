"""test_send - mta-send, the scheduler: local deliveries through the real
vdeliver, remote ones through the real mta-remote to a Python SMTP server
on 127.0.0.2, retries, queue lifetime, bounces and double bounces, the
log lines of SPEC.md, mta-qread and mta-qstat, restarts and --check."""
import glob
import os
import re
import signal
import time

from helpers import MX, Sender

DOMAIN = "example.test"


def setup(t, users=("a", "b", "c"), **control):
    t.init()
    t.run("vadmin", "adddomain", DOMAIN, "pm-pass", check=0)
    for u in users:
        t.run("vadmin", "adduser", f"{u}@{DOMAIN}", "pw", check=0)
    control.setdefault("retrybase", "1")
    for k, v in control.items():
        with open(t.path("control", k), "w") as f:
            f.write(f"{v}\n")


def inject(t, sender, *rcpts, body=b"Subject: test\n\nhello\n"):
    p = t.run("mta-inject", "-f", sender, *rcpts, input=body, check=0)
    return p


def maildir(t, user, sub="new"):
    d = t.path("domains", DOMAIN, user, "Maildir", sub)
    return sorted(glob.glob(os.path.join(d, "*")))


def wait_files(t, user, n, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(maildir(t, user)) >= n:
            return maildir(t, user)
        time.sleep(0.05)
    raise AssertionError(f"{user}: {len(maildir(t, user))} files, want {n}")


def own(t, path):
    """give PATH to the mail user, as if a scheduler had written it"""
    if os.geteuid() == 0:
        st = os.stat(t.path("queue"))
        os.chown(path, st.st_uid, st.st_gid)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_usage(t):
    t.init()
    assert t.run("mta-send", "--help", check=0).out.startswith("usage:")
    p = t.run("mta-send", "--bogus", check=2)
    assert "usage:" in p.err
    t.run("mta-send", "--repair", check=2)


def test_local_delivery_log_lines_and_bounce(t):
    setup(t)
    s = Sender(t)
    try:
        s.wait_log(r"queue check done: 0 messages queued")
        inject(t, f"c@{DOMAIN}", f"a@{DOMAIN}", f"b@{DOMAIN}",
               f"nobody@{DOMAIN}", f"ghost@{DOMAIN}")
        wait_files(t, "a", 1)
        wait_files(t, "b", 1)
        bounce = wait_files(t, "c", 1)
        s.wait_drained()
    finally:
        log = s.stop()
    ids = re.findall(r"new msg ([0-9a-f]+\.[0-9a-f]+)", log)
    assert len(ids) == 2, log    # the message and its bounce
    mid = ids[0]
    assert re.search(r"^\S+Z mta-send\[\d+\]: info msg %s: bytes \d+ from "
                     r"<c@example\.test> qp \d+ uid " % re.escape(mid),
                     log, re.M), log
    for who in ("a", "b", "nobody", "ghost"):
        assert re.search(r"starting delivery \d+: msg %s to local %s@"
                         % (re.escape(mid), who), log), log
    assert len(re.findall(r"delivery \d+: success: ", log)) == 3, log
    assert len(re.findall(r"delivery \d+: failure: .*5\.1\.1", log)) == 2
    assert re.search(r"bounce msg %s qp %s" % (re.escape(mid),
                                                re.escape(ids[1])), log)
    assert "end msg %s" % mid in log and "end msg %s" % ids[1] in log
    assert re.search(r"status: local \d+/10 remote 0/20", log)
    # one RFC 3464 report for both failed recipients
    b = read(bounce[0])
    assert b.startswith(b"Return-Path: <>\n"), b[:200]
    assert b"Content-Type: multipart/report; report-type=delivery-status" \
        in b
    assert b"Content-Type: message/delivery-status" in b
    for who in (b"nobody", b"ghost"):
        assert b"Final-Recipient: rfc822; " + who + b"@example.test" in b
    assert b.count(b"Action: failed") == 2
    assert b"Status: 5.1.1" in b
    assert b"Subject: test\n\nhello\n" in b      # the original returned
    assert b"\nFrom: MAILER-DAEMON@" in b
    assert b"Auto-Submitted: auto-replied" in b


def test_double_bounce_and_dropped_triple(t):
    setup(t, doublebounceto=f"pm@{DOMAIN}", users=("pm",))
    s = Sender(t)
    try:
        # a bounce (sender <>) that fails goes to doublebounceto
        inject(t, "", f"nobody@{DOMAIN}")
        files = wait_files(t, "pm", 1)
        s.wait_drained()
        b = read(files[0])
        assert b"Final-Recipient: rfc822; nobody@example.test" in b
        # a double bounce that fails is dropped, not bounced again
        with open(t.path("control", "doublebounceto"), "w") as f:
            f.write(f"gone@{DOMAIN}\n")
        s.p.send_signal(signal.SIGHUP)
        s.wait_log("control files read again")
        inject(t, "", f"nobody2@{DOMAIN}")
        s.wait_log(r"a double bounce failed; dropped")
        s.wait_drained()
    finally:
        log = s.stop()
    assert len(maildir(t, "pm")) == 1
    assert len(re.findall(r"new msg ", log)) == 4, log   # 2 + 2 bounces


def test_retry_after_temporary_failure(t):
    setup(t)
    t.run("vadmin", "setquota", f"a@{DOMAIN}", "10", check=0)
    s = Sender(t)
    try:
        inject(t, f"c@{DOMAIN}", f"a@{DOMAIN}", f"b@{DOMAIN}",
               body=b"Subject: big\n\n" + b"x" * 5000 + b"\n")
        s.wait_log(r"delivery \d+: deferral: ")
        wait_files(t, "b", 1)
        # the outcome of b is on disk; a is pending with its last error
        q = t.run("mta-qread", check=0).out
        assert re.search(r"local\ta@example\.test\tpending, next try .* "
                         r"UTC, try 2: last error .*is full", q), q
        assert re.search(r"local\tb@example\.test\tdone", q), q
        st = glob.glob(t.path("queue", "msg", "*", "*.s"))
        assert len(st) == 1
        lines = read(st[0]).decode().splitlines()
        assert any(re.match(r"D 1 \d+ ", x) for x in lines), lines
        assert any(re.match(r"T 0 \d+ \d+ .*is full", x) for x in lines)
        # queue/stat may be up to 0.1 s behind
        end = time.monotonic() + 3
        while True:
            stat = t.run("mta-qstat", check=0).out
            if "messages in queue: 1\n" in stat or time.monotonic() > end:
                break
            time.sleep(0.05)
        assert "messages in queue: 1\n" in stat, stat
        t.run("vadmin", "setquota", f"a@{DOMAIN}", "NOQUOTA", check=0)
        wait_files(t, "a", 1)
        s.wait_drained()
    finally:
        log = s.stop()
    assert len(maildir(t, "b")) == 1              # never twice
    assert len(re.findall(r"to local b@", log)) == 1, log
    assert maildir(t, "c") == []                  # no bounce


def test_queuelifetime_gives_up_and_bounces(t):
    setup(t, queuelifetime="2")
    t.run("vadmin", "setquota", f"a@{DOMAIN}", "10", check=0)
    s = Sender(t)
    try:
        inject(t, f"c@{DOMAIN}", f"a@{DOMAIN}",
               body=b"Subject: big\n\n" + b"x" * 5000 + b"\n")
        bounce = wait_files(t, "c", 1, timeout=30)
        s.wait_drained()
    finally:
        log = s.stop()
    b = read(bounce[0])
    assert b"in the queue too long" in b, b[:2000]
    assert re.search(r"delivery \d+: failure: message_has_been_in_the_queue"
                     r"_too_long", log), log
    assert maildir(t, "a") == []


def test_restart_never_repeats_a_done_recipient(t):
    setup(t)
    t.run("vadmin", "setquota", f"a@{DOMAIN}", "10", check=0)
    s = Sender(t)
    try:
        inject(t, f"c@{DOMAIN}", f"a@{DOMAIN}", f"b@{DOMAIN}",
               body=b"Subject: big\n\n" + b"x" * 5000 + b"\n")
        wait_files(t, "b", 1)
        s.wait_log(r"delivery \d+: deferral: ")
    finally:
        s.stop()
    assert t.run("mta-qstat", check=0).out.startswith("messages in queue: 1")
    t.run("vadmin", "setquota", f"a@{DOMAIN}", "NOQUOTA", check=0)
    s = Sender(t)
    try:
        s.wait_log(r"queue check done: 1 message queued")
        wait_files(t, "a", 1)
        s.wait_drained()
    finally:
        log = s.stop()
    assert len(maildir(t, "b")) == 1
    assert "to local b@" not in log, log


def test_new_mail_is_taken_at_once(t):
    setup(t)
    s = Sender(t)
    try:
        s.wait_log(r"queue check done:")
        time.sleep(0.3)
        lat = []
        for i in range(5):
            t0 = time.monotonic()
            inject(t, f"c@{DOMAIN}", f"a@{DOMAIN}")
            wait_files(t, "a", i + 1)
            lat.append(time.monotonic() - t0)
    finally:
        s.stop()
    # no polling interval: well under a second each, even with sanitizers
    assert sorted(lat)[2] < 1.0, lat


def test_second_scheduler_refused(t):
    setup(t)
    s = Sender(t)
    try:
        s.wait_log(r"queue check done:")
        p = t.run("mta-send", check=111)
        assert "another mta-send" in p.err, p.err
    finally:
        s.stop()


def test_qstat_counts_with_and_without_scheduler(t):
    setup(t)
    for u in ("a", "b"):
        t.run("vadmin", "setquota", f"{u}@{DOMAIN}", "10", check=0)
    for i in range(3):
        inject(t, f"c@{DOMAIN}", f"a@{DOMAIN}",
               body=b"Subject: big\n\n" + b"x" * 5000 + b"\n")
    out = t.run("mta-qstat", check=0).out
    assert out == ("messages in queue: 3\n"
                   "messages in queue but not yet preprocessed: 3\n"), out
    s = Sender(t)
    try:
        s.wait_log(r"delivery \d+: deferral", count=3)
        time.sleep(0.3)
        out = t.run("mta-qstat", check=0).out
        assert out == ("messages in queue: 3\n"
                       "messages in queue but not yet preprocessed: 0\n"), out
        assert os.path.exists(t.path("queue", "stat"))
    finally:
        s.stop()
    assert not os.path.exists(t.path("queue", "stat"))
    # counted from the directories, status files not counted
    out = t.run("mta-qstat", check=0).out
    assert out.startswith("messages in queue: 3\n"), out
    q = t.run("mta-qread", check=0).out
    assert len(re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  #[0-9a-f.]+"
                          r"  \d+  <c@example\.test>$", q, re.M)) == 3, q


def test_check_and_repair(t):
    setup(t)
    inject(t, f"c@{DOMAIN}", f"a@{DOMAIN}")
    os.makedirs(t.path("queue", "msg", "00"), exist_ok=True)
    junk = t.path("queue", "msg", "00", "123.400")
    with open(junk, "wb") as f:
        f.write(b"FQ1\nTgarbage")
    own(t, junk)
    own(t, os.path.dirname(junk))
    p = t.run("mta-send", "--check", check=1)
    assert "problem %s: damaged" % junk in p.out, p.out
    assert os.path.exists(junk)
    p = t.run("mta-send", "--check", "--repair", check=0)
    assert "1 problem found and repaired" in p.out, p.out
    assert not os.path.exists(junk)
    assert os.path.exists(t.path("queue", "quarantine", "123.400"))
    t.run("mta-send", "--check", check=0)
    # the good message is untouched and still flows
    s = Sender(t)
    try:
        wait_files(t, "a", 1)
    finally:
        s.stop()


def test_remote_delivery_one_transaction_and_bounce(t):
    setup(t)
    sink = MX("127.0.0.2", rcpt={"nope": "550 5.1.1 no such user here"})
    try:
        with open(t.path("control", "smtproutes"), "w") as f:
            f.write("remote.test:127.0.0.2\n")
        with open(t.path("control", "remoteport"), "w") as f:
            f.write(f"{sink.port}\n")
        s = Sender(t)
        try:
            inject(t, f"c@{DOMAIN}", "x@remote.test", "y@Remote.test",
                   "nope@remote.test", f"a@{DOMAIN}",
                   body=b"Subject: out\n\n.dot line\nend\n")
            wait_files(t, "a", 1)
            bounce = wait_files(t, "c", 1)
            s.wait_drained()
        finally:
            log = s.stop()
    finally:
        sink.close()
    got = sink.transactions()
    assert len(got) == 1, got                  # one transaction
    mail, rcpts, data = got[0]
    assert mail == f"<c@{DOMAIN}>", mail
    # all three were tried in it; the peer refused nope
    assert rcpts == ["x@remote.test", "y@Remote.test", "nope@remote.test"]
    assert data.endswith(b"Subject: out\r\n\r\n..dot line\r\nend\r\n"), data
    assert len(re.findall(r"starting delivery \d+: msg \S+ to remote ",
                          log)) == 3, log
    # a, x and y, then the bounce to c
    assert len(re.findall(r"delivery \d+: success: ", log)) == 4, log
    assert re.search(r"delivery \d+: failure: 127\.0\.0\.2_does_not_like_"
                     r"recipient:_550_5\.1\.1", log), log
    b = read(bounce[0])
    assert b"Final-Recipient: rfc822; nope@remote.test" in b
    assert b"Diagnostic-Code: smtp; " in b and b"Status: 5.1.1" in b


def test_sigalrm_retries_everything_now(t):
    setup(t, retrybase="1000")       # next try in ~6 days otherwise
    t.run("vadmin", "setquota", f"a@{DOMAIN}", "10", check=0)
    s = Sender(t)
    try:
        inject(t, f"c@{DOMAIN}", f"a@{DOMAIN}",
               body=b"Subject: big\n\n" + b"x" * 5000 + b"\n")
        s.wait_log(r"delivery \d+: deferral: ")
        t.run("vadmin", "setquota", f"a@{DOMAIN}", "NOQUOTA", check=0)
        time.sleep(0.5)
        assert maildir(t, "a") == []                 # not before its time
        s.p.send_signal(signal.SIGALRM)
        wait_files(t, "a", 1, timeout=5)
        s.wait_drained()
    finally:
        log = s.stop()
    assert "every waiting message is due now" in log


def test_remote_by_mx_from_dnsmasq_and_null_mx_bounce(t):
    """mta-send -> mta-remote -> MX from a real DNS server (dnsmasq)"""
    from test_remote import Dns
    setup(t)
    sink = MX("127.0.0.3")
    with open(t.path("control", "remoteport"), "w") as f:
        f.write(f"{sink.port}\n")
    dns = Dns(t, "--mx-host=mx.test,mail.mx.test,10",
              "--host-record=mail.mx.test,127.0.0.3",
              "--dns-rr=null.test,15,000000")
    try:
        s = Sender(t)
        try:
            inject(t, f"c@{DOMAIN}", "r@mx.test", "n@null.test")
            bounce = wait_files(t, "c", 1)
            s.wait_drained()
        finally:
            log = s.stop()
    finally:
        sink.close()
        dns.close()
    got = sink.transactions()
    assert [(m, r) for m, r, _ in got] == [(f"<c@{DOMAIN}>",
                                            ["r@mx.test"])], got
    assert re.search(r"delivery \d+: success: 127\.0\.0\.3_accepted", log)
    b = read(bounce[0])
    assert b"Final-Recipient: rfc822; n@null.test" in b, b[:3000]
    assert b"Status: 5.1.10" in b, b[:3000]
    assert b"r@mx.test" not in b.split(b"message/rfc822")[0]


def test_info_msg_has_a_numeric_uid_for_smtp_mail(t):
    """info msg carries a number for every source (qmailanalog's matchup
    reads one): mta-inject's caller, and for SMTP mail the receiving
    mta-smtpd's, the mail user's"""
    import pwd
    setup(t)
    s = Sender(t)
    try:
        p = t.run("mta-smtpd", "--inetd", env={"TCPREMOTEIP": "127.0.0.1"},
                  input=(f"HELO c\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:"
                         f"<a@{DOMAIN}>\r\nDATA\r\nSubject: s\r\n\r\nhi\r\n"
                         f".\r\nQUIT\r\n"))
        assert "\r\n250 2.0.0 ok " in p.out, p.out
        inject(t, f"c@{DOMAIN}", f"b@{DOMAIN}")
        wait_files(t, "a", 1)
        wait_files(t, "b", 1)
    finally:
        log = s.stop()
    uids = re.findall(r"info msg \S+: bytes \d+ from <[^>]*> qp \d+ uid (\S+)",
                      log)
    assert len(uids) == 2 and all(u.isdigit() for u in uids), (uids, log)
    mail = (pwd.getpwnam("facteur").pw_uid if os.geteuid() == 0
            else os.getuid())
    assert str(mail) in uids and str(os.getuid()) in uids, uids
