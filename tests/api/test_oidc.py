"""Production tokens: RS256/ES256 verified through a real JWKS served over HTTP
(OIDC discovery or an explicit JWKS URL), configured by ``ZONGZHI_OIDC_*``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.auth import AuthError, Principal, Role, TokenService
from tenants.service import Tenants
from zongzhi.servers import free_port

AUDIENCE = "zongzhi-web"


class Provider:
    """A minimal OIDC provider: a discovery document and a JWKS over HTTP."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/realms/zz"
        self.requests: list[str] = []
        keys = [
            {**json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key())), "kid": "rsa-1",
             "use": "sig", "alg": "RS256"},
            {**json.loads(ECAlgorithm.to_jwk(self.ec.public_key())), "kid": "ec-1",
             "use": "sig", "alg": "ES256"},
        ]
        documents = {
            "/realms/zz/.well-known/openid-configuration": {
                "issuer": self.issuer, "jwks_uri": f"{self.issuer}/certs"},
            "/realms/zz/certs": {"keys": keys},
        }
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.requests.append(self.path)
                document = documents.get(self.path)
                body = json.dumps(document).encode()
                self.send_response(200 if document else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, tenant: str, roles: list[str] | None = None, *, alg: str = "RS256",
              kid: str | None = None, key: Any = None, **claims: Any) -> str:
        now = datetime.now(UTC)
        body: dict[str, Any] = {"iss": self.issuer, "aud": AUDIENCE, "sub": "oidc-user-1",
                                "tenant": tenant, "roles": roles or ["director"],
                                "iat": now, "exp": now + timedelta(minutes=5), **claims}
        signing = key or (self.rsa if alg == "RS256" else self.ec)
        return jwt.encode(body, signing, algorithm=alg,
                          headers={"kid": kid or ("rsa-1" if alg == "RS256" else "ec-1")})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


@pytest.fixture
def oidc(provider: Provider, tenants: Tenants, monkeypatch: pytest.MonkeyPatch) -> TokenService:
    monkeypatch.setenv("ZONGZHI_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("ZONGZHI_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.delenv("ZONGZHI_OIDC_JWKS_URL", raising=False)
    monkeypatch.delenv("ZONGZHI_OIDC_ROLES_CLAIM", raising=False)
    monkeypatch.delenv("ZONGZHI_OIDC_TENANT_CLAIM", raising=False)
    return TokenService.from_env(tenants.registry)


def code_of(service: TokenService, token: str) -> str:
    with pytest.raises(AuthError) as error:
        service.verify(token)
    return error.value.code


def test_rs256_and_es256_tokens_verify_through_discovery_and_the_jwks(
        oidc: TokenService, provider: Provider, city_tree: dict[str, list[str]]) -> None:
    county = city_tree["county"][0]
    before = len(provider.requests)
    principal = oidc.verify(provider.token(county, ["director", "offline_access"],
                                           name="王主任"))
    assert principal == Principal("oidc-user-1", county, (Role.DIRECTOR,), "王主任")
    assert oidc.verify(provider.token(county, ["inspector"], alg="ES256")).roles == (
        Role.INSPECTOR,)
    fetched = provider.requests[before:]
    assert fetched[0].endswith("/.well-known/openid-configuration")
    assert "/realms/zz/certs" in fetched
    oidc.verify(provider.token(county))
    assert len(provider.requests) == before + len(fetched)  # keys are cached


def test_provider_tokens_are_refused_with_their_codes(
        oidc: TokenService, provider: Provider, city_tree: dict[str, list[str]]) -> None:
    county = city_tree["county"][0]
    past = datetime.now(UTC) - timedelta(hours=2)
    assert code_of(oidc, provider.token(county, exp=past, iat=past - timedelta(hours=1))
                   ) == "TOKEN_EXPIRED"
    assert code_of(oidc, provider.token(county, aud="another-client")) == "TOKEN_INVALID"
    assert code_of(oidc, provider.token(county, iss="http://evil.example")) == "TOKEN_INVALID"
    # signed by a key the provider never published (same kid, and an unknown kid)
    assert code_of(oidc, provider.token(county, key=provider.stranger)) == "TOKEN_INVALID"
    assert code_of(oidc, provider.token(county, key=provider.stranger, kid="nope")
                   ) == "TOKEN_INVALID"
    # a symmetric (HS256) token: the provider signs only with RS256/ES256
    assert code_of(oidc, provider.token(county, alg="HS256", key=b"k" * 32)) == "TOKEN_INVALID"
    assert code_of(oidc, provider.token(county[:4] + "99")) == "TOKEN_INVALID"  # unregistered
    assert code_of(oidc, provider.token(county, ["offline_access"])) == "TOKEN_INVALID"


def test_claims_can_be_mapped_and_the_jwks_named_directly(
        provider: Provider, tenants: Tenants, city_tree: dict[str, list[str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONGZHI_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("ZONGZHI_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("ZONGZHI_OIDC_JWKS_URL", f"{provider.issuer}/certs")
    monkeypatch.setenv("ZONGZHI_OIDC_ROLES_CLAIM", "realm_access.roles")
    monkeypatch.setenv("ZONGZHI_OIDC_TENANT_CLAIM", "zz_center")
    service = TokenService.from_env(tenants.registry)
    before = len(provider.requests)
    village = city_tree["village"][0]
    token = provider.token("ignored", realm_access={"roles": ["grid-worker", "uma_authorization"]},
                           zz_center=village, grid="grid-03")
    principal = service.verify(token)
    assert (principal.tenant, principal.roles, principal.grid) == (
        village, (Role.GRID_WORKER,), "grid-03")
    assert not any("openid-configuration" in r for r in provider.requests[before:])


def test_an_unreachable_provider_leaves_the_request_unauthenticated(
        tenants: Tenants, city_tree: dict[str, list[str]], provider: Provider,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONGZHI_OIDC_ISSUER", f"http://127.0.0.1:{free_port()}/realms/zz")
    monkeypatch.setenv("ZONGZHI_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.delenv("ZONGZHI_OIDC_JWKS_URL", raising=False)
    service = TokenService.from_env(tenants.registry)
    assert code_of(service, provider.token(city_tree["county"][0])) == "UNAUTHENTICATED"
