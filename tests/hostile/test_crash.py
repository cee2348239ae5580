"""test_crash - crash points (issue 15): each program is killed
(`strace --inject=CALL:signal=KILL:when=N`) at its N-th call of each
name of hostile.CRASH_CALLS while it accepts a message (mta-inject,
mta-smtpd), delivers one (mta-send with the vdeliver server, vdeliver into
a Maildir and to a forward, mta-remote to an SMTP sink), retrieves and
deletes (pop3d) or changes an account (vadmin adduser, deluser, passwd,
adddomain, dkim add). After every kill: nothing acknowledged is lost,
nothing partial is where readers look, no more copies than the rule
allows, `vadmin check` and `mta-send --check` pass, and the next attempt
succeeds. `test_*`: every 7th N; `slow_*`: every N.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from matrix import make_tests  # noqa: E402

make_tests(globals(), "crash")
