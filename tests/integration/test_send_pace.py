"""test_send_pace - delivery keeps pace with accept (issue 17,
docs/queue.md "Picking up"): while deliveries run, mta-send takes new/
a slice at a time and fills the slots freed in between, so a flood of
new mail does not hold every local slot empty until it has all been
read in."""
import re

from helpers import MX, Sender
from test_send import DOMAIN, maildir, setup, wait_files
from test_send_fair import plant, tarpit_routes

FLOOD = 200         # messages put into new/ at once
SLICE = 64          # the most taken a turn while deliveries run


def test_flood_pickup_interleaves_with_deliveries(t):
    setup(t, users=("bob",))
    mx = MX("127.0.0.2", mode="silent")
    tarpit_routes(t, mx)
    s = Sender(t)
    try:
        s.wait_log(r"queue check done: ")
        # one remote delivery held by the tarpit: deliveries are running
        plant(t, ["u@dead.test"])
        with open(t.path("queue", "trigger"), "wb", buffering=0) as f:
            f.write(b"x")
        s.wait_log(r"starting delivery \d+: msg \S+ to remote ")
        for _ in range(FLOOD):
            plant(t, [f"bob@{DOMAIN}"])
        with open(t.path("queue", "trigger"), "wb", buffering=0) as f:
            f.write(b"x")
        wait_files(t, "bob", FLOOD, timeout=60)
        s.wait_log(r"delivery \d+: success", count=FLOOD, timeout=30)
        log = s.log()
        events = re.findall(r"(new msg|starting delivery \d+: msg \S+ to "
                            r"local)", log)
        first_local = events.index(next(e for e in events
                                        if e.startswith("starting")))
        picked = events[:first_local].count("new msg")
        # the remote one, then at most one slice before the first local
        # delivery starts; the whole flood at once was the old way
        assert picked <= 1 + SLICE, (picked, log[-3000:])
        assert events.count("new msg") == FLOOD + 1, log[-3000:]
        assert len(maildir(t, "bob")) == FLOOD
    finally:
        mx.close()
        s.stop()
