"""The Azure CLI's token cache as the Azure CLI writes it, played by MSAL Python 1.39 and
msal-extensions (the libraries the CLI is built on), for tokencache-azure's tests.

  azure_cli_peer.py login AUTHORITY DIR USER SCOPE
        sign USER in with the device code flow under the Azure CLI's client id, into
        DIR/msal_token_cache.json through msal-extensions' FilePersistence and its lock (as
        `az login` does on Linux), and write DIR/azureProfile.json (UTF-8 with a byte order
        mark, as the CLI writes it) with one default subscription of USER
  azure_cli_peer.py silent AUTHORITY DIR USER SCOPE
        acquire_token_silent for USER from that file; prints {"token_source", "sha256"}
  azure_cli_peer.py expire DIR
        under the lock, make every access token in the file expired (time passing)
  azure_cli_peer.py hold DIR SECONDS
        hold the file's lock (msal-extensions' CrossPlatLock); prints "locked" once held

For HTTPS with a test CA, set REQUESTS_CA_BUNDLE. Tokens are never printed.
"""
import hashlib
import json
import os
import sys
import time

import msal
import requests
from msal_extensions import CrossPlatLock, FilePersistence, PersistedTokenCache

AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def cache_path(dir):
    return os.path.join(dir, "msal_token_cache.json")


def app(authority, dir):
    cache = PersistedTokenCache(FilePersistence(cache_path(dir)))
    return msal.PublicClientApplication(AZURE_CLI, authority=authority, token_cache=cache,
                                        instance_discovery=False)


def login(authority, dir, user, scope):
    a = app(authority, dir)
    flow = a.initiate_device_flow(scopes=[scope])
    assert "user_code" in flow, flow
    r = requests.get(authority + "/v2.0/__test/device",
                     params={"user_code": flow["user_code"], "login_hint": user}, timeout=30)
    r.raise_for_status()
    result = a.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result.get("error_description")
    tenant = authority.rstrip("/").rsplit("/", 1)[1]
    profile = {"installationId": "00000000-0000-0000-0000-000000000000", "subscriptions": [{
        "id": "5ub5c000-0000-4000-8000-000000000001", "name": "Test subscription",
        "state": "Enabled", "user": {"name": result["id_token_claims"]["preferred_username"],
                                     "type": "user"},
        "isDefault": True, "tenantId": tenant, "environmentName": "AzureCloud",
        "homeTenantId": tenant, "managedByTenants": []}]}
    with open(os.path.join(dir, "azureProfile.json"), "w", encoding="utf-8-sig") as f:
        json.dump(profile, f)
    print(json.dumps({"ok": True}))


def silent(authority, dir, user, scope):
    a = app(authority, dir)
    (account,) = a.get_accounts(username=user)
    result = a.acquire_token_silent([scope], account)
    assert result and "access_token" in result, result
    print(json.dumps({"token_source": result.get("token_source"),
                      "sha256": hashlib.sha256(result["access_token"].encode()).hexdigest()}))


def expire(dir):
    persistence = FilePersistence(cache_path(dir))
    with CrossPlatLock(cache_path(dir) + ".lockfile"):
        cache = json.loads(persistence.load())
        for at in cache.get("AccessToken", {}).values():
            at["expires_on"] = at["extended_expires_on"] = str(int(time.time()) - 1)
        persistence.save(json.dumps(cache, indent=4))
    print(json.dumps({"ok": True}))


def hold(dir, seconds):
    with CrossPlatLock(cache_path(dir) + ".lockfile"):
        print("locked", flush=True)
        time.sleep(float(seconds))


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    {"login": login, "silent": silent, "expire": expire, "hold": hold}[verb](*args)
