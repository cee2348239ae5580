"""test_faults - write faults (issue 15): the same runs as test_crash,
with ENOSPC, EDQUOT or EIO returned by the N-th call of each name of
hostile.FAULT_CALLS (write, pwrite64, fsync, fdatasync, rename*, link*,
mkdir*): the program answers a temporary failure (exit 111, SMTP 4xx,
mta-remote's T) or succeeds for real, nothing is lost or partial, and the
next attempt, once the fault is gone, succeeds. `test_*`: every point,
the three errnos in turn; `slow_*`: every point with each errno.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from matrix import make_tests  # noqa: E402

make_tests(globals(), "fault")
