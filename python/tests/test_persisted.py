"""tokencache.PersistedTokenCache: a drop-in for msal-extensions' PersistedTokenCache over one
file that processes, msal-extensions and real MSAL applications share."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import msal
import msal_extensions
import pytest

import tokencache
from conftest import GOLDEN, user_event

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = [sys.executable, os.path.join(HERE, "peers.py")]


def accounts_in(path):
    with open(path) as f:
        cache = json.load(f)
    return {a["home_account_id"] for a in cache.get("Account", {}).values()}


def test_msal_add_writes_the_bytes_msal_python_would(tmp_path, scenarios):
    for name, events in scenarios.items():
        path = tmp_path / (name + ".json")
        cache = tokencache.PersistedTokenCache(str(path))
        for e in events:
            e = dict(e)
            now = e.pop("_now")
            cache.add(json.loads(json.dumps(e)), now=now)
        assert path.read_text() == (GOLDEN / (name + ".json")).read_text(), name


def test_shares_the_file_with_msal_extensions_both_ways(tmp_path):
    path = str(tmp_path / "msal_token_cache.json")
    ours = tokencache.PersistedTokenCache(path)
    theirs = msal_extensions.PersistedTokenCache(msal_extensions.FilePersistence(path))
    ours.add(user_event("ours"))
    assert [a["home_account_id"] for a in theirs.search("Account")] == ["ours.t"]
    theirs.add(user_event("theirs"))
    assert sorted(a["home_account_id"] for a in ours.search("Account")) == ["ours.t", "theirs.t"]
    ours.add(user_event("again"))
    assert accounts_in(path) == {"ours.t", "theirs.t", "again.t"}
    assert os.path.exists(path + ".lockfile") or True  # the lock file may be removed after use
    # An msal-extensions persistence object is accepted in place of the path.
    same = tokencache.PersistedTokenCache(msal_extensions.FilePersistence(path))
    assert same.path == path
    assert len(list(same.search("Account"))) == 3


def test_a_corrupt_file_raises_and_is_never_overwritten(tmp_path):
    path = tmp_path / "cache.json"
    path.write_text('{"AccessToken": {"x": ')
    cache = tokencache.PersistedTokenCache(str(path))
    with pytest.raises(tokencache.CorruptCacheError) as raised:
        cache.add(user_event("a"))
    assert isinstance(raised.value, tokencache.Error)
    assert "left untouched" in str(raised.value)
    with pytest.raises(tokencache.CorruptCacheError):
        list(cache.search("Account"))
    assert path.read_text() == '{"AccessToken": {"x": '


def test_a_lock_held_too_long_raises_lock_timeout_error(tmp_path):
    path = str(tmp_path / "cache.json")
    held = threading.Event()
    release = threading.Event()

    def hold():
        with msal_extensions.cache_lock.CrossPlatLock(path + ".lockfile"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        cache = tokencache.PersistedTokenCache(path, lock_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(tokencache.LockTimeoutError):
            cache.add(user_event("a"))
        assert time.monotonic() - started >= 0.4
    finally:
        release.set()
        t.join()
    cache.add(user_event("a"))
    assert accounts_in(path) == {"a.t"}


def test_encryption_with_a_key_file_and_a_wrong_key(tmp_path):
    path = str(tmp_path / "cache.bin")
    key = str(tmp_path / "cache.key")
    cache = tokencache.PersistedTokenCache(path, key_file=key)
    cache.add(user_event("a"))
    raw = open(path, "rb").read()
    assert b"at-a-0" not in raw and b"rt-a-0" not in raw
    assert [a["home_account_id"] for a in tokencache.PersistedTokenCache(path, key_file=key).search("Account")] == ["a.t"]
    other = str(tmp_path / "other.key")
    tokencache.PersistedTokenCache(str(tmp_path / "other.bin"), key_file=other).add(user_event("x"))
    with pytest.raises(tokencache.EncryptionError) as raised:
        list(tokencache.PersistedTokenCache(path, key_file=other).search("Account"))
    assert "wrong key" in str(raised.value)
    with pytest.raises(tokencache.EncryptionError):
        list(tokencache.PersistedTokenCache(path).search("Account"))
    assert open(path, "rb").read() == raw, "nothing changed"
    # A plain file where an encrypted one belongs is refused, not read.
    plain = tmp_path / "plain.json"
    tokencache.PersistedTokenCache(str(plain)).add(user_event("planted"))
    with pytest.raises(tokencache.EncryptionError):
        list(tokencache.PersistedTokenCache(str(plain), key_file=key).search("Account"))


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError):
        tokencache.PersistedTokenCache("/tmp/x.json", key_file="/tmp/k", key_env="K")
    with pytest.raises(ValueError):
        tokencache.PersistedTokenCache("/tmp/x.json", lock_location="/tmp/elsewhere.lock")


def test_eight_processes_lose_no_add_while_msal_extensions_reads_and_writes(tmp_path):
    procs = int(os.environ.get("TOKENCACHE_PY_PROCS", "8"))
    count = int(os.environ.get("TOKENCACHE_PY_COUNT", "100"))
    path = str(tmp_path / "cache.json")
    stop = str(tmp_path / "stop")
    ext = subprocess.Popen(PEERS + ["ext", path, "ext", stop], stdout=subprocess.PIPE, text=True)
    writers = [subprocess.Popen(PEERS + ["write", path, "p%d" % p, str(count)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for p in range(procs)]
    for w in writers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
        assert out.count("saved ") == count
    open(stop, "w").close()
    out, _ = ext.communicate(timeout=120)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["errors"] == 0, "msal-extensions saw a valid cache every time"
    assert summary["reads"] > 0
    present = accounts_in(path)
    mine = {"p%d-%d.t" % (p, i) for p in range(procs) for i in range(count)}
    assert mine <= present, "%d of %d adds lost" % (len(mine - present), len(mine))
    assert set(summary["saved"]) <= present, "msal-extensions' own writes kept"


def test_kill_9_never_corrupts_and_keeps_every_acknowledged_add(tmp_path):
    path = str(tmp_path / "cache.json")
    acknowledged = set()
    rounds = int(os.environ.get("TOKENCACHE_PY_KILLS", "12"))
    for r in range(rounds):
        writers = [subprocess.Popen(PEERS + ["write", path, "k%dw%d" % (r, w), "100000"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                   for w in range(3)]
        # Wait for a first acknowledged add, then kill them all at a moment that varies.
        first = writers[r % 3].stdout.readline()
        assert first.startswith("saved ")
        acknowledged.add("k%dw%d-%s.t" % (r, r % 3, first.split()[1]))
        time.sleep(0.02 * (r % 5))
        for w, proc in enumerate(writers):
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate()
            acknowledged.update("k%dw%d-%s.t" % (r, w, line.split()[1])
                                for line in out.splitlines() if line.startswith("saved "))
        present = accounts_in(path)  # parses
        missing = acknowledged - present
        assert not missing, "round %d: acknowledged adds lost: %s" % (r, sorted(missing)[:5])
    assert len(acknowledged) >= rounds


def test_no_secret_in_any_log_line_message_or_repr(tmp_path, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    tokencache.reset_logging()  # levels are cached; an earlier test may have logged at WARNING
    path = str(tmp_path / "cache.json")
    cache = tokencache.PersistedTokenCache(path, key_file=str(tmp_path / "k"))
    cache.add(user_event("alice"))
    list(cache.search("AccessToken", query={"home_account_id": "alice.t"}))
    rt = next(cache.search("RefreshToken"))
    cache.update_rt(rt, "rt-rotated-secret")
    texts = [caplog.text, repr(cache)]
    for bad in ("not json", '{"AccessToken": 5}'):
        (tmp_path / "bad.json").write_text(bad)
        try:
            list(tokencache.PersistedTokenCache(str(tmp_path / "bad.json")).search("Account"))
        except tokencache.Error as e:
            texts.append(str(e))
    try:
        list(tokencache.PersistedTokenCache(path, key_file=str(tmp_path / "k2")).search("Account"))
    except Exception as e:
        texts.append(str(e))
    key = open(tmp_path / "k").read().strip()
    assert any("tokencache" in r.name for r in caplog.records), "the crates log through logging"
    for text in texts:
        for secret in ("at-alice-0", "rt-alice-0", "rt-rotated-secret", key):
            assert secret not in text, text


KEYRING_SCRIPT = r"""
import hashlib, json, subprocess, sys
sys.path.insert(0, sys.argv[2])
import tokencache
from conftest import user_event
signal = sys.argv[1]
first = tokencache.PersistedTokenCache.in_keyring(signal)
first.add(user_event("alice"))
first.add(user_event("bob"))
second = tokencache.PersistedTokenCache.in_keyring(signal)
homes = sorted(a["home_account_id"] for a in second.search("Account"))
schema = hashlib.sha256(signal.encode()).hexdigest()
stored = subprocess.run(["secret-tool", "lookup", "xdg:schema", schema],
                        capture_output=True, text=True, check=True).stdout
print(json.dumps({"homes": homes, "stored": sorted(json.loads(stored)["Account"]),
                  "repr": repr(second)}))
"""


def test_a_cache_in_a_keyring_item_in_msal_extensions_layout(tmp_path):
    # A real Secret Service (gnome-keyring in its own D-Bus session), as in the Rust tests:
    # the item is where msal-extensions' LibsecretPersistence(signal) keeps it (schema =
    # SHA-256 of the signal location), and a second cache object reads it back.
    import shutil

    if shutil.which("dbus-run-session") is None or shutil.which("gnome-keyring-daemon") is None:
        if os.environ.get("CI"):
            pytest.fail("dbus-run-session and gnome-keyring are missing (bash .ci/setup-system)")
        pytest.skip("no gnome-keyring here (bash .ci/setup-system)")
    signal = str(tmp_path / "signal")
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    out = subprocess.run(["dbus-run-session", "--", "bash", os.path.join(repo, ".ci", "with-keyring"),
                          sys.executable, "-c", KEYRING_SCRIPT, signal, here],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["homes"] == ["alice.t", "bob.t"]
    assert len(result["stored"]) == 2
    assert os.path.exists(signal), "the signal file is touched at every write"
    assert "at-alice" not in result["repr"]
