"""Bearer API keys: hashed, compared in constant time, one role each."""

from __future__ import annotations

import hashlib
import hmac

from api.problems import Unauthorized
from api.settings import ApiKey


class KeyRing:
    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self._keys = keys

    def role_for(self, presented: str) -> str | None:
        return self.identify(presented)[0]

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
        """The caller's role and key digest, or ``Unauthorized``."""
        presented = None
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                presented = token.strip()
        if presented is None and query_key:
            presented = query_key
        if presented is None:
            raise Unauthorized("an API key is required: Authorization: Bearer <key>")
        role, digest = self.identify(presented)
        if role is None:
            raise Unauthorized("unknown API key")
        return role, digest
