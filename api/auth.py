"""Bearer API keys: hashed, compared in constant time, one role each."""

from __future__ import annotations

import hashlib
import hmac
import re

from api.problems import Unauthorized
from api.settings import ApiKey


class KeyRing:
    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self._keys = keys

    def identify(self, presented: str) -> tuple[str | None, str]:
        """(role or None, the key's digest: how logs and rate limits name a key)."""
        digest = hashlib.sha256(presented.encode()).hexdigest()
        role = None
        # Compare against every key so the time taken does not tell which one nearly matched.
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                role = key.role
        return role, digest

    def authenticate(self, authorization: str | None, query_key: str | None = None) -> tuple[str, str]:
        """The caller's role and key digest, or ``Unauthorized`` saying what was wrong with what was sent."""
        presented = None
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                raise Unauthorized(f"the Authorization header must read 'Bearer <key>'; {_shown(scheme)}")
            if not token.strip():
                raise Unauthorized("the Authorization header holds 'Bearer' but no key: send 'Bearer <key>'")
            presented = token.strip()
        elif query_key:
            presented = query_key
        if presented is None:
            raise Unauthorized("an API key is required: Authorization: Bearer <key>")
        if not _KEY_TEXT.fullmatch(presented):
            # Keys are printable ASCII; anything else (a stray byte, a space) cannot be one.
            raise Unauthorized("unknown API key")
        role, digest = self.identify(presented)
        if role is None:
            raise Unauthorized("unknown API key")
        return role, digest


_KEY_TEXT = re.compile(r"[\x21-\x7e]{1,512}")


_OTHER_SCHEMES = frozenset({"basic", "digest", "token", "negotiate", "apikey", "api-key", "key"})


def _shown(scheme: str) -> str:
    # Echo a well-known scheme name only: a bare key sent without a scheme must not come back in the answer.
    if scheme.lower() in _OTHER_SCHEMES:
        return f"it uses the scheme '{scheme}'"
    return "it has no 'Bearer ' before the key"
