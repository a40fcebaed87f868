"""A station process for the line's fault tests and load benchmark.

    python tests/_pg_station.py DSN STATION RUN N RATE WAIT_S

Records N verdicts at RATE per second through a Recorder (the app's and
predict's path: the server, or the durable spool while it cannot be reached)
and prints ``<uid>\\t<image_ref>\\t<latency ms>\\t<server|spooled>`` for each verdict once
``record`` returned (a printed verdict is a recorded one); then waits up to
WAIT_S seconds for the spool to be written and prints ``done pending=<n>``.
``image_ref`` is ``STATION/RUN/i``: unique per verdict, so a duplicate in the
database is a verdict recorded twice whatever its uid.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    dsn, station, run, n, rate, wait_s = argv[0], argv[1], argv[2], int(argv[3]), float(argv[4]), float(argv[5])
    from inspection_core.history import Recorder
    from inspection_core.history.targets import new_uid

    rec = Recorder(path=dsn, retry_s=0.3, busy_timeout_s=2.0)
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        if (pause := due - time.monotonic()) > 0:
            time.sleep(pause)
        start = time.perf_counter()
        ref = f"{station}/{run}/{i}"
        verdict = "FAIL" if i % 7 == 0 else "PASS"
        uid = new_uid()
        done = rec.record(uid=uid, score=0.9 if verdict == "FAIL" else 0.1, verdict=verdict, threshold_high=0.5, station=station,
                   image_ref=ref, bundle="washers", bundle_id="b1", source="line")
        ms = (time.perf_counter() - start) * 1000
        print(f"{uid}\t{ref}\t{ms:.3f}\t{'spooled' if done.spooled else 'server'}", flush=True)
    rec.flush_until(wait_s)
    rec.close()
    print(f"done pending={rec.pending}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
