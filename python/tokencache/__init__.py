"""MSAL Python's token cache, persisted safely.

``tokencache.PersistedTokenCache(path)`` is a drop-in for msal-extensions'
``PersistedTokenCache(FilePersistence(path))``: pass it as ``token_cache=`` to
``msal.PublicClientApplication`` or ``msal.ConfidentialClientApplication``. It shares the
file and its ``<path>.lockfile`` with msal-extensions, the Azure CLI and the other MSAL SDKs,
takes one lock and makes one atomic write per token response (msal-extensions takes five and
rewrites the file in place), never overwrites a file it cannot parse, and can encrypt the file.

``tokencache.TokenCache()`` is an in-memory, indexed drop-in for
``msal.SerializableTokenCache``; its ``serialize()`` is byte-identical to MSAL Python's.

Both are subclasses of ``msal.SerializableTokenCache``; the cache behind them is tokencache's
(Rust), which answers every method MSAL calls (``add``, ``search``, ``modify``, ``remove_*``,
``update_rt``, ``_get_app_metadata``, ``serialize``, ``deserialize``) with MSAL's semantics.
Errors are subclasses of :class:`tokencache.Error`. Log records go to the standard
``logging`` module (loggers ``tokencache_file``, ``tokencache_store``, …); their levels are
cached for speed, so call :func:`tokencache.reset_logging` after changing one at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Dict, Iterable, Iterator, Optional, Union

import msal

from ._native import (
    CorruptCacheError,
    EncryptionError,
    Error,
    InvalidResponseError,
    LockTimeoutError,
    NativeCache,
    NativeStore,
    StorageError,
    StoreUnavailableError,
    reset_logging,
)

__all__ = [
    "TokenCache",
    "PersistedTokenCache",
    "Store",
    "StoreTokenCache",
    "StoreUnavailableError",
    "Error",
    "CorruptCacheError",
    "LockTimeoutError",
    "EncryptionError",
    "InvalidResponseError",
    "StorageError",
    "reset_logging",
]

_AT = msal.TokenCache.CredentialType.ACCESS_TOKEN


def _dumps(value: Any) -> str:
    # MSAL's events are JSON data, but a caller's `data` may hold other values (they only
    # matter to MSAL's logging); those become strings instead of failing the add.
    return json.dumps(value, default=str)


class TokenCache(msal.SerializableTokenCache):
    """An in-memory, indexed token cache; a drop-in for ``msal.SerializableTokenCache``.

    Lookups go through indexes instead of scanning every entry, the object can be shared by
    threads, and ``serialize()`` writes what MSAL Python writes for the same content.
    """

    def __init__(self) -> None:
        super().__init__()
        self._native = NativeCache.memory()
        self.has_state_changed = False

    # ----- what MSAL calls -------------------------------------------------------------

    def add(self, event: Dict[str, Any], now: Optional[float] = None) -> None:
        """Caches a token response (MSAL's ``add``): one call, one change."""
        self._native.add(_dumps(event), None if now is None else int(now))
        self.has_state_changed = True

    def search(
        self,
        credential_type: str,
        target: Optional[Iterable[str]] = None,
        query: Optional[Dict[str, Any]] = None,
        *,
        now: Optional[float] = None,
    ) -> Iterator[Dict[str, Any]]:
        """Matching entries (MSAL's ``search``), found through the indexes.

        As in MSAL, once the generator has been consumed to the end, every access token
        that has expired is removed.
        """
        at = int(time.time() if now is None else now)
        found = json.loads(
            self._native.search(
                credential_type,
                list(target or []),
                None if query is None else _dumps(query),
                at,
            )
        )
        yield from found
        if credential_type == _AT and self._native.purge_expired(at):
            self.has_state_changed = True

    def modify(
        self,
        credential_type: str,
        old_entry: Dict[str, Any],
        new_key_value_pairs: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Replaces the entry under ``old_entry``'s key with ``{**old_entry, **new}``, or
        removes it when ``new_key_value_pairs`` is empty (MSAL's ``modify``)."""
        self._native.modify(
            credential_type,
            _dumps(old_entry),
            _dumps(new_key_value_pairs) if new_key_value_pairs else None,
        )
        self.has_state_changed = True

    def _get(self, credential_type: str, key: str, default: Any = None) -> Any:
        text = self._native.get(credential_type, key)
        return default if text is None else json.loads(text)

    def serialize(self) -> str:
        """The whole cache as MSAL Python writes it."""
        self.has_state_changed = False
        return self._native.serialize()

    def deserialize(self, state: Optional[str]) -> None:
        """Replaces the whole content with a serialized cache (``None`` or ``""``: empty).

        Raises :class:`CorruptCacheError` (and changes nothing) when ``state`` is not a
        token cache.
        """
        self._native.deserialize(state or "")
        self.has_state_changed = False

    # ----- for people ------------------------------------------------------------------

    def _counts(self) -> str:
        kinds = ("Account", "AccessToken", "RefreshToken", "IdToken", "AppMetadata")
        return ", ".join(f"{k}={self._native.count(k)}" for k in kinds)

    def __repr__(self) -> str:
        return f"<tokencache.TokenCache {self._counts()}>"


def _location(path: Any) -> Union[str, "os.PathLike[str]"]:
    """A path, or the location of an msal-extensions persistence object."""
    get_location = getattr(path, "get_location", None)
    if get_location is None:
        return os.path.expanduser(os.fspath(path))
    kind = type(path).__name__
    if kind not in ("FilePersistence", "FilePersistenceWithDataProtection"):
        raise ValueError(
            f"{kind} is not supported; tokencache.PersistedTokenCache takes a file path, "
            "FilePersistence, FilePersistenceWithDataProtection or LibsecretPersistence (or "
            "use PersistedTokenCache.in_keyring)"
        )
    if kind == "FilePersistenceWithDataProtection" and getattr(path, "_entropy", b""):
        raise ValueError("DPAPI entropy is not supported; msal-extensions' default is none")
    return os.path.expanduser(get_location())


class PersistedTokenCache(TokenCache):
    """A token cache in a file that many processes and other MSAL apps share safely.

    A drop-in for ``msal_extensions.PersistedTokenCache(FilePersistence(path))``: the same
    file format and the same ``<path>.lockfile`` protocol, so msal-extensions, the Azure CLI
    and the other MSAL SDKs can share the file. Every token response is one lock and one
    atomic, durable write; readers never see a partial file; a file that does not parse is
    never overwritten (:class:`CorruptCacheError`); a stale lock left by a dead process is
    taken over.

    :param path: the cache file (``~`` expanded), or an msal-extensions ``FilePersistence`` /
        ``FilePersistenceWithDataProtection`` object, whose file is used.
    :param key_file: encrypt the file with the key in this file (created with a new random
        key, mode 0600, if missing).
    :param key_env: encrypt with the key in this environment variable (64 hex digits or
        base64).
    :param keyring: encrypt with a key kept in the OS keyring under this name (created if
        missing).
    :param windows_data_protection: Windows only: the file is sealed with DPAPI for the
        current user, as msal-extensions' ``FilePersistenceWithDataProtection`` and the Azure
        CLI's ``msal_token_cache.bin`` are (implied by a ``FilePersistenceWithDataProtection``).
    :param accept_plaintext: with a key, read a plain file found at the path once and
        encrypt it at the next write (a first encryption); otherwise a plain file is refused.
    :param lock_timeout: seconds to wait for the lock before :class:`LockTimeoutError`.
    """

    def __init__(
        self,
        path: Any,
        *,
        key_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        key_env: Optional[str] = None,
        keyring: Optional[str] = None,
        windows_data_protection: bool = False,
        accept_plaintext: bool = False,
        lock_timeout: Optional[float] = None,
        lock_location: Optional[str] = None,
    ) -> None:
        if type(path).__name__ == "LibsecretPersistence":
            agent = getattr(path, "_agent", None)
            schema = getattr(getattr(agent, "_schema", None), "name", None)
            self._open_keyring_item(
                path.get_location(),
                schema if isinstance(schema, str) else None,
                getattr(agent, "_attributes", None),
                getattr(agent, "_label", None) or "",
                lock_timeout,
            )
            return
        msal.SerializableTokenCache.__init__(self)
        if type(path).__name__ == "FilePersistenceWithDataProtection":
            windows_data_protection = True
        location = _location(path)
        if lock_location is not None and os.path.abspath(
            os.path.expanduser(lock_location)
        ) != os.path.abspath(os.fspath(location) + ".lockfile"):
            raise ValueError(
                "the lock is always <path>.lockfile (the lock every MSAL SDK and the Azure "
                "CLI use); another lock_location would not exclude them"
            )
        self._native = NativeCache.file(
            os.fspath(location),
            key_file=None if key_file is None else os.fspath(key_file),
            key_env=key_env,
            keyring=keyring,
            windows_data_protection=windows_data_protection,
            accept_plaintext=accept_plaintext,
            lock_timeout=lock_timeout,
        )
        self.has_state_changed = False

    @classmethod
    def in_keyring(
        cls,
        signal_location: Union[str, "os.PathLike[str]"],
        *,
        schema_name: Optional[str] = None,
        attributes: Optional[Dict[str, str]] = None,
        label: str = "",
        lock_timeout: Optional[float] = None,
    ) -> "PersistedTokenCache":
        """A cache whose whole content lives in one OS keyring item (the Secret Service on
        Linux, the Keychain on macOS): msal-extensions' ``LibsecretPersistence`` layout, so
        the two share the item. ``signal_location`` is the file touched at every write (its
        ``.lockfile`` is the lock); ``schema_name`` defaults, as msal-extensions', to the
        SHA-256 hex of ``signal_location`` as given. For small caches (a keyring item is not
        meant for megabytes).
        """
        self = cls.__new__(cls)
        self._open_keyring_item(signal_location, schema_name, attributes, label, lock_timeout)
        return self

    def _open_keyring_item(
        self,
        signal_location: Union[str, "os.PathLike[str]"],
        schema_name: Optional[str],
        attributes: Optional[Dict[str, str]],
        label: str,
        lock_timeout: Optional[float],
    ) -> None:
        location = os.fspath(signal_location)
        if schema_name is None:
            schema_name = hashlib.sha256(location.encode("utf-8")).hexdigest()
        msal.SerializableTokenCache.__init__(self)
        self._native = NativeCache.keyring_item(
            os.path.expanduser(location),
            schema_name,
            sorted((attributes or {}).items()),
            label,
            lock_timeout=lock_timeout,
        )
        self.has_state_changed = False

    @property
    def path(self) -> str:
        """The cache file (for a keyring item: its signal file)."""
        return os.fspath(self._native.path)

    def __repr__(self) -> str:
        return f"<tokencache.PersistedTokenCache {self.path!r} {self._counts()}>"


_USABLE_FOR = 300  # MSAL serves a cached access token only with 5 minutes left


def _usable(entry: Dict[str, Any], now: int) -> bool:
    try:
        if int(entry["expires_on"]) - now < _USABLE_FOR:
            return False
        return "refresh_on" not in entry or int(entry["refresh_on"]) >= now
    except (KeyError, ValueError):
        return False


class Store:
    """A partitioned token store for web apps, web APIs and daemons: one MSAL cache partition
    per user (by ``home_account_id``) and per app and tenant
    (``{client_id}_{tenant}_AppTokenCache``), in SQLite, PostgreSQL, Redis or Redis Cluster.

    Open one per process (at import time is fine, also before gunicorn forks: connections are
    made in each process at its first use) and take a :meth:`token_cache` per request::

        store = tokencache.Store("sqlite:///var/lib/myapp/tokens.db")

        @app.route("/call-api")
        def call_api():
            cache = store.token_cache(session["home_account_id"])
            msal_app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=SECRET,
                                                          authority=AUTHORITY, token_cache=cache)
            account = msal_app.get_accounts()[0]
            result = msal_app.acquire_token_silent(SCOPES, account)

    Saves use compare-and-set (two workers never lose each other's tokens); one worker at a
    time refreshes a partition (a refresh lease in the store), so an expiring token is
    refreshed once, not once per worker; partitions expire; removing a user deletes the
    partition.

    :param url: ``sqlite:///path`` (or ``sqlite://path``), ``postgres://…`` (``sslmode``),
        ``redis://…``, ``rediss://…``, ``redis+cluster://…``, or ``memory://``.
    :param key_file: encrypt partitions with the key in this file (created if missing).
    :param key_env: encrypt with the key in this environment variable.
    :param key_id: the name stored with each encrypted partition (for key rotation).
    :param previous_key_file: while rotating keys, the previous key's file (with
        ``previous_key_id``, the id it was used under): partitions still under it stay
        readable, and each is rewritten under the current key at its next save.
    :param previous_key_id: the previous key's id.
    :param failure_policy: ``"fail"`` (a store that is down raises
        :class:`StoreUnavailableError`) or ``"treat_as_miss"`` (it reads as empty: users
        sign in again).
    :param user_expiry: seconds a user partition lives after its last save (default 90 days).
    :param lease_ttl: seconds a refresh lease lasts if its holder dies (default 10).
    """

    def __init__(
        self,
        url: str,
        *,
        key_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        key_env: Optional[str] = None,
        key_id: str = "default",
        previous_key_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        previous_key_id: Optional[str] = None,
        failure_policy: str = "fail",
        user_expiry: Optional[float] = None,
        lease_ttl: Optional[float] = None,
    ) -> None:
        self._native = NativeStore.open(
            url,
            key_file=None if key_file is None else os.fspath(key_file),
            key_env=key_env,
            key_id=key_id,
            previous_key_file=None if previous_key_file is None else os.fspath(previous_key_file),
            previous_key_id=previous_key_id,
            failure_policy=failure_policy,
            user_expiry=user_expiry,
            lease_ttl=lease_ttl,
        )

    def token_cache(self, home_account_id: Optional[str] = None) -> "StoreTokenCache":
        """A token cache for one request: pass it as ``token_cache=``. With the signed-in
        user's ``home_account_id``, ``get_accounts()`` finds their account; each partition is
        loaded at most once per cache object, when MSAL first looks in it."""
        return StoreTokenCache(self, home_account_id)

    def remove_user(self, home_account_id: str) -> bool:
        """Deletes a user's partition (sign-out); True when there was one."""
        return self._native.delete(home_account_id)

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgres``, ``redis``, ``redis-cluster`` or ``memory``."""
        return self._native.backend()

    @property
    def url(self) -> str:
        """The URL, any password hidden."""
        return self._native.url

    def __repr__(self) -> str:
        return f"<tokencache.Store {self.url}>"


class StoreTokenCache(msal.SerializableTokenCache):
    """The token cache of one request over a :class:`Store` (from :meth:`Store.token_cache`).

    A search for a user's tokens loads only that user's partition (one round trip); a search
    for app tokens (client credentials) loads only the app's partition for that tenant; a
    token response is saved to the partition it belongs to, with compare-and-set. When MSAL
    finds no usable access token, this cache takes the partition's refresh lease and looks
    again: if another worker refreshed meanwhile, its token is served; otherwise the lease is
    held until this request's token response is saved, so other workers wait for it instead
    of refreshing too. Use one object per request (or per job), not across threads.
    """

    def __init__(self, store: Store, home_account_id: Optional[str] = None) -> None:
        super().__init__()
        self._store = store._native
        self._user = home_account_id
        self._loaded: Dict[str, Any] = {}
        self._lease: Optional[Any] = None
        self._lease_key: Optional[str] = None
        self.has_state_changed = False

    # ----- partitions ------------------------------------------------------------------

    @staticmethod
    def _key_for(credential_type: str, query: Optional[Dict[str, Any]]) -> Optional[str]:
        query = query or {}
        home = query.get("home_account_id")
        if home:
            return home
        if (credential_type == _AT and "home_account_id" in query and home is None
                and query.get("client_id") and query.get("realm")):
            return "%s_%s_AppTokenCache" % (query["client_id"], query["realm"])
        return None

    def _partition(self, key: str) -> Any:
        snapshot = self._loaded.get(key)
        if snapshot is None:
            snapshot = self._loaded[key] = self._store.load(key)
        return snapshot

    def _keys(self, credential_type: str, query: Optional[Dict[str, Any]]) -> list:
        key = self._key_for(credential_type, query)
        if key is not None:
            return [key]
        keys = list(self._loaded)
        if self._user and self._user not in keys:
            keys.append(self._user)
        return keys

    def _search_in(self, key, credential_type, target, query, now):
        return json.loads(self._partition(key).search(
            credential_type, target, None if query is None else _dumps(query), now))

    def _release(self, key: Optional[str] = None) -> None:
        if self._lease is not None and (key is None or key == self._lease_key):
            lease, self._lease, self._lease_key = self._lease, None, None
            lease.release()

    def close(self) -> None:
        """Gives back a refresh lease this cache still holds (also done when it is
        garbage-collected, and by the lease's expiry if the process dies)."""
        self._release()

    def __enter__(self) -> "StoreTokenCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----- what MSAL calls -------------------------------------------------------------

    def search(
        self,
        credential_type: str,
        target: Optional[Iterable[str]] = None,
        query: Optional[Dict[str, Any]] = None,
        *,
        now: Optional[float] = None,
    ) -> Iterator[Dict[str, Any]]:
        """MSAL's ``search`` in the partition the query names (see the class)."""
        at = int(time.time() if now is None else now)
        target = list(target or [])
        keys = self._keys(credential_type, query)
        found = []
        for key in keys:
            found.extend(self._search_in(key, credential_type, target, query, at))
        single = keys[0] if len(keys) == 1 else None
        if (credential_type == _AT and single is not None and self._key_for(credential_type, query)
                and not any(_usable(e, at) for e in found) and self._lease is None):
            # No usable token: refresh (or ask for one) one worker at a time.
            self._lease = self._store.lease((query or {}).get("client_id", ""), single)
            self._lease_key = single
            self._loaded.pop(single, None)
            found = self._search_in(single, credential_type, target, query, at)
            if any(_usable(e, at) for e in found):
                self._release()
        yield from found
        if credential_type == _AT:
            for key in keys:
                if self._partition(key).any_expired(at):
                    self._store.purge_expired(key, at)
                    self._loaded.pop(key, None)
                    self.has_state_changed = True

    def add(self, event: Dict[str, Any], now: Optional[float] = None) -> None:
        """Saves a token response to its partition (compare-and-set)."""
        key = self._store.add(_dumps(event), None if now is None else int(now))
        self.has_state_changed = True
        if key is not None:
            self._loaded.pop(key, None)
            self._release(key)
            if self._user is None and not key.endswith("_AppTokenCache"):
                # A sign-in: the request's user is now known (get_accounts() finds them).
                self._user = key

    def modify(
        self,
        credential_type: str,
        old_entry: Dict[str, Any],
        new_key_value_pairs: Optional[Dict[str, Any]] = None,
    ) -> None:
        """MSAL's ``modify`` on the entry's partition (compare-and-set)."""
        key = self._store.modify(
            credential_type,
            _dumps(old_entry),
            _dumps(new_key_value_pairs) if new_key_value_pairs else None,
        )
        self.has_state_changed = True
        if key is not None:
            self._loaded.pop(key, None)

    def _get(self, credential_type: str, key: str, default: Any = None) -> Any:
        for partition in list(self._loaded.values()):
            text = partition.get(credential_type, key)
            if text is not None:
                return json.loads(text)
        return default

    def serialize(self) -> str:
        """The partitions this cache has loaded, as one MSAL cache document (for inspection;
        saving it is never needed: every change is already in the store)."""
        self.has_state_changed = False
        merged: Dict[str, Dict[str, Any]] = {}
        for partition in self._loaded.values():
            for section, entries in json.loads(partition.serialize()).items():
                merged.setdefault(section, {}).update(entries)
        return json.dumps(merged, indent=4)

    def deserialize(self, state: Optional[str]) -> None:
        raise TypeError(
            "a store's token cache is loaded per partition from the store; "
            "import a cache file with `tokencache migrate FILE URL`"
        )

    def __del__(self) -> None:
        try:
            self._release()
        except Exception:  # the lease expires by itself
            pass

    def __repr__(self) -> str:
        return f"<tokencache.StoreTokenCache partitions={sorted(self._loaded)}>"
