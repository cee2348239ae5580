"""vpoptree - a vpopmail tree built from vpopmail's documented layout, for
`vadmin import-vpopmail` (tests/integration/test_import_vpopmail.py) and
its bench (bench/vpop_import.py).

What vpopmail writes (its vcdb.c, vpopmail.c, vdelivermail.c, vpalias.c):

  HOME/domains/D/vpasswd          NAME:CRYPTED:UID:GID:GECOS:DIR:QUOTA[:CLEAR]
  HOME/domains/D/.qmail-default   | HOME/bin/vdelivermail '' bounce-no-mailbox
  HOME/domains/D/.qmail-a:b       the alias a.b (':' stands for '.')
  HOME/domains/D/USER/Maildir/    or HOME/domains/D/0/USER when hashed
  HOME/domains/0/D/               a hashed domain directory
  /var/qmail/users/assign         +D-:REAL:UID:GID:DIR:-::

DIR fields and paths in .qmail files are absolute paths of the OLD server
(OLD_HOME), not of the directory the tree is built in: the import must
translate them, as it would for a tree copied to another machine.
"""
import os
import shutil
import subprocess
import warnings

OLD_HOME = "/home/vpopmail"

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import crypt as _crypt  # Python < 3.13
except ImportError:
    _crypt = None


def crypt_hash(pw, prefix, salt):
    """A crypt(3) hash made outside Facteur: prefix '$1$', '$6$' or '' (DES)."""
    if _crypt is not None:
        return _crypt.crypt(pw, prefix + salt)
    flag = {"$1$": "-1", "$6$": "-6", "": "-crypt"}[prefix]
    return subprocess.run(["openssl", "passwd", flag, "-salt", salt, pw],
                          capture_output=True, text=True,
                          check=True).stdout.strip()


def message(n, to="someone"):
    return (f"From: sender{n}@remote.example\r\nTo: {to}\r\n"
            f"Subject: old message {n}\r\nMessage-ID: <old{n}@vpop>\r\n"
            f"\r\nthe body of old message {n}\r\n").encode()


class Tree:
    """A vpopmail HOME under `top`; domains and users are added in the
    order vpopmail's files list them."""

    def __init__(self, top):
        self.top = top
        self.home = os.path.join(top, "vpopmail")
        os.makedirs(os.path.join(self.home, "domains"), exist_ok=True)
        self.assign = []
        self.valias = []
        self.n = 0

    def domain(self, name, bucket=None, catchall="bounce-no-mailbox",
               real=None):
        """A domain directory, its .qmail-default and its assign line."""
        rel = os.path.join("domains", bucket, name) if bucket else \
            os.path.join("domains", name)
        path = os.path.join(self.home, rel)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "vpasswd"), "a"):
            pass
        with open(os.path.join(path, ".dir-control"), "w") as f:
            f.write("0\n")
        self.write(path, ".qmail-default",
                   f"| {OLD_HOME}/bin/vdelivermail '' {catchall}\n")
        self.assign.append(f"+{name}-:{name}:89:89:{OLD_HOME}/{rel}:-::")
        return rel

    def alias_domain(self, alias, real, real_rel, old_style=False):
        """vaddaliasdomain's assign line (older vpopmail wrote the alias's
        own name in the REAL field, the real domain's DIR)."""
        field = alias if old_style else real
        self.assign.append(f"+{alias}-:{field}:89:89:{OLD_HOME}/{real_rel}:-::")

    def write(self, path, name, text, mode=0o600):
        p = os.path.join(path, name)
        with open(p, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        os.chmod(p, mode)
        return p

    def user(self, rel, name, crypted, clear=None, gid=0, quota="NOQUOTA",
             sub=None, msgs=(), cur=(), dirfield=None, gecos=None,
             maildirsize=None, make_dir=True):
        """A vpasswd line and, unless told not to, USER/Maildir with
        messages in new/ and cur/; returns the user's directory."""
        udir_rel = os.path.join(sub, name) if sub else name
        if dirfield is None:
            dirfield = f"{OLD_HOME}/{rel}/{udir_rel}"
        fields = [name, crypted, "1", str(gid), gecos or name, dirfield,
                  quota]
        if clear is not None:
            fields.append(clear)
        with open(os.path.join(self.home, rel, "vpasswd"), "a") as f:
            f.write(":".join(fields) + "\n")
        udir = os.path.join(self.home, rel, udir_rel)
        if not make_dir:
            return udir
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(udir, "Maildir", d), exist_ok=True)
        for body in msgs:
            self.n += 1
            self.write(os.path.join(udir, "Maildir", "new"),
                       f"1700000000.{self.n}.oldhost,S={len(body)}", body)
        for body in cur:
            self.n += 1
            self.write(os.path.join(udir, "Maildir", "cur"),
                       f"1700000000.{self.n}.oldhost,S={len(body)}:2,S",
                       body)
        if maildirsize is not None:
            self.write(os.path.join(udir, "Maildir"), "maildirsize",
                       maildirsize)
        return udir

    def vpasswd_line(self, rel, line):
        with open(os.path.join(self.home, rel, "vpasswd"), "a") as f:
            f.write(line + "\n")

    def qmail(self, rel, name, text):
        """A .qmail-NAME in the domain directory ('.' written ':')."""
        self.write(os.path.join(self.home, rel),
                   ".qmail-" + name.replace(".", ":"), text, 0o644)

    def finish(self):
        """users/assign and the valias export, outside the tree (where
        qmail keeps assign); returns their paths."""
        assign = os.path.join(self.top, "assign")
        with open(assign, "w") as f:
            f.write("\n".join(self.assign + ["."]) + "\n")
        valias = os.path.join(self.top, "valias.txt")
        with open(valias, "w") as f:
            f.write("".join(line + "\n" for line in self.valias))
        return assign, valias

    def give(self, uid, gid, except_rel=()):
        """Hand the tree to the mail user (as an admin would before the
        import), except the domains in except_rel, which stay another
        user's but readable: their files are copied, not linked."""
        skip = [os.path.join(self.home, r) for r in except_rel]
        for dirpath, dirnames, filenames in os.walk(self.home):
            if any(dirpath == s or dirpath.startswith(s + os.sep)
                   for s in skip):
                os.chmod(dirpath, 0o755)
                for n in filenames:
                    os.chmod(os.path.join(dirpath, n), 0o644)
                continue
            os.lchown(dirpath, uid, gid)
            for n in filenames:
                os.lchown(os.path.join(dirpath, n), uid, gid)
        for p in (self.top,):
            os.chmod(p, 0o755)

    def snapshot(self):
        """{path: bytes or link target} of the whole tree, to prove the
        import changed nothing in it."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.home):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                rel = os.path.relpath(p, self.home)
                if os.path.islink(p):
                    out[rel] = "-> " + os.readlink(p)
                elif os.path.isfile(p):
                    with open(p, "rb") as f:
                        out[rel] = f.read()
                else:
                    out[rel] = "dir"
        return out

    def remove(self):
        shutil.rmtree(self.top, ignore_errors=True)
