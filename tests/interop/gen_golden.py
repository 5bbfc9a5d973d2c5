"""Generate the golden cache files with the real MSAL Python.

Writes OUT/scenarios.json (the token events, shared with the Rust tests) and OUT/<name>.json:
what msal.SerializableTokenCache.serialize() returns after add()ing each scenario's events.
Run: python tests/interop/gen_golden.py tests/golden
     python tests/interop/gen_golden.py --examples examples/caches   (the sample caches)
"""
import base64
import json
import os
import sys

import msal

assert msal.__version__ == "1.39.0", msal.__version__


def b64(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims):
    return "%s.%s.ZmFrZXNpZ25hdHVyZQ" % (b64({"alg": "RS256", "typ": "JWT", "kid": "fakekid"}), b64(claims))


NOW = 1700000000
CID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
UID, UTID = "00000000-0000-0000-aaaa-111111111111", "72f988bf-86f1-41af-91ab-2d7cd011db47"
AAD = "https://login.microsoftonline.com/%s/oauth2/v2.0/token"


def user_claims(uid=UID, tid=UTID, username="jane@contoso.com", name="Jane Doe", aud=CID):
    return {"aud": aud, "iss": "https://login.microsoftonline.com/%s/v2.0" % tid, "iat": NOW, "nbf": NOW,
            "exp": NOW + 3600, "name": name, "oid": uid, "preferred_username": username,
            "sub": "sub-" + uid, "tid": tid, "ver": "2.0"}


def user_response(n, uid=UID, utid=UTID, scope="User.Read profile openid email", foci=True, **extra):
    r = {"token_type": "Bearer", "scope": scope, "expires_in": 4567, "ext_expires_in": 4567,
         "access_token": "eyJ0eXAi.FAKE-AT-%d.sig" % n, "refresh_token": "0.FAKE-RT-%d" % n,
         "id_token": jwt(user_claims(uid=uid, tid=utid, **extra.pop("claims", {}))),
         "client_info": b64({"uid": uid, "utid": utid})}
    if foci:
        r["foci"] = "1"
    r.update(extra)
    return r


def event(response, client_id=CID, tenant="organizations", grant_type="authorization_code", scope=None,
          data=None, now=NOW, endpoint=None, **more):
    e = {"client_id": client_id, "scope": scope if scope is not None else response.get("scope", "").split(),
         "token_endpoint": endpoint or AAD % tenant, "grant_type": grant_type, "response": response,
         "params": {}, "data": data if data is not None else {"scope": ["openid"], "claims": None}}
    e.update(more)
    e["_now"] = now
    return e


SCENARIOS = {
    "auth_code_foci": [event(dict(user_response(1), refresh_in=2283), environment="login.microsoftonline.com")],
    "spec_example": [
        event(dict(user_response(1), refresh_in=2283), environment="login.microsoftonline.com",
              data={"code": "c", "redirect_uri": "http://localhost", "code_verifier": "v",
                    "scope": ["User.Read"], "claims": None}),
        event({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "FAKE-APP-AT"},
              client_id="my-daemon-app", tenant="contoso.onmicrosoft.com", grant_type="client_credentials",
              scope=["https://graph.microsoft.com/.default"], environment="login.microsoftonline.com",
              data={"scope": ["https://graph.microsoft.com/.default"]}),
    ],
    "client_credentials": [
        event({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "APP-AT-%d" % i},
              client_id="my-daemon-app", tenant="tenant-%d" % i, grant_type="client_credentials",
              scope=["https://graph.microsoft.com/.default"], data={})
        for i in range(3)
    ],
    "adfs": [event({"token_type": "Bearer", "expires_in": "3600", "access_token": "ADFS-AT",
                    "refresh_token": "ADFS-RT", "id_token": jwt({"sub": "adfs-sub", "upn": "J\u00f6rg@contoso.com",
                                                                  "aud": CID, "iss": "https://fs.contoso.com/adfs"})},
                   endpoint="https://fs.contoso.com/adfs/oauth2/token", grant_type="password", scope=["s"],
                   data={"username": "ignored@contoso.com", "password": "pw"})],
    "b2c": [event(user_response(7, uid="b2c-user-b2c_1_signin", utid="b2c-tenant", foci=False,
                                claims={"username": ""}),
                  endpoint="https://contoso.b2clogin.com/contoso.onmicrosoft.com/b2c_1_signin/oauth2/v2.0/token",
                  scope=["https://contoso.onmicrosoft.com/api/read", "openid", "offline_access"])],
    "ciam": [event(user_response(8, foci=False), endpoint="https://contoso.ciamlogin.com/oauth2/v2.0/token")],
    "managed_identity": [
        event({"token_type": "Bearer", "expires_in": 86399, "refresh_in": 43199, "access_token": "MI-AT"},
              client_id="SYSTEM_ASSIGNED_MANAGED_IDENTITY", endpoint="https://localhost/managed_identity",
              grant_type=None, scope=["https://management.azure.com"], data={}),
        event({"token_type": "Bearer", "expires_on": NOW + 3000, "access_token": "MI-AT-2"},
              client_id="client-id-of-uami", endpoint="https://localhost/managed_identity",
              grant_type=None, scope=["https://vault.azure.net"], data={}),
    ],
    "ext_cache_key": [
        event({"token_type": "Bearer", "expires_in": 3600, "access_token": "FMI-AT-%d" % i},
              client_id="agent-app", tenant="contoso", grant_type="client_credentials",
              scope=["api://AzureFMITokenExchange/.default"], data={"fmi_path": path, "client_secret": "s"})
        for i, path in enumerate(["SomeFmiPath/Cred", "agent-app-id"])
    ] + [event({"token_type": "Bearer", "expires_in": 3600, "access_token": "PLAIN-AT"},
               client_id="agent-app", tenant="contoso", grant_type="client_credentials",
               scope=["api://AzureFMITokenExchange/.default"], data={}),
         event({"token_type": "Bearer", "expires_in": 3600, "access_token": "CLAIMS-AT"},
               client_id="agent-app", tenant="contoso", grant_type="client_credentials",
               scope=["api://x/.default"], data={"client_claims": '{"xms_az_nwperimid": ["abc"]}',
                                                 "key1": "value1", "key2": "value2"})],
    "non_ascii": [event(user_response(9, claims={"username": "J\u00f6rg.\u540d\u524d@contoso.com",
                                                   "name": "J\u00f6rg \U0001f600"}),
                        grant_type="urn:ietf:params:oauth:grant-type:device_code")],
    "refresh_with_refresh_in": [
        event(user_response(10), grant_type="authorization_code", environment="login.microsoftonline.com"),
        event(dict({k: v for k, v in user_response(11).items() if k != "refresh_token"}, refresh_in=1800),
              grant_type="refresh_token", skip_account_creation=True, now=NOW + 4000,
              environment="login.microsoftonline.com"),
        event(dict(user_response(12, foci=False), refresh_in=2400.0), grant_type="refresh_token",
              skip_account_creation=True, now=NOW + 8000),
    ],
    "obo_and_key_id": [
        event(user_response(13, foci=False), client_id="web-api", tenant="contoso",
              grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
              data={"assertion": "incoming", "requested_token_use": "on_behalf_of", "key_id": "kid-1"}),
        event(user_response(14, foci=False), client_id="web-api", tenant="contoso",
              grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", data={"key_id": "kid-2"}),
    ],
    "client_info_variants": [
        event({"access_token": "NO-UTID-AT", "expires_in": 60, "client_info": b64({"uid": "only-uid"}),
               "id_token": jwt({"sub": "the-sub", "preferred_username": "x@y"})}, scope=["a"]),
        event({"access_token": "NO-IDT-AT", "expires_in": 60, "client_info": b64({"uid": "u2", "utid": "t2"})},
              scope=["b"], grant_type="password", data={"username": "ropc@contoso.com"}),
        event({"access_token": "NOTHING-AT", "expires_in": 60, "client_info": b64({"uid": "u3"})}, scope=["c"]),
        event({"access_token": "BROKER-AT", "expires_in": 60, "client_info": b64({"uid": "u4", "utid": "t4"}),
               "id_token_claims": {"sub": "s4", "oid": "o4", "preferred_username": "broker@contoso.com"}},
              scope=["d"], grant_type="broker", _account_id="broker-account-id"),
    ],
    "overwrite_positions": [
        event(user_response(20, scope="A b c"), scope=["c", "A", "b"]),
        event(user_response(21, scope="A d"), scope=["A", "d"]),
        event(user_response(22, scope="c b A"), scope=["c", "b", "A"]),
        event(user_response(23, uid="second-user"), tenant="common"),
        event(user_response(24, foci=False), scope=["c", "A", "b"]),
    ],
}


def examples():
    """Sample caches for the README and the CLI tests (examples/caches)."""
    ps = "1950a258-227b-4e31-a9cf-717495945fc2"
    jorg = "11111111-2222-3333-4444-555555555555"
    desktop = [
        event(dict(user_response(1), refresh_in=2283), environment="login.microsoftonline.com"),
        event(user_response(2, scope="https://management.core.windows.net//user_impersonation openid profile"),
              client_id=ps, environment="login.microsoftonline.com"),
        event(user_response(3, uid=jorg, claims={"username": "J\u00f6rg.\u540d\u524d@contoso.com"}),
              grant_type="urn:ietf:params:oauth:grant-type:device_code", environment="login.microsoftonline.com"),
    ] + SCENARIOS["adfs"]
    daemon = SCENARIOS["client_credentials"] + SCENARIOS["ext_cache_key"] + SCENARIOS["managed_identity"]
    return {"desktop": desktop, "daemon": daemon}


def run(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    shared = {}
    for name, events in SCENARIOS.items():
        cache = msal.SerializableTokenCache()
        for e in events:
            e = dict(e)
            now = e.pop("_now")
            cache.add(json.loads(json.dumps(e)), now=now)
        shared[name] = events
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="ascii", newline="") as f:
            f.write(cache.serialize())
    with open(os.path.join(out_dir, "scenarios.json"), "w", encoding="ascii", newline="") as f:
        json.dump(shared, f, indent=1, sort_keys=False)


def write_examples(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, events in examples().items():
        cache = msal.SerializableTokenCache()
        for e in events:
            e = dict(e)
            now = e.pop("_now")
            cache.add(json.loads(json.dumps(e)), now=now)
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="ascii", newline="") as f:
            f.write(cache.serialize())


if __name__ == "__main__":
    if sys.argv[1] == "--examples":
        write_examples(sys.argv[2])
    else:
        run(sys.argv[1])
