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
Errors are subclasses of :class:`tokencache.Error`.
"""

from __future__ import annotations

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
    StorageError,
)

__all__ = [
    "TokenCache",
    "PersistedTokenCache",
    "Error",
    "CorruptCacheError",
    "LockTimeoutError",
    "EncryptionError",
    "InvalidResponseError",
    "StorageError",
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
            f"{kind} keeps the cache outside a file; tokencache.PersistedTokenCache takes "
            "a file path (or FilePersistence / FilePersistenceWithDataProtection)"
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

    @property
    def path(self) -> str:
        """The cache file."""
        return os.fspath(self._native.path)

    def __repr__(self) -> str:
        return f"<tokencache.PersistedTokenCache {self.path!r} {self._counts()}>"
