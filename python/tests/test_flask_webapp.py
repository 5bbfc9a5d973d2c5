"""The Flask sample (python/examples/flask_webapp) for real: under gunicorn with 4 worker
processes, against the loopback OpenID provider over HTTPS, with the token store in SQLite or
Redis. A headless Chromium signs two users in; 200 concurrent API calls for 20 users whose
access tokens expire make one refresh per user; Redis stops and comes back."""

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import pytest

pytest.importorskip("flask", reason="the Flask sample's dependencies are not installed here")
pytest.importorskip("flask_session", reason="the Flask sample's dependencies are not installed here")
pytest.importorskip("gunicorn", reason="the Flask sample's dependencies are not installed here")

import redis  # noqa: E402
import requests  # noqa: E402

import tokencache  # noqa: E402
from flask_sample import SAMPLE, WebApp, provider, sample_env, sign_in  # noqa: E402
from idp import REPO, Idp  # noqa: E402
from servers import Redis, free_port, postgres_url  # noqa: E402

SCREENSHOTS = REPO / "target" / "flask-webapp-screenshots"
ALICE = "a11ce000-0000-4000-8000-00000000a11c.7e57a000-0000-4000-8000-000000000001"
BOB = "b0b00000-0000-4000-8000-000000000b0b.7e57a000-0000-4000-8000-000000000001"


def home_of(n):
    """The home account id of the provider's extra user n (IDP_EXTRA_USERS)."""
    return "00000000-0000-4000-8000-%012d.7e57a000-0000-4000-8000-000000000001" % n


def start_app(idp, store, workdir, *, port, workers=4, policy="fail", env=None):
    """The sample under gunicorn with its sessions in `workdir`."""
    env = sample_env(idp, store, workdir / "sessions", WEBAPP_STORE_FAILURE_POLICY=policy, **(env or {}))
    return WebApp(env, workdir, port=port, workers=workers)


def partition(store, home):
    """(accounts, refresh tokens, access tokens) in a user's partition."""
    cache = store.token_cache(home)
    query = {"home_account_id": home}
    return tuple(list(cache.search(kind, query=query))
                 for kind in ("Account", "RefreshToken", "AccessToken"))


def api_claims(page):
    """The API's answer shown on the API page."""
    match = re.search(r'<pre id="api-result">(.*?)</pre>', page, re.S)
    assert match, page
    text = match.group(1).replace("&#34;", '"').replace("&quot;", '"').replace("&#39;", "'").replace("&amp;", "&")
    return json.loads(text)


def token_source(page):
    match = re.search(r'id="token-source"[^>]*>([a-z_]+)<', page)
    assert match, page
    return match.group(1)


# ----- the browser ------------------------------------------------------------------------


class Browser:
    """Headless Chromium in a profile of its own (its own cookies), through chromedriver's
    WebDriver API."""

    def __init__(self, driver):
        self._profile = tempfile.TemporaryDirectory()
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1100,800",
                # The provider's certificate is from the test's own CA.
                "--ignore-certificate-errors", "--user-data-dir=" + self._profile.name]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": args}}}}
        answer = requests.post(driver + "/session", json=caps, timeout=60).json()
        self._base = "%s/session/%s" % (driver, answer["value"]["sessionId"])

    def command(self, path, body=None):
        url = self._base + "/" + path
        answer = requests.post(url, json=body, timeout=60) if body is not None else requests.get(url, timeout=60)
        assert answer.ok, "WebDriver %s: %s" % (path, answer.text[:300])
        return answer.json()["value"]

    def go(self, url, marker):
        self.command("url", {"url": url})
        return self.wait_for(marker)

    def wait_for(self, marker):
        deadline = time.monotonic() + 20
        while True:
            page = self.command("source")
            if marker in page:
                return page
            assert time.monotonic() < deadline, "no %r in %s" % (marker, page)
            time.sleep(0.1)

    def click(self, css):
        element = self.command("element", {"using": "css selector", "value": css})
        self.command("element/%s/click" % next(iter(element.values())), {})

    def cookies(self):
        return {c["name"]: c["value"] for c in self.command("cookie")}

    def screenshot(self, name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / (name + ".png")).write_bytes(base64.b64decode(self.command("screenshot")))

    def close(self):
        requests.delete(self._base, timeout=30)
        self._profile.cleanup()


@pytest.fixture
def chromedriver():
    for path in ("/usr/bin/chromedriver", "/usr/bin/chromium"):
        if not os.path.exists(path):
            pytest.skip("%s is not installed (bash .ci/setup-system installs it)" % path)
    port = free_port()
    proc = subprocess.Popen(["/usr/bin/chromedriver", "--port=%d" % port],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(url + "/status", timeout=2).json()["value"]["ready"]:
                break
        except (requests.ConnectionError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, "chromedriver did not start"
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


def test_two_users_sign_in_with_a_browser_see_their_own_data_and_sign_out(tmp_path, chromedriver):
    port = free_port()
    idp = provider(tmp_path, [port])
    url = "sqlite://" + str(tmp_path / "tokens.db")
    app = start_app(idp, url, tmp_path / "app", port=port)
    store = tokencache.Store(url)
    browsers = []
    try:
        alice, bob = Browser(chromedriver), Browser(chromedriver)
        browsers += [alice, bob]
        alice.go(app.url + "/", 'id="anonymous"')
        alice.click("#login")  # the default user of the provider's sign-in is alice
        page = alice.wait_for('id="user"')
        assert "Welcome, <span id=\"user\">Alice Example</span>" in page
        assert "stylesheet" in page and requests.get(app.url + "/static/style.css").ok
        alice.screenshot("signed-in")
        page = bob.go(app.url + "/login?login_hint=bob", 'id="user"')
        assert "Bob Example" in page and "Alice" not in page

        alice.click("#call-api")
        page = alice.wait_for('id="api-result"')
        assert 'id="api-status">HTTP 200' in page
        assert api_claims(page)["preferred_username"] == "alice@example.test"
        assert "bob@" not in page
        assert token_source(page) == "cache", "the token from the sign-in, found silently"
        alice.screenshot("api-result")
        page = bob.go(app.url + "/call-api", 'id="api-result"')
        assert api_claims(page)["preferred_username"] == "bob@example.test"
        assert "alice@" not in page

        for home in (ALICE, BOB):
            accounts, rts, ats = partition(store, home)
            assert len(accounts) == 1 and len(rts) == 1 and len(ats) == 1, home
        # The app's one cookie is an opaque session id (the provider's, on the same host, are
        # the others the browser holds).
        cookies = {"tcsid": bob.cookies()["tcsid"]}
        assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", cookies["tcsid"])

        # Sign-out is a POST that needs the page's CSRF token: a forged one changes nothing.
        forged = requests.post(app.url + "/logout", data={"csrf": "forged"}, cookies=cookies,
                               allow_redirects=False)
        assert forged.status_code == 403 and "Sign-out refused" in forged.text
        assert requests.get(app.url + "/logout", cookies=cookies).status_code == 405
        assert len(partition(store, BOB)[0]) == 1

        alice.go(app.url + "/", 'id="logout"')
        alice.click("#logout")
        alice.wait_for('id="anonymous"')
        assert partition(store, ALICE) == ([], [], []), "alice's partition is gone"
        accounts, rts, ats = partition(store, BOB)
        assert len(accounts) == 1 and len(rts) == 1, "bob's is untouched"
        page = bob.go(app.url + "/call-api", 'id="api-result"')
        assert api_claims(page)["preferred_username"] == "bob@example.test"
        assert token_source(page) == "cache"
        # Signed out, alice's old session id no longer signs anyone in.
        page = alice.go(app.url + "/", 'id="anonymous"')
        assert "Alice" not in page
    finally:
        for browser in browsers:
            browser.close()
        app.stop()
        idp.stop()


def test_a_sign_in_answer_is_taken_only_from_the_browser_that_started_it_and_only_once(tmp_path):
    port = free_port()
    idp = provider(tmp_path, [port])
    url = "sqlite://" + str(tmp_path / "tokens.db")
    app = start_app(idp, url, tmp_path / "app", port=port, workers=2)
    store = tokencache.Store(url)
    try:
        # Another site makes the victim's browser post an answer the attacker obtained for a
        # sign-in the attacker started: without that sign-in's cookie it is refused.
        attacker = requests.get(app.url + "/login", params={"login_hint": "bob"}, allow_redirects=False)
        action, fields = idp.browse_form_post(attacker.headers["location"], "bob")
        victim = requests.Session()
        refused = victim.post(action, data=fields, allow_redirects=False)
        assert refused.status_code == 400 and "No sign-in in progress" in refused.text
        assert "tcsid" not in victim.cookies, "no session was made"
        assert partition(store, BOB) == ([], [], []), "nothing was saved"

        # The answer of one sign-in with the cookie of another: MSAL's state check refuses it.
        mine = requests.get(app.url + "/login", params={"login_hint": "alice"}, allow_redirects=False)
        mixed = victim.post(action, data=fields, cookies={"__Host-tcflow": mine.cookies["__Host-tcflow"]},
                            allow_redirects=False)
        assert mixed.status_code == 401 and "Sign-in failed" in mixed.text
        assert partition(store, BOB) == ([], [], [])

        # The right pair signs in once; the same answer and cookie again are refused.
        start = requests.get(app.url + "/login", params={"login_hint": "bob"}, allow_redirects=False)
        cookie = {"__Host-tcflow": start.cookies["__Host-tcflow"]}
        action, fields = idp.browse_form_post(start.headers["location"], "bob")
        first = requests.post(action, data=fields, cookies=cookie, allow_redirects=False)
        assert first.status_code == 302, first.text[:300]
        assert "__Host-tcflow=;" in first.headers["Set-Cookie"], "the sign-in's cookie is cleared"
        again = requests.post(action, data=fields, cookies=cookie, allow_redirects=False)
        assert again.status_code == 400 and "No sign-in in progress" in again.text
        assert len(partition(store, BOB)[0]) == 1

        # Every page: not cached, not framed, no script from elsewhere.
        page = requests.get(app.url + "/call-api", cookies=first.cookies, allow_redirects=False)
        assert page.status_code == 200 and "bob@example.test" in page.text
        assert page.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"
        # The start of a sign-in sets a Secure, HttpOnly, SameSite=None cookie, so the
        # provider's posted answer carries it and no script reads it.
        flow_cookie = start.headers["Set-Cookie"]
        for attribute in ("Secure", "HttpOnly", "SameSite=None", "Path=/"):
            assert attribute in flow_cookie, flow_cookie
        assert "web-secret" not in app.log() and "eyJ" not in app.log(), "no secret in the log"
    finally:
        app.stop()
        idp.stop()


def test_with_a_key_file_the_stored_partitions_hold_no_token_in_the_clear_and_keys_rotate(tmp_path):
    port = free_port()
    idp = provider(tmp_path, [port])
    db = tmp_path / "tokens.db"
    key = tmp_path / "store.key"
    key.write_text(os.urandom(32).hex())
    url = "sqlite://" + str(db)
    app = start_app(idp, url, tmp_path / "app", port=port, workers=2,
                 env={"WEBAPP_STORE_KEY_FILE": str(key), "WEBAPP_STORE_KEY_ID": "k7"})
    try:
        bob = app.sign_in(idp, "bob")
        page = bob.get(app.url + "/call-api").text
        assert api_claims(page)["preferred_username"] == "bob@example.test"
        assert token_source(page) == "cache"
        # The raw database first: reading its file in a process with an SQLite connection to it
        # would drop that connection's locks (POSIX locks belong to the process, not the file
        # handle), and the workers could then corrupt it.
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("tokens.db*"))
        keyed = tokencache.Store(url, key_file=key, key_id="k7")
        accounts, rts, ats = partition(keyed, BOB)
        assert len(accounts) == 1 and len(rts) == 1 and len(ats) == 1
        for secret in (rts[0]["secret"], ats[0]["secret"], "bob@example.test"):
            assert secret.encode() not in stored, "found in the clear in the SQLite file"
        with pytest.raises(tokencache.Error):
            partition(tokencache.Store(url), BOB)  # without the key: refused, not read as empty

        # Rotation: a new key, the old one as the previous; bob is still served (his partition
        # is read under the old key) and alice's sign-in is saved under the new one.
        app.stop()
        new_key = tmp_path / "new.key"
        new_key.write_text(os.urandom(32).hex())
        app = start_app(idp, url, tmp_path / "app", port=port, workers=2, env={
            "WEBAPP_STORE_KEY_FILE": str(new_key), "WEBAPP_STORE_KEY_ID": "k8",
            "WEBAPP_PREVIOUS_STORE_KEY_FILE": str(key), "WEBAPP_PREVIOUS_STORE_KEY_ID": "k7"})
        page = bob.get(app.url + "/call-api").text
        assert api_claims(page)["preferred_username"] == "bob@example.test"
        assert token_source(page) == "cache"
        alice = app.sign_in(idp, "alice")
        assert api_claims(alice.get(app.url + "/call-api").text)["preferred_username"] == "alice@example.test"
        assert len(partition(tokencache.Store(url, key_file=new_key, key_id="k8"), ALICE)[0]) == 1
        app.stop()
        both = tokencache.Store(url, key_file=new_key, key_id="k8", previous_key_file=key, previous_key_id="k7")
        assert len(partition(both, BOB)[0]) == 1 and len(partition(both, ALICE)[0]) == 1
    finally:
        app.stop()
        idp.stop()


def test_an_unreachable_provider_gets_an_error_page_not_a_crash(tmp_path):
    port = free_port()
    idp = provider(tmp_path, [port])
    idp._proc.terminate()  # nothing answers at its address (its test CA is kept)
    idp._proc.wait(10)
    app = start_app(idp, "sqlite://" + str(tmp_path / "tokens.db"), tmp_path / "app", port=port, workers=1)
    try:
        workers = app.workers()
        page = requests.get(app.url + "/login", allow_redirects=False, timeout=60)
        assert page.status_code == 502 and "Could not start the sign-in" in page.text, page.text[:300]
        assert requests.get(app.url + "/", timeout=30).status_code == 200
        assert app.workers() == workers, "no worker crashed"
    finally:
        app.stop()
        idp.stop()


# ----- four workers, expiring tokens --------------------------------------------------------


@pytest.mark.parametrize("backend,threads", [("sqlite", 1), ("redis", 1), ("postgres", 1), ("redis", 4)])
def test_four_workers_refresh_each_users_expiring_token_once_under_200_concurrent_calls(tmp_path, backend, threads):
    users = 20
    calls_per_user = 10
    # Access tokens live 312 s; MSAL Python serves one only with 5 minutes left, so each is
    # usable for 12 s, and the run below starts after every one has become unusable.
    port = free_port()
    idp = provider(tmp_path, [port], IDP_EXTRA_USERS=users, IDP_AT_TTL=312)
    server = Redis() if backend == "redis" else None
    if backend == "postgres":
        url = postgres_url()
        if url is None:
            idp.stop()
            pytest.skip("PostgreSQL is not running (bash .ci/setup-services starts it)")
    else:
        url = server.url if server else "sqlite://" + str(tmp_path / "tokens.db")
    # threads > 1: gunicorn's gthread worker, requests of one worker on several threads.
    app = start_app(idp, url, tmp_path / "app", port=port, env={"WEBAPP_THREADS": str(threads)})
    try:
        signed_in = [app.sign_in(idp, "user%d" % n) for n in range(1, users + 1)]
        last_sign_in = time.time()
        for n, browser in enumerate(signed_in, 1):
            page = browser.get(app.url + "/call-api").text
            assert api_claims(page)["preferred_username"] == "user%d@example.test" % n
        assert idp.stats().get("refresh_token", 0) == 0
        time.sleep(max(0.0, last_sign_in + 13 - time.time()))

        before = idp.stats()
        run_started = int(time.time())
        workers = app.workers()
        results = [None] * (users * calls_per_user)
        start = threading.Barrier(len(results))

        def call(i):
            n = i % users + 1
            cookies = signed_in[n - 1].cookies.get_dict()
            start.wait()
            response = requests.get(app.url + "/call-api", cookies=cookies, allow_redirects=False, timeout=120)
            results[i] = (n, response.status_code, response.text)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = idp.stats()

        sources = {}
        for n, status, page in results:
            assert status == 200, (n, status, page[:500])
            assert api_claims(page)["preferred_username"] == "user%d@example.test" % n
            sources.setdefault(n, []).append(token_source(page))
        refreshes = after.get("refresh_token", 0) - before.get("refresh_token", 0)
        assert refreshes == users, "one refresh per user, not one per worker or per call"
        for n, seen in sources.items():
            assert sorted(seen) == ["cache"] * (calls_per_user - 1) + ["identity_provider"], (n, seen)
        assert app.workers() == workers, "no worker crashed\n" + app.log()

        # No update lost: each partition holds one access token and the newest refresh token
        # (the provider rotates them and refuses a used one).
        store = tokencache.Store(url)
        for n in range(1, users + 1):
            accounts, rts, ats = partition(store, home_of(n))
            assert len(accounts) == 1 and len(rts) == 1 and len(ats) == 1, n
            assert int(ats[0]["expires_on"]) >= run_started + 312 - 1, "the refreshed token (%d)" % n
            redeemed = requests.post(idp.issuer + "/token", verify=idp.ca, timeout=30, data={
                "grant_type": "refresh_token", "refresh_token": rts[0]["secret"],
                "client_id": "web-app", "client_secret": "web-secret"})
            assert redeemed.status_code == 200, (n, redeemed.text)
    finally:
        app.stop()
        idp.stop()
        if server:
            server.close()


# ----- Redis stops ----------------------------------------------------------------------------


def stop_keeping_data(server):
    """Stops redis-server after it has written its data to disk (the restart reads it back)."""
    try:
        redis.Redis(port=server.port).shutdown(save=True)
    except redis.ConnectionError:
        pass
    server._proc.wait(20)


def test_redis_stopping_gives_the_documented_answer_per_policy_and_service_resumes(tmp_path):
    fail_port, miss_port = free_port(), free_port()
    idp = provider(tmp_path, [fail_port, miss_port])
    server = Redis()
    strict = start_app(idp, server.url, tmp_path / "fail", port=fail_port, workers=2, policy="fail")
    lenient = start_app(idp, server.url, tmp_path / "miss", port=miss_port, workers=2, policy="treat_as_miss")
    try:
        bob = strict.sign_in(idp, "bob")
        alice = lenient.sign_in(idp, "alice")
        assert token_source(bob.get(strict.url + "/call-api").text) == "cache"
        assert token_source(alice.get(lenient.url + "/call-api").text) == "cache"
        workers = strict.workers() + lenient.workers()
        before = idp.stats()

        stop_keeping_data(server)
        for _ in range(3):
            started = time.monotonic()
            down = bob.get(strict.url + "/call-api", allow_redirects=False, timeout=60)
            assert time.monotonic() - started < 30, "a request does not hang on a store that is down"
            assert down.status_code == 503, down.text[:500]
            assert "The token store is unavailable" in down.text
            assert "redis://" not in down.text and "127.0.0.1:%d" % server.port not in down.text
            # The session is kept: the home page still knows bob.
            assert "Bob Example" in bob.get(strict.url + "/").text
            # treat_as_miss: the tokens read as absent, so the user is sent to sign in again.
            miss = alice.get(lenient.url + "/call-api", allow_redirects=False, timeout=60)
            assert miss.status_code == 302 and "/login" in miss.headers["location"], miss.text[:500]
        # That new sign-in cannot be saved while the store is down: the error page, no crash.
        start = alice.get(lenient.url + "/login", params={"login_hint": "alice"}, allow_redirects=False)
        action, fields = idp.browse_form_post(start.headers["location"], "alice")
        failed = alice.post(action, data=fields, cookies={"__Host-tcflow": start.cookies["__Host-tcflow"]},
                            allow_redirects=False)
        assert failed.status_code == 503 and "The token store is unavailable" in failed.text
        assert strict.workers() + lenient.workers() == workers, "no worker crashed"

        server.start()
        up = bob.get(strict.url + "/call-api", allow_redirects=False, timeout=60)
        assert up.status_code == 200, up.text[:500]
        assert api_claims(up.text)["preferred_username"] == "bob@example.test"
        assert token_source(up.text) == "cache", "served from the store again, no new sign-in"
        # alice's failed sign-in left her session signed out; she signs in and is served.
        alice = lenient.sign_in(idp, "alice")
        assert api_claims(alice.get(lenient.url + "/call-api").text)["preferred_username"] == "alice@example.test"
        assert idp.stats().get("refresh_token", 0) == before.get("refresh_token", 0)
        assert strict.workers() + lenient.workers() == workers, "no worker crashed"
    finally:
        strict.stop()
        lenient.stop()
        idp.stop()
        server.close()


# ----- the one command ------------------------------------------------------------------------


def test_run_local_starts_the_provider_and_the_sample_and_alice_can_sign_in(tmp_path):
    import signal

    app_port, idp_port = free_port(), free_port()
    env = dict(os.environ, WEBAPP_PYTHON=sys.executable, WEBAPP_PORT=str(app_port), IDP_PORT=str(idp_port),
               WEBAPP_STORE="sqlite://" + str(tmp_path / "tokens.db"), WEBAPP_SESSIONS=str(tmp_path / "sessions"))
    env.pop("REQUESTS_CA_BUNDLE", None)  # the script sets its own
    log = open(tmp_path / "run-local.log", "w")
    proc = subprocess.Popen(["bash", str(SAMPLE / "run-local.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = "http://127.0.0.1:%d" % app_port
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "run-local.log").read_text()
            try:
                if requests.get(url + "/", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "run-local.log").read_text()
            time.sleep(0.2)
        idp = Idp.__new__(Idp)  # the script's provider, reached as the tests reach theirs
        idp.issuer = "https://127.0.0.1:%d/7e57a000-0000-4000-8000-000000000001/v2.0" % idp_port
        idp.ca = str(REPO / "target" / "flask-webapp" / "tls" / "ca.pem")
        alice = sign_in(url, idp, "alice")
        page = alice.get(url + "/call-api").text
        assert api_claims(page)["preferred_username"] == "alice@example.test"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
