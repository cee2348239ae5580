"""test_dbl_forward - a double bounce that postmaster forwards off-site
stays a double bounce (docs/security.md, review finding F1).

Before the fix the mark was lost when vdeliver handed the forwarded copy
to mta-inject: the copy's failure made a new double bounce to postmaster,
which forwarded it again, about 50 times a second without end."""
import re
import time

from helpers import MX, Sender, qf_new
from test_send import DOMAIN, inject, maildir, setup


def test_forwarded_double_bounce_failing_is_dropped(t):
    forwarded_double_bounce(t, None)


def test_forwarded_double_bounce_failing_is_dropped_exec(t):
    """the same with vdeliver run by exec, not by its server"""
    forwarded_double_bounce(t, {"FACTEUR_VDELIVER_EXEC": "1"})


def forwarded_double_bounce(t, env):
    setup(t, users=("pm",), doublebounceto=f"pm@{DOMAIN}")
    t.run("vadmin", "forward", f"pm@{DOMAIN}", "gone@far.test", check=0)
    peer = MX("127.0.0.2", rcpt={"gone": "550 5.1.1 no such user",
                                 "x": "550 5.1.1 no such user"})
    try:
        with open(t.path("control", "smtproutes"), "w") as f:
            f.write("far.test:127.0.0.2\n")
        with open(t.path("control", "remoteport"), "w") as f:
            f.write(f"{peer.port}\n")
        s = Sender(t, env=env)
        try:
            # a bounce (<>) to x@far.test fails -> double bounce to pm,
            # forwarded to gone@far.test -> fails -> dropped, once
            inject(t, "", "x@far.test")
            s.wait_log(r"a double bounce failed; dropped", timeout=30)
            time.sleep(3)       # a loop would go on meanwhile
        finally:
            log = s.stop()
    finally:
        peer.close()
    rcpts = [c for sess in peer.sessions for c in sess["cmds"]
             if c.upper().startswith("RCPT")]
    assert len(rcpts) == 2, (rcpts, log)   # x once, then gone once
    assert len(re.findall(r"bounce msg ", log)) == 1, log
    assert len(re.findall(r"a double bounce failed", log)) == 1, log
    # the forward went out with <>, as a bounce does
    mails = [c for sess in peer.sessions for c in sess["cmds"]
             if c.upper().startswith("MAIL")]
    assert all(m.upper() == "MAIL FROM:<>" for m in mails), mails
    assert maildir(t, "pm") == []


def test_double_bounce_mark_refused_from_callers(t):
    """#@[] is the double bounce's mark between Facteur's own programs:
    sendmail (any caller) refuses it as a sender, and so does the drop/
    pickup in a file written by hand"""
    from test_entry import refused
    from test_sendmail_user import can_switch, drop_names, put
    setup(t, users=("b",))
    p = t.run("sendmail", "-f", "#@[]", f"b@{DOMAIN}",
              input="Subject: x\n\ny\n")
    assert "kept for double bounces" in refused(p, "sendmail")
    if not can_switch():
        return
    put(t, "dbl", qf_new("#@[]", [f"b@{DOMAIN}"], b"Subject: x\n\ny\n"))
    s = Sender(t)
    try:
        s.wait_log(r"quarantine \S+/drop/dbl: from uid \d+: "
                   r"an invalid sender address")
    finally:
        s.stop()
    assert drop_names(t) == [] and maildir(t, "b") == []
