"""MSAL Python 1.39 as a live peer for the client tests (tokencache-client).

  client_peer.py replay STEPS            apply recorded token responses the way MSAL's
                                         application layer does (add; update_rt after a refresh)
                                         and print the serialized cache
  client_peer.py device AUTH CLIENT SCOPES CACHE
                                         sign in with the device code flow, save the cache to
                                         CACHE; prints the flow as one JSON line, then the result
  client_peer.py silent AUTH CLIENT SCOPES CACHE [force]
                                         load CACHE, acquire_token_silent for its first account,
                                         save it back; prints the result as JSON

  client_peer.py web AUTH CLIENT SECRET SCOPES REDIRECT USER CACHE
                                         a ConfidentialClientApplication signs USER in with the
                                         auth code flow (the provider's browse helper plays the
                                         browser), then gets an app token with client
                                         credentials for the API's .default scope; saves CACHE

For HTTPS with a test CA, set REQUESTS_CA_BUNDLE. Tokens are never printed.
"""
import json
import sys
import time

import msal

assert msal.__version__ == "1.39.0", msal.__version__


def replay(path):
    steps = json.load(open(path))
    cache = msal.SerializableTokenCache()
    real_time = time.time
    for step in steps:
        event = dict(step["event"])
        now = step["now"]
        if step.get("old_refresh_token"):
            old = next(
                rt for rt in cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)
                if rt["secret"] == step["old_refresh_token"]
            )
            cache.add(event, now=now)
            time.time = lambda: now  # update_rt stamps the wall clock
            try:
                cache.update_rt(old, step["new_refresh_token"])
            finally:
                time.time = real_time
        else:
            cache.add(event, now=now)
    sys.stdout.write(cache.serialize())


def app(authority, client_id, cache):
    return msal.PublicClientApplication(
        client_id, authority=authority, token_cache=cache, instance_discovery=False
    )


def load(path):
    cache = msal.SerializableTokenCache()
    try:
        with open(path) as f:
            cache.deserialize(f.read())
    except FileNotFoundError:
        pass
    return cache


def save(cache, path):
    with open(path, "w") as f:
        f.write(cache.serialize())


def summary(result):
    if "error" in result:
        return {"error": result["error"], "error_description": result.get("error_description")}
    return {
        "token_source": result.get("token_source"),
        "has_access_token": bool(result.get("access_token")),
        "username": (result.get("id_token_claims") or {}).get("preferred_username"),
    }


def device(authority, client_id, scopes, path):
    cache = load(path)
    a = app(authority, client_id, cache)
    flow = a.initiate_device_flow(scopes=scopes.split())
    print(json.dumps({"user_code": flow.get("user_code"), "error": flow.get("error")}), flush=True)
    result = a.acquire_token_by_device_flow(flow)
    save(cache, path)
    print(json.dumps(summary(result)), flush=True)


def silent(authority, client_id, scopes, path, force=False):
    cache = load(path)
    a = app(authority, client_id, cache)
    accounts = a.get_accounts()
    if not accounts:
        print(json.dumps({"error": "no_account"}))
        return
    result = a.acquire_token_silent_with_error(scopes.split(), accounts[0], force_refresh=force)
    save(cache, path)
    print(json.dumps(summary(result or {"error": "cache_empty"})))


def web(authority, client_id, secret, scopes, redirect_uri, user, path):
    import os
    import urllib.parse

    import requests

    cache = load(path)
    a = msal.ConfidentialClientApplication(
        client_id, client_credential=secret, authority=authority, token_cache=cache,
        instance_discovery=False,
    )
    flow = a.initiate_auth_code_flow(scopes.split(), redirect_uri=redirect_uri)
    issuer = authority.rstrip("/") + "/v2.0"
    browsed = requests.get(
        issuer + "/__test/browse", params={"url": flow["auth_uri"], "login_hint": user},
        verify=os.environ.get("REQUESTS_CA_BUNDLE", True), timeout=30,
    ).json()
    query = urllib.parse.urlparse(browsed["location"]).query
    params = dict(urllib.parse.parse_qsl(query))
    signed_in = a.acquire_token_by_auth_code_flow(flow, params)
    resource = scopes.split()[0].rsplit("/", 1)[0]
    app_token = a.acquire_token_for_client([resource + "/.default"])
    save(cache, path)
    print(json.dumps({"user": summary(signed_in), "app": summary(app_token)}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "replay":
        replay(sys.argv[2])
    elif cmd == "device":
        device(*sys.argv[2:6])
    elif cmd == "web":
        web(*sys.argv[2:9])
    elif cmd == "silent":
        silent(*sys.argv[2:6], force=len(sys.argv) > 6 and sys.argv[6] == "force")
    else:
        sys.exit(f"unknown command {cmd}")
