"""test_soak - the soak of issue 15 (soak.py), short: three minutes of
mixed SMTP, submission, sendmail, remote and POP3 load on `facteur run`
while processes are killed and writes fail; every accepted message is
found whole (delivered, bounced or queued), duplicates at most one per
kill or fault, RSS flat and no descriptor left behind. `make soak` runs
the hour."""
import json
import os
import sys

import helpers  # noqa: F401 (the runner gives t)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from soak import soak  # noqa: E402


def slow_soak_3min(t):
    fig, broken = soak(t, 180, kill_every=6.0, fault_every=30.0, seed=3)
    print(json.dumps(fig, default=str))
    assert not broken, (broken, fig)
    assert fig["kill count"] >= 10, fig
    assert fig["accepted"] >= 1000, fig
