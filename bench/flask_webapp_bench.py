"""The Flask sample's API page at many signed-in users, two ways, in one run.

  .venv/bin/python bench/flask_webapp_bench.py [--users 10000] [--seconds 10] [--connections 16]
      [--workers 4] [--threads 1] [--storm-users 20] [--storm-calls 10]

The same Flask app (python/examples/flask_webapp) under gunicorn with 4 workers, twice: with
tokencache (`tokencache.Store(redis://...)`, one partition per user) and with the recipe the seed
page describes (bench/flask_recipe.py: a `msal.SerializableTokenCache` per user loaded from and
saved to Redis with redis-py around every request). Both on one Redis, against the loopback
OpenID provider over HTTPS (discovery, and the demo API the page calls with the user's token).
Every user is signed in first: a token response per user (an access token signed by the
provider's key, so the API accepts it) is stored both ways, and a server-side session per user
is made through the app's own session interface. Then `wrk` asks for GET /call-api as random
users for the given time, per variant; reported: requests per second, p50 and p99 latency, the
CPU time the app's workers used per request (all their threads; the provider, Redis and wrk
share the machine but are not counted), and answers that were not 200 (must be none). Then the refresh storm: S more users sign in for real
(through the app and the provider), and once their access tokens need a refresh (the provider
issues them for 312 s; MSAL wants 5 minutes left), C concurrent API pages each; counted: the
provider's refresh requests, pages that failed, and users whose stored refresh token the
provider refuses afterwards (it rotates refresh tokens and refuses a used one, as many OpenID
providers do; Entra ID does not refuse reuse, so there the recipe costs extra refreshes, not
sign-outs). The order of the variants is BENCH_ORDER (recipe,tokencache). Needs .venv (bash .ci/setup-python-package), the
sample's requirements, wrk, redis-server and node (bash .ci/setup-system, .ci/setup-idp).
"""

import argparse
import base64
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import jwt
import msal
import requests

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = REPO / "python" / "examples" / "flask_webapp"
sys.path[:0] = [str(REPO / "python" / "tests"), str(SAMPLE), str(REPO / "bench")]

import flask  # noqa: E402
import redis  # noqa: E402
import webapp  # noqa: E402
from flask_recipe import KEY as RECIPE_KEY  # noqa: E402
from flask_sample import SCOPES as SCOPE  # noqa: E402
from flask_sample import WebApp, provider, sample_env, sign_in  # noqa: E402
from idp import TENANT  # noqa: E402
from servers import Redis, free_port  # noqa: E402

import tokencache  # noqa: E402

CLIENT = "web-app"
AT_TTL = 312  # the provider's access tokens: usable for 12 s (MSAL Python wants 5 minutes left)
VARIANTS = os.environ.get("BENCH_ORDER", "recipe,tokencache").split(",")


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def user(n):
    oid = "00000000-0000-4000-8000-%012d" % n
    return oid, "user%d@example.test" % n


class Tokens:
    """Token responses for the provider's users, access tokens signed with its key."""

    def __init__(self, idp):
        with open(REPO / "tests" / "idp" / ".generated" / "jwks.json") as f:
            jwk = json.load(f)["keys"][0]
        self.kid = jwk["kid"]
        self.key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
        self.issuer = idp.issuer

    def event(self, n, now):
        oid, username = user(n)
        access = jwt.encode({
            "iss": self.issuer, "sub": oid, "aud": "api://test-api", "scope": SCOPE, "client_id": CLIENT,
            "oid": oid, "tid": TENANT, "azp": CLIENT, "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex,
        }, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "at+jwt"})
        claims = {"iss": self.issuer, "sub": oid, "oid": oid, "tid": TENANT, "aud": CLIENT, "iat": now,
                  "nbf": now, "exp": now + 3600, "name": "User %d" % n, "preferred_username": username}
        return {
            "client_id": CLIENT, "scope": [SCOPE], "token_endpoint": self.issuer + "/token",
            "grant_type": "authorization_code", "environment": "127.0.0.1", "params": {},
            "data": {"scope": [SCOPE], "claims": None},
            "response": {
                "token_type": "Bearer", "scope": SCOPE + " openid profile offline_access",
                "expires_in": 3600, "ext_expires_in": 3600, "access_token": access,
                "refresh_token": "rt-%d-%s" % (n, uuid.uuid4().hex),
                "id_token": "%s.%s.c2ln" % (b64({"alg": "RS256", "typ": "JWT"}), b64(claims)),
                "client_info": b64({"uid": oid, "utid": TENANT}),
            },
        }


def account(n):
    oid, username = user(n)
    return {"home_account_id": "%s.%s" % (oid, TENANT), "environment": "127.0.0.1", "realm": TENANT,
            "local_account_id": oid, "username": username, "authority_type": "MSSTS",
            "account_source": "authorization_code"}


def sign_everyone_in(users, idp, redis_url, settings, cookie_file):
    """Both token caches filled, and a session per user (its cookie written to `cookie_file`)."""
    tokens = Tokens(idp)
    store = tokencache.Store(redis_url)
    r = redis.Redis.from_url(redis_url)
    now = int(time.time())
    app = webapp.create_app(settings, webapp.StoreCaches(store))
    pipe = r.pipeline(transaction=False)
    with open(cookie_file, "w") as cookies:
        for n in range(1, users + 1):
            event = tokens.event(n, now)
            store.token_cache().add(event, now=now)
            recipe = msal.SerializableTokenCache()
            recipe.add(event, now=now)
            pipe.set(RECIPE_KEY % account(n)["home_account_id"], recipe.serialize())
            if n % 500 == 0:
                pipe.execute()
            with app.test_request_context("/"):
                session = app.session_interface.open_session(app, flask.request)
                session.update(account=account(n), name="User %d" % n, csrf=uuid.uuid4().hex)
                answer = app.response_class()
                app.session_interface.save_session(app, session, answer)
            cookie = answer.headers["Set-Cookie"].split(";", 1)[0]
            cookies.write(cookie + "\n")
    pipe.execute()
    # MSAL finds the account the session names, in both stores.
    check = msal.ConfidentialClientApplication(CLIENT, client_credential="web-secret", authority=idp.authority,
                                               token_cache=store.token_cache(account(1)["home_account_id"]),
                                               instance_discovery=False)
    assert check.get_accounts() == [account(1)], check.get_accounts()


def check_pages(url, cookie_file, users):
    """A few users' pages: each sees their own data, served from the cache."""
    with open(cookie_file) as f:
        cookies = f.read().split()
    for n in sorted({1, users, (users + 1) // 2}):
        name, value = cookies[n - 1].split("=", 1)
        page = requests.get(url + "/call-api", cookies={name: value}, allow_redirects=False, timeout=30)
        assert page.status_code == 200, (n, page.status_code, page.text[:300])
        assert "user%d@example.test" % n in page.text and 'class="badge">cache<' in page.text, page.text[:800]


def stored_refresh_token(variant, redis_url, home):
    if variant == "tokencache":
        cache = tokencache.Store(redis_url).token_cache(home)
    else:
        cache = msal.SerializableTokenCache()
        cache.deserialize(redis.Redis.from_url(redis_url).get(RECIPE_KEY % home).decode())
    (rt,) = cache.search("RefreshToken", query={"home_account_id": home})
    return rt["secret"]


def storm(variant, url, idp, redis_url, first, users, calls):
    """`users` users (numbers from `first`: not among the pre-filled ones) signed in for real; once their access tokens need a refresh, `calls`
    concurrent API page requests each. Counted: the provider's refresh requests, pages that
    failed (not 200), and users whose stored refresh token the provider no longer accepts
    (signed out in effect: the provider rotates refresh tokens and refuses a used one)."""
    cookies = [sign_in(url, idp, "user%d" % n).cookies.get_dict() for n in range(first, first + users)]
    time.sleep(AT_TTL - 300 + 1)  # every access token issued above now needs a refresh
    before = idp.stats().get("refresh_token", 0)
    answers = []
    start = threading.Barrier(users * calls)

    def call(i):
        start.wait()
        page = requests.get(url + "/call-api", cookies=cookies[i % users], allow_redirects=False, timeout=120)
        answers.append(page.status_code)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(users * calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refreshes = idp.stats().get("refresh_token", 0) - before
    signed_out = 0
    for n in range(first, first + users):
        home = "%s.%s" % (user(n)[0], TENANT)
        redeemed = requests.post(idp.issuer + "/token", verify=idp.ca, timeout=30, data={
            "grant_type": "refresh_token", "refresh_token": stored_refresh_token(variant, redis_url, home),
            "client_id": CLIENT, "client_secret": "web-secret"})
        signed_out += redeemed.status_code != 200
    return {"refreshes": refreshes, "failed": sum(a != 200 for a in answers), "signed_out": signed_out}


def load(url, seconds, connections, cookie_file):
    out = subprocess.run(["wrk", "-t2", "-c%d" % connections, "-d%ds" % max(1, round(seconds)), "--timeout", "30s",
                          "-s", str(REPO / "bench" / "flask_wrk.lua"), url, "--", cookie_file],
                         capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    result = dict((k, int(v)) for k, v in (kv.split("=") for kv in line.split()[1:]))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--storm-users", type=int, default=20)
    parser.add_argument("--storm-calls", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (bash .ci/setup-system installs it)")
    work = pathlib.Path(tempfile.mkdtemp())
    port = free_port()
    idp = provider(work, [port], IDP_EXTRA_USERS=args.users + args.storm_users, IDP_AT_TTL=AT_TTL)
    server = Redis()
    results, storms = {}, {}
    try:
        env = sample_env(idp, server.url, work / "sessions", WEBAPP_THREADS=str(args.threads),
                         BENCH_RECIPE_REDIS=server.url)
        settings = webapp.Settings.from_env(env)
        cookie_file = str(work / "cookies.txt")
        t0 = time.perf_counter()
        sign_everyone_in(args.users, idp, server.url, settings, cookie_file)
        print("%d users signed in, both ways, in %.0f s" % (args.users, time.perf_counter() - t0))
        for variant in VARIANTS:
            if variant == "recipe":
                app = WebApp(env, work / variant, port=port, workers=args.workers,
                             pythonpath=REPO / "bench", app="flask_recipe:create_app()")
            else:
                app = WebApp(env, work / variant, port=port, workers=args.workers)
            try:
                check_pages(app.url, cookie_file, args.users)
                load(app.url, min(2, args.seconds), args.connections, cookie_file)  # warm-up
                cpu = app.cpu_seconds()
                results[variant] = load(app.url, args.seconds, args.connections, cookie_file)
                results[variant]["cpu_ms"] = (app.cpu_seconds() - cpu) / results[variant]["requests"] * 1e3
                if args.storm_users:
                    storms[variant] = storm(variant, app.url, idp, server.url, args.users + 1,
                                            args.storm_users, args.storm_calls)
            finally:
                app.stop()
    finally:
        idp.stop()
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    recipe, ours = results["recipe"], results["tokencache"]
    print("GET /call-api, %d signed-in users, gunicorn %d workers x %d threads, wrk %d connections, %.0f s each; "
          "MSAL Python %s, one Redis" % (args.users, args.workers, args.threads, args.connections, args.seconds,
                                         msal.__version__))
    print("  %-28s %18s %18s %9s" % ("", "recipe (redis-py)", "tokencache.Store", "ratio"))
    print("  %-28s %18.0f %18.0f %8.2fx" % ("requests per second", recipe["rps"], ours["rps"], ours["rps"] / recipe["rps"]))
    for label, key in (("p50 latency (ms)", "p50_us"), ("p99 latency (ms)", "p99_us")):
        print("  %-28s %18.2f %18.2f %8.2fx" % (label, recipe[key] / 1e3, ours[key] / 1e3, recipe[key] / max(1, ours[key])))
    print("  %-28s %18.2f %18.2f %8.2fx" % ("app CPU per request (ms)", recipe["cpu_ms"], ours["cpu_ms"],
                                          recipe["cpu_ms"] / ours["cpu_ms"]))
    print("  %-28s %18d %18d" % ("answers other than 200", recipe["failures"] + recipe["socket_errors"],
                                 ours["failures"] + ours["socket_errors"]))
    if storms:
        print("Expiring tokens: %d users signed in for real, then %d concurrent API pages each once their "
              "tokens need a refresh" % (args.storm_users, args.storm_calls))
        print("  %-28s %18s %18s" % ("", "recipe (redis-py)", "tokencache.Store"))
        for label, key in (("refresh requests", "refreshes"), ("pages that failed", "failed"),
                           ("users signed out", "signed_out")):
            print("  %-28s %18d %18d" % (label, storms["recipe"][key], storms["tokencache"][key]))
        ours_storm = storms["tokencache"]
        if (ours_storm["refreshes"], ours_storm["failed"], ours_storm["signed_out"]) != (args.storm_users, 0, 0):
            sys.exit("tokencache: expected one refresh per user and no failure")
    if recipe["failures"] + recipe["socket_errors"] + ours["failures"] + ours["socket_errors"]:
        sys.exit("some requests failed")


if __name__ == "__main__":
    main()
