"""Keys: the workspace master key, the profile-key vault and sealed values.

Envelope encryption. Each profile has its own data key (AES-256-GCM); the data key is kept
in the *vault* (a small SQLite file in ``privacy.key_dir``, outside ``.segmint/``) wrapped by
the workspace master key, which comes from an environment variable or a key file and is never
written to the store. A sealed value is the text ``enc:<profile_id>:<base64(nonce|ciphertext)>``
with the profile id as associated data, so it names the key that opens it even after the
profile merged into another. The same table keeps the *subject keys* of identities that
quarantined input named (``s_…``, see :mod:`segmint.privacy.subjects`).

Erasure deletes a profile's data key from the vault (SQLite ``secure_delete`` overwrites the
freed page): every sealed value of that person, in the store and in any copy of the store, is
then ciphertext nobody can open (crypto-shredding). Rotating the master key rewraps every data
key; nothing in the store changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from segmint.privacy.errors import ErasedProfileError, MasterKeyError

SEALED = "enc:"
"""The prefix of a sealed value."""
BLIND = "bi:"
"""The prefix of a blind index (a keyed hash of an identifier)."""
KEY_FILE = "master.key"
NEW_KEY_FILE = "master.key.new"
"""Where ``privacy rotate-key`` keeps the new key until the vault is rewrapped under it."""
VAULT_FILE = "vault.sqlite"
_CHECK = b"segmint master key check"
_CACHE = 200_000  # unwrapped profile keys kept in memory


def generate_master_key() -> str:
    """A new random master key, as the base64 text kept in the key file or variable."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def decode_master_key(text: str, origin: str) -> bytes:
    """Decode a base64 master key; ``origin`` names where it came from in the error."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (ValueError, TypeError):
        key = b""
    if len(key) != 32:
        raise MasterKeyError(
            f"the master key in {origin} is not 32 bytes of base64; "
            "make one with 'segmint privacy enable' (or generate_master_key())"
        )
    return key


def load_master_key(
    key_dir: Path, key_env: str, environ: Mapping[str, str] | None = None
) -> tuple[bytes, str] | None:
    """The master key and where it came from, or None when none is configured.

    The environment variable wins over the key file.
    """
    env = os.environ if environ is None else environ
    if env.get(key_env):
        return decode_master_key(env[key_env], f"${key_env}"), f"${key_env}"
    path = key_dir / KEY_FILE
    if path.exists():
        return decode_master_key(path.read_text(encoding="utf-8"), str(path)), str(path)
    return None


def refuse_new_key(key_dir: Path, key_env: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse to make a master key where one is configured or a key vault needs its own.

    A vault without its key is a workspace whose key file was not copied or restored (the
    key folder is git-ignored): a new key would not open the vault, and what it sealed would
    stay unreadable.

    Raises:
        MasterKeyError: ``$key_env`` is set, the key file exists, or the vault does.
    """
    env = os.environ if environ is None else environ
    key_file, vault = key_dir / KEY_FILE, key_dir / VAULT_FILE
    if env.get(key_env):
        raise MasterKeyError(f"encryption is on: the master key comes from ${key_env}")
    if key_file.exists():
        raise MasterKeyError(f"{key_file} already exists: encryption is on")
    if vault.exists():
        raise MasterKeyError(
            f"encryption is on, but its master key is not here: restore {key_file} or set "
            f"${key_env} (the key vault {vault} opens only with the key it was made with; "
            "if that key is lost for good, move the vault away first: what it sealed stays "
            "unreadable)"
        )


def write_key_file(key_dir: Path, key: str, name: str = KEY_FILE) -> Path:
    """Write ``key`` to the key file ``name`` atomically and durably; return its path.

    The file has owner-only permissions.
    """
    key_dir.mkdir(parents=True, exist_ok=True)
    path = key_dir / name
    tmp = key_dir / (name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
        out.flush()
        os.fsync(out.fileno())  # on disk before a vault rewrapped under it commits
    tmp.replace(path)
    return path


def rotate_to_key_file(keyring: Keyring, key_dir: Path, key: str) -> tuple[int, Path]:
    """Rewrap every key under ``key`` and make it the key file; return (keys, its path).

    The new key is on disk (:data:`NEW_KEY_FILE`) before the vault changes: a stop after
    the rewrap and before the rename leaves it there, and the error of the old key names
    it, instead of the only copy of the key that opens the vault being lost.
    """
    staged = write_key_file(key_dir, key, NEW_KEY_FILE)
    count = keyring.rotate(decode_master_key(key, "the new key"))
    return count, staged.replace(key_dir / KEY_FILE)


def _check_value(master: bytes) -> str:
    return hmac.new(master, _CHECK, hashlib.sha256).hexdigest()


class Vault:
    """The profile-key vault: wrapped data keys and workspace secrets in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        # Freed pages are overwritten: a destroyed key leaves no copy in the file.
        self._db.execute("PRAGMA secure_delete = ON")
        # WAL: a commit is one sync of the log; FULL: a key is on disk before the store
        # commits the events sealed with it. Deletes are checkpointed away (see delete).
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS profile_keys "
            "(profile_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL, created_at TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, wrapped BLOB NOT NULL);"
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        )

    def get_meta(self, key: str) -> str | None:
        """A value of the vault's meta table."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the vault's meta table."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def wrapped(self, table: str, names: Iterable[str]) -> dict[str, bytes]:
        """The wrapped keys of ``names`` in ``table`` (``profile_keys`` or ``secrets``)."""
        column = "profile_id" if table == "profile_keys" else "name"
        found: dict[str, bytes] = {}
        wanted = list(names)
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT {column}, wrapped FROM {table} WHERE {column} IN ({marks})"  # noqa: S608
            found.update(self._db.execute(sql, part).fetchall())
        return found

    def put(self, table: str, rows: list[tuple[str, bytes]]) -> None:
        """Insert wrapped keys in one transaction."""
        if not rows:
            return
        now = datetime.now(UTC).isoformat()
        with self._db:
            self._db.execute("BEGIN")
            if table == "profile_keys":
                self._db.executemany(
                    "INSERT OR IGNORE INTO profile_keys VALUES (?, ?, ?)",
                    [(n, w, now) for n, w in rows],
                )
            else:
                self._db.executemany("INSERT OR REPLACE INTO secrets VALUES (?, ?)", rows)

    def delete(self, profile_ids: Iterable[str]) -> int:
        """Delete the data keys of ``profile_ids``; return how many existed."""
        ids = list(profile_ids)
        with self._db:
            self._db.execute("BEGIN")
            cur = self._db.executemany("DELETE FROM profile_keys WHERE profile_id = ?",
                                       [(i,) for i in ids])  # fmt: skip
        # the log still holds the pages with the keys: write them back (zeroed) and cut it
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(cur.rowcount)

    def all_rows(self, table: str) -> list[tuple[str, bytes]]:
        """Every wrapped key of ``table``."""
        column = "profile_id" if table == "profile_keys" else "name"
        sql = f"SELECT {column}, wrapped FROM {table}"  # noqa: S608
        return [(str(n), bytes(w)) for n, w in self._db.execute(sql).fetchall()]

    def replace_all(self, tables: dict[str, list[tuple[str, bytes]]], check: str) -> None:
        """Rewrite wrapped keys and the master-key check in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            for table, rows in tables.items():
                column = "profile_id" if table == "profile_keys" else "name"
                self._db.executemany(
                    f"UPDATE {table} SET wrapped = ? WHERE {column} = ?",  # noqa: S608
                    [(w, n) for n, w in rows],
                )
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('check', ?)", [check])

    def names(self, prefix: str) -> list[str]:
        """The names of the data keys starting with ``prefix``."""
        rows = self._db.execute(
            "SELECT profile_id FROM profile_keys WHERE substr(profile_id, 1, ?) = ?",
            [len(prefix), prefix],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def count(self) -> int:
        """How many profile keys the vault holds."""
        return int(self._db.execute("SELECT count(*) FROM profile_keys").fetchone()[0])

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()


class Keyring:
    """Seals and unseals values with per-profile keys wrapped by the master key.

    Data keys are unwrapped once and cached; keys made for new profiles wait in
    :attr:`pending` until :meth:`flush` writes them to the vault (intake flushes before
    its store transaction commits, so no stored value names a key the vault lacks).
    """

    def __init__(self, master: bytes, vault: Vault, origin: str = "the master key") -> None:
        self.origin = origin
        self._master = AESGCM(master)
        self.vault = vault
        check = vault.get_meta("check")
        if check is None:
            vault.set_meta("check", _check_value(master))
        elif not hmac.compare_digest(check, _check_value(master)):
            staged = vault.path.parent / NEW_KEY_FILE
            hint = (
                f"; a rotation stopped half-way left its new key in {staged}: move it to "
                f"{vault.path.parent / KEY_FILE}"
                if staged.exists()
                else ""
            )
            raise MasterKeyError(
                f"{origin} does not open the key vault {vault.path} (it was made with another "
                f"master key; after 'privacy rotate-key' use the new key){hint}"
            )
        self._keys: dict[str, AESGCM] = {}
        self._new: set[str] = set()  # known to have no stored key (see preload)
        self.pending: list[tuple[str, bytes]] = []
        self._index_key = self._secret("blind_index")

    def _wrap(self, name: str, key: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._master.encrypt(nonce, key, b"segmint-key:" + name.encode())

    def _unwrap(self, name: str, wrapped: bytes) -> bytes:
        return self._master.decrypt(wrapped[:12], wrapped[12:], b"segmint-key:" + name.encode())

    def _secret(self, name: str) -> bytes:
        found = self.vault.wrapped("secrets", [name])
        if name in found:
            return self._unwrap(name, found[name])
        key = secrets.token_bytes(32)
        self.vault.put("secrets", [(name, self._wrap(name, key))])
        return key

    def _key(self, profile_id: str, *, create: bool) -> AESGCM | None:
        key = self._keys.get(profile_id)
        if key is not None:
            return key
        new = profile_id in self._new
        found = {} if new and create else self.vault.wrapped("profile_keys", [profile_id])
        if profile_id in found:
            key = AESGCM(self._unwrap(profile_id, found[profile_id]))
        elif create:
            raw = AESGCM.generate_key(bit_length=256)
            self.pending.append((profile_id, self._wrap(profile_id, raw)))
            self._new.discard(profile_id)
            key = AESGCM(raw)
        else:
            return None
        self._keys[profile_id] = key
        return key

    def preload(self, profile_ids: Iterable[str]) -> None:
        """Unwrap the stored keys of ``profile_ids`` not cached yet, in one vault query.

        Profiles the vault has no key for are remembered as new: sealing for them makes a
        key without asking the vault again.
        """
        if len(self._keys) > _CACHE:
            self._keys.clear()  # bounded memory: a long-running server meets every profile
        wanted = {p for p in profile_ids if p not in self._keys}
        if not wanted:
            return
        found = self.vault.wrapped("profile_keys", wanted)
        for pid, wrapped in found.items():
            self._keys[pid] = AESGCM(self._unwrap(pid, wrapped))
        self._new.update(wanted.difference(found))

    def flush(self) -> None:
        """Write the data keys made since the last flush to the vault."""
        if self.pending:
            self.vault.put("profile_keys", self.pending)
            self.pending = []
        self._new.clear()

    def seal(self, profile_id: str, value: Any) -> str:
        """Encrypt ``value`` (any JSON value) under ``profile_id``'s key."""
        key = self._key(profile_id, create=True)
        assert key is not None
        nonce = secrets.token_bytes(12)
        data = key.encrypt(nonce, orjson.dumps(value, default=str), profile_id.encode())
        return f"{SEALED}{profile_id}:{base64.b64encode(nonce + data).decode()}"

    def unseal(self, sealed: str) -> Any:
        """Decrypt a sealed value.

        Raises:
            ErasedProfileError: The profile's key was destroyed (the person was erased).
        """
        profile_id, _, body = sealed[len(SEALED) :].partition(":")
        key = self._key(profile_id, create=False)
        if key is None:
            raise ErasedProfileError(f"the key of {profile_id} is destroyed (erased person)")
        raw = base64.b64decode(body)
        return orjson.loads(key.decrypt(raw[:12], raw[12:], profile_id.encode()))

    def blind_index(self, kind: str, value: str) -> str:
        """A keyed hash of an identifier: equal values give equal indexes, nothing reversible."""
        digest = hmac.new(self._index_key, f"{kind}\x1f{value}".encode(), hashlib.sha256)
        return BLIND + digest.hexdigest()[:40]

    def destroy(self, profile_ids: Iterable[str]) -> int:
        """Delete the data keys of ``profile_ids`` (crypto-shredding); return how many."""
        ids = list(profile_ids)
        for pid in ids:
            self._keys.pop(pid, None)
            self._new.discard(pid)
        return self.vault.delete(ids)

    def rotate(self, new_master: bytes) -> int:
        """Rewrap every data key and secret under ``new_master``; return the keys rewrapped.

        The caller stores the new master key only after this returns: until then the vault
        still opens with the old one.
        """
        new = AESGCM(new_master)

        def rewrap(rows: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
            out = []
            for name, wrapped in rows:
                nonce = secrets.token_bytes(12)
                raw = self._unwrap(name, wrapped)
                out.append((name, nonce + new.encrypt(nonce, raw, b"segmint-key:" + name.encode())))
            return out

        profiles = rewrap(self.vault.all_rows("profile_keys"))
        secret_rows = rewrap(self.vault.all_rows("secrets"))
        tables = {"profile_keys": profiles, "secrets": secret_rows}
        self.vault.replace_all(tables, _check_value(new_master))
        self._master = new
        return len(profiles)


def is_sealed(value: Any) -> bool:
    """Whether ``value`` is a sealed value."""
    return isinstance(value, str) and value.startswith(SEALED)


def sealed_profile(value: str) -> str:
    """The profile id a sealed value names."""
    return value[len(SEALED) :].partition(":")[0]
