"""API tokens: `cvr_<random>` secrets, of which only a SHA-256 is stored.

A token has ~256 bits of entropy, so a plain SHA-256 (not a slow password hash) is
enough and lets a lookup be one indexed query.
"""

import hashlib
import secrets
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import NamedTuple

from django.utils import timezone

from conveyor.core.models import ApiToken

PREFIX = "cvr_"


class NewToken(NamedTuple):
    token: ApiToken
    secret: str  # shown once; only its hash is stored


class _Cached(NamedTuple):
    token: ApiToken
    valid_until: float  # time.monotonic()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(name: str, scopes: Iterable[str]) -> NewToken:
    """A new token with these scopes (read, write, admin); raises ValueError for others."""
    scopes = list(scopes)
    unknown = set(scopes) - set(ApiToken.SCOPES)
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(ApiToken.SCOPES)}; got {sorted(scopes)}")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name, prefix=secret[: len(PREFIX) + 6], key_hash=hash_secret(secret), scopes=sorted(scopes)
    )
    return NewToken(token, secret)


LAST_USED_RESOLUTION = timedelta(minutes=1)
# A token found valid is trusted for this long without asking the database again, so
# a revocation takes effect within CACHE_SECONDS (docs/api.md).
CACHE_SECONDS = 5.0
_cache: dict[str, _Cached] = {}
_CACHE_MAX = 10_000


def lookup(secret: str) -> ApiToken | None:
    """The live token for a secret, or None. Notes when it was last used (to the minute)."""
    if not secret.startswith(PREFIX):
        return None
    key_hash = hash_secret(secret)
    cached = _cache.get(key_hash)
    now_mono = time.monotonic()
    if cached is not None and cached.valid_until > now_mono:
        return cached.token
    token = ApiToken.objects.filter(key_hash=key_hash, revoked_at__isnull=True).first()
    if token is None:
        _cache.pop(key_hash, None)
    else:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key_hash] = _Cached(token, now_mono + CACHE_SECONDS)
        now = timezone.now()
        # One write a minute at most, not one per request.
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
    return token


def forget_cached() -> None:
    """Drop every cached lookup (tests; a revocation that must bite at once)."""
    _cache.clear()
