"""A stand-in application for the demo: replays a real access log into access.log and writes
Java-style errors with stack traces into error.log, rotating both while it runs (access.log by
rename + create, error.log by copytruncate), like logrotate would."""

import os
import shutil
import sys
import time

demo, replay = sys.argv[1], sys.argv[2]
access_path, error_path = os.path.join(demo, "access.log"), os.path.join(demo, "error.log")
lines = open(replay, encoding="utf-8", errors="surrogateescape").read().splitlines()

access = open(access_path, "a", encoding="utf-8", errors="surrogateescape")
error = open(error_path, "a")
errors = 0
for i, line in enumerate(lines):
    access.write(line + "\n")
    access.flush()
    if i % 500 == 250:
        errors += 1
        error.write(
            f"2026-11-22 10:{i // 600 % 60:02d}:{i % 60:02d} ERROR request {errors} failed\n"
            "java.lang.IllegalStateException: connection pool exhausted\n"
            "\tat com.example.db.Pool.acquire(Pool.java:88)\n"
            "\tat com.example.api.Handler.handle(Handler.java:42)\n"
        )
        error.flush()
    if i == 4000:  # rename + create, the logrotate default
        access.close()
        os.rename(access_path, access_path + ".1")
        access = open(access_path, "a", encoding="utf-8", errors="surrogateescape")
    if i == 6000:  # copytruncate
        shutil.copy(error_path, error_path + ".1")
        os.truncate(error_path, 0)
    if i % 100 == 0:
        time.sleep(0.03)
print(f"app: wrote {len(lines)} access lines and {errors} errors", file=sys.stderr)
