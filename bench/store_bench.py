"""MSAL Python's side of store-bench: the same web-request-shaped workload on the same Redis.

  store_bench.py PORT PARTITIONS SECONDS THREADS REFRESH_EVERY [RATE]

Each request loads one user's cache from Redis (a SerializableTokenCache per user, the way MSAL
Python web samples keep it), finds the access token as a silent call does, and one request in
REFRESH_EVERY (at random) records a new token response and writes the cache back. With RATE,
requests are paced to that many per second in total. Prints counts, latencies and CPU time as
JSON: the time and CPU seconds taken, and each request's start and latency in microseconds.
"""
import json
import os
import random
import sys
import threading
import time

import msal
import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from msal_python_bench import CID, ENV, UTID, uid, user_event  # noqa: E402

port, partitions, seconds, threads, refresh_every = (int(a) for a in sys.argv[1:6])
rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
pool = redis.ConnectionPool(host="127.0.0.1", port=port, max_connections=threads + 4)
AT = msal.TokenCache.CredentialType.ACCESS_TOKEN


def key(i):
    return "tokencache:p:%s.%s" % (uid(i), UTID)


def worker(n, timeline, start, deadline, interval):
    r = redis.Redis(connection_pool=pool)
    rng = random.Random(n)
    next_at = time.perf_counter() + (interval * n / threads if interval else 0.0)
    while True:
        if interval:
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        t0 = time.perf_counter()
        if t0 > deadline:
            break
        i = rng.randrange(partitions)
        doc = r.hget(key(i), "d")
        cache = msal.SerializableTokenCache()
        cache.deserialize(doc.decode())
        query = {"client_id": CID, "environment": ENV, "realm": "organizations",
                 "home_account_id": "%s.%s" % (uid(i), UTID)}
        found = next(iter(cache.search(AT, target=["User.Read"], query=query)), None)
        assert found, "no access token for user %d" % i
        if rng.randrange(refresh_every) == 0:  # one request in refresh_every, at random
            cache.add(user_event(i, 1500, 800))
            r.hset(key(i), "d", cache.serialize())
        timeline.append((round((t0 - start) * 1e6), round((time.perf_counter() - t0) * 1e6)))


timelines = [[] for _ in range(threads)]
interval = threads / rate if rate else 0.0
cpu0 = time.process_time()
start = time.perf_counter()
deadline = start + seconds
ts = [threading.Thread(target=worker, args=(n, timelines[n], start, deadline, interval))
      for n in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
elapsed = time.perf_counter() - start
cpu = time.process_time() - cpu0
print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu,
                  "timeline": sorted(x for tl in timelines for x in tl)}))
