"""Real MSAL Python applications with tokencache as their token_cache=, against the loopback
OpenID provider (tests/idp): device code, auth code, refresh, client credentials."""

import json
import os
import subprocess
import sys

import msal
import pytest

import tokencache
from idp import Idp

HERE = os.path.dirname(os.path.abspath(__file__))
SCOPES = ["api://test-api/read"]


@pytest.fixture(scope="module")
def idp():
    provider = Idp()
    yield provider
    provider.stop()


def public_app(idp, cache):
    return msal.PublicClientApplication("public-app", authority=idp.authority,
                                        token_cache=cache, instance_discovery=False)


def test_device_code_signs_in_once_and_a_second_process_is_silent(idp, tmp_path):
    path = str(tmp_path / "msal_token_cache.json")
    app = public_app(idp, tokencache.PersistedTokenCache(path))
    flow = app.initiate_device_flow(scopes=SCOPES)
    assert "user_code" in flow, flow
    idp.approve_device_code(flow["user_code"], "alice")
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result.get("error_description")
    before = idp.stats()

    out = subprocess.run([sys.executable, os.path.join(HERE, "peers.py"), "silent", idp.authority,
                          "public-app", " ".join(SCOPES), path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    second = json.loads(out.stdout)
    assert second == {"accounts": 1, "token_source": "cache", "error": None}
    assert idp.stats() == before, "the second run asked the provider nothing"


def test_a_refresh_updates_the_refresh_token_in_place(idp, tmp_path):
    path = str(tmp_path / "cache.json")
    app = public_app(idp, tokencache.PersistedTokenCache(path))
    flow = app.initiate_device_flow(scopes=SCOPES)
    idp.approve_device_code(flow["user_code"], "bob")
    first = app.acquire_token_by_device_flow(flow)
    assert "access_token" in first
    account = app.get_accounts()[0]
    refreshed = app.acquire_token_silent(SCOPES, account, force_refresh=True)
    assert refreshed["token_source"] == "identity_provider"
    assert refreshed["access_token"] != first["access_token"]
    with open(path) as f:
        cache = json.load(f)
    assert len(cache["RefreshToken"]) == 1, "updated in place, not added"
    (rt,) = cache["RefreshToken"].values()
    assert rt["secret"] == refreshed.get("refresh_token", rt["secret"])
    assert rt["secret"] != first["refresh_token"], "the rotated refresh token was written"
    # MSAL Python's own cache reads the file and serves the new token.
    theirs = msal.SerializableTokenCache()
    theirs.deserialize(open(path).read())
    again = public_app(idp, theirs).acquire_token_silent(SCOPES, account)
    assert again["access_token"] == refreshed["access_token"]


def test_a_confidential_app_signs_two_users_in_and_serves_each_silently(idp, tmp_path):
    cache = tokencache.PersistedTokenCache(str(tmp_path / "web.json"))
    app = msal.ConfidentialClientApplication(
        "confidential-app", client_credential="confidential-secret", authority=idp.authority,
        token_cache=cache, instance_discovery=False)
    redirect = "http://127.0.0.1:8400/callback"
    tokens = {}
    for user in ("alice", "bob"):
        flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=redirect)
        result = app.acquire_token_by_auth_code_flow(flow, idp.browse(flow["auth_uri"], user))
        assert "access_token" in result, result.get("error_description")
        tokens[result["id_token_claims"]["sub"]] = result["access_token"]
    accounts = app.get_accounts()
    assert len(accounts) == 2
    before = idp.stats()
    for account in accounts:
        hit = app.acquire_token_silent(SCOPES, account)
        assert hit["token_source"] == "cache"
        assert hit["access_token"] in tokens.values()
    assert len({app.acquire_token_silent(SCOPES, a)["access_token"] for a in accounts}) == 2
    app_token = app.acquire_token_for_client(["api://test-api/.default"])
    assert "access_token" in app_token, app_token.get("error_description")
    assert app.acquire_token_for_client(["api://test-api/.default"])["token_source"] == "cache"
    after = idp.stats()
    assert after.get("refresh_token", 0) == before.get("refresh_token", 0)
    # Signing alice out removes her tokens and leaves bob's.
    alice = next(a for a in accounts if a["username"].startswith("alice"))
    app.remove_account(alice)
    assert [a["username"] for a in app.get_accounts()] == [
        a["username"] for a in accounts if a is not alice]


def test_sixteen_threads_make_silent_calls_and_adds_on_one_cache_and_lose_nothing(idp, tmp_path):
    # One PersistedTokenCache object shared by 16 threads, each with its own MSAL app (as a
    # threaded server has): every thread adds token responses for its own users through
    # MSAL's `add`, finds each user with get_accounts and gets the token back with a real
    # acquire_token_silent; meanwhile alice (signed in for real) is served silently and
    # refreshed against the provider by one of the threads.
    import threading
    from urllib.parse import urlparse

    from conftest import user_event
    from idp import TENANT

    path = str(tmp_path / "shared.json")
    cache = tokencache.PersistedTokenCache(path)
    app = public_app(idp, cache)
    flow = app.initiate_device_flow(scopes=SCOPES)
    idp.approve_device_code(flow["user_code"], "alice")
    assert "access_token" in app.acquire_token_by_device_flow(flow)
    environment = urlparse(idp.authority).hostname  # MSAL files accounts under the host name
    errors, refreshes = [], []

    def work(t):
        try:
            mine = public_app(idp, cache)
            (alice,) = mine.get_accounts(username="alice@example.test")
            for i in range(30):
                uid = "u%02d-%02d" % (t, i)
                cache.add(user_event(uid, client_id="public-app", tenant=TENANT,
                                     environment=environment, scope=SCOPES))
                (account,) = mine.get_accounts(username=uid + "@example.com")
                hit = mine.acquire_token_silent(SCOPES, account)
                assert hit and hit["access_token"] == "at-%s-0" % uid, hit
                assert hit["token_source"] == "cache"
                force = t == 0 and i % 10 == 9
                served = mine.acquire_token_silent(SCOPES, alice, force_refresh=force)
                assert served and "access_token" in served, served
                if force:
                    assert served["token_source"] == "identity_provider"
                    refreshes.append(served["access_token"])
        except Exception as e:  # reported below, with the thread's number
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(refreshes) == 3
    reread = public_app(idp, tokencache.PersistedTokenCache(path))
    accounts = reread.get_accounts()
    assert len(accounts) == 16 * 30 + 1
    (alice,) = reread.get_accounts(username="alice@example.test")
    assert reread.acquire_token_silent(SCOPES, alice)["access_token"] == refreshes[-1]
    with open(path) as f:
        assert len(json.load(f)["RefreshToken"]) == 16 * 30 + 1
