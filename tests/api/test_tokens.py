"""Development tokens on the real registry: each refusal has its stable code."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from api import auth
from api.auth import (
    DEV_ISSUER,
    AuthConfigError,
    AuthError,
    Principal,
    Role,
    TokenService,
    TokenSettings,
    load_dev_secret,
)
from domain import ValidationError
from tenants.service import Tenants
from zongzhi import cli

SECRET = b"test-secret-of-at-least-32-bytes-long!!"


@pytest.fixture
def service(tenants: Tenants) -> TokenService:
    return TokenService(TokenSettings(secret=SECRET), tenants.registry)


def refused(service: TokenService, token: str | None) -> str:
    with pytest.raises(AuthError) as error:
        service.verify(token)
    return error.value.code


def test_a_valid_token_names_its_subject_center_and_roles(
        service: TokenService, city_tree: dict[str, list[str]]) -> None:
    county = city_tree["county"][0]
    token = service.issue(county, [Role.DIRECTOR, "clerk"], subject="u-1", name="张三")
    assert service.verify(token) == Principal("u-1", county, (Role.CLERK, Role.DIRECTOR), "张三")
    assert service.verify(f"Bearer {token}").subject == "u-1"
    officer = service.verify(service.issue(county, ["unit-officer"], unit="justice-office"))
    assert officer.unit == "justice-office"
    village = city_tree["village"][0]
    worker = service.verify(service.issue(village, ["grid-worker"], subject="gw-1"))
    assert (worker.grid, worker.grid_ref) == (None, "gw-1")


def test_no_token_is_unauthenticated(service: TokenService) -> None:
    assert refused(service, None) == "UNAUTHENTICATED"
    assert refused(service, "  ") == "UNAUTHENTICATED"
    assert refused(service, "Bearer  ") == "UNAUTHENTICATED"


def test_an_expired_token_is_refused_as_expired(
        service: TokenService, city_tree: dict[str, list[str]]) -> None:
    token = service.issue(city_tree["county"][0], ["director"], ttl=timedelta(hours=1),
                          now=datetime.now(UTC) - timedelta(hours=2))
    assert refused(service, token) == "TOKEN_EXPIRED"


def test_malformed_tokens_are_invalid(service: TokenService) -> None:
    for token in ("abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "Bearer x.y"):
        assert refused(service, token) == "TOKEN_INVALID"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_tampered_token_is_invalid(
        service: TokenService, city_tree: dict[str, list[str]]) -> None:
    township = city_tree["township"][0]
    header, payload, signature = service.issue(township, ["clerk"]).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tenant"], claims["roles"] = city_tree["city"][0], ["director"]  # promote myself
    assert refused(service, f"{header}.{_b64(claims)}.{signature}") == "TOKEN_INVALID"
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert refused(service, unsigned) == "TOKEN_INVALID"
    other_key = TokenService(TokenSettings(secret=b"x" * 40), service.centers)
    assert refused(service, other_key.issue(township, ["clerk"])) == "TOKEN_INVALID"


def test_a_token_from_another_issuer_is_invalid(
        service: TokenService, city_tree: dict[str, list[str]]) -> None:
    claims = {"iss": "someone-else", "sub": "u", "tenant": city_tree["county"][0],
              "roles": ["director"], "exp": datetime.now(UTC) + timedelta(hours=1)}
    assert refused(service, jwt.encode(claims, SECRET, algorithm="HS256")) == "TOKEN_INVALID"
    del claims["iss"]
    assert refused(service, jwt.encode(claims, SECRET, algorithm="HS256")) == "TOKEN_INVALID"


def test_a_token_without_expiry_or_a_known_role_is_invalid(
        service: TokenService, city_tree: dict[str, list[str]]) -> None:
    county = city_tree["county"][0]
    base = {"iss": DEV_ISSUER, "sub": "u", "tenant": county, "roles": ["director"]}
    assert refused(service, jwt.encode(base, SECRET, algorithm="HS256")) == "TOKEN_INVALID"
    later = datetime.now(UTC) + timedelta(hours=1)
    for bad in ({"roles": ["admin"]}, {"roles": "nope"}, {"roles": None}, {"tenant": None},
                {"tenant": "99"}, {"tenant": "3307x"}, {"roles": ["unit-officer"]}):
        token = jwt.encode({**base, "exp": later, **bad}, SECRET, algorithm="HS256")
        assert refused(service, token) == "TOKEN_INVALID", bad


def test_a_token_for_a_retired_center_is_refused(
        service: TokenService, tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    village = city_tree["village"][-1]
    token = service.issue(village, ["grid-worker"])
    assert service.verify(token).tenant == village
    tenants.registry.retire(village, "merged into a neighbour", "test", datetime.now(UTC))
    assert refused(service, token) == "TENANT_RETIRED"


def test_a_token_for_an_unregistered_center_is_invalid(
        service: TokenService, city_tree: dict[str, list[str]]) -> None:
    unknown = city_tree["township"][0] + "999"
    assert refused(service, service.issue(unknown, ["clerk"])) == "TOKEN_INVALID"


def test_a_province_is_a_scope_for_auditors_only(service: TokenService) -> None:
    assert service.verify(service.issue("33", ["auditor"])).tenant == "33"
    with pytest.raises(ValidationError, match="auditors only"):
        service.issue("33", ["director"])


def test_issuing_refuses_unknown_roles_and_bad_codes(service: TokenService) -> None:
    with pytest.raises(ValidationError, match="unknown: boss"):
        service.issue("330782", ["boss"])
    with pytest.raises(ValidationError):
        service.issue("12345", ["clerk"])
    with pytest.raises(ValidationError, match="unit"):
        service.issue("330782", ["unit-officer"])


def test_the_dev_secret_is_created_once_private_and_overridable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZONGZHI_JWT_SECRET", raising=False)
    first = load_dev_secret(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "jwt.key").st_mode) == 0o600
    assert load_dev_secret(tmp_path) == first
    monkeypatch.setenv("ZONGZHI_JWT_SECRET", "s" * 32)
    assert load_dev_secret(tmp_path) == b"s" * 32
    monkeypatch.setenv("ZONGZHI_JWT_SECRET", "short")
    with pytest.raises(AuthConfigError):
        load_dev_secret(tmp_path)


def test_production_settings_need_an_audience_and_refuse_dev_tokens(
        service: TokenService, city_tree: dict[str, list[str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONGZHI_OIDC_ISSUER", "https://id.example.gov.cn/realms/zz")
    monkeypatch.delenv("ZONGZHI_OIDC_AUDIENCE", raising=False)
    with pytest.raises(AuthConfigError, match="AUDIENCE"):
        TokenSettings.from_env()
    monkeypatch.setenv("ZONGZHI_OIDC_AUDIENCE", "zongzhi")
    monkeypatch.setenv("ZONGZHI_OIDC_JWKS_URL", "http://127.0.0.1:9/never-fetched")
    production = TokenService.from_env(service.centers)
    with pytest.raises(AuthConfigError):
        production.issue(city_tree["county"][0], ["clerk"])
    dev_token = service.issue(city_tree["county"][0], ["director"])
    assert refused(production, dev_token) == "TOKEN_INVALID"  # HS256 is not accepted


def test_the_cli_prints_a_token_that_verifies(
        tenants: Tenants, city_tree: dict[str, list[str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZONGZHI_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ZONGZHI_JWT_SECRET", raising=False)
    monkeypatch.delenv("ZONGZHI_OIDC_ISSUER", raising=False)
    county = city_tree["county"][0]
    assert cli.main(["token", "--tenant", county, "--role", "director", "--role", "clerk",
                     "--name", "李四", "--ttl-hours", "1"]) == 0
    token = capsys.readouterr().out.strip()
    verifier = TokenService.from_env(tenants.registry, data_dir=tmp_path)
    principal = verifier.verify(token)
    assert (principal.tenant, principal.roles, principal.name) == (
        county, (Role.CLERK, Role.DIRECTOR), "李四")
    assert cli.main(["token", "--tenant", county, "--role", "boss"]) == 2
    assert "unknown: boss" in capsys.readouterr().err


# -- tokens verified lately, reused without a signature check ---------------------------


def test_a_verified_token_is_reused_only_within_its_window_and_lifetime(
        service: TokenService, city_tree: dict[str, list[str]]) -> None:
    county = city_tree["county"][0]
    token = service.issue(county, ["director"], subject="u-9", ttl=timedelta(hours=1))
    assert service.verified(f"Bearer {token}") is None  # never verified: verify decides
    principal = service.verify(token)
    assert service.verified(f"Bearer {token}") == principal == service.verified(token)
    started = service.clock()
    service.clock = lambda: started + auth.VERIFIED_FOR + 1  # past the reuse window
    assert service.verified(token) is None
    assert service.verify(token) == principal  # verified afresh, reusable again
    assert service.verified(token) == principal

    short = service.issue(county, ["director"], ttl=timedelta(seconds=60))
    service.clock = time.time
    service.verify(short)
    service.clock = lambda: time.time() + 61  # past the token's own expiry
    assert service.verified(short) is None


def test_a_refused_token_is_never_reused(
        service: TokenService, city_tree: dict[str, list[str]]) -> None:
    good = service.issue(city_tree["county"][0], ["director"])
    service.verify(good)
    tampered = good[:-12] + ("A" if good[-12] != "A" else "B") + good[-11:]
    assert refused(service, tampered) == "TOKEN_INVALID"
    assert service.verified(tampered) is None
    assert service.verified("") is None and service.verified(None) is None


def test_a_reused_token_of_a_retired_center_goes_back_to_verification(
        tenants: Tenants, service: TokenService, city_tree: dict[str, list[str]]) -> None:
    village = city_tree["village"][-1]
    token = service.issue(village, ["clerk"])
    service.verify(token)
    tenants.registry.retire(village, "merged away", "test", datetime.now(UTC))
    assert service.verified(token) is None
    assert refused(service, token) == "TENANT_RETIRED"


def test_the_tokens_kept_for_reuse_are_bounded(
        service: TokenService, city_tree: dict[str, list[str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "VERIFIED_TOKENS", 2)
    tokens = [service.issue(city_tree["county"][0], ["director"], subject=f"u-{i}")
              for i in range(3)]
    for token in tokens:
        service.verify(token)
    assert [service.verified(t) is not None for t in tokens] == [False, True, True]
