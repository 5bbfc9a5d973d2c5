"""Processes for the multi-process tests.

  peers.py write PATH PREFIX COUNT      tokencache.PersistedTokenCache: MSAL's add() of COUNT
                                        responses for accounts PREFIX-<i>; prints "saved <i>"
                                        after each add returns
  peers.py ext PATH PREFIX STOPFILE     msal-extensions' PersistedTokenCache(FilePersistence):
                                        reads (search) and writes (add) the same file until
                                        STOPFILE exists; prints a JSON summary of reads, read
                                        errors and the accounts it saved
  peers.py silent AUTHORITY CLIENT SCOPES PATH
                                        a PublicClientApplication over PersistedTokenCache(PATH):
                                        acquire_token_silent for its first account; prints the
                                        token source as JSON (never the token)
"""

import json
import os
import sys

from conftest import user_event


def write(path, prefix, count):
    import tokencache

    cache = tokencache.PersistedTokenCache(path)
    for i in range(int(count)):
        cache.add(user_event("%s-%d" % (prefix, i)))
        print("saved %d" % i, flush=True)


def ext(path, prefix, stopfile):
    import msal_extensions

    cache = msal_extensions.PersistedTokenCache(msal_extensions.FilePersistence(path))
    reads = errors = 0
    saved = []
    i = 0
    while not os.path.exists(stopfile):
        try:
            list(cache.search("Account"))
            reads += 1
        except Exception as e:  # counted: the test asserts there are none
            errors += 1
            print("read error: %r" % (e,), file=sys.stderr)
        if i % 5 == 0:
            uid = "%s-%d" % (prefix, i)
            cache.add(user_event(uid))
            saved.append(uid + ".t")
        i += 1
    print(json.dumps({"reads": reads, "errors": errors, "saved": saved}), flush=True)


def silent(authority, client_id, scopes, path):
    import msal

    import tokencache

    app = msal.PublicClientApplication(client_id, authority=authority,
                                       token_cache=tokencache.PersistedTokenCache(path),
                                       instance_discovery=False)
    accounts = app.get_accounts()
    result = app.acquire_token_silent(scopes.split(), accounts[0]) if accounts else None
    print(json.dumps({"accounts": len(accounts),
                      "token_source": (result or {}).get("token_source"),
                      "error": (result or {}).get("error")}))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    {"write": write, "ext": ext, "silent": silent}[sys.argv[1]](*sys.argv[2:])
