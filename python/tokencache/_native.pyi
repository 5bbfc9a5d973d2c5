"""The native half of tokencache (Rust, through PyO3). Use the classes of ``tokencache``."""

import os
from typing import Optional, Union

class Error(Exception):
    """The base of every error tokencache raises."""

class CorruptCacheError(Error):
    """The cache is not a valid MSAL token cache. It was left untouched."""

class LockTimeoutError(Error):
    """Another process held the cache's lock for longer than the timeout."""

class EncryptionError(Error):
    """A missing or wrong key, a plain file where an encrypted one belongs, a keyring that failed."""

class InvalidResponseError(Error):
    """A token response that cannot be cached."""

class StorageError(Error):
    """The cache's storage failed (an I/O error, a refused path)."""

class NativeCache:
    @staticmethod
    def memory() -> NativeCache: ...
    @staticmethod
    def file(
        path: Union[str, os.PathLike[str]],
        *,
        key_file: Optional[Union[str, os.PathLike[str]]] = None,
        key_env: Optional[str] = None,
        keyring: Optional[str] = None,
        windows_data_protection: bool = False,
        accept_plaintext: bool = False,
        lock_timeout: Optional[float] = None,
    ) -> NativeCache: ...
    @staticmethod
    def keyring_item(
        signal: Union[str, os.PathLike[str]],
        schema: str,
        attributes: list[tuple[str, str]],
        label: str,
        lock_timeout: Optional[float] = None,
    ) -> NativeCache: ...
    def add(self, event: str, now: Optional[int] = None) -> None: ...
    def search(
        self, credential_type: str, target: list[str], query: Optional[str], now: int
    ) -> str: ...
    def purge_expired(self, now: int) -> int: ...
    def modify(self, credential_type: str, old: str, new: Optional[str] = None) -> None: ...
    def get(self, credential_type: str, key: str) -> Optional[str]: ...
    def serialize(self) -> str: ...
    def deserialize(self, state: str) -> None: ...
    def count(self, credential_type: str) -> int: ...
    def any_expired(self, now: int) -> bool: ...
    @property
    def path(self) -> Optional[str]: ...

class StoreUnavailableError(Error):
    """The token store (database, Redis) could not be reached or failed; transient."""

class NativeLease:
    def release(self) -> None: ...

class NativeStore:
    @staticmethod
    def open(
        url: str,
        *,
        key_file: Optional[Union[str, os.PathLike[str]]] = None,
        key_env: Optional[str] = None,
        key_id: str = "default",
        previous_key_file: Optional[Union[str, os.PathLike[str]]] = None,
        previous_key_id: Optional[str] = None,
        failure_policy: str = "fail",
        user_expiry: Optional[float] = None,
        lease_ttl: Optional[float] = None,
    ) -> NativeStore: ...
    def backend(self) -> str: ...
    @property
    def url(self) -> str: ...
    def load(self, key: str) -> NativeCache: ...
    def add(self, event: str, now: Optional[int] = None) -> Optional[str]: ...
    def modify(self, credential_type: str, old: str, new: Optional[str] = None) -> Optional[str]: ...
    def purge_expired(self, key: str, now: int) -> None: ...
    def delete(self, key: str) -> bool: ...
    def lease(self, client_id: str, key: str) -> NativeLease: ...

def reset_logging() -> None:
    """Forgets the cached levels of the loggers the native code logs to, so that a level set
    since takes effect."""
