"""Environment check for store-bench's tail latency: hiccups of Redis traffic with no tokencache.

  .venv/bin/python bench/redis_hiccups.py [SECONDS] [VALUE_BYTES] [CLIENTS] [KEYS]

Starts its own redis-server on a free loopback port, stores KEYS (default 100,000) hashes
shaped like tokencache's partitions (fields v, d, c; d of VALUE_BYTES, default 5747), then runs
CLIENTS (default 2) redis-py processes, each sending pipelined batches of 16 HMGETs as fast as
it can.
Prints each client's rate and every batch that took over 8 ms, then the gaps between bursts of
slow batches. A batch normally takes under 1 ms; bursts that recur at a steady period point at
the machine (scheduler, VM, kernel), not at any client library.
"""
import multiprocessing
import random
import socket
import subprocess
import sys
import time

import redis


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(port, seconds, keys, out):
    r = redis.Redis(port=port)
    rng = random.Random()
    start = time.monotonic()
    end = start + seconds
    slow, n = [], 0
    while True:
        t = time.monotonic()
        if t > end:
            break
        p = r.pipeline(transaction=False)
        for _ in range(16):
            p.hmget("k%d" % rng.randrange(keys), "v", "d", "c")
        p.execute()
        n += 16
        took = time.monotonic() - t
        if took > 0.008:
            slow.append((t, took))
    out.put((n / seconds, slow))


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 5747
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    keys = int(sys.argv[4]) if len(sys.argv) > 4 else 100000
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        for _ in range(200):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        doc = b"x" * size
        p = r.pipeline(transaction=False)
        for i in range(keys):
            p.hset("k%d" % i, mapping={"v": "1", "d": doc, "c": "1"})
            if i % 1000 == 999:
                p.execute()
        p.execute()
        out = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=client, args=(port, seconds, keys, out))
                 for _ in range(clients)]
        for proc in procs:
            proc.start()
        results = [out.get() for _ in procs]
        for proc in procs:
            proc.join()
    finally:
        server.kill()
        server.wait()
    t0 = min((t for _, slow in results for t, _ in slow), default=0.0)
    bursts = []
    for rate, slow in results:
        print("client: %.0f HMGET/s; batches over 8 ms: %s" % (
            rate, " ".join("%.2fs:%.1fms" % (t - t0, took * 1e3) for t, took in slow) or "none"))
        bursts.extend(t for t, _ in slow)
    starts = []
    for t in sorted(bursts):
        if not starts or t - starts[-1] > 0.3:
            starts.append(t)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    print("bursts of slow batches: %d; gaps between them (s): %s" % (
        len(starts), " ".join("%.2f" % g for g in gaps) or "-"))


if __name__ == "__main__":
    main()
