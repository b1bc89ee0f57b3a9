"""`make bench`: deploy speed on a real staging host, beside a hand-written baseline."""
