"""MSAL Python's side of client-bench: acquire_token_silent on the cache tokencache wrote.

  client_bench.py AUTHORITY CLIENT_ID SCOPE CACHE HITS REFRESHES ROUNDS HOME_ACCOUNT_ID

Prints {"hit_seconds": per call (best round), "refresh_seconds": per call} as JSON.
"""
import json
import sys
import time

import msal

authority, client_id, scope, path, hits, refreshes, rounds, home = sys.argv[1:9]
hits, refreshes, rounds = int(hits), int(refreshes), int(rounds)
cache = msal.SerializableTokenCache()
cache.deserialize(open(path).read())
app = msal.PublicClientApplication(
    client_id, authority=authority, token_cache=cache, instance_discovery=False
)
account = next(a for a in app.get_accounts() if a["home_account_id"] == home)
best = float("inf")
for _ in range(rounds):
    t = time.perf_counter()
    for _ in range(hits):
        r = app.acquire_token_silent([scope], account)
        assert r and r.get("token_source") == "cache", r
    best = min(best, (time.perf_counter() - t) / hits)
t = time.perf_counter()
for _ in range(refreshes):
    r = app.acquire_token_silent([scope], account, force_refresh=True)
    assert r and r.get("token_source") == "identity_provider", r
refresh = (time.perf_counter() - t) / max(refreshes, 1)
print(json.dumps({"hit_seconds": best, "refresh_seconds": refresh}))
