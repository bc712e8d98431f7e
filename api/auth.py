"""Authentication: bearer JWTs in, a ``Principal`` out.

Two modes, chosen by the environment once, when the ``TokenService`` is built:

- **Development** (``ZONGZHI_OIDC_ISSUER`` unset): tokens are HS256, issuer
  ``zongzhi-dev``, signed with ``ZONGZHI_JWT_SECRET`` (32 bytes or more) or, on a
  laptop, with ``<data dir>/jwt.key``, created (mode 0600) on first use like
  ``master.key``. ``zongzhi token`` issues them.
- **Production** (``ZONGZHI_OIDC_ISSUER`` set): tokens come from an OIDC provider
  and are RS256 or ES256, verified against the provider's JWKS
  (``ZONGZHI_OIDC_JWKS_URL``, else ``jwks_uri`` of
  ``<issuer>/.well-known/openid-configuration``) with audience
  ``ZONGZHI_OIDC_AUDIENCE`` (required). The center and roles come from the
  claims named by ``ZONGZHI_OIDC_TENANT_CLAIM`` (default ``tenant``) and
  ``ZONGZHI_OIDC_ROLES_CLAIM`` (default ``roles``; a dotted path such as
  ``realm_access.roles`` reaches into nested claims). Dev tokens are refused.

Claims: ``sub`` (required), ``tenant`` (a center's division code; a 2-digit
province only for auditors), ``roles`` (list of :class:`Role` values; others
are ignored, none left is refused), ``name``, ``unit`` (required for a unit
officer: the assignee ref of its stationed unit), ``grid`` (a grid worker's
assignee ref; defaults to ``sub``), ``exp`` (required), ``iss``.

Every refusal is an :class:`AuthError` with a stable ``code``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import jwt

from domain.codes import tier_of
from domain.errors import ValidationError

__all__ = [
    "DEV_ISSUER",
    "PROVINCE_ROLES",
    "AuthConfigError",
    "AuthError",
    "CenterLookup",
    "Principal",
    "Role",
    "TokenService",
    "TokenSettings",
    "load_dev_secret",
    "parse_roles",
]

DEV_ISSUER = "zongzhi-dev"
DEV_ALGORITHM = "HS256"
OIDC_ALGORITHMS = ("RS256", "ES256")
JWT_SECRET = "ZONGZHI_JWT_SECRET"
OIDC_ISSUER = "ZONGZHI_OIDC_ISSUER"
OIDC_AUDIENCE = "ZONGZHI_OIDC_AUDIENCE"
OIDC_JWKS_URL = "ZONGZHI_OIDC_JWKS_URL"
OIDC_TENANT_CLAIM = "ZONGZHI_OIDC_TENANT_CLAIM"
OIDC_ROLES_CLAIM = "ZONGZHI_OIDC_ROLES_CLAIM"
MIN_SECRET_BYTES = 32
DEFAULT_TTL = timedelta(hours=12)
_PROVINCE_DIGITS = 2


class Role(StrEnum):
    """Roles of a center's staff (DESIGN.md "API"); see docs/authorization.md."""

    CLERK = "clerk"  # 受理员: intake, feedback to the party
    DISPATCHER = "dispatcher"  # 分流/派单
    UNIT_OFFICER = "unit-officer"  # 入驻单位工作人员: a stationed unit's officer
    GRID_WORKER = "grid-worker"  # 网格员
    DIRECTOR = "director"  # 中心主任
    INSPECTOR = "inspector"  # 督查: closed-loop checks, callback sampling
    AUDITOR = "auditor"  # 审计: history, as-of views, integrity proofs


#: Roles that may be held at a province (a 2-digit code: a scope, not a tenant).
PROVINCE_ROLES = frozenset({Role.AUDITOR})


class AuthError(Exception):
    """A request is not authenticated or not allowed. ``code`` is API: add, never rename.

    UNAUTHENTICATED: no token, or its signing keys cannot be fetched;
    TOKEN_EXPIRED; TOKEN_INVALID: malformed, tampered, wrong issuer, audience or
    algorithm, missing claims, unknown center; TENANT_RETIRED: the token's center
    was retired; FORBIDDEN: authenticated but not allowed.
    """

    CODES = frozenset(
        {"UNAUTHENTICATED", "TOKEN_EXPIRED", "TOKEN_INVALID", "TENANT_RETIRED", "FORBIDDEN"})

    def __init__(self, code: str, message: str) -> None:
        if code not in self.CODES:
            raise ValueError(f"unknown auth error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


class AuthConfigError(Exception):
    """The deployment's authentication settings are unusable (raised at start-up)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a member of a center's staff, from a verified token."""

    subject: str
    tenant: str
    roles: tuple[Role, ...]
    name: str | None = None
    unit: str | None = None  # a unit officer's unit: the assignee ref dispatchers use
    grid: str | None = None  # a grid worker's assignee ref

    def has(self, role: Role) -> bool:
        return role in self.roles

    @property
    def grid_ref(self) -> str:
        """The ref a grid worker is dispatched under: ``grid``, else the subject."""
        return self.grid or self.subject


class CenterInfoLike(Protocol):
    @property
    def retired(self) -> bool: ...


class CenterLookup(Protocol):
    """What verification needs of the registry (``tenants.registry.Registry``):
    ``get`` returns the center or raises ``LookupError`` (``UnknownTenant``);
    ``cached`` returns it only when that needs no I/O, else ``None``."""

    def get(self, code: str) -> CenterInfoLike: ...

    def cached(self, code: str) -> CenterInfoLike | None: ...


def load_dev_secret(data_dir: Path) -> bytes:
    """``ZONGZHI_JWT_SECRET``, or the secret in (or newly written to) ``data_dir/jwt.key``."""
    value = os.environ.get(JWT_SECRET, "")
    if not value:
        path = data_dir / "jwt.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process wrote it first: read theirs
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        value = path.read_text().strip()
    secret = value.encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise AuthConfigError(
            f"the dev token secret must be at least {MIN_SECRET_BYTES} bytes"
            f" (set {JWT_SECRET} or delete {data_dir / 'jwt.key'})")
    return secret


@dataclass(frozen=True)
class TokenSettings:
    """How tokens are verified. ``issuer`` is ``zongzhi-dev`` in development."""

    issuer: str = DEV_ISSUER
    secret: bytes | None = None  # development only
    audience: str | None = None
    jwks_url: str | None = None
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"
    leeway: timedelta = timedelta(seconds=30)

    @property
    def production(self) -> bool:
        return self.issuer != DEV_ISSUER

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> TokenSettings:
        """Production when ``ZONGZHI_OIDC_ISSUER`` is set, else development
        (secret from ``ZONGZHI_JWT_SECRET`` or ``<data dir>/jwt.key``)."""
        issuer = os.environ.get(OIDC_ISSUER, "").strip()
        tenant_claim = os.environ.get(OIDC_TENANT_CLAIM, "").strip() or "tenant"
        roles_claim = os.environ.get(OIDC_ROLES_CLAIM, "").strip() or "roles"
        if issuer:
            audience = os.environ.get(OIDC_AUDIENCE, "").strip()
            if not audience:
                raise AuthConfigError(
                    f"{OIDC_ISSUER} is set but {OIDC_AUDIENCE} is not: tokens minted for"
                    " other clients of the provider would be accepted")
            return cls(issuer=issuer, audience=audience,
                       jwks_url=os.environ.get(OIDC_JWKS_URL, "").strip() or None,
                       tenant_claim=tenant_claim, roles_claim=roles_claim)
        if data_dir is None:
            from zongzhi.servers import default_data_dir

            data_dir = default_data_dir()
        return cls(secret=load_dev_secret(data_dir), tenant_claim=tenant_claim,
                   roles_claim=roles_claim)


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _optional_text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise AuthError("TOKEN_INVALID", f"the token's {name!r} claim must be text")
    return value.strip()


def parse_roles(values: Iterable[str]) -> tuple[Role, ...]:
    """Known roles in the enum's order, each once; unknown names are dropped."""
    known = {str(v) for v in values}
    return tuple(r for r in Role if r.value in known)


#: Verified tokens kept for reuse without a signature check (``TokenService.verified``),
#: and for how long at most: a token whose signing key the provider withdraws, or
#: whose claims would now be refused, is still accepted that long, never past its expiry.
VERIFIED_TOKENS = 4096
VERIFIED_FOR = 300.0


def _bearer(header: str | None) -> str:
    """The token of an ``Authorization`` value (``Bearer`` optional)."""
    token = header.strip() if isinstance(header, str) else ""
    scheme, _, rest = token.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else token


class TokenService:
    """Verifies bearer tokens (both modes) and issues dev tokens."""

    def __init__(self, settings: TokenSettings, centers: CenterLookup) -> None:
        if not settings.production and (
                settings.secret is None or len(settings.secret) < MIN_SECRET_BYTES):
            raise AuthConfigError(
                f"dev tokens need a secret of at least {MIN_SECRET_BYTES} bytes")
        if settings.production and not settings.audience:
            raise AuthConfigError("an OIDC issuer needs an audience")
        self.settings = settings
        self.centers = centers
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        #: token -> (its principal, until when it may be reused), most recent last
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._verified_lock = threading.Lock()
        self.clock: Callable[[], float] = time.time  # seconds since the epoch

    @classmethod
    def from_env(cls, centers: CenterLookup, data_dir: Path | None = None) -> TokenService:
        return cls(TokenSettings.from_env(data_dir), centers)

    # -- development tokens ------------------------------------------------

    def issue(self, tenant: str, roles: Sequence[Role | str], *, subject: str | None = None,
              name: str | None = None, unit: str | None = None, grid: str | None = None,
              ttl: timedelta = DEFAULT_TTL, now: datetime | None = None) -> str:
        """A signed dev token (development mode only). Checks the code's shape and
        the roles, not the registry: ``verify`` does that on every use."""
        if self.settings.production or self.settings.secret is None:
            raise AuthConfigError("tokens are issued by the OIDC provider in production")
        unknown = sorted({str(r) for r in roles} - {r.value for r in Role})
        if unknown:
            raise ValidationError(
                f"roles are {', '.join(Role)}; unknown: {', '.join(unknown)}")
        granted = parse_roles(str(r) for r in roles)
        principal = self._principal(subject or f"dev-{'+'.join(granted)}@{tenant}", tenant,
                                    granted, name, unit, grid)
        if ttl <= timedelta(0):
            raise ValidationError("a token's lifetime must be positive")
        issued = now or datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": DEV_ISSUER, "sub": principal.subject, "tenant": principal.tenant,
            "roles": [r.value for r in principal.roles], "iat": issued,
            "exp": issued + ttl,
        }
        for key, value in (("name", name), ("unit", unit), ("grid", grid)):
            if value is not None:
                claims[key] = value
        return jwt.encode(claims, self.settings.secret, algorithm=DEV_ALGORITHM)

    # -- verification ------------------------------------------------------

    def verified(self, header: str | None) -> Principal | None:
        """The principal of a token :meth:`verify` accepted lately, when that can be
        said without I/O: the token has not expired, was verified at most
        ``VERIFIED_FOR`` ago, and its center is in the registry's memory, still
        active. ``None`` otherwise: call ``verify``, which decides and says why.
        Lets an event loop skip a thread and the signature check per request."""
        token = _bearer(header)
        with self._verified_lock:
            entry = self._verified.get(token)
            if entry is None:
                return None
            principal, until = entry
            if self.clock() >= until:
                del self._verified[token]
                return None
            self._verified.move_to_end(token)
        if len(principal.tenant) == _PROVINCE_DIGITS:
            return principal
        center = self.centers.cached(principal.tenant)
        return principal if center is not None and not center.retired else None

    def verify(self, token: str | None) -> Principal:
        """The principal a bearer token names, or an ``AuthError`` saying why not."""
        token = _bearer(token)
        if not token:
            raise AuthError("UNAUTHENTICATED", "a bearer token is required")
        claims = self._decode(token)
        tenant = _claim(claims, self.settings.tenant_claim)
        roles_claim = _claim(claims, self.settings.roles_claim)
        if isinstance(roles_claim, str):
            roles_claim = roles_claim.split()
        if not isinstance(roles_claim, list) or not all(isinstance(r, str) for r in roles_claim):
            raise AuthError("TOKEN_INVALID",
                            f"the token's {self.settings.roles_claim!r} claim must list roles")
        roles = parse_roles(roles_claim)
        if not roles:
            raise AuthError("TOKEN_INVALID", "the token grants no zongzhi role")
        if not isinstance(tenant, str):
            raise AuthError("TOKEN_INVALID",
                            f"the token names no center ({self.settings.tenant_claim!r} claim)")
        try:
            principal = self._principal(claims["sub"], tenant, roles,
                                        _optional_text(claims, "name"),
                                        _optional_text(claims, "unit"),
                                        _optional_text(claims, "grid"))
        except ValidationError as e:
            raise AuthError("TOKEN_INVALID", str(e)) from None
        self._require_active(principal)
        self._remember(token, principal, claims["exp"])
        return principal

    def _remember(self, token: str, principal: Principal, exp: object) -> None:
        if not isinstance(exp, int | float):
            return
        until = min(float(exp), self.clock() + VERIFIED_FOR)
        with self._verified_lock:
            self._verified[token] = (principal, until)
            self._verified.move_to_end(token)
            while len(self._verified) > VERIFIED_TOKENS:
                self._verified.popitem(last=False)

    def _decode(self, token: str) -> dict[str, Any]:
        s = self.settings
        try:
            if s.production:
                alg = jwt.get_unverified_header(token).get("alg")
                if alg not in OIDC_ALGORITHMS:  # refuse before fetching any key
                    raise jwt.InvalidAlgorithmError(
                        f"the provider's tokens are {' or '.join(OIDC_ALGORITHMS)}, not {alg}")
                key: Any = self._signing_key(token)
                algorithms = list(OIDC_ALGORITHMS)
            else:
                key, algorithms = s.secret, [DEV_ALGORITHM]
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=algorithms, issuer=s.issuer, audience=s.audience,
                leeway=s.leeway,
                options={"require": ["exp", "iss", "sub"], "verify_aud": s.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("TOKEN_EXPIRED", "the token has expired") from None
        except jwt.InvalidIssuerError:
            raise AuthError("TOKEN_INVALID", "the token was not issued by this deployment's "
                                             "identity provider") from None
        except jwt.PyJWKClientConnectionError as e:
            raise AuthError("UNAUTHENTICATED",
                            f"the identity provider's signing keys cannot be fetched: {e}"
                            ) from None
        except jwt.PyJWKClientError as e:  # no key with the token's kid, bad JWKS
            raise AuthError("TOKEN_INVALID", f"the token's signing key is unknown: {e}") from None
        except jwt.PyJWTError as e:
            raise AuthError("TOKEN_INVALID", f"the token is invalid: {e}") from None
        return claims

    def _signing_key(self, token: str) -> Any:
        with self._lock:
            if self._jwks is None:
                url = self.settings.jwks_url or self._discover_jwks_url()
                self._jwks = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)
            client = self._jwks
        return client.get_signing_key_from_jwt(token).key

    def _discover_jwks_url(self) -> str:
        url = f"{self.settings.issuer.rstrip('/')}/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                document = json.load(response)
        except (OSError, ValueError) as e:
            raise jwt.PyJWKClientConnectionError(
                f"OIDC discovery at {url} failed: {e}") from e
        jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise jwt.PyJWKClientConnectionError(f"{url} names no jwks_uri")
        return jwks_uri

    @staticmethod
    def _principal(subject: object, tenant: str, roles: tuple[Role, ...], name: str | None,
                   unit: str | None, grid: str | None) -> Principal:
        if not isinstance(subject, str) or not subject.strip():
            raise ValidationError("a token names its subject (sub)")
        if not roles:
            raise ValidationError("a token grants at least one role")
        if len(tenant) == _PROVINCE_DIGITS and tenant.isdigit() and tenant[0] in "123456":
            if not set(roles) <= PROVINCE_ROLES:
                raise ValidationError(
                    f"a province ({tenant}) is a scope for auditors only, not a center")
        else:
            tier_of(tenant)  # a center's code, or ValidationError
        if Role.UNIT_OFFICER in roles and not unit:
            raise ValidationError("a unit officer's token names its unit (unit claim)")
        return Principal(subject.strip(), tenant, roles, name, unit, grid)

    def _require_active(self, principal: Principal) -> None:
        if len(principal.tenant) == _PROVINCE_DIGITS:
            return  # a province is a scope, not a registered center
        try:
            center = self.centers.get(principal.tenant)
        except LookupError:
            raise AuthError("TOKEN_INVALID",
                            f"no center is registered under {principal.tenant}") from None
        if center.retired:
            raise AuthError("TENANT_RETIRED",
                            f"center {principal.tenant} is retired: its tokens are refused")
