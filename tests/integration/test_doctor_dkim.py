"""test_doctor_dkim - `facteur doctor`'s checks dkim and srs.

dkim: a domain with an RSA and an Ed25519 key made by `vadmin dkim add`,
dnsmasq (helpers.dnsmasq) serving their TXT records, the RSA one in
several strings (helpers.txt_opt): ok; a record missing is a warning
whose fix is `vadmin dkim show`; a record of another key, or no DKIM
record at all, a FAIL; a key file 0644 a FAIL that --fix makes 0600; a
file that is no key, and a key file deleted, FAILs pointing to vadmin
check; a resolver that never answers leaves the
records unchecked (timeout) within the 3 s deadline, doctor within its
10 s. srs: control/srssecret missing is a warning that --fix ends by
making one (0600, the mail user's, a line lib/srs takes); 0644 a FAIL
that --fix makes 0600; empty, a warning. The --json fields agree with
the text.
"""
import json
import os
import re
import stat
import time

from helpers import dnsmasq, mute_resolver, txt_opt
from vadmin_util import mailuser

ME = "mail.example.test"
D = "signer.test"
OTHER = "other.test"


def doctor(ctx, *args, check=None):
    """(the {check: line} of the text report, the "fixed" lines)"""
    p = ctx.run("facteur", "doctor", *args, check=check)
    out = p.out.splitlines()
    return ({re.match(r"\S+ ([\w-]+)", l).group(1): l for l in out
             if not l.startswith("fixed ")},
            [l for l in out if l.startswith("fixed ")])


def js(ctx, *args):
    p = ctx.run("facteur", "doctor", "--json", *args)
    return {o["check"]: o for o in json.loads(p.out)}


def add_key(ctx, domain, sel, kind):
    """vadmin dkim add: (record name, TXT text)"""
    p = ctx.run("vadmin", "dkim", "add", domain, "--selector", sel,
                "--type", kind, "--json", check=0)
    (k,) = json.loads(p.out)
    return k["name"], k["txt"]


def setup(ctx):
    """a root with D's two keys; {name: txt} of their records"""
    ctx.init("--hostname", ME)
    ctx.run("vadmin", "adddomain", D, "postmaster-pw-1", check=0)
    return dict([add_key(ctx, D, "r", "rsa"), add_key(ctx, D, "e", "ed25519")])


def served(recs):
    return [f"--local=/test/"] + [txt_opt(n, v) for n, v in recs.items()]


def key_path(ctx, sel):
    return ctx.path("control", "dkim", D, sel + ".pem")


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_doctor_dkim_records(ctx):
    """published and matching: ok; one missing: warn; another key: FAIL"""
    recs = setup(ctx)
    rsa = f"r._domainkey.{D}"
    ed = f"e._domainkey.{D}"
    assert len(recs[rsa]) > 255     # served in several strings
    with dnsmasq(ctx, *served(recs)):
        assert doctor(ctx)[0]["dkim"] == "ok dkim"
    with dnsmasq(ctx, *served({rsa: recs[rsa]})):
        line = doctor(ctx)[0]["dkim"]
        assert line == (f"warn dkim: {ed} has no TXT record, so receivers "
                        f"cannot verify {D}'s signatures; publish the "
                        f"record `vadmin dkim show {D}` prints"), line
    ctx.run("vadmin", "adddomain", OTHER, "postmaster-pw-1", check=0)
    name, txt = add_key(ctx, OTHER, "e", "ed25519")
    # D's ed25519 record holds OTHER's key
    with dnsmasq(ctx, *served({rsa: recs[rsa], ed: txt, name: txt})):
        got, _ = doctor(ctx, check=1)
        assert got["dkim"] == (
            f"FAIL dkim: {ed} publishes another key than selector e's, so "
            f"every signature of {D} with it fails; publish the record "
            f"`vadmin dkim show {D}` prints"), got["dkim"]
        o = js(ctx)["dkim"]
        assert o["status"] == "FAIL", o
        assert o["message"] == (f"{ed} publishes another key than selector "
                                f"e's, so every signature of {D} with it "
                                "fails"), o
        assert o["fix"] == f"publish the record `vadmin dkim show {D}` " \
            "prints", o
        assert o["fixed"] == [], o
    # a TXT record that is no DKIM key at all
    with dnsmasq(ctx, *served({rsa: "v=spf1 -all", ed: recs[ed],
                               name: txt})):
        line = doctor(ctx, check=1)[0]["dkim"]
        assert line == (
            f"FAIL dkim: {rsa} is not a DKIM key record (malformed key "
            f"record), so every signature of {D} fails; publish the record "
            f"`vadmin dkim show {D}` prints"), line


def test_doctor_dkim_key_files(ctx):
    """a key file 0644: FAIL, --fix makes it 0600; deleted: FAIL"""
    recs = setup(ctx)
    path = key_path(ctx, "r")
    with dnsmasq(ctx, *served(recs)):
        os.chmod(path, 0o644)
        got, _ = doctor(ctx, check=1)
        assert got["dkim"] == (
            f"FAIL dkim: the key of {D} (selector r), {path}, is mode 0644: "
            "its private half is not the mail user's alone; run chmod 600 "
            f"{path}"), got["dkim"]
        o = js(ctx, "--fix")["dkim"]
        assert o["status"] == "ok", o
        assert o["fixed"] == [f"chmod 600 {ctx.root}/control/dkim/{D}/r.pem "
                              "(was 0644)"], o
        assert mode(path) == 0o600
        assert doctor(ctx)[0]["dkim"] == "ok dkim"
        # a file the signer's loader refuses
        with open(path, "w") as f:
            f.write("not a key\n")
        line = doctor(ctx, check=1)[0]["dkim"]
        assert line == (
            f"FAIL dkim: {path} (selector r of {D}) cannot be loaded as an "
            "rsa key: not a key of that type, so that domain's mail cannot "
            f"be signed; run vadmin check, then vadmin dkim rotate {D}"), line
        os.unlink(path)
        got, _ = doctor(ctx, check=1)
        assert got["dkim"].startswith(
            f"FAIL dkim: the key file of {D} selector r, {path}: No such "
            f"file or directory, so that domain's mail cannot be signed; "
            f"run vadmin check, then vadmin dkim rotate {D}"), got["dkim"]
        # the records are still checked: only the file is wrong
        assert "TXT" not in got["dkim"], got["dkim"]


def test_doctor_dkim_silent_resolver(ctx):
    """a resolver that never answers: unchecked (timeout) by the 3 s
    deadline, and the whole of doctor within its 10 s"""
    setup(ctx)
    with mute_resolver(ctx):
        t0 = time.monotonic()
        got, _ = doctor(ctx)
        took = time.monotonic() - t0
    assert got["dkim"] == ("warn dkim: 2 DKIM records unchecked (timeout): "
                           "no DNS answer within 3 s; check "
                           "control/resolvers, or run doctor again"), got
    # mx and dkim wait side by side, not one after the other
    assert took < 6, took


def test_doctor_srs(ctx):
    """srssecret missing: warn, --fix makes one; 0644: FAIL, --fix"""
    ctx.init("--hostname", ME)
    path = ctx.path("control", "srssecret")
    assert doctor(ctx)[0]["srs"] == "ok srs"
    os.unlink(path)
    got, _ = doctor(ctx)
    assert got["srs"] == (
        f"warn srs: {path} is missing: forwards keep their sender (no SRS) "
        "and SRS bounces are refused; run facteur doctor --fix, or as the "
        f"mail user: umask 077; head -c 32 /dev/urandom | base64 > {path}"
    ), got["srs"]
    assert "srssecret" not in got["control"], got["control"]
    o = js(ctx)["srs"]
    assert o["status"] == "warn" and o["fix"].startswith(
        "run facteur doctor --fix"), o
    got, fixed = doctor(ctx, "--fix")
    assert fixed == [f"fixed srs: made {path} (mode 0600)"], fixed
    assert got["srs"] == "ok srs", got
    assert mode(path) == 0o600
    if os.geteuid() == 0:
        assert os.lstat(path).st_uid == mailuser(ctx).pw_uid
    with open(path) as f:
        assert re.fullmatch(r"[A-Za-z0-9+/]{43}=\n", f.read())
    os.chmod(path, 0o644)
    got, _ = doctor(ctx, check=1)
    assert got["srs"] == (f"FAIL srs: {path} is mode 0644: others can read "
                          "the key and forge SRS bounces; run chmod 600 "
                          f"{path}"), got["srs"]
    o = js(ctx, "--fix")["srs"]
    assert o["status"] == "ok" and o["fixed"] == [
        f"chmod 600 {ctx.root}/control/srssecret (was 0644)"], o
    assert mode(path) == 0o600
    # a file without a line: lib/srs finds no secret
    with open(path, "w"):
        pass
    got, _ = doctor(ctx)
    assert got["srs"] == ("warn srs: control/srssecret holds no line, so "
                          "forwards keep their sender; remove it and run "
                          "facteur doctor --fix"), got["srs"]
