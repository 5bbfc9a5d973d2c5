"""The Python package against what MSAL Python apps use today, side by side in one run.

  .venv/bin/python bench/python_package_bench.py [--accounts 10000] [--calls 2000]
      [--procs 8] [--count 200] [--prefill 1000]

1. Silent hit: `app.acquire_token_silent(["User.Read"], account)` on a PublicClientApplication
   whose cache holds N accounts (each with the access token an Entra sign-in leaves, for
   "User.Read email openid profile"), with `msal.SerializableTokenCache` and with
   `tokencache.TokenCache`. The app's authority is discovered once from an in-process HTTP
   stub (no network); the measured calls never touch it.
2. Memory holding the same N-account cache (loaded with `deserialize`), each in a fresh
   process: resident set size growth once the loaded text is dropped and free heap pages are
   returned to the system (`malloc_trim`) on both sides.
3. Contention: P processes x K token responses through MSAL's `add` into one file pre-filled
   with F accounts: `msal_extensions.PersistedTokenCache(FilePersistence)` and
   `tokencache.PersistedTokenCache`. Kept writes per second = acknowledged responses present
   in the file at the end / wall time; lost = acknowledged but absent.

Needs .venv with msal, msal-extensions and the tokencache wheel (bash .ci/setup-python-package).
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

AUTHORITY = "https://login.microsoftonline.com/contoso.onmicrosoft.com"
CLIENT = "bench-client"


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def event(i, prefix="u"):
    uid = "%s%d" % (prefix, i)
    claims = {"aud": CLIENT, "iss": "https://login.microsoftonline.com/tid/v2.0", "iat": 1700000000,
              "nbf": 1700000000, "exp": 4102444800, "oid": uid, "sub": "s" + uid, "tid": "tid",
              "preferred_username": uid + "@contoso.com"}
    return {
        "client_id": CLIENT,
        "scope": ["User.Read", "email", "openid", "profile"],
        "token_endpoint": AUTHORITY + "/oauth2/v2.0/token",
        "grant_type": "authorization_code",
        "response": {
            "token_type": "Bearer", "scope": "User.Read email openid profile",
            "expires_in": 86400 * 365, "access_token": "at-" + uid, "refresh_token": "rt-" + uid,
            "id_token": "%s.%s.c2ln" % (b64({"alg": "none"}), b64(claims)),
            "client_info": b64({"uid": uid, "utid": "tid"}), "foci": "1",
        },
        "params": {}, "data": {"scope": ["User.Read"], "claims": None},
        "environment": "login.microsoftonline.com",
    }


class DiscoveryOnly:
    """An HTTP client for MSAL that answers the authority's discovery and nothing else."""

    class Response:
        def __init__(self, body):
            self.status_code, self.text, self.headers = 200, json.dumps(body), {}

        def raise_for_status(self):
            pass

    def get(self, url, **kwargs):
        if url.endswith("/.well-known/openid-configuration"):
            return self.Response({
                "authorization_endpoint": AUTHORITY + "/oauth2/v2.0/authorize",
                "token_endpoint": AUTHORITY + "/oauth2/v2.0/token",
                "device_authorization_endpoint": AUTHORITY + "/oauth2/v2.0/devicecode",
                "issuer": "https://login.microsoftonline.com/tid/v2.0",
            })
        raise AssertionError("the benchmark made a network call: " + url)

    def post(self, url, **kwargs):
        raise AssertionError("the benchmark made a network call: " + url)

    def close(self):
        pass


def silent_hit(cache, accounts, calls):
    import msal

    for i in range(accounts):
        cache.add(event(i), now=int(time.time()))
    app = msal.PublicClientApplication(CLIENT, authority=AUTHORITY, token_cache=cache,
                                       http_client=DiscoveryOnly(), instance_discovery=False)
    picked = [{"home_account_id": "u%d.tid" % (i * 7919 % accounts), "environment": "login.microsoftonline.com",
               "username": "x", "realm": "contoso.onmicrosoft.com", "local_account_id": "x",
               "authority_type": "MSSTS"} for i in range(calls)]
    assert app.acquire_token_silent(["User.Read"], picked[0])["token_source"] == "cache"
    started = time.perf_counter()
    for account in picked:
        result = app.acquire_token_silent(["User.Read"], account)
    elapsed = time.perf_counter() - started
    assert result["token_source"] == "cache"
    return elapsed / calls * 1e6


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def memory_child(kind, path):
    import gc

    import msal

    import tokencache

    with open(path) as f:
        text = f.read()
    gc.collect()
    before = rss_kib()
    cache = msal.SerializableTokenCache() if kind == "msal" else tokencache.TokenCache()
    cache.deserialize(text)
    del text
    gc.collect()
    # Freed heap pages go back to the system on both sides, so that what is measured is what
    # the cache holds, not the parser's high-water mark.
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(rss_kib() - before + 0 * len(list(cache.search("Account", query={"home_account_id": "u1.tid"}))))


def writer_child(kind, path, prefix, count):
    if kind == "msal-extensions":
        import msal_extensions

        cache = msal_extensions.PersistedTokenCache(msal_extensions.FilePersistence(path))
    else:
        import tokencache

        cache = tokencache.PersistedTokenCache(path)
    for i in range(int(count)):
        try:
            cache.add(event(i, prefix))
            print("saved %d" % i, flush=True)
        except Exception as e:  # counted as not acknowledged
            print("failed %d %s" % (i, type(e).__name__), flush=True)


def contention(kind, procs, count, prefill):
    import tokencache

    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "msal_token_cache.json")
    seed = tokencache.TokenCache()
    for i in range(prefill):
        seed.add(event(i, "pre"))
    with open(path, "w") as f:
        f.write(seed.serialize())
    started = time.perf_counter()
    children = [subprocess.Popen([sys.executable, __file__, "--child-writer", kind, path, "w%d-" % p, str(count)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for p in range(procs)]
    acknowledged = set()
    for p, child in enumerate(children):
        out, _ = child.communicate()
        acknowledged.update("w%d-%s.tid" % (p, line.split()[1]) for line in out.splitlines()
                            if line.startswith("saved "))
    elapsed = time.perf_counter() - started
    with open(path) as f:
        present = {a["home_account_id"] for a in json.load(f).get("Account", {}).values()}
    kept = len(acknowledged & present)
    return kept / elapsed, len(acknowledged - present), len(acknowledged), procs * count


def main():
    if sys.argv[1:2] == ["--child-memory"]:
        return memory_child(*sys.argv[2:4])
    if sys.argv[1:2] == ["--child-writer"]:
        return writer_child(*sys.argv[2:6])
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--prefill", type=int, default=1000)
    args = parser.parse_args()

    import msal

    import tokencache

    rows = []
    theirs = silent_hit(msal.SerializableTokenCache(), args.accounts, args.calls)
    ours = silent_hit(tokencache.TokenCache(), args.accounts, args.calls)
    rows.append(("acquire_token_silent hit, %d accounts (us/call)" % args.accounts, theirs, ours, theirs / ours))

    cache = tokencache.TokenCache()
    for i in range(args.accounts):
        cache.add(event(i), now=int(time.time()))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(cache.serialize())
    memory = {}
    for kind in ("msal", "tokencache"):
        out = subprocess.run([sys.executable, __file__, "--child-memory", kind, f.name],
                             capture_output=True, text=True, check=True).stdout
        memory[kind] = int(out.strip()) / 1024
    os.unlink(f.name)
    rows.append(("memory holding %d accounts (MiB)" % args.accounts, memory["msal"], memory["tokencache"],
                 memory["msal"] / memory["tokencache"]))

    results = {}
    for kind in ("msal-extensions", "tokencache"):
        results[kind] = contention(kind, args.procs, args.count, args.prefill)
    (ext_rate, ext_lost, ext_ack, total), (tc_rate, tc_lost, tc_ack, _) = results["msal-extensions"], results["tokencache"]
    rows.append(("%d procs x %d adds, %d prefilled: kept writes/s" % (args.procs, args.count, args.prefill),
                 ext_rate, tc_rate, tc_rate / ext_rate))
    rows.append(("  lost (acknowledged, then absent)", ext_lost, tc_lost, None))
    rows.append(("  acknowledged of %d" % total, ext_ack, tc_ack, None))

    print("MSAL Python %s, msal-extensions, tokencache for Python" % msal.__version__)
    print("  %-52s %14s %14s %9s" % ("workload", "MSAL Python", "tokencache", "ratio"))
    for name, a, b, ratio in rows:
        fmt = lambda v: ("%14.2f" % v) if isinstance(v, float) else "%14d" % v
        print("  %-52s %s %s %9s" % (name, fmt(a), fmt(b), "" if ratio is None else "%.1fx" % ratio))


if __name__ == "__main__":
    main()
