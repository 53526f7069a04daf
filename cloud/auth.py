"""Which fogs may talk to this cloud: the registry file and the credential check.

A fog proves who it is with two gRPC metadata entries, ``x-fogpark-fog:
<fog_id>`` and ``authorization: Bearer <token>``. This module knows nothing of
gRPC; the service maps AuthError to UNAUTHENTICATED.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FOG_HEADER = "x-fogpark-fog"
AUTH_HEADER = "authorization"
MIN_TOKEN_LEN = 8
_FOG_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FOG_KEYS = {"token", "lots"}
_TOP_KEYS = {"fogs"}
# Compared against when the fog is unknown, so both refusals take the same time.
_DUMMY_TOKEN = "x" * 32


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file, the key and the problem."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path = str(path)
        self.key = key
        self.problem = problem


class AuthError(Exception):
    """Credentials refused; ``code`` is a short label for metrics, the message is safe to send back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Fog:
    """A registered fog: its id, its secret and the lots it may send records for."""

    fog_id: str
    token: str
    lots: frozenset[str]


class FogRegistry:
    """The registered fogs, looked up by id."""

    def __init__(self, fogs: dict[str, Fog], source: str = "<memory>") -> None:
        self.fogs = fogs
        self.source = source

    def authenticate(self, fog_id: str | None, authorization: str | None) -> Fog:
        """The fog these header values prove to be, or AuthError.

        Unknown fog and wrong token get the same message (no probing for fog ids);
        the codes differ so operators can tell them apart in metrics.
        """
        if not fog_id or not authorization:
            missing = FOG_HEADER if not fog_id else AUTH_HEADER
            raise AuthError("missing_credentials", f"missing gRPC metadata {missing!r}")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("bad_auth_header", f"{AUTH_HEADER!r} must be 'Bearer <token>'")
        fog = self.fogs.get(fog_id)
        expected = fog.token if fog else _DUMMY_TOKEN
        matches = hmac.compare_digest(token.strip().encode(), expected.encode())
        if fog is None or not matches:
            raise AuthError(
                "unknown_fog" if fog is None else "bad_token",
                f"fog {fog_id!r} not authenticated: unknown fog id or wrong token",
            )
        return fog


def parse_registry(data: dict[str, Any], source: str) -> FogRegistry:
    """Build the registry from parsed TOML, refusing anything unexpected with ConfigError."""
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(source, key, f"unknown key; known: {', '.join(sorted(_TOP_KEYS))}")
    fogs_table = data.get("fogs")
    if not isinstance(fogs_table, dict) or not fogs_table:
        raise ConfigError(source, "fogs", 'needs at least one [fogs.<fog_id>] table with token and lots')
    fogs: dict[str, Fog] = {}
    for fog_id, entry in fogs_table.items():
        where = f"fogs.{fog_id}"
        if not _FOG_ID.fullmatch(fog_id):
            raise ConfigError(source, where, "fog id must be 1-64 of A-Z a-z 0-9 . _ - (starting alphanumeric)")
        if not isinstance(entry, dict):
            raise ConfigError(source, where, f"must be a table, got {type(entry).__name__}")
        for key in entry:
            if key not in _FOG_KEYS:
                raise ConfigError(source, f"{where}.{key}", f"unknown key; known: {', '.join(sorted(_FOG_KEYS))}")
        token = entry.get("token")
        if not isinstance(token, str) or len(token) < MIN_TOKEN_LEN or token != token.strip():
            raise ConfigError(
                source, f"{where}.token",
                f"must be a string of at least {MIN_TOKEN_LEN} characters without surrounding spaces",
            )
        lots = entry.get("lots")
        if not isinstance(lots, list) or not lots or not all(isinstance(lot, str) and lot for lot in lots):
            raise ConfigError(source, f"{where}.lots", 'must be a non-empty list of lot ids, e.g. ["demo"]')
        fogs[fog_id] = Fog(fog_id=fog_id, token=token, lots=frozenset(lots))
    return FogRegistry(fogs, source)


def load_registry(path: Path | str | None = None) -> FogRegistry:
    """The fog registry of the cloud config at ``path`` (the embedded demo config when None).

    The whole file is validated (cloud.config), so a typo elsewhere is refused here too.
    """
    from cloud.config import load_config  # cloud.config builds on this module

    return load_config(path).registry
