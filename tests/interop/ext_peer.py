"""msal-extensions 1.3.1 as a live peer for the desktop persistence tests.

  ext_peer.py write PATH COUNT PREFIX VARIANT [report]   add COUNT user token responses through
                                                PersistedTokenCache(FilePersistence(PATH));
                                                prints "started" before the first add,
                                                then {"saved": n, "errors": m}; exits 0
                                                whatever msal-extensions did (its failures
                                                are counted), non-zero if the peer broke
  ext_peer.py hold PATH SECONDS VARIANT         hold the cache lock; prints "locked" once held
  ext_peer.py accounts PATH                     prints the home account ids msal finds, as JSON

VARIANT is "portalocker" (msal-extensions' portalocker lock) or "filelock" (its fallback when
portalocker is not installed, forced here by hiding portalocker).
"""
import base64
import json
import sys
import time


def load_extensions(variant):
    if variant == "filelock":
        sys.modules["portalocker"] = None  # makes msal_extensions fall back to its filelock
    import msal_extensions
    from msal_extensions import token_cache
    assert msal_extensions.__version__ == "1.3.1", msal_extensions.__version__
    expected = "cache_lock" if variant == "portalocker" else "filelock"
    assert token_cache.CrossPlatLock.__module__.endswith(expected), token_cache.CrossPlatLock.__module__
    return msal_extensions


def b64(s):
    return base64.urlsafe_b64encode(s.encode()).rstrip(b"=").decode()


def event(uid):
    claims = json.dumps({"oid": uid, "sub": "sub-" + uid, "preferred_username": uid + "@contoso.com", "tid": "tenant"})
    return {
        "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "scope": ["User.Read", "openid", "profile"],
        "token_endpoint": "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
        "environment": "login.microsoftonline.com", "grant_type": "authorization_code", "data": {}, "params": {},
        "response": {"token_type": "Bearer", "expires_in": 3600, "access_token": "at-" + uid,
                     "refresh_token": "rt-" + uid, "id_token": "e30.%s.c2ln" % b64(claims),
                     "client_info": b64(json.dumps({"uid": uid, "utid": "tenant"}))},
    }


def contention_errors(variant):
    """What msal-extensions raises under contention: its lock's error when the lock is not
    obtained in time (portalocker's LockException, or the fallback lock's own LockError), OS
    errors, and a torn read (a JSONDecodeError, which is a ValueError)."""
    if variant == "portalocker":
        from msal_extensions.cache_lock import LockError
    else:
        from msal_extensions.filelock import LockError
    return (LockError, OSError, ValueError)


def write(path, count, prefix, variant, report=False):
    ext = load_extensions(variant)
    expected = contention_errors(variant)
    cache = ext.PersistedTokenCache(ext.FilePersistence(path))
    saved = errors = 0
    print("started", flush=True)
    for i in range(count):
        try:
            start = time.perf_counter()
            cache.add(event("%s-%d" % (prefix, i)))
            saved += 1
            if report:
                print("saved %d %d" % (i, (time.perf_counter() - start) * 1e6), flush=True)
        except expected as e:
            # Counted, as the benchmark reports them. Anything else means the peer is broken
            # and ends it with a non-zero status.
            errors += 1
            print("error: %r" % e, file=sys.stderr)
    print(json.dumps({"saved": saved, "errors": errors}))


def hold(path, seconds, variant):
    ext = load_extensions(variant)
    from msal_extensions.token_cache import CrossPlatLock
    with CrossPlatLock(path + ".lockfile"):
        print("locked", flush=True)
        time.sleep(seconds)


def accounts(path):
    import msal
    cache = msal.SerializableTokenCache()
    with open(path) as f:
        cache.deserialize(f.read())
    print(json.dumps(sorted(a["home_account_id"] for a in cache.search("Account", query={}))))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "write":
        write(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], len(sys.argv) > 6 and sys.argv[6] == "report")
    elif cmd == "hold":
        hold(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    elif cmd == "accounts":
        accounts(sys.argv[2])
