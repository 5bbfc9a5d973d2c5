"""Worker processes for the store tests.

  store_peers.py silent URL AUTHORITY HOME SCOPES   a web app's request: acquire_token_silent
                                                    for the user HOME; prints a digest of the
                                                    token (never the token)
  store_peers.py add URL UID WORKER N               N token responses (distinct scopes) for one
                                                    user, through MSAL's add
"""

import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def silent(url, authority, home, scopes):
    import msal

    import tokencache

    cache = tokencache.Store(url).token_cache(home)
    app = msal.ConfidentialClientApplication(
        "confidential-app", client_credential="confidential-secret", authority=authority,
        token_cache=cache, instance_discovery=False)
    (account,) = app.get_accounts()
    result = app.acquire_token_silent(scopes.split(), account)
    print(json.dumps({"token": hashlib.sha256(result["access_token"].encode()).hexdigest()}))


def add(url, uid, worker, n):
    import tokencache
    from conftest import user_event

    store = tokencache.Store(url)
    for i in range(int(n)):
        store.token_cache().add(user_event(uid, scope=("scope-%s-%d" % (worker, i),), n=i))


if __name__ == "__main__":
    {"silent": silent, "add": add}[sys.argv[1]](*sys.argv[2:])
