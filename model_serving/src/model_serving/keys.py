"""Per-client API keys: the store (a Redis hash), and the key ring the edge asks (no HTTP here).

A key is ``msk_<id>_<secret>``: ``id`` (12 hex digits) names the stored entry, ``secret`` (32
random bytes, URL-safe base64) is what proves it. The store keeps one field per key name in the
Redis hash ``SERVING_API_KEYS_HASH`` (default ``mlops:serving:api_keys``) whose value is JSON:
id, scopes, creation time and the scrypt hash of the whole key with its own salt; the key itself
is never stored, and ``create`` returns it once.

The ``KeyRing`` is what serving checks keys against: ``SERVING_API_KEY`` (the bootstrap key,
named ``bootstrap``, every scope) and the store's keys, re-read every
``SERVING_API_KEYS_REFRESH_S`` by a thread (a created or revoked key counts without a restart;
when the store cannot be read the last keys read stay). scrypt costs tens of milliseconds, so a
verified key is remembered by its SHA-256 digest (in memory only) until its entry changes or
goes; only a key whose id is in the store is ever hashed with scrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from mlops_common.redis import connect
from mlops_common.threads import Periodic
from model_serving.settings import ServingSettings

log = logging.getLogger("model_serving.keys")

SCOPES = ("predict", "feedback", "admin")
BOOTSTRAP = "bootstrap"
KEY_PREFIX = "msk"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: scrypt's cost (interactive-login parameters: 16 MiB, about 40 ms)
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
#: verified keys remembered (by digest) before the memory starts over
VERIFIED_LIMIT = 10_000


class KeyProblem(Exception):
    """A key operation that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Client:
    """Who asked: the key's name and its scopes."""

    name: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as stored: never the key, only its scrypt hash."""

    name: str
    key_id: str
    scopes: tuple[str, ...]
    created: datetime
    salt: bytes
    digest: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.key_id,
                "scopes": list(self.scopes),
                "created": self.created.isoformat(),
                "scrypt": {**SCRYPT, "salt": self.salt.hex(), "hash": self.digest.hex()},
            }
        )

    @classmethod
    def from_json(cls, name: str, text: str | bytes) -> StoredKey:
        data: dict[str, Any] = json.loads(text)
        hashed = data["scrypt"]
        if {k: hashed[k] for k in SCRYPT} != SCRYPT:
            raise ValueError("scrypt parameters this version does not use")
        return cls(
            name=name,
            key_id=str(data["id"]),
            scopes=tuple(parse_scopes(data["scopes"])),
            created=datetime.fromisoformat(data["created"]),
            salt=bytes.fromhex(hashed["salt"]),
            digest=bytes.fromhex(hashed["hash"]),
        )

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(scrypt(presented, self.salt), self.digest)

    @property
    def client(self) -> Client:
        return Client(self.name, frozenset(self.scopes))


def scrypt(presented: str, salt: bytes) -> bytes:
    return hashlib.scrypt(presented.encode("utf-8"), salt=salt, dklen=32, **SCRYPT)


def parse_scopes(scopes: str | Iterable[str]) -> list[str]:
    """Scopes from ``predict,feedback`` or a list, validated, in a stable order."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    wanted = {item.strip() for item in items if item.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise KeyProblem(f"unknown scope {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    if not wanted:
        raise KeyProblem(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return [scope for scope in SCOPES if scope in wanted]


def key_id_of(presented: str) -> str | None:
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    return parts[1]


class KeyStore:
    """The keys in a Redis hash: name -> ``StoredKey`` JSON."""

    def __init__(self, client: redis.Redis, hash_key: str) -> None:
        self.client = client
        self.hash_key = hash_key

    @classmethod
    def from_settings(
        cls, settings: ServingSettings, *, own_server: bool = False
    ) -> KeyStore | None:
        """The store of the settings; None without a Redis. ``own_server``: fall back to the
        launcher's own redis-server (the command line, run with only ``.env``: the launcher
        hands serving that URL)."""
        url = settings.api_keys_redis_url or (settings.own_redis_url if own_server else "")
        return cls(connect(url), settings.serving_api_keys_hash) if url else None

    def create(self, name: str, scopes: str | Iterable[str]) -> str:
        """Store a new key named ``name``; returns the key (the only time it is shown)."""
        if name == BOOTSTRAP:
            raise KeyProblem(f"{BOOTSTRAP!r} is reserved for SERVING_API_KEY")
        if not NAME_PATTERN.match(name):
            raise KeyProblem(f"invalid name {name!r}: letters, digits, '.', '_', '-' (64 at most)")
        chosen = tuple(parse_scopes(scopes))
        key_id = secrets.token_hex(6)
        presented = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        salt = secrets.token_bytes(16)
        stored = StoredKey(name, key_id, chosen, datetime.now(UTC), salt, scrypt(presented, salt))
        if not self.client.hsetnx(self.hash_key, name, stored.to_json()):
            raise KeyProblem(f"a key named {name!r} already exists (revoke it first)")
        return presented

    def list(self) -> list[StoredKey]:
        """Every readable key, oldest first (an unreadable entry is logged and left out)."""
        found = []
        raw: dict[bytes, bytes] = self.client.hgetall(self.hash_key)  # type: ignore[assignment]
        for name, text in raw.items():
            try:
                found.append(StoredKey.from_json(name.decode(), text))
            except (ValueError, KeyError, TypeError, KeyProblem) as exc:
                log.warning("key %r in %s is unreadable: %s", name, self.hash_key, exc)
        return sorted(found, key=lambda key: (key.created, key.name))

    def revoke(self, name: str) -> bool:
        """Delete the key named ``name``; False when there is none."""
        return bool(self.client.hdel(self.hash_key, name))


class KeyRing:
    """The keys serving accepts: the bootstrap key and the store's, re-read by a thread."""

    def __init__(
        self,
        bootstrap: str,
        store: KeyStore | None = None,
        refresh_s: float = 5.0,
        on_refresh: Callable[[bool, int], None] | None = None,
    ) -> None:
        """``on_refresh(ok, count)`` after every read of the store: whether it could be read,
        how many keys the ring holds from it."""
        self._bootstrap = bootstrap.encode() if bootstrap else None
        self._bootstrap_client = Client(BOOTSTRAP, frozenset(SCOPES))
        self.store = store
        self.refresh_s = refresh_s
        self._on_refresh = on_refresh
        self._by_id: dict[str, StoredKey] = {}
        #: SHA-256 of a verified key -> the digest of the entry it matched
        self._verified: dict[bytes, bytes] = {}
        self._refresher = Periodic(self.refresh, refresh_s, "api-keys")

    def refresh(self) -> bool:
        """Re-read the store; False (keeping the keys read last) when it cannot be read."""
        if self.store is None:
            return True
        try:
            keys = self.store.list()
        except redis.RedisError as exc:
            log.warning("cannot read the API keys (keeping the last ones read): %s", exc)
            ok = False
        else:
            self._by_id = {key.key_id: key for key in keys}
            ok = True
        if self._on_refresh is not None:
            self._on_refresh(ok, len(self._by_id))
        return ok

    def quick(self, presented: str) -> tuple[Client | None, bool]:
        """Without scrypt: (the client, False) for the bootstrap key or a key verified before,
        (None, True) when only scrypt can tell, (None, False) for a key that cannot be valid."""
        if self._bootstrap is not None and hmac.compare_digest(
            presented.encode("latin-1", "replace"), self._bootstrap
        ):
            return self._bootstrap_client, False
        stored = self._by_id.get(key_id_of(presented) or "")
        if stored is None:
            return None, False
        if self._verified.get(hashlib.sha256(presented.encode()).digest()) == stored.digest:
            return stored.client, False
        return None, True

    def verify(self, presented: str) -> Client | None:
        """The scrypt check of a key whose id is in the store (``quick`` said so)."""
        stored = self._by_id.get(key_id_of(presented) or "")
        if stored is None or not stored.matches(presented):
            return None
        if len(self._verified) >= VERIFIED_LIMIT:
            self._verified.clear()
        self._verified[hashlib.sha256(presented.encode()).digest()] = stored.digest
        return stored.client

    def authenticate(self, presented: str) -> Client | None:
        """The client of ``presented``, or None when it is no valid key."""
        client, needs_scrypt = self.quick(presented)
        return self.verify(presented) if needs_scrypt else client

    def start(self) -> None:
        self.refresh()
        if self.store is not None:
            self._refresher.start()

    def stop(self) -> None:
        self._refresher.stop(5)
