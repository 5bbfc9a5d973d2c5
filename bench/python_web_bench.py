"""Per-request silent acquisition in a Python web app, two ways, on one Redis, in one run.

  .venv/bin/python bench/python_web_bench.py [--users 100000] [--seconds 10] [--threads 8]
      [--writers 8] [--writes 50]

The recipe the seed page describes: a `msal.SerializableTokenCache` per user, loaded from Redis
with redis-py before each request and saved back when it changed. Against it,
`tokencache.Store(redis://…).token_cache(home_account_id)`. Each request is what a web app's
API page does: `app.acquire_token_silent(["User.Read"], account)` for a random signed-in user,
the MSAL application (`ConfidentialClientApplication`) reused per thread with that request's
cache. Reported: requests per CPU second of this process, p50 and p99 latency. Then the lost
update test: W threads each record K token responses (distinct scopes) for one user at once;
the recipe loads, adds and saves; tokencache saves with compare-and-set. Counted: the access
tokens present at the end, of W x K.

Starts its own redis-server on a free port. Needs .venv with msal, redis and the tokencache
wheel (bash .ci/setup-python-package).
"""

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

import msal
import redis

import tokencache

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_package_bench import AUTHORITY, CLIENT, DiscoveryOnly, event  # noqa: E402

SCOPES = ["User.Read"]


def start_redis():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory = tempfile.mkdtemp()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--protected-mode", "no", "--dir", directory],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def account(i):
    return {"home_account_id": "u%d.tid" % i, "environment": "login.microsoftonline.com",
            "username": "u%d@contoso.com" % i, "realm": "contoso.onmicrosoft.com",
            "local_account_id": "u%d" % i, "authority_type": "MSSTS"}


def app_for(cache):
    return msal.ConfidentialClientApplication(CLIENT, client_credential="secret", authority=AUTHORITY,
                                              token_cache=cache, http_client=DiscoveryOnly(),
                                              instance_discovery=False)


def fill(users, r, store, threads=8):
    """Every user signed in, in both representations."""
    now = int(time.time())

    def part(lo, hi):
        pipe = r.pipeline(transaction=False)
        for i in range(lo, hi):
            cache = msal.SerializableTokenCache()
            cache.add(event(i), now=now)
            pipe.set("recipe:u%d.tid" % i, cache.serialize())
            store.token_cache().add(event(i), now=now)
            if i % 500 == 0:
                pipe.execute()
        pipe.execute()

    step = (users + threads - 1) // threads
    ts = [threading.Thread(target=part, args=(lo, min(users, lo + step))) for lo in range(0, users, step)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def recipe_request(r, app, i):
    cache = msal.SerializableTokenCache()
    cache.deserialize(r.get("recipe:u%d.tid" % i).decode())
    app.token_cache = cache
    result = app.acquire_token_silent(SCOPES, account(i))
    if cache.has_state_changed:
        r.set("recipe:u%d.tid" % i, cache.serialize())
    return result


def tokencache_request(store, app, i):
    app.token_cache = store.token_cache("u%d.tid" % i)
    return app.acquire_token_silent(SCOPES, account(i))


def run(kind, users, seconds, threads, r, store):
    latencies = [[] for _ in range(threads)]
    deadline = time.perf_counter() + seconds

    def worker(n):
        rng = random.Random(n)
        app = app_for(msal.SerializableTokenCache())
        mine = latencies[n]
        while True:
            t0 = time.perf_counter()
            if t0 > deadline:
                return
            i = rng.randrange(users)
            result = recipe_request(r, app, i) if kind == "recipe" else tokencache_request(store, app, i)
            assert result and result.get("token_source") == "cache", result
            mine.append(time.perf_counter() - t0)

    cpu0 = time.process_time()
    ts = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    cpu = time.process_time() - cpu0
    all_latencies = sorted(x for l in latencies for x in l)
    pct = lambda p: all_latencies[min(len(all_latencies) - 1, int(len(all_latencies) * p))] * 1e3
    return len(all_latencies) / cpu, pct(0.50), pct(0.99), len(all_latencies)


def lost_updates(kind, writers, writes, r, store):
    hot = 10_000_000  # a user of its own
    home = "u%d.tid" % hot
    r.delete("recipe:" + home)
    store.remove_user(home)
    start = threading.Barrier(writers)

    def writer(w):
        start.wait()
        for k in range(writes):
            e = event(hot)
            e["scope"] = ["scope-%d-%d" % (w, k)]
            e["response"] = dict(e["response"], scope="scope-%d-%d" % (w, k))
            if kind == "recipe":
                cache = msal.SerializableTokenCache()
                doc = r.get("recipe:" + home)
                cache.deserialize(doc.decode() if doc else None)
                cache.add(e)
                r.set("recipe:" + home, cache.serialize())
            else:
                store.token_cache().add(e)

    ts = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if kind == "recipe":
        cache = msal.SerializableTokenCache()
        cache.deserialize(r.get("recipe:" + home).decode())
    else:
        cache = store.token_cache(home)
    return len(list(cache.search("AccessToken", query={"home_account_id": home})))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--writes", type=int, default=50)
    args = parser.parse_args()
    proc, port = start_redis()
    try:
        r = redis.Redis(host="127.0.0.1", port=port, max_connections=args.threads + 8)
        store = tokencache.Store("redis://127.0.0.1:%d/0" % port)
        t0 = time.perf_counter()
        fill(args.users, r, store)
        print("%d users signed in, both ways, in %.0f s" % (args.users, time.perf_counter() - t0))
        results = {}
        for kind in ("recipe", "tokencache"):
            run(kind, args.users, min(1.0, args.seconds), args.threads, r, store)  # warm-up
            results[kind] = run(kind, args.users, args.seconds, args.threads, r, store)
        lost = {kind: lost_updates(kind, args.writers, args.writes, r, store)
                for kind in ("recipe", "tokencache")}
    finally:
        proc.terminate()
    (rr, r50, r99, rn), (tr, t50, t99, tn) = results["recipe"], results["tokencache"]
    total = args.writers * args.writes
    print("MSAL Python %s, %d users on Redis, %d threads, %.0f s each" % (
        msal.__version__, args.users, args.threads, args.seconds))
    print("  %-44s %16s %16s %9s" % ("", "recipe (redis-py)", "tokencache.Store", "ratio"))
    print("  %-44s %16.0f %16.0f %8.2fx" % ("requests per CPU second", rr, tr, tr / rr))
    print("  %-44s %16.2f %16.2f %8.2fx" % ("p50 latency (ms)", r50, t50, r50 / t50))
    print("  %-44s %16.2f %16.2f %8.2fx" % ("p99 latency (ms)", r99, t99, r99 / t99))
    print("  %-44s %16d %16d" % ("requests", rn, tn))
    print("  %-44s %16s %16s" % ("%d writers x %d responses, one user: kept" % (args.writers, args.writes),
                                 "%d of %d" % (lost["recipe"], total), "%d of %d" % (lost["tokencache"], total)))


if __name__ == "__main__":
    main()
