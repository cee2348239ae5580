"""test_sendmail - the sendmail interface over mta-inject."""
import os
import pwd

from helpers import queued, read_queue_file


def one(t):
    (f,) = queued(t)
    recs, body = read_queue_file(f)
    return dict((k, v) for k, v in recs if k != "R"), \
        [v.decode() for k, v in recs if k == "R"], body.decode()


def setup(t):
    t.init()
    with open(t.path("control", "me"), "w") as f:
        f.write("mx.example.test\n")


def test_t_reads_to_cc_bcc_and_drops_bcc(t):
    setup(t)
    msg = ('To: Bob <bob@b.test>, "Smith, J" <js@c.test>\n'
           'Cc: team: x@d.test,\n y@e.test;\n'
           'Bcc: hidden@f.test\nSubject: hi\n\nbody\n')
    t.run("sendmail", "-t", "-oi", "extra@g.test", input=msg, check=0)
    env, rcpts, body = one(t)
    assert sorted(rcpts) == sorted(["extra@g.test", "bob@b.test",
                                    "js@c.test", "x@d.test", "y@e.test",
                                    "hidden@f.test"]), rcpts
    assert "hidden@f.test" not in body and "Bcc:" not in body
    assert "\nSubject: hi\n" in body and body.endswith("\n\nbody\n")


def test_default_sender_and_added_headers(t):
    setup(t)
    t.run("sendmail", "-F", "Cron Daemon", "bob@b.test",
          input="Subject: x\n\nhello\n", check=0)
    env, rcpts, body = one(t)
    user = pwd.getpwuid(os.getuid()).pw_name
    assert env["F"].decode() == f"{user}@mx.example.test"
    assert f'From: "Cron Daemon" <{user}@mx.example.test>\n' in body
    assert "\nDate: " in body and "\nMessage-ID: <" in body
    assert rcpts == ["bob@b.test"]


def test_existing_headers_kept_and_f_sets_sender(t):
    setup(t)
    msg = ("From: App <app@site.test>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
           "Message-ID: <x@y>\n\nbody\n")
    t.run("sendmail", "-f", "bounces@site.test", "bob@b.test", input=msg,
          check=0)
    env, _, body = one(t)
    assert env["F"] == b"bounces@site.test"
    assert body.count("From: ") == 1 and body.count("Date: ") == 1
    assert body.count("Message-ID: ") == 1


def test_dot_line_ends_message_unless_i(t):
    setup(t)
    t.run("sendmail", "a@b.test", input="Subject: a\n\none\n.\ntwo\n",
          check=0)
    _, _, body = one(t)
    assert body.endswith("\n\none\n") and "two" not in body
    os.unlink(queued(t)[0])
    for flag in ("-i", "-oi"):
        t.run("sendmail", flag, "a@b.test", input="Subject: a\n\none\n.\ntwo\n",
              check=0)
        _, _, body = one(t)
        assert body.endswith("\n\none\n.\ntwo\n"), body
        os.unlink(queued(t)[0])


def test_habitual_flags_accepted(t):
    setup(t)
    t.run("sendmail", "-odi", "-oem", "-oee", "-om", "-v", "-B", "8BITMIME",
          "-odb", "a@b.test", input="x: y\n\nz\n", check=0)
    assert len(queued(t)) == 1


def test_refusals(t):
    setup(t)
    p = t.run("sendmail", "-X", "a@b.test", input="x\n")
    assert p.returncode == 2 and p.err.startswith("sendmail: unknown option")
    p = t.run("sendmail", input="Subject: x\n\nbody\n")
    assert p.returncode == 100 and "no recipients" in p.err
    p = t.run("sendmail", "-t", input="Subject: x\n\nbody\n")
    assert p.returncode == 100
    p = t.run("sendmail", "a@b.test", input="X-Long: " + "y" * 1200 + "\n\nb\n")
    assert p.returncode == 100 and "998" in p.err
    p = t.run("sendmail", "bad address@b.test", input="x: y\n\nz\n")
    assert p.returncode == 100, p.err
    assert queued(t) == []
    assert t.run("sendmail", "--help", check=0).out.startswith("usage:")


def test_long_body_lines_kept_whole(t):
    setup(t)
    line = "z" * 200000 + "\n"
    t.run("sendmail", "-i", "a@b.test", input="S: x\n\n" + line + ".\n",
          check=0)
    _, _, body = one(t)
    assert body.endswith("\n\n" + line + ".\n")


def test_bs_speaks_smtp_through_mta_smtpd(t):
    setup(t)
    talk = ("EHLO client\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@remote.test>\r\n"
            "DATA\r\nSubject: t\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    p = t.run("sendmail", "-bs", input=talk, check=0)
    assert p.out.startswith("220 mx.example.test ESMTP"), p.out
    assert "\r\n250 2.0.0 ok " in p.out and p.out.endswith("\r\n"), p.out
    env, rcpts, body = one(t)
    assert env["F"] == b"a@b.test" and rcpts == ["c@remote.test"]
    assert body.endswith("Subject: t\n\nhi\n")


def deep_dir(t, length):
    """A directory of nested 200-byte names whose path is LENGTH bytes"""
    d = t.tmp
    while len(d) + 1 + 200 <= length:
        d = os.path.join(d, "d" * 200)
    d = os.path.join(d, "e" * (length - len(d) - 1))
    assert len(d) == length
    os.makedirs(d)
    os.chmod(t.tmp, 0o755)
    return d


def test_found_beside_a_long_path(t):
    """sendmail finds mta-inject and mta-smtpd beside it whatever the
    length of its path (lib/args.c args_sibling): at 4089 bytes, more than
    the 4076 its own fixed buffer once held, -bs ran a cut name"""
    import shutil
    import subprocess
    setup(t)
    d = deep_dir(t, 4080)
    for prog in ("sendmail", "mta-inject", "mta-smtpd"):
        shutil.copy2(t.bin(prog), os.path.join(d, prog))
    e = dict(os.environ)
    e.pop("FACTEUR_ROOT", None)

    def run(*args, input):
        return subprocess.run(["./sendmail", "--root", t.root, *args],
                              cwd=d, input=input.encode(), env=e,
                              capture_output=True, timeout=120)
    p = run("-oi", "bob@b.test", input="Subject: long\n\nhi\n")
    assert p.returncode == 0, p.stderr
    _, rcpts, body = one(t)
    assert rcpts == ["bob@b.test"] and body.endswith("\n\nhi\n")
    os.unlink(queued(t)[0])
    p = run("-bs", input="EHLO client\r\nMAIL FROM:<a@b.test>\r\n"
            "RCPT TO:<c@remote.test>\r\nDATA\r\nSubject: t\r\n\r\nhi\r\n"
            ".\r\nQUIT\r\n")
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, p.stderr
    assert out.startswith("220 mx.example.test ESMTP"), (out, p.stderr)
    _, rcpts, _ = one(t)
    assert rcpts == ["c@remote.test"]
