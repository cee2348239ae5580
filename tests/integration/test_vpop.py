"""Integration tests of the vpopmail-named links to vadmin (vadddomain,
vadduser, ...): vpopmail's arguments, Facteur's exit codes, messages that
start with the link's own name (SPEC.md "Programs")."""
import json
import os

from vadmin_util import (D, add_domain, add_user, assign, check_ok,
                         delivery, err_line, fast_root, hash_is_of,
                         listdomains, listusers, prec, refused,
                         sha512_hash, state, assert_same, urec, userinfo,
                         vadmin)

LINKS = ("vadddomain", "vdeldomain", "vadduser", "vdeluser", "vpasswd",
         "vsetuserquota", "valias", "vuserinfo", "vdominfo",
         "vaddaliasdomain", "vmoduser")


def test_links_exist_and_help(t):
    t.init()
    for name in LINKS:
        path = t.bin(name)
        assert os.path.islink(path), f"{path} is not a link"
        assert os.readlink(path) in ("vadmin", t.bin("vadmin")), \
            os.readlink(path)
        p = t.run(name, "--help", check=0)
        assert p.out.startswith(f"usage: {name}"), (name, p.out)


def test_links_usage_errors(t):
    fast_root(t)
    add_domain(t)
    before = state(t)
    cases = [("vadddomain", ("-Z", "x.test"), "unknown option -Z"),
             ("vadddomain", (), "missing argument"),
             ("vadddomain", ("a.test", "pw", "more"), "too many"),
             ("vadduser", ("-r", "u@" + D, "pw"), "unknown option -r"),
             ("vadduser", (), "missing argument"),
             ("vadduser", ("-e", sha512_hash("x"), "u@" + D, "pw"),
              "too many"),
             ("vdeluser", (), "missing argument"),
             ("vdeldomain", ("a.test", "b.test"), "too many"),
             ("vpasswd", (), "missing argument"),
             ("vsetuserquota", ("u@" + D,), "missing argument"),
             ("valias", (), "DOMAIN"),
             ("valias", ("-i", "x@y.test"), "-i takes"),
             ("valias", ("-d", "a@" + D, "extra"), "too many"),
             ("vuserinfo", (), "missing argument"),
             ("vdominfo", ("a.test", "b.test"), "too many"),
             ("vaddaliasdomain", (D,), "missing argument"),
             ("vmoduser", ("postmaster@" + D,), "nothing to change"),
             ("vmoduser", ("-z", "postmaster@" + D), "unknown option -z")]
    for prog, args, why in cases:
        p = t.run(prog, *args, check=2)
        err_line(p, prog, why, usage=True)
        assert f"usage: {prog}" in p.err, p.err
    assert_same(before, state(t))


def test_vadddomain(t):
    fast_root(t)
    t.run("vadddomain", "one.test", "Pm-Pw-One", check=0)
    assert "one.test" in listdomains(t)
    assert hash_is_of(prec(t, "postmaster", "one.test")[0], "Pm-Pw-One")
    t.run("vadddomain", "-q", "10M", "Two.Test", "Pm-Pw-Two", check=0)
    info = json.loads(vadmin(t, "dominfo", "two.test", "--json").out)
    assert info["default_quota"] == "10485760S"
    assert urec(t, "postmaster", "two.test")[1] == "10485760"
    t.run("vadddomain", "three.test", input="Pm-Pw-Three\n", check=0)
    assert hash_is_of(prec(t, "postmaster", "three.test")[0], "Pm-Pw-Three")
    assert set(assign(t)) == {"one.test", "two.test", "three.test"}
    refused(t, "one.test", "pw", prog="vadddomain", want="already exists")
    refused(t, "bad/name", "pw", prog="vadddomain", want="invalid domain")
    refused(t, "-q", "huge", "four.test", "pw", prog="vadddomain",
            want="invalid quota")
    refused(t, "four.test", prog="vadddomain", input="",
            want="empty password")
    assert "four.test" not in listdomains(t)
    check_ok(t)


def test_vadduser_vdeluser_vpasswd(t):
    fast_root(t)
    add_domain(t)
    t.run("vadduser", "u1@" + D, "U1-Pw", check=0)
    assert hash_is_of(prec(t, "u1")[0], "U1-Pw")
    t.run("vadduser", "-q", "5M", "u2@" + D, "U2-Pw", check=0)
    assert urec(t, "u2")[1] == "5242880"
    assert userinfo(t, "u2@" + D)["quota"] == "5242880S"
    t.run("vadduser", "-c", "Third User", "u3@" + D, input="U3-Pw\n",
          check=0)
    assert userinfo(t, "u3@" + D)["name"] == "Third User"
    ready = sha512_hash("U4-Pw", "u4salt")
    t.run("vadduser", "-e", ready, "u4@" + D, check=0)
    assert prec(t, "u4")[0] == ready
    refused(t, "u1@" + D, "pw", prog="vadduser", want="already exists")
    refused(t, "x@missing.test", "pw", prog="vadduser",
            want="does not exist")
    t.run("vpasswd", "u1@" + D, "U1-New-Pw", check=0)
    h = prec(t, "u1")[0]
    assert hash_is_of(h, "U1-New-Pw") and not hash_is_of(h, "U1-Pw")
    t.run("vpasswd", "u1@" + D, input="U1-Third-Pw\n", check=0)
    assert hash_is_of(prec(t, "u1")[0], "U1-Third-Pw")
    refused(t, "nobody@" + D, "pw", prog="vpasswd", want="does not exist")
    t.run("vdeluser", "u1@" + D, check=0)
    assert "u1@" + D not in listusers(t)
    assert not os.path.exists(t.path("domains", D, "u1"))
    assert b"u1" not in delivery(t) and prec(t, "u1") is None
    refused(t, "u1@" + D, prog="vdeluser", want="does not exist")
    check_ok(t)


def test_vdeldomain(t):
    fast_root(t)
    add_domain(t)
    add_domain(t, "keep.test")
    add_user(t, "u@" + D)
    t.run("vdeldomain", D, check=0)
    assert listdomains(t) == ["keep.test"]
    assert not os.path.exists(t.path("domains", D))
    assert set(assign(t)) == {"keep.test"}
    refused(t, D, prog="vdeldomain", want="does not exist")
    check_ok(t)


def test_vsetuserquota(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "u@" + D)
    t.run("vsetuserquota", "u@" + D, "20M", check=0)
    assert urec(t, "u")[1] == "20971520"
    with open(t.path("domains", D, "u", "Maildir", "maildirsize")) as f:
        assert f.readline() == "20971520S\n"
    t.run("vsetuserquota", "u@" + D, "NOQUOTA", check=0)
    assert urec(t, "u")[1:3] == ["0", "0"]
    refused(t, "u@" + D, "lots", prog="vsetuserquota",
            want="invalid quota")
    refused(t, "nobody@" + D, "5M", prog="vsetuserquota",
            want="does not exist")


def test_valias(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "box@" + D)
    t.run("valias", "-i", "dest@remote.test", "info@" + D, check=0)
    t.run("valias", "-i", "box", "info@" + D, check=0)
    t.run("valias", "-i", "box@" + D, "sales@" + D, check=0)
    got = sorted(delivery(t)[b"ainfo"].split(b"\0"))
    assert got == [b"box@" + D.encode(), b"dest@remote.test"]
    p = t.run("valias", D, check=0)
    assert p.out.splitlines() == [f"info@{D} -> box@{D}",
                                  f"info@{D} -> dest@remote.test",
                                  f"sales@{D} -> box@{D}"], p.out
    p = t.run("valias", "-s", "sales@" + D, check=0)
    assert p.out == f"sales@{D} -> box@{D}\n"
    t.run("valias", "-d", "info@" + D, check=0)
    assert b"ainfo" not in delivery(t)
    assert t.run("valias", D, check=0).out == f"sales@{D} -> box@{D}\n"
    refused(t, "-d", "info@" + D, prog="valias", want="does not exist")
    refused(t, "info@" + D, prog="valias", want="does not exist")
    refused(t, "missing.test", prog="valias", want="does not exist")
    refused(t, "-i", "x@y.test", "box@" + D, prog="valias",
            want="is a mailbox")
    t.run("valias", "-i", "sales", "back@" + D, check=0)
    refused(t, "-i", "back", "sales@" + D, prog="valias", want="loop")
    assert b"back@" + D.encode() not in delivery(t)[b"asales"]
    check_ok(t)


def test_vuserinfo_vdominfo(t):
    fast_root(t)
    add_domain(t)
    add_domain(t, "other.test")
    add_user(t, "u@" + D, "pw-Secret", "--name", "You")
    p = t.run("vuserinfo", "u@" + D, check=0)
    assert f"address: u@{D}" in p.out.splitlines()
    assert "name: You" in p.out.splitlines()
    refused(t, "nobody@" + D, prog="vuserinfo", want="does not exist")
    p = t.run("vdominfo", D, check=0)
    assert p.out.splitlines()[0] == f"domain: {D}"
    assert "users: 2" in p.out.splitlines()
    p = t.run("vdominfo", check=0)
    assert p.out.count("domain: ") == 2 and "domain: other.test" in p.out
    refused(t, "missing.test", prog="vdominfo", want="does not exist")


def test_vaddaliasdomain_either_order(t):
    fast_root(t)
    add_domain(t, "real.test")
    t.run("vaddaliasdomain", "real.test", "alias1.test", check=0)
    t.run("vaddaliasdomain", "alias2.test", "real.test", check=0)
    a = assign(t)
    for alias in ("alias1.test", "alias2.test"):
        assert a[alias] == ("real.test", "domains/real.test"), a
    assert listdomains(t) == ["alias1.test (alias of real.test)",
                              "alias2.test (alias of real.test)",
                              "real.test"]
    # neither exists, both exist
    refused(t, "x.test", "y.test", prog="vaddaliasdomain",
            want="does not exist")
    refused(t, "real.test", "alias1.test", prog="vaddaliasdomain")
    add_domain(t, "other.test")
    refused(t, "real.test", "other.test", prog="vaddaliasdomain",
            want="already exists")
    refused(t, "real.test", "bad/x", prog="vaddaliasdomain",
            want="invalid domain")
    check_ok(t)


def test_vmoduser(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "u@" + D)

    def flags():
        return int(urec(t, "u")[3]), int(prec(t, "u")[2])

    t.run("vmoduser", "-p", "u@" + D, check=0)
    assert flags() == (1, 1)
    t.run("vmoduser", "-s", "-b", "u@" + D, check=0)
    assert flags() == (7, 7)
    t.run("vmoduser", "-x", "u@" + D, check=0)
    assert flags() == (0, 0)
    t.run("vmoduser", "-x", "-s", "u@" + D, check=0)
    assert flags() == (2, 2)
    t.run("vmoduser", "-q", "1M", "u@" + D, check=0)
    assert urec(t, "u")[1] == "1048576"
    info = userinfo(t, "u@" + D)
    assert (info["pop"], info["smtp"], info["delivery"]) == (True, False,
                                                              True)
    refused(t, "-p", "nobody@" + D, prog="vmoduser", want="does not exist")


def test_link_errors_carry_the_link_name(t):
    fast_root(t)
    p = t.run("vadduser", "u@missing.test", "pw", check=1)
    line = err_line(p, "vadduser", "does not exist")
    assert not line.startswith("vadmin:")
    p = t.run("vdominfo", check=0)
    assert p.out == ""
    # the message about a missing root names the link too
    other = os.path.join(t.tmp, "empty")
    os.mkdir(other)
    p = t.run("vdominfo", "--root", other, root=False, check=111)
    err_line(p, "vdominfo", "not a Facteur root")
