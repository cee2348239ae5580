"""test_entry - the limits of every entry (SPEC "Mail flow" 1, "Limits at
every entry") and envelope values that look like options.

An address whose local part begins with '-' is refused by mta-smtpd at
MAIL and RCPT (553 5.1.3), by mta-inject and sendmail (exit 100, nothing
queued) and by mta-send's drop/ pickup (the file quarantined); at most
1,000 recipients a message at each of them. A queue file that carries such
an address anyway (written here, past every entry) is delivered without
mta-remote or vdeliver reading it as --root (lib/args.h).
"""
import os
import re
import shutil
import stat
import struct
import time

from helpers import (MX, Sender, qf_build, qf_new, queued, read_queue_file,
                     wait_for)
from test_send import DOMAIN, maildir, own, setup, wait_files
from test_sendmail_user import (can_switch, drop_names, put,
                                user_sendmail)
from test_smtpd import codes, inetd

# each is refused as a recipient and as a sender, wherever it comes in
BAD = ["--root=/tmp/evil@remote.invalid", "--root=X", "--help"]
MSG = "Subject: t\n\nbody\n"


def nothing_queued(t):
    assert queued(t) == [], queued(t)


def refused(p, prog):
    """exit 100 with one clear line on stderr naming the program"""
    assert p.returncode == 100, (p.returncode, p.out, p.err)
    lines = p.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prog + ": "), p.err
    return lines[0]


def test_inject_refuses_option_like_addresses(t):
    t.init()
    for bad in BAD:
        for args in (["-f", "s@x.test", "ok@x.test", bad],
                     ["-f", "s@x.test", "--", bad],
                     ["-f", bad, "ok@x.test"],
                     ["-f" + bad, "ok@x.test"]):
            p = t.run("mta-inject", *args, input=MSG)
            err = refused(p, "mta-inject")
            assert "5.1.3" in err and "'-'" in err, (args, err)
            nothing_queued(t)
    # the one form that is a flag is still one
    assert t.run("mta-inject", "--help", check=0).out.startswith("usage:")


def test_sendmail_refuses_option_like_addresses(t):
    t.init()
    for bad in BAD:
        for args in (["ok@x.test", bad], ["--", bad], ["-f", bad,
                                                       "ok@x.test"]):
            p = t.run("sendmail", *args, input=MSG)
            err = refused(p, "sendmail")
            assert "5.1.3" in err and "'-'" in err, (args, err)
            nothing_queued(t)
        for hdr in (f"To: x <{bad}>", f"Cc: ok@x.test, {bad}",
                    f"Bcc: {bad}"):
            p = t.run("sendmail", "-t", input=f"{hdr}\n{MSG}")
            refused(p, "sendmail")
            nothing_queued(t)
    assert t.run("sendmail", "--help", check=0).out.startswith("usage:")


def test_smtpd_refuses_option_like_addresses(t):
    t.init()
    for bad in BAD:
        addr = bad if "@" in bad else bad + "@remote.invalid"
        # a relay client, so that only the address itself can be refused
        lines, _ = inetd(t, (f"HELO c\r\nMAIL FROM:<{addr}>\r\n"
                             "RCPT TO:<ok@remote.invalid>\r\n"
                             f"MAIL FROM:<ok@x.test>\r\n"
                             f"RCPT TO:<{addr}>\r\nQUIT\r\n").encode(),
                         ip="127.0.0.1")
        assert codes(lines) == ["220", "250", "553", "503", "250", "553",
                                "221"], lines
        assert [ln for ln in lines if ln.startswith("553")] == [
            "553 5.1.3 an address may not begin with '-'"] * 2, lines
        nothing_queued(t)


def test_inject_and_sendmail_recipient_limit(t):
    t.init()
    many = [f"r{i}@x.test" for i in range(1001)]
    err = refused(t.run("mta-inject", "-f", "s@x.test", *many, input=MSG),
                  "mta-inject")
    assert "too many recipients" in err and "1000" in err, err
    nothing_queued(t)
    err = refused(t.run("sendmail", *many, input=MSG), "sendmail")
    assert "too many recipients" in err, err
    nothing_queued(t)
    # -t: spread over To, Cc and Bcc, folded, as a script would write them
    hdr = ("To: " + ",\n ".join(many[:400]) + "\nCc: " +
           ",\n ".join(many[400:800]) + "\nBcc: " +
           ",\n ".join(many[800:]))
    err = refused(t.run("sendmail", "-t", input=hdr + "\n" + MSG),
                  "sendmail")
    assert "too many recipients" in err, err
    nothing_queued(t)
    # 1,000 is within the limit, at each of them
    t.run("mta-inject", "-f", "s@x.test", *many[:1000], input=MSG, check=0)
    t.run("sendmail", *many[:1000], input=MSG, check=0)
    hdr = "To: " + ",\n ".join(many[:500]) + "\nBcc: " + ",\n ".join(
        many[500:1000])
    t.run("sendmail", "-t", input=hdr + "\n" + MSG, check=0)
    files = queued(t)
    assert len(files) == 3, files
    for f in files:
        recs, _ = read_queue_file(f)
        assert [k for k, _ in recs].count("R") == 1000


def test_user_sendmail_refuses_before_drop(t):
    if not can_switch():
        return
    setup(t, users=("b",))
    for bad in BAD:
        for args in ([f"b@{DOMAIN}", bad], ["-f", bad, f"b@{DOMAIN}"]):
            refused(user_sendmail(t, *args, input=MSG), "sendmail")
    many = [f"r{i}@x.test" for i in range(1001)]
    err = refused(user_sendmail(t, *many, input=MSG), "sendmail")
    assert "too many recipients" in err, err
    assert drop_names(t) == []
    assert user_sendmail(t, *many[:1000], input=MSG).returncode == 0
    assert len(drop_names(t)) == 1


def test_drop_files_past_the_limits_are_refused(t):
    if not can_switch():
        return
    setup(t, users=("b",))
    # remote recipients lead nowhere fast: a refused connection defers
    with open(t.path("control", "smtproutes"), "w") as f:
        f.write("x.test:127.0.0.1:1\n")
    many = [f"r{i}@x.test" for i in range(1001)]
    body = b"Subject: d\n\nx\n"
    put(t, "many", qf_new(f"s@{DOMAIN}", many, body))
    put(t, "thousand", qf_new(f"s@{DOMAIN}", many[:1000], body))
    want = {"many": "more recipients than the limit"}
    for i, bad in enumerate(BAD):
        addr = bad if "@" in bad else bad + "@x.test"
        put(t, f"rcpt{i}",
            qf_new(f"s@{DOMAIN}", [f"b@{DOMAIN}", addr], body))
        put(t, f"sender{i}", qf_new(addr, [f"b@{DOMAIN}"], body))
        want[f"rcpt{i}"] = "an invalid recipient address"
        want[f"sender{i}"] = "an invalid sender address"
    # what sendmail never writes: a domain not in A-labels, bytes that
    # are not UTF-8 (doctor --json would have printed them raw)
    for i, (frm, to) in enumerate(
            ((f"s@{DOMAIN}".encode(), b"u@\xff\xfe"),
             (f"s@{DOMAIN}".encode(), "u@b\u00fccher.example".encode()),
             (f"s@{DOMAIN}".encode(), b"\xff@x.test"),
             (b"s@d\xc3\xa9.example", f"b@{DOMAIN}".encode()))):
        put(t, f"utf{i}", qf_build([("T", struct.pack("<Q", 1)),
                                    ("F", frm), ("R", to)], body))
        want[f"utf{i}"] = ("an invalid sender address" if i == 3 else
                           "an invalid recipient address")
    quarantined(t, want, r"drop thousand from uid \d+: queued as msg")
    assert set(os.listdir(t.path("queue", "quarantine"))) == set(want)


def quarantined(t, want, then=None):
    """mta-send quarantines each drop file of WANT (name: why) with its
    reason in the log (and logs THEN); drop/ is left empty and b has no
    mail: nothing of a refused file"""
    s = Sender(t)
    try:
        s.wait_log(r"quarantine \S+/drop/", count=len(want))
        if then:
            s.wait_log(then)
        log = s.log()
    finally:
        s.stop()
    for name, why in want.items():
        assert re.search(rf"quarantine \S+/drop/{name}: from uid \d+: "
                         rf"{re.escape(why)}", log), (name, log)
    assert drop_names(t) == []
    assert maildir(t, "b") == []


def test_trailing_root_dot_is_taken_off_at_every_entry(t):
    """mta-inject and sendmail take a domain's trailing root dot off, as
    mta-smtpd does: b@DOMAIN. is the hosted b@DOMAIN and is delivered,
    where it was a remote domain whose MX was this host (a bounce)"""
    setup(t, users=("b",))
    s = Sender(t)
    try:
        for prog, args in (("mta-inject", ["-f", "a@x.test",
                                           f"b@{DOMAIN}."]),
                           ("sendmail", ["-oi", f"<b@{DOMAIN.upper()}.>"])):
            p = t.run(prog, *args, input=MSG)
            assert p.returncode == 0, (prog, p.err)
        wait_files(t, "b", 2, timeout=30)
    finally:
        s.stop()


# a CR not before LF becomes a space (Postfix's cleanup_replace_stray_cr_lf):
# the first is the smuggler's "\\r.\\r" of a web form's text given to
# sendmail; (input, what the stored message must hold)
STRAY_CR = [("Subject: s\n\nhi\r.\rMAIL FROM:<ceo@x.test>\r\n",
             b"\nhi . MAIL FROM:<ceo@x.test>\n"),
            ("Subject: c\n\nends in a CR\r", b"\nends in a CR "),
            ("Subject: cc\r\r\n\r\nbody\r\n", b"Subject: cc \n")]
# a NUL, which SMTP refuses (554 5.6.0)
NUL_MSG = "Subject: n\n\na\0b\n"
NUL_TEXT = "5.6.0 the message holds a NUL byte"


def newest_body(t, before):
    """the message of the one queue file not in BEFORE"""
    (f,) = set(queued(t)) - set(before)
    return read_queue_file(f)[1]


def test_inject_and_sendmail_take_stray_cr_as_space_refuse_nul(t):
    """mta-inject and root's sendmail (which runs it) store each stray CR
    of STRAY_CR as a space, so no bare CR is ever queued (or sent on);
    a NUL is refused with exit 100 and one 5.6.0 line, nothing queued"""
    t.init()
    for prog in ("mta-inject", "sendmail"):
        args = (["-f", "a@b.test", "c@d.test"] if prog == "mta-inject"
                else ["-oi", "c@d.test"])
        for msg, want in STRAY_CR:
            before = queued(t)
            p = t.run(prog, *args, input=msg)
            assert p.returncode == 0, (prog, msg, p.err)
            body = newest_body(t, before)
            assert want in body and b"\r" not in body, (prog, msg, body)
        before = queued(t)
        line = refused(t.run(prog, *args, input=NUL_MSG), "mta-inject")
        assert NUL_TEXT in line, (prog, line)
        assert queued(t) == before


def test_user_sendmail_and_drop_take_stray_cr_refuse_nul(t):
    """An ordinary user's sendmail writes each stray CR as a space into
    its drop file and refuses a NUL before anything stays in drop/; a drop
    file written by hand with a CR or a NUL in its message is quarantined
    with the reason, and its recipient gets nothing"""
    if not can_switch():
        return
    setup(t, users=("b",))
    for msg, _ in STRAY_CR:
        p = user_sendmail(t, f"b@{DOMAIN}", input=msg)
        assert p.returncode == 0, (msg, p.err)
    files = drop_names(t)
    assert len(files) == len(STRAY_CR)
    for name in files:
        # the message only: the file's binary lengths may hold a 13
        body = read_queue_file(t.path("drop", name))[1]
        assert body and b"\r" not in body, (name, body)
        os.unlink(t.path("drop", name))
    line = refused(user_sendmail(t, f"b@{DOMAIN}", input=NUL_MSG),
                   "sendmail")
    assert NUL_TEXT in line, line
    assert drop_names(t) == []
    want = {}
    for i, body in enumerate((b"Subject: d\n\nhi\r.\rx\n",
                              b"Subject: d\n\na\0b\n", b"S: d\r\n\r\n")):
        put(t, f"bytes{i}", qf_new(f"s@{DOMAIN}", [f"b@{DOMAIN}"], body))
        want[f"bytes{i}"] = "the message holds a CR or a NUL"
    quarantined(t, want)


# --- past every entry: a queue file written by hand ----

def plant(t, name, sender, rcpts, body=b"Subject: q\n\nplanted\n"):
    """a queue file in queue/new/ named as lib/queue.c names it"""
    tmp = t.path("queue", "tmp", name)
    with open(tmp, "wb") as f:
        f.write(qf_new(sender, rcpts, body))
    ino = os.stat(tmp).st_ino
    dst = t.path("queue", "new", "%x.%x" % (int(time.time() * 1e6), ino))
    os.rename(tmp, dst)
    own(t, dst)
    return dst


def copy_owned(t, src, dst):
    """SRC's directories and regular files (no FIFO: opening one would
    block) into DST, with their modes and owners: a root as good as the
    real one, for a --root that must never be used"""
    def specials(d, names):
        return [n for n in names if not (
            os.path.isdir(os.path.join(d, n)) or
            os.path.isfile(os.path.join(d, n)))]
    shutil.copytree(src, dst, symlinks=True, ignore=specials)
    for d, dirs, files in os.walk(src):
        for n in [""] + dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            os.lchown(os.path.join(dst, os.path.relpath(p, src)),
                      st.st_uid, st.st_gid)


def evil_root(t, name, parts=("control",)):
    d = os.path.join(t.tmp, name)
    os.mkdir(d, 0o755)
    for part in parts:
        copy_owned(t, t.path(part), os.path.join(d, part))
    return d


def test_queued_option_like_addresses_do_not_pick_the_root_remote(t):
    setup(t)
    sink = MX("127.0.0.2")
    evil = MX("127.0.0.2")
    try:
        with open(t.path("control", "smtproutes"), "w") as f:
            f.write("remote.test:127.0.0.2\n")
        with open(t.path("control", "remoteport"), "w") as f:
            f.write(f"{sink.port}\n")
        # the root "--root=EVIL@remote.test" would name: its routes lead
        # to the other listener
        d = evil_root(t, "evil@remote.test")
        with open(os.path.join(d, "control", "smtproutes"), "w") as f:
            f.write(f"remote.test:127.0.0.2:{evil.port}\n")
        bad = f"--root={d}"
        assert bad.endswith("@remote.test")
        plant(t, "a", f"a@{DOMAIN}", ["v@remote.test", bad])
        plant(t, "b", bad, ["w@remote.test"])
        s = Sender(t)
        try:
            wait_for("two transactions (or one at the wrong listener)",
                     lambda: len(sink.transactions()) >= 2 or
                     evil.sessions, 30, s)
            log = s.log()
        finally:
            s.stop()
        got = sorted((m, sorted(r)) for m, r, _ in sink.transactions())
    finally:
        sink.close()
        evil.close()
    # the wrong root's route was never taken
    assert evil.sessions == [], (evil.sessions, log)
    assert got == sorted([(f"<a@{DOMAIN}>", sorted(["v@remote.test", bad])),
                          (f"<{bad}>", ["w@remote.test"])]), (got, log)


def test_queued_option_like_sender_does_not_pick_the_root_local(t):
    setup(t, users=("b",))
    # by exec, where the sender is an argument (the server takes it over
    # its socket)
    d = evil_root(t, "evil@x.test", ("control", "domains", "log"))
    bad = f"--root={d}"
    plant(t, "a", bad, [f"b@{DOMAIN}"])
    s = Sender(t, env={"FACTEUR_VDELIVER_EXEC": "1"})
    try:
        (f,) = wait_files(t, "b", 1, timeout=20)
        s.wait_log(r"delivery \d+: success: ")
    finally:
        s.stop()
    with open(f, "rb") as fh:
        assert fh.read().startswith(f"Return-Path: <{bad}>\n".encode())
    evil_new = os.path.join(d, "domains", DOMAIN, "b", "Maildir", "new")
    assert os.listdir(evil_new) == []
    assert stat.S_ISDIR(os.stat(evil_new).st_mode)


def test_remote_arguments(t):
    t.init()
    # mta-send's form: the envelope values after "--", counted as before
    p = t.run("mta-remote", "--", "only.test", "s@x.test", check=2)
    assert "need DOMAIN, SENDER and a RCPT" in p.err, p.err
    p = t.run("mta-remote", "--bogus", "d.test", "s@x.test", "r@d.test",
              check=2)
    assert "unknown option --bogus" in p.err, p.err
    assert t.run("mta-remote", "--help", check=0).out.startswith("usage:")


def test_inject_and_sendmail_hold_databytes(t):
    """control/databytes holds at mta-inject (and so at root's sendmail,
    which runs it) as at SMTP: one byte over is refused, nothing queued"""
    t.init()
    with open(t.path("control", "databytes"), "w") as f:
        f.write("1000\n")
    head = "Subject: big\n\n"
    ok = head + "x" * (1000 - len(head) - 1) + "\n"
    assert len(ok) == 1000
    t.run("mta-inject", "-f", "a@b.test", "c@d.test", input=ok, check=0)
    assert len(queued(t)) == 1
    for prog, args in (("mta-inject", ["-f", "a@b.test", "c@d.test"]),
                       ("sendmail", ["-oi", "c@d.test"])):
        p = t.run(prog, *args, input=ok[:-1] + "xx\n")
        line = refused(p, "mta-inject")
        assert "5.3.4" in line and "databytes" in line, line
        assert len(queued(t)) == 1, (prog, queued(t))


def test_inject_size_queues_only_the_whole_message(t):
    """mta-inject --size N (vdeliver gives it for forwards) queues the
    message only when exactly N bytes came: end of input alone cannot
    tell a finished writer from one killed half-way, whose half would
    have been queued and sent on"""
    t.init()
    n = len(MSG.encode())
    p = t.run("mta-inject", "--size", str(n), "-f", "a@b.test", "c@d.test",
              input=MSG)
    assert p.returncode == 0, p.err
    assert len(queued(t)) == 1
    for got in (MSG[:-3], MSG + "more\n"):
        p = t.run("mta-inject", "--size", str(n), "-f", "a@b.test",
                  "c@d.test", input=got)
        assert p.returncode == 111, (p.returncode, p.err)
        assert (f"has {len(got.encode())} bytes, not the {n} --size gave"
                in p.err), p.err
        assert len(queued(t)) == 1, queued(t)
    assert os.listdir(t.path("queue", "tmp")) == []
    p = t.run("mta-inject", "--size", "x", "-f", "a@b.test", "c@d.test",
              input=MSG)
    assert p.returncode == 2 and "--size needs a number" in p.err, p.err


def test_local_part_not_utf8_refused_at_every_entry(t):
    """A local part that is not well-formed UTF-8 (a Latin-1 \\xe9) is
    refused by mta-inject and sendmail (queue_qualify, exit 100) as
    mta-smtpd refuses it (501): nothing is queued, where the drop/ pickup
    used to quarantine what sendmail had taken"""
    t.init()
    latin1 = os.fsdecode(b"\xe9@x.test")     # the byte itself in argv
    for prog, args in (("mta-inject", ["-f", "a@b.test"]),
                       ("sendmail", ["-oi"])):
        p = t.run(prog, *args, latin1, input=MSG)
        assert p.returncode == 100, (prog, p.returncode, p.err)
        assert "not well-formed UTF-8" in p.err, p.err
    nothing_queued(t)
    lines, _ = inetd(t, b"EHLO c\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\n"
                     b"RCPT TO:<\xe9@example.test>\r\nQUIT\r\n")
    assert codes(lines)[2:] == ["250", "501", "221"], lines


def test_junk_databytes_is_the_default_and_said_at_every_entry(t):
    """A control/databytes that holds no number is its default at every
    entry, and each says so on stderr (the log for mta-smtpd) in the same
    words (lib/ctl ctl_num_warn): the message is taken, not refused, and
    the fallback is never silent (mta-inject, sendmail and mta-smtpd said
    nothing before)"""
    t.init()
    with open(t.path("control", "databytes"), "w") as f:
        f.write("10M\n")
    warn = ("warning: control/databytes: Invalid argument; using 10485760 "
            "(write a decimal number there or remove the file)")
    for prog, args in (("mta-inject", ["-f", "a@b.test", "c@d.test"]),
                       ("sendmail", ["-oi", "c@d.test"])):
        before = len(queued(t))
        p = t.run(prog, *args, input=MSG)
        assert p.returncode == 0, (prog, p.err)
        assert warn in p.err, (prog, p.err)
        assert len(queued(t)) == before + 1, prog
    lines, err = inetd(t, b"EHLO c.example\r\nQUIT\r\n")
    assert "250-SIZE 10485760" in lines, lines
    assert warn in err, err
    if can_switch():
        p = user_sendmail(t, "-oi", "c@d.test", input=MSG)
        assert p.returncode == 0, p.err
        assert warn in p.err, p.err
        assert len(drop_names(t)) == 1, drop_names(t)


def test_databytes_cut_is_the_same_at_both_writers(t):
    """The cut of control/databytes is one rule (lib/queue qw_limit) at
    both writers: mta-inject's queue file and an ordinary user's sendmail
    writing drop/ itself. At each, a message of exactly databytes bytes
    (counted with LF line ends: CR LF input too) is taken and one byte more
    is refused with exit 100 and the same 5.3.4 text, nothing written"""
    if not can_switch():
        return
    t.init()
    with open(t.path("control", "databytes"), "w") as f:
        f.write("1000\n")
    # every header sendmail would add is there: it adds nothing
    head = ("From: a@b.test\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
            "Message-ID: <x@y>\nSubject: big\n\n")
    ok = head + "x" * (1000 - len(head) - 1) + "\n"
    assert len(ok) == 1000
    crlf = ok.replace("\n", "\r\n")
    over = ok[:-1] + "x\n"
    want = "5.3.4 the message is larger than control/databytes (1000 bytes)"

    def inject(msg):
        return t.run("mta-inject", "-f", "a@b.test", "c@d.test", input=msg)

    def drop(msg):
        return user_sendmail(t, "-oi", "c@d.test", input=msg)
    for prog, send, count in (("mta-inject", inject, queued),
                              ("sendmail", drop, drop_names)):
        for msg in (ok, crlf):
            before = len(count(t))
            p = send(msg)
            assert p.returncode == 0, (prog, p.err)
            assert len(count(t)) == before + 1, prog
        before = count(t)
        line = refused(send(over), prog)
        assert want in line, (prog, line)
        assert count(t) == before, (prog, count(t))


def test_audit_sizes_refused_and_pickup_goes_on(t):
    """The audit's own figures: sendmail run by a local user with 44,824
    recipients u@[127.a.b.c] is refused before anything reaches drop/, and
    a hand-made drop file of 150,000 recipients is quarantined at once
    while another user's message, dropped after it, is delivered within
    seconds (it had cost 131 s of CPU and stopped the pickup)"""
    if not can_switch():
        return
    setup(t, users=("b",))
    many = [f"u@[127.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}]"
            for i in range(1, 44825)]
    t0 = time.monotonic()
    err = refused(user_sendmail(t, *many, input=MSG), "sendmail")
    refusal = time.monotonic() - t0
    assert "too many recipients" in err, err
    assert drop_names(t) == []
    put(t, "huge", qf_new(f"s@{DOMAIN}",
                          [f"r{i}@x{i}.test" for i in range(150000)],
                          b"Subject: h\n\nx\n"))
    s = Sender(t)
    try:
        s.wait_log(r"queue check done: ")
        t1 = time.monotonic()
        assert user_sendmail(t, f"b@{DOMAIN}", input=MSG).returncode == 0
        wait_files(t, "b", 1, timeout=10)
        took = time.monotonic() - t1
        s.wait_log(r"quarantine \S+/drop/huge: from uid \d+: "
                   r"more recipients than the limit")
    finally:
        s.stop()
    print(f"figure: another user's message delivered {took:.2f} s after "
          f"sendmail, beside a drop file of 150,000 recipients "
          f"(44,824 refused by sendmail in {refusal:.2f} s)")
    assert queued(t) == []
