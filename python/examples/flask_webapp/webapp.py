"""A Flask web app that signs users in with MSAL Python and keeps each user's tokens in their own
partition of a :class:`tokencache.Store` (SQLite by default; PostgreSQL or Redis by URL).

A user signs in with the authorization code flow (``initiate_auth_code_flow`` and
``acquire_token_by_auth_code_flow``), sees who is signed in, calls an API with a token MSAL
finds silently in that user's partition (``acquire_token_silent``), and signs out with a
CSRF-protected POST that deletes the partition. Browser sessions are server-side (Flask-Session:
files by default, Redis by URL) and hold only the signed-in account and the CSRF token, never a
token; a sign-in in progress keeps its flow apart, for 10 minutes (:class:`PendingSignIns`).
Run it with gunicorn (``gunicorn -c gunicorn.conf.py``): the workers share the store, so a user
signed in through one worker is served silently by every other, and an expiring token is
refreshed once, not once per worker (the store's refresh lease).

Configuration is read from the environment (see README.md beside this file)::

    WEBAPP_AUTHORITY=https://login.microsoftonline.com/<tenant> WEBAPP_CLIENT_ID=<app id> \\
    WEBAPP_CLIENT_SECRET=<secret> gunicorn -c gunicorn.conf.py
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import secrets
import threading
import time
from typing import Any, Dict, Mapping, Optional, Protocol

import flask
import msal
import requests
from flask_session import Session

import tokencache

log = logging.getLogger("flask_webapp")

# Errors after which only a new sign-in helps (the refresh token was revoked, expired, or the
# user must consent or re-authenticate).
_SIGN_IN_AGAIN = {"invalid_grant", "interaction_required", "login_required", "consent_required"}


class ConfigError(Exception):
    """The environment does not configure the app (the message says which variable)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The app's configuration; :meth:`from_env` reads it from ``WEBAPP_*`` variables."""

    authority: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    store: str = "sqlite://flask-webapp-tokens.db"
    store_key_file: Optional[str] = None
    store_key_id: str = "k1"
    previous_store_key_file: Optional[str] = None
    previous_store_key_id: Optional[str] = None
    store_failure_policy: str = "fail"
    redirect_uri: Optional[str] = None
    scopes: tuple = ("User.Read",)
    api_url: str = "https://graph.microsoft.com/v1.0/me"
    sessions: str = "flask-webapp-sessions"
    session_idle_secs: int = 8 * 3600
    max_sessions: int = 100_000
    instance_discovery: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError("%s is not set (see python/examples/flask_webapp/README.md)" % name)
            return value

        def number(name: str, default: int) -> int:
            text = env.get(name, "").strip()
            try:
                value = int(text) if text else default
            except ValueError:
                raise ConfigError("%s must be a whole number, not %r" % (name, text)) from None
            if value <= 0:
                raise ConfigError("%s must be positive" % name)
            return value

        policy = env.get("WEBAPP_STORE_FAILURE_POLICY", "fail").strip() or "fail"
        if policy not in ("fail", "treat_as_miss"):
            raise ConfigError("WEBAPP_STORE_FAILURE_POLICY must be fail or treat_as_miss, not %r" % policy)
        discovery = env.get("WEBAPP_INSTANCE_DISCOVERY", "true").strip().lower()
        if discovery not in ("true", "false", "1", "0"):
            raise ConfigError("WEBAPP_INSTANCE_DISCOVERY must be true or false, not %r" % discovery)
        key_file = env.get("WEBAPP_STORE_KEY_FILE") or None
        previous_file = env.get("WEBAPP_PREVIOUS_STORE_KEY_FILE") or None
        previous_id = env.get("WEBAPP_PREVIOUS_STORE_KEY_ID") or None
        if previous_file and not key_file:
            raise ConfigError("WEBAPP_PREVIOUS_STORE_KEY_FILE needs WEBAPP_STORE_KEY_FILE (the new key)")
        if bool(previous_file) != bool(previous_id):
            raise ConfigError("WEBAPP_PREVIOUS_STORE_KEY_FILE and WEBAPP_PREVIOUS_STORE_KEY_ID go together")
        scopes = tuple(env.get("WEBAPP_SCOPES", "User.Read").split())
        if not scopes:
            raise ConfigError("WEBAPP_SCOPES names no scope")
        return cls(
            authority=required("WEBAPP_AUTHORITY"),
            client_id=required("WEBAPP_CLIENT_ID"),
            client_secret=required("WEBAPP_CLIENT_SECRET"),
            store=env.get("WEBAPP_STORE") or cls.store,
            store_key_file=key_file,
            store_key_id=env.get("WEBAPP_STORE_KEY_ID") or cls.store_key_id,
            previous_store_key_file=previous_file,
            previous_store_key_id=previous_id,
            store_failure_policy=policy,
            redirect_uri=env.get("WEBAPP_REDIRECT_URI") or None,
            scopes=scopes,
            api_url=env.get("WEBAPP_API_URL") or cls.api_url,
            sessions=env.get("WEBAPP_SESSIONS") or cls.sessions,
            session_idle_secs=number("WEBAPP_SESSION_IDLE_SECS", cls.session_idle_secs),
            max_sessions=number("WEBAPP_MAX_SESSIONS", cls.max_sessions),
            instance_discovery=discovery in ("true", "1"),
        )


class TokenCaches(Protocol):
    """Where the app keeps each user's token cache: a cache to pass as ``token_cache=`` for one
    request, what to do after the request, and sign-out."""

    def open(self, home_account_id: Optional[str]) -> msal.SerializableTokenCache: ...

    def done(self, cache: msal.SerializableTokenCache, home_account_id: Optional[str]) -> None: ...

    def remove(self, home_account_id: str) -> None: ...


class StoreCaches:
    """Each user's partition of a :class:`tokencache.Store`. Every change MSAL makes is saved
    when it is made (compare-and-set), so :meth:`done` only gives back a refresh lease."""

    def __init__(self, store: tokencache.Store) -> None:
        self.store = store

    def open(self, home_account_id: Optional[str]) -> msal.SerializableTokenCache:
        return self.store.token_cache(home_account_id)

    def done(self, cache: msal.SerializableTokenCache, home_account_id: Optional[str]) -> None:
        cache.close()

    def remove(self, home_account_id: str) -> None:
        self.store.remove_user(home_account_id)


def open_store(settings: Settings) -> tokencache.Store:
    """The token store the settings name (no connection is made until the first request)."""
    return tokencache.Store(
        settings.store,
        key_file=settings.store_key_file,
        key_id=settings.store_key_id,
        previous_key_file=settings.previous_store_key_file,
        previous_key_id=settings.previous_store_key_id,
        failure_policy=settings.store_failure_policy,
    )


class _PerProcess:
    """The HTTP session and MSAL's HTTP cache of this process. Made at first use in each
    process, so a copy made before gunicorn forks is never shared by two workers."""

    def __init__(self) -> None:
        self._pid = -1
        self._lock = threading.Lock()

    def get(self) -> "_PerProcess":
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self.http = requests.Session()
                    # Discovery documents MSAL reads once per process instead of per request.
                    self.http_cache: Dict[str, Any] = {}
                    self._pid = os.getpid()
        return self


class PendingSignIns:
    """Sign-ins started and not finished: the auth code flow MSAL checks the answer against
    (state, nonce, PKCE verifier), for 10 minutes, under a random id in a cookie of its own.
    Kept apart from signed-in sessions, so a flood of started sign-ins pushes out only other
    unfinished ones (at most 10,000), never a signed-in user; each is used once.

    The provider's answer is a form it posts from its own site, which a browser sends with a
    cookie only if it is ``SameSite=None``, hence ``Secure`` (browsers keep such a cookie over
    plain http only for 127.0.0.1 and localhost). It binds the answer to the browser that
    started the sign-in: another site cannot make a victim's browser finish a sign-in it
    started itself."""

    LIFETIME = 600
    LIMIT = 10_000

    def __init__(self, settings: Settings, sessions_redis: Optional[Any]) -> None:
        self.cookie = "__Host-tcflow"
        self.cookie_options = dict(max_age=self.LIFETIME, path="/", secure=True, httponly=True, samesite="None")
        self._redis = sessions_redis
        self._files = None
        if sessions_redis is None:
            from cachelib.file import FileSystemCache

            self._files = FileSystemCache(os.path.join(settings.sessions, "pending"), threshold=self.LIMIT,
                                          default_timeout=self.LIFETIME, mode=0o600)

    def put(self, flow: Dict[str, Any]) -> str:
        key = secrets.token_urlsafe(32)
        text = json.dumps(flow)
        if self._redis is not None:
            self._redis.set("tcflow:" + key, text, ex=self.LIFETIME)
        else:
            self._files.set(key, text)
        return key

    def take(self, key: str) -> Optional[Dict[str, Any]]:
        """The flow started under `key`, removed (None: unknown, expired or already used)."""
        if not key:
            return None
        if self._redis is not None:
            text = self._redis.getdel("tcflow:" + key)
        else:
            text = self._files.get(key)
            self._files.delete(key)
        return json.loads(text) if text else None


def _sessions_redis(settings: Settings) -> Optional[Any]:
    """The Redis client of the sessions (and sign-ins in progress), if they are in Redis."""
    if not settings.sessions.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.from_url(settings.sessions)


def _configure_sessions(app: flask.Flask, settings: Settings, sessions_redis: Optional[Any]) -> None:
    https = (settings.redirect_uri or "").startswith("https://")
    app.config.update(
        SESSION_PERMANENT=True,
        # An idle timeout: every request moves the session's expiry forward.
        PERMANENT_SESSION_LIFETIME=settings.session_idle_secs,
        SESSION_REFRESH_EACH_REQUEST=True,
        # `__Host-` and Secure over https: no other site and no plain-http page can set it.
        SESSION_COOKIE_NAME="__Host-tcsid" if https else "tcsid",
        SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_KEY_PREFIX="tcsession:",
    )
    if sessions_redis is not None:
        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=sessions_redis)
    else:
        from cachelib.file import FileSystemCache

        os.makedirs(settings.sessions, mode=0o700, exist_ok=True)
        app.config.update(
            SESSION_TYPE="cachelib",
            # Files only this user can read (mode 0600), shared by the workers of one machine;
            # at most max_sessions of them (the oldest go first).
            SESSION_CACHELIB=FileSystemCache(os.path.join(settings.sessions, "signed-in"),
                                             threshold=settings.max_sessions, mode=0o600),
        )
    Session(app)


def create_app(settings: Optional[Settings] = None, caches: Optional[TokenCaches] = None) -> flask.Flask:
    """The Flask app. Without arguments, configured from the environment with the token store
    it names (what ``gunicorn -c gunicorn.conf.py`` runs)."""
    settings = settings or Settings.from_env()
    caches = caches or StoreCaches(open_store(settings))
    app = flask.Flask(__name__)
    app.config["WEBAPP_SETTINGS"] = settings
    sessions_redis = _sessions_redis(settings)
    _configure_sessions(app, settings, sessions_redis)
    pending = PendingSignIns(settings, sessions_redis)
    process = _PerProcess()

    def msal_app(cache: msal.SerializableTokenCache) -> msal.ConfidentialClientApplication:
        # One MSAL application per request, over that request's cache (an application holds
        # its cache; the discovery documents come from the process's HTTP cache).
        shared = process.get()
        return msal.ConfidentialClientApplication(
            settings.client_id,
            client_credential=settings.client_secret,
            authority=settings.authority,
            token_cache=cache,
            http_client=shared.http,
            http_cache=shared.http_cache,
            instance_discovery=settings.instance_discovery,
        )

    def redirect_uri() -> str:
        return settings.redirect_uri or flask.url_for("callback", _external=True)

    def signed_in() -> Optional[Dict[str, Any]]:
        return flask.session.get("account")

    def error_page(status: int, title: str, message: str):
        return flask.render_template("error.html", title=title, message=message, account=signed_in()), status

    @app.get("/")
    def index():
        return flask.render_template("index.html", account=signed_in(), csrf=flask.session.get("csrf"))

    @app.get("/login")
    def login():
        cache = caches.open(None)
        try:
            # The provider posts the answer back (RFC 9700's advice, and MSAL's), so the code
            # never appears in a URL, a browser's history or a proxy's log.
            flow = msal_app(cache).initiate_auth_code_flow(
                list(settings.scopes), redirect_uri=redirect_uri(), response_mode="form_post",
                login_hint=flask.request.args.get("login_hint"))
        except (requests.RequestException, ValueError) as e:
            # MSAL reads the authority's metadata first; it says ValueError when it cannot.
            log.warning("cannot start a sign-in: %s", type(e).__name__)
            return error_page(502, "Could not start the sign-in", "The identity provider could not be reached.")
        finally:
            caches.done(cache, None)
        # The flow is kept apart from signed-in sessions, under an id only this browser has.
        answer = flask.redirect(flow["auth_uri"])
        answer.set_cookie(pending.cookie, pending.put(flow), **pending.cookie_options)
        return answer

    @app.post("/callback")
    def callback():
        flow = pending.take(flask.request.cookies.get(pending.cookie, ""))
        if flow is None:
            answer = error_page(400, "No sign-in in progress", "Start at the sign-in page.")
        else:
            answer = finish_sign_in(flow)
        answer = flask.make_response(answer)
        options = dict(pending.cookie_options, max_age=0)
        answer.set_cookie(pending.cookie, "", **options)
        return answer

    def finish_sign_in(flow: Dict[str, Any]):
        cache = caches.open(None)
        account = None
        try:
            client = msal_app(cache)
            try:
                result = client.acquire_token_by_auth_code_flow(flow, flask.request.form.to_dict())
            except ValueError:
                # MSAL refuses an answer that is not this flow's (another state, no code).
                log.warning("sign-in answer refused: it does not match the sign-in this browser started")
                return error_page(401, "Sign-in failed", "The answer does not belong to the sign-in this browser started.")
            if "error" in result:
                log.warning("sign-in failed: %s", result.get("error"))
                return error_page(401, "Sign-in failed", result.get("error_description") or result["error"])
            claims = result.get("id_token_claims") or {}
            local_id = claims.get("oid") or claims.get("sub")
            account = next((a for a in client.get_accounts() if a.get("local_account_id") == local_id), None)
        finally:
            caches.done(cache, account and account["home_account_id"])
        if account is None:
            return error_page(502, "Sign-in failed", "The identity provider returned no account.")
        # Signed in: the account (identifiers, no token) in a session under a new id.
        flask.session.clear()
        flask.session["account"] = account
        flask.session["name"] = claims.get("name") or account.get("username")
        flask.session["csrf"] = secrets.token_urlsafe(32)
        app.session_interface.regenerate(flask.session)
        return flask.redirect(flask.url_for("index"))

    @app.get("/call-api")
    def call_api():
        account = signed_in()
        if account is None:
            return flask.redirect(flask.url_for("login"))
        home = account["home_account_id"]
        cache = caches.open(home)
        try:
            result = msal_app(cache).acquire_token_silent_with_error(list(settings.scopes), account)
        finally:
            caches.done(cache, home)
        if result is None or result.get("error") in _SIGN_IN_AGAIN:
            # No token and no usable refresh token in the user's partition: sign in again.
            return flask.redirect(flask.url_for("login", login_hint=account.get("username")))
        if "error" in result:
            log.warning("silent token request failed: %s", result.get("error"))
            return error_page(502, "No token", result.get("error_description") or result["error"])
        try:
            response = process.get().http.get(
                settings.api_url, headers={"Authorization": "Bearer " + result["access_token"]}, timeout=30)
        except requests.RequestException as e:
            log.warning("the API call failed: %s", type(e).__name__)
            return error_page(502, "The API call failed", "The API could not be reached (%s)." % type(e).__name__)
        try:
            body = json.dumps(response.json(), indent=2, sort_keys=True)
        except ValueError:
            body = response.text
        expires_in = int(result.get("expires_in", 0))
        return flask.render_template(
            "call_api.html", account=account, csrf=flask.session.get("csrf"), status=response.status_code,
            source=result.get("token_source", "cache"), minutes=max(0, expires_in) // 60,
            expires_at=time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + expires_in)),
            body=body)

    @app.post("/logout")
    def logout():
        account = signed_in()
        if account is None:
            return flask.redirect(flask.url_for("index"))
        expected = flask.session.get("csrf") or ""
        given = flask.request.form.get("csrf", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return error_page(403, "Sign-out refused", "The form was not sent by this site's page.")
        # Forget the user here and delete their partition outright.
        caches.remove(account["home_account_id"])
        flask.session.clear()
        return flask.redirect(flask.url_for("index"))

    @app.after_request
    def protect(answer: flask.Response) -> flask.Response:
        # Pages show who is signed in and what the API said: never cached, never framed (the
        # sign-out button cannot be clicked through another site's page), scripts from nowhere.
        answer.headers.setdefault("Cache-Control", "no-store")
        answer.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
        answer.headers["X-Frame-Options"] = "DENY"
        answer.headers["X-Content-Type-Options"] = "nosniff"
        answer.headers["Referrer-Policy"] = "no-referrer"
        return answer

    @app.errorhandler(requests.RequestException)
    def provider_unreachable(e: Exception):
        # MSAL talking to the identity provider (a sign-in's answer, a refresh) failed.
        log.warning("the identity provider could not be reached: %s", type(e).__name__)
        return error_page(502, "The identity provider could not be reached", "Try again in a moment.")

    @app.errorhandler(tokencache.StoreUnavailableError)
    def store_unavailable(e: Exception):
        log.error("token store unavailable: %s", e)
        return error_page(
            503, "The token store is unavailable",
            "Your sign-in is kept, but your tokens cannot be read right now. Try again in a moment.")

    @app.errorhandler(tokencache.Error)
    def token_cache_error(e: Exception):
        log.error("token cache error: %s", e)
        return error_page(500, "Token cache error", "The token cache could not be used (see the server log).")

    return app
