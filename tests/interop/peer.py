"""MSAL Python 1.39 as a live interop peer for the Rust tests.

  peer.py search FILE NOW          read a cache Rust wrote; search every entry the way MSAL does;
                                   print {"found": {...}, "missing": [...]} as JSON
  peer.py mutate IN OUT NOW        read IN, add new token responses and remove some entries with
                                   MSAL's own API, write OUT, print the answers of probe queries
  peer.py reserialize FILE         read a cache and print what MSAL Python's serialize() writes
                                   for the same content (no newline added)
"""
import base64
import json
import sys

import msal

assert msal.__version__ == "1.39.0", msal.__version__
AT, RT, IDT, ACCT = "AccessToken", "RefreshToken", "IdToken", "Account"


def load(path):
    cache = msal.SerializableTokenCache()
    with open(path, encoding="ascii") as f:
        cache.deserialize(f.read())
    return cache


def search(path, now):
    cache = load(path)
    found = {AT: 0, RT: 0, IDT: 0, ACCT: 0}
    missing = []
    raw = json.loads(open(path, encoding="ascii").read())
    for key, e in raw.get(AT, {}).items():
        q = {k: e.get(k) for k in ("home_account_id", "environment", "client_id", "realm")}
        if e.get("ext_cache_key"):
            q["ext_cache_key"] = e["ext_cache_key"]
        hits = list(cache.search(AT, target=e["target"].split(), query=q, now=now))
        ok = any(h["secret"] == e["secret"] for h in hits)
        found[AT] += ok
        if not ok:
            missing.append(key)
    for key, e in raw.get(RT, {}).items():
        q = {"home_account_id": e["home_account_id"], "environment": e["environment"], "client_id": e["client_id"]}
        ok = any(h["secret"] == e["secret"] for h in cache.search(RT, query=q))
        found[RT] += ok
        if not ok:
            missing.append(key)
    for key, e in raw.get(IDT, {}).items():
        q = {k: e[k] for k in ("home_account_id", "environment", "client_id", "realm")}
        ok = any(h["secret"] == e["secret"] for h in cache.search(IDT, query=q))
        found[IDT] += ok
        if not ok:
            missing.append(key)
    for key, e in raw.get(ACCT, {}).items():
        q = {k: e[k] for k in ("home_account_id", "environment", "realm")}
        ok = any(h.get("username") == e.get("username") for h in cache.search(ACCT, query=q))
        found[ACCT] += ok
        if not ok:
            missing.append(key)
    print(json.dumps({"found": found, "missing": missing, "serialized_equal": cache.serialize() == open(path, encoding="ascii").read()}))


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def mutate(src, dst, now):
    cache = load(src)
    # Add: a new user signs in to a new app, and an app token for a new tenant.
    claims = {"sub": "py-sub", "oid": "py-oid", "preferred_username": "python@contoso.com", "tid": "py-tenant"}
    id_token = "e30.%s.sig" % b64(claims)
    cache.add({
        "client_id": "python-app", "scope": ["Mail.Read", "openid"], "grant_type": "authorization_code",
        "token_endpoint": "https://login.microsoftonline.com/py-tenant/oauth2/v2.0/token",
        "environment": "login.microsoftonline.com", "data": {}, "params": {},
        "response": {"access_token": "PY-AT", "refresh_token": "PY-RT", "expires_in": 3600, "id_token": id_token,
                     "client_info": b64({"uid": "py-uid", "utid": "py-tenant"}), "scope": "Mail.Read openid"},
    }, now=now)
    cache.add({
        "client_id": "python-daemon", "scope": ["api://x/.default"], "grant_type": "client_credentials",
        "token_endpoint": "https://login.microsoftonline.com/daemon-tenant/oauth2/v2.0/token", "data": {},
        "response": {"access_token": "PY-APP-AT", "expires_in": 3600},
    }, now=now)
    # Remove: every refresh token of the first account, and one access token.
    accounts = list(cache.search(ACCT, query={}))
    victim = accounts[0]["home_account_id"]
    for rt in list(cache.search(RT, query={"home_account_id": victim})):
        cache.remove_rt(rt)
    ats = list(cache.search(AT, query={}, now=now))
    cache.remove_at(ats[-1])
    # Probes: what MSAL's queries answer now.
    probes = []
    for a in cache.search(ACCT, query={}):
        hid, env = a["home_account_id"], a["environment"]
        rts = sorted(h["secret"] for h in cache.search(RT, query={"home_account_id": hid, "environment": env}))
        probes.append({"kind": "rt", "home_account_id": hid, "environment": env, "secrets": rts})
    for at in cache.search(AT, query={}, now=now):
        q = {k: at.get(k) for k in ("home_account_id", "environment", "client_id", "realm")}
        for scope in at["target"].split():
            hits = sorted(h["secret"] for h in cache.search(AT, target=[scope], query=q, now=now)
                          if not h.get("ext_cache_key"))
            probes.append({"kind": "at", "query": q, "scope": scope, "secrets": hits})
    accounts = sorted(a["home_account_id"] for a in cache.search(ACCT, query={}))
    with open(dst, "w", encoding="ascii", newline="") as f:
        f.write(cache.serialize())
    print(json.dumps({"removed_rts_of": victim, "removed_at": ats[-1]["secret"], "accounts": accounts, "probes": probes}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "search":
        search(sys.argv[2], int(sys.argv[3]))
    elif cmd == "mutate":
        mutate(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "reserialize":
        sys.stdout.write(load(sys.argv[2]).serialize())
    else:
        sys.exit("unknown command " + cmd)
