"""tokencache.Store: per-user partitions for MSAL Python web apps, on SQLite, PostgreSQL and
Redis, driven by real MSAL applications against the loopback OpenID provider."""

import json
import os
import subprocess
import sys

import msal
import pytest

import tokencache
from conftest import user_event
from idp import Idp
from servers import Redis, postgres_url

HERE = os.path.dirname(os.path.abspath(__file__))
SCOPES = ["api://test-api/read"]
REDIRECT = "http://127.0.0.1:8400/callback"
AT, RT = "AccessToken", "RefreshToken"


@pytest.fixture(scope="module")
def idp():
    provider = Idp(IDP_ANY_TENANT=1)
    yield provider
    provider.stop()


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield "sqlite://%s" % (tmp_path / "tokens.db")
    elif request.param == "postgres":
        url = postgres_url()
        if url is None:
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL is not running (bash .ci/setup-services)")
            pytest.skip("PostgreSQL is not running (bash .ci/setup-services)")
        yield url
    else:
        redis = Redis()
        yield redis.url
        redis.close()


def web_app(idp, cache):
    return msal.ConfidentialClientApplication(
        "confidential-app", client_credential="confidential-secret", authority=idp.authority,
        token_cache=cache, instance_discovery=False)


def sign_in(idp, store, user):
    """What a web app's redirect handler does; returns what it keeps in the session."""
    cache = store.token_cache()
    app = web_app(idp, cache)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT)
    result = app.acquire_token_by_auth_code_flow(flow, idp.browse(flow["auth_uri"], user))
    assert "access_token" in result, result.get("error_description")
    (account,) = app.get_accounts()
    return account["home_account_id"]


def test_users_sign_in_and_each_request_loads_only_its_users_partition(idp, store_url):
    store = tokencache.Store(store_url)
    homes = {user: sign_in(idp, store, user) for user in ("alice", "bob")}
    assert homes["alice"] != homes["bob"]
    before = idp.stats()
    for user, home in homes.items():
        cache = store.token_cache(home)
        app = web_app(idp, cache)
        (account,) = app.get_accounts()
        assert account["home_account_id"] == home and account["username"].startswith(user)
        hit = app.acquire_token_silent(SCOPES, account)
        assert hit["token_source"] == "cache"
        assert repr(cache) == "<tokencache.StoreTokenCache partitions=[%r]>" % home
    assert idp.stats() == before, "served from the store, nothing asked of the provider"
    # Sign-out removes the user's partition and nothing else.
    assert store.remove_user(homes["alice"])
    assert web_app(idp, store.token_cache(homes["alice"])).get_accounts() == []
    assert len(web_app(idp, store.token_cache(homes["bob"])).get_accounts()) == 1


def test_an_expired_token_is_refreshed_and_the_rotated_refresh_token_saved(idp, store_url):
    store = tokencache.Store(store_url)
    home = sign_in(idp, store, "alice")
    expire(store, home)
    before = idp.stats().get("refresh_token", 0)
    cache = store.token_cache(home)
    app = web_app(idp, cache)
    refreshed = app.acquire_token_silent(SCOPES, app.get_accounts()[0])
    assert refreshed["token_source"] == "identity_provider"
    assert idp.stats().get("refresh_token", 0) == before + 1
    # The new token and the rotated refresh token are in the store, once each.
    again = web_app(idp, store.token_cache(home))
    assert again.acquire_token_silent(SCOPES, again.get_accounts()[0])["access_token"] == refreshed["access_token"]
    doc = json.loads(store.token_cache(home)._partition(home).serialize())
    assert len(doc[RT]) == 1


def test_client_credentials_use_the_apps_partition(idp, store_url):
    store = tokencache.Store(store_url)
    first = web_app(idp, store.token_cache()).acquire_token_for_client(["api://test-api/.default"])
    assert first["token_source"] == "identity_provider", first.get("error_description")
    cache = store.token_cache()
    second = web_app(idp, cache).acquire_token_for_client(["api://test-api/.default"])
    assert second["token_source"] == "cache"
    assert second["access_token"] == first["access_token"]
    tenant = idp.authority.rsplit("/", 1)[1]
    assert repr(cache) == "<tokencache.StoreTokenCache partitions=['confidential-app_%s_AppTokenCache']>" % tenant


def test_client_credentials_for_fifty_tenants_ask_once_per_tenant(idp, store_url):
    # A multi-tenant daemon: one app object per tenant, all on one store. Each tenant's token
    # lives in its own `{client_id}_{tenant}_AppTokenCache` partition; a second round (new
    # cache objects, as new processes would have) is served from the store without asking.
    store = tokencache.Store(store_url)
    origin = idp.authority.rsplit("/", 1)[0]
    tenants = ["7e57a000-0000-4000-8000-%012d" % (100 + i) for i in range(50)]
    before = idp.stats().get("client_credentials", 0)
    tokens = {}
    for tenant in tenants:
        app = msal.ConfidentialClientApplication(
            "confidential-app", client_credential="confidential-secret",
            authority="%s/%s" % (origin, tenant), token_cache=store.token_cache(),
            instance_discovery=False)
        result = app.acquire_token_for_client(["api://test-api/.default"])
        assert result.get("token_source") == "identity_provider", result.get("error_description")
        tokens[tenant] = result["access_token"]
    assert idp.stats()["client_credentials"] - before == 50
    assert len(set(tokens.values())) == 50
    for tenant in tenants:
        cache = store.token_cache()
        app = msal.ConfidentialClientApplication(
            "confidential-app", client_credential="confidential-secret",
            authority="%s/%s" % (origin, tenant), token_cache=cache, instance_discovery=False)
        result = app.acquire_token_for_client(["api://test-api/.default"])
        assert result["token_source"] == "cache"
        assert result["access_token"] == tokens[tenant]
        assert repr(cache) == "<tokencache.StoreTokenCache partitions=['confidential-app_%s_AppTokenCache']>" % tenant
    assert idp.stats()["client_credentials"] - before == 50
    assert sorted(idp.stats()["tenants"]) == sorted(tenants)


def expire(store, home):
    """Makes the user's access token expired, as time would."""
    cache = store.token_cache(home)
    for at in list(cache.search(AT, query={"home_account_id": home}, now=0)):
        cache.modify(AT, at, {"expires_on": "1", "extended_expires_on": "1"})


def test_four_processes_refresh_an_expired_token_once_and_lose_no_update(idp, store_url):
    store = tokencache.Store(store_url)
    home = sign_in(idp, store, "bob")
    expire(store, home)
    before = idp.stats().get("refresh_token", 0)
    script = os.path.join(HERE, "store_peers.py")
    procs = [subprocess.Popen([sys.executable, script, "silent", store_url, idp.authority, home,
                               " ".join(SCOPES)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    tokens = set()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        tokens.add(json.loads(out)["token"])
    assert idp.stats().get("refresh_token", 0) == before + 1, "one refresh for four workers"
    assert len(tokens) == 1, "every worker got the one refreshed token"
    # Writers on one partition: every access token of every worker is kept.
    writers = [subprocess.Popen([sys.executable, script, "add", store_url, "shared", str(w), "25"],
                                stderr=subprocess.PIPE, text=True) for w in range(4)]
    for w in writers:
        assert w.wait(120) == 0, w.stderr.read()
    partition = store.token_cache("shared.t")._partition("shared.t")
    assert partition.count(AT) == 100, "no lost update"


def test_a_store_that_is_down_raises_or_reads_as_empty_by_policy_and_recovers(idp):
    redis = Redis()
    try:
        failing = tokencache.Store(redis.url)
        lenient = tokencache.Store(redis.url, failure_policy="treat_as_miss")
        home = sign_in(idp, failing, "alice")
        redis.stop()
        with pytest.raises(tokencache.StoreUnavailableError) as raised:
            web_app(idp, failing.token_cache(home)).get_accounts()
        assert isinstance(raised.value, tokencache.Error)
        assert web_app(idp, lenient.token_cache(home)).get_accounts() == [], "a fresh sign-in"
        redis.start()
        # Redis lost its data (no persistence): the user signs in again, and it works.
        home = sign_in(idp, failing, "alice")
        assert len(web_app(idp, failing.token_cache(home)).get_accounts()) == 1
    finally:
        redis.close()


def test_encrypted_partitions_and_urls_without_secrets(tmp_path):
    key = tmp_path / "store.key"
    url = "sqlite://%s" % (tmp_path / "t.db")
    store = tokencache.Store(url, key_file=str(key))
    cache = store.token_cache()
    cache.add(user_event("a"))
    raw = (tmp_path / "t.db").read_bytes()
    assert b"at-a-0" not in raw and b"rt-a-0" not in raw
    assert len(list(tokencache.Store(url, key_file=str(key)).token_cache("a.t").search("Account"))) == 1
    with pytest.raises(tokencache.Error):
        list(tokencache.Store(url).token_cache("a.t").search("Account"))
    shown = repr(tokencache.Store("redis://:hunter2@127.0.0.1:1/0"))
    assert "hunter2" not in shown
    with pytest.raises(ValueError):
        tokencache.Store("ftp://nowhere").backend


def test_rotating_the_key_keeps_old_partitions_readable_and_moves_each_at_its_next_save(tmp_path):
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    url = "sqlite://%s" % (tmp_path / "t.db")
    before = tokencache.Store(url, key_file=old, key_id="k1")
    for user in ("a", "b"):
        before.token_cache().add(user_event(user))
    rotating = tokencache.Store(url, key_file=new, key_id="k2", previous_key_file=old, previous_key_id="k1")

    def accounts(store, home):
        return len(list(store.token_cache(home).search("Account", query={"home_account_id": home})))

    assert accounts(rotating, "a.t") == 1 and accounts(rotating, "b.t") == 1, "both read under the old key"
    rotating.token_cache().add(user_event("a", n=1))  # a's next save
    only_new = tokencache.Store(url, key_file=new, key_id="k2")
    assert accounts(only_new, "a.t") == 1, "a moved to the new key"
    with pytest.raises(tokencache.Error, match="k1"):
        accounts(only_new, "b.t")  # b has not been saved since: still under the old key
    with pytest.raises(tokencache.Error, match="k2"):
        accounts(tokencache.Store(url, key_file=old, key_id="k1"), "a.t")
    # A previous key is read, never made; it needs the current one and its id.
    with pytest.raises(tokencache.Error):
        tokencache.Store(url, key_file=new, key_id="k2", previous_key_file=tmp_path / "missing.key",
                         previous_key_id="k0")
    with pytest.raises(ValueError):
        tokencache.Store(url, previous_key_file=old, previous_key_id="k1")
    with pytest.raises(ValueError):
        tokencache.Store(url, key_file=new, key_id="k2", previous_key_file=old)


def test_on_behalf_of_saves_to_the_users_partition_and_silent_calls_reuse_it(idp, tmp_path):
    store = tokencache.Store("sqlite://%s" % (tmp_path / "api.db"))
    # The user signs in to a public client that calls the API...
    user_app = msal.PublicClientApplication("public-app", authority=idp.authority,
                                            instance_discovery=False)
    flow = user_app.initiate_auth_code_flow(["api://confidential-app/access_as_user"],
                                            redirect_uri="http://127.0.0.1:53682/callback")
    user = user_app.acquire_token_by_auth_code_flow(flow, idp.browse(flow["auth_uri"], "alice"))
    assert "access_token" in user, user.get("error_description")
    # ... and the API (a confidential client) calls a downstream API on the user's behalf.
    api = web_app(idp, store.token_cache())
    obo = api.acquire_token_on_behalf_of(user["access_token"], ["api://downstream/.default"])
    assert "access_token" in obo, obo.get("error_description")
    (account,) = api.get_accounts()
    home = account["home_account_id"]
    assert home.startswith("a11ce000-0000-4000-8000-00000000a11c.")
    later = web_app(idp, store.token_cache(home))
    hit = later.acquire_token_silent(["api://downstream/.default"], later.get_accounts()[0])
    assert hit["token_source"] == "cache" and hit["access_token"] == obo["access_token"]


def _forked_worker(store, home, authority, scopes, out):
    cache = store.token_cache(home)
    app = msal.ConfidentialClientApplication(
        "confidential-app", client_credential="confidential-secret", authority=authority,
        token_cache=cache, instance_discovery=False)
    result = app.acquire_token_silent(scopes, app.get_accounts()[0])
    out.put(result["access_token"])


def test_a_store_opened_before_fork_works_in_every_worker(idp, tmp_path):
    # gunicorn --preload: the app (and its store) is made, and used, before the workers fork.
    import multiprocessing

    store = tokencache.Store("sqlite://%s" % (tmp_path / "forked.db"))
    home = sign_in(idp, store, "bob")
    expire(store, home)
    before = idp.stats().get("refresh_token", 0)
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    workers = [fork.Process(target=_forked_worker, args=(store, home, idp.authority, SCOPES, out))
               for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    tokens = {out.get(timeout=5) for _ in workers}
    assert len(tokens) == 1
    assert idp.stats().get("refresh_token", 0) == before + 1, "one refresh across forked workers"
    # The parent's store still works after its children used their own.
    assert len(web_app(idp, store.token_cache(home)).get_accounts()) == 1
