"""tokencache.TokenCache against MSAL Python's own SerializableTokenCache: the same events give
the same bytes, and the behaviours MSAL's tests/test_token_cache.py checks hold (our own
equivalents, written from the reference spec)."""

import json
import threading

import msal
import pytest

import tokencache
from conftest import GOLDEN, app_event, user_event

AT, RT, IDT, ACCOUNT, APP = (
    "AccessToken", "RefreshToken", "IdToken", "Account", "AppMetadata")


def add_all(cache, events):
    for e in events:
        e = dict(e)
        now = e.pop("_now")
        cache.add(json.loads(json.dumps(e)), now=now)


def test_is_an_msal_serializable_token_cache():
    assert isinstance(tokencache.TokenCache(), msal.SerializableTokenCache)
    assert issubclass(tokencache.PersistedTokenCache, msal.SerializableTokenCache)


NEWEST = msal.__version__ == "1.39.0"


def test_serialize_is_byte_identical_to_msal_python_for_every_golden_scenario(scenarios):
    # The golden files are what MSAL Python 1.39 writes; tokencache writes the newest MSAL's
    # format whichever MSAL is installed (older ones lack ext_cache_key, for one).
    for name, events in scenarios.items():
        ours = tokencache.TokenCache()
        add_all(ours, events)
        assert ours.serialize() == (GOLDEN / (name + ".json")).read_text(), name
        if NEWEST:
            theirs = msal.SerializableTokenCache()
            add_all(theirs, events)
            assert ours.serialize() == theirs.serialize(), name


def test_deserialize_then_serialize_round_trips_msal_output(scenarios):
    for name in scenarios:
        text = (GOLDEN / (name + ".json")).read_text()
        cache = tokencache.TokenCache()
        cache.deserialize(text)
        assert cache.serialize() == text, name


def test_has_state_changed_follows_msal():
    cache = tokencache.TokenCache()
    assert not cache.has_state_changed
    cache.add(user_event("a"))
    assert cache.has_state_changed
    cache.serialize()
    assert not cache.has_state_changed
    cache.deserialize(cache.serialize())
    assert not cache.has_state_changed
    rt = next(cache.search(RT))
    cache.update_rt(rt, "rt-new")
    assert cache.has_state_changed


def test_search_semantics_match_msal():
    ours, theirs = tokencache.TokenCache(), msal.SerializableTokenCache()
    for cache in (ours, theirs):
        cache.add(user_event("a", scope=("A", "b", "c")))
        cache.add(user_event("a", scope=("A", "d"), n=1))
        cache.add(user_event("b", scope=("A",)))
        cache.add(app_event("t1"))
    queries = [
        (AT, ["A"], {"home_account_id": "a.t"}),
        (AT, ["A", "b", "c"], {"home_account_id": "a.t", "environment": "LOGIN.example.com",
                              "client_id": "cid", "realm": "t"}),
        (AT, ["a", "b", "c"], {"home_account_id": "a.t", "environment": "login.example.com",
                              "client_id": "cid", "realm": "t"}),
        (AT, ["a"], {"home_account_id": "a.t"}),
        (AT, None, {"home_account_id": None, "client_id": "daemon"}),
        (RT, None, {"home_account_id": "a.t", "environment": "login.example.com"}),
        (RT, None, {"family_id": "1"}),
        (RT, None, {"client_id": "cid"}),
        (ACCOUNT, None, {"environment": "login.example.com"}),
        (ACCOUNT, None, {"home_account_id": "b.t"}),
        (IDT, None, {"home_account_id": "a.t", "realm": "t"}),
        (APP, None, {"client_id": "cid"}),
        (AT, None, None),
    ]
    for section, target, query in queries:
        got = list(ours.search(section, target=target, query=query))
        want = list(theirs.search(section, target=target, query=query))
        assert got == want, (section, target, query)


def test_an_exhausted_access_token_search_purges_every_expired_one_and_an_early_stop_none():
    cache = tokencache.TokenCache()
    cache.add(user_event("a", expires_in=10), now=1000)
    cache.add(user_event("b", expires_in=3600), now=1000)
    gen = cache.search(AT, query={"home_account_id": "b.t"}, now=2000)
    next(gen)
    gen.close()
    assert len(list(cache.search(AT, now=1005))) == 2, "an early stop deleted nothing"
    assert list(cache.search(AT, query={"home_account_id": "nobody"}, now=2000)) == []
    assert [e["secret"] for e in cache.search(AT, now=0)] == ["at-b-0"], "a's expired AT went"


def test_the_exact_key_lookup_ignores_expiry_as_msal_does():
    cache = tokencache.TokenCache()
    cache.add(user_event("a", expires_in=10), now=1000)
    q = {"home_account_id": "a.t", "environment": "login.example.com", "client_id": "cid", "realm": "t"}
    assert len(list(cache.search(AT, target=["User.Read"], query=q, now=5000))) == 1


def test_same_scopes_overwrite_and_different_key_id_overwrites():
    cache = tokencache.TokenCache()
    cache.add(user_event("a", scope=("A", "b", "c")), now=1000)
    cache.add(user_event("a", scope=("c", "b", "A"), n=1), now=1000)
    assert [e["secret"] for e in cache.search(AT, now=1000)] == ["at-a-1"]
    e = user_event("a", scope=("A", "b", "c"), n=2)
    e["data"]["key_id"] = "k2"
    cache.add(e, now=1000)
    ats = list(cache.search(AT, now=1000))
    assert len(ats) == 1 and ats[0]["key_id"] == "k2"


def test_refresh_token_update_keeps_the_entry_and_its_position():
    ours, theirs = tokencache.TokenCache(), msal.SerializableTokenCache()
    for cache in (ours, theirs):
        cache.add(user_event("a", foci="1"), now=1000)
        cache.add(user_event("b"), now=1000)
        rt = next(cache.search(RT, query={"home_account_id": "a.t"}))
        cache.modify(RT, rt, {"secret": "rt-new", "last_modification_time": "2000"})
    assert ours.serialize() == theirs.serialize()


def test_removals_match_msal():
    ours, theirs = tokencache.TokenCache(), msal.SerializableTokenCache()
    for cache in (ours, theirs):
        cache.add(user_event("a"))
        cache.add(user_event("b"))
        cache.remove_rt(next(cache.search(RT, query={"home_account_id": "a.t"})))
        cache.remove_at(next(cache.search(AT, query={"home_account_id": "a.t"})))
        cache.remove_idt(next(cache.search(IDT, query={"home_account_id": "a.t"})))
        cache.remove_account(next(cache.search(ACCOUNT, query={"home_account_id": "a.t"})))
        cache.modify(RT, {"home_account_id": "nobody", "environment": "e", "client_id": "c"})
    assert ours.serialize() == theirs.serialize()


def test_app_metadata_and_access_token_getters():
    cache = tokencache.TokenCache()
    cache.add(user_event("a", foci="1"), now=1000)
    assert cache._get_app_metadata("login.example.com", "cid")["family_id"] == "1"
    assert cache._get_app_metadata("login.example.com", "other", default={}) == {}
    at = cache._get_access_token("a.t", "login.example.com", "cid", "t", ["User.Read"])
    assert at["secret"] == "at-a-0"


def test_an_invalid_token_endpoint_is_refused_before_anything_is_written():
    cache = tokencache.TokenCache()
    e = user_event("a")
    e["token_endpoint"] = "http://login.example.com/t/oauth2/v2.0/token"
    with pytest.raises(tokencache.InvalidResponseError) as raised:
        cache.add(e)
    assert isinstance(raised.value, tokencache.Error)
    assert "at-a-0" not in str(raised.value)
    assert cache.serialize() == "{}"


def test_a_corrupt_state_raises_and_changes_nothing():
    cache = tokencache.TokenCache()
    cache.add(user_event("a"), now=1000)
    before = cache.serialize()
    with pytest.raises(tokencache.CorruptCacheError):
        cache.deserialize('{"AccessToken": ')
    assert cache.serialize() == before


def test_repr_shows_counts_and_no_secret():
    cache = tokencache.TokenCache()
    cache.add(user_event("a"), now=1000)
    text = repr(cache)
    assert "Account=1" in text and "AccessToken=1" in text
    assert "at-a" not in text and "rt-a" not in text


def test_sixteen_threads_add_and_search_one_cache_and_lose_nothing():
    cache = tokencache.TokenCache()
    errors = []

    def work(t):
        try:
            for i in range(50):
                uid = "u%d-%d" % (t, i)
                cache.add(user_event(uid))
                q = {"home_account_id": uid + ".t", "environment": "login.example.com",
                     "client_id": "cid", "realm": "t"}
                assert len(list(cache.search(AT, target=["User.Read"], query=q))) == 1
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(cache.search(ACCOUNT))) == 16 * 50
    assert len(list(cache.search(RT))) == 16 * 50
