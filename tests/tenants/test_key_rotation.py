"""Rotating the master key: every tenant's data key is re-wrapped under the new
master, in batches that each commit whole, so a run cut short leaves every key
under exactly one of the two masters and a re-run finishes. The data keys (and
so every ciphertext already in the events) stay as they were.

Each test has a database of its own: a rotation re-wraps every key of the
database it runs on, which the session's other suites share."""

from __future__ import annotations

import base64
import os
import re
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.conninfo import make_conninfo
from support import write_divisions

import tenants.keys as keys_module
from domain import Channel, Party, Personal, Place
from tenants.keys import (
    MASTER_KEY,
    NEW_MASTER_KEY,
    Keyring,
    KeyringError,
    MasterKeyMismatch,
    TenantKeyShredded,
    rewrap_keys,
)
from tenants.service import Tenants
from zongzhi.cli import main
from zongzhi.servers import DATABASE_URL

OLD = secrets.token_bytes(32)
NEW = secrets.token_bytes(32)
NAME = "王小明"


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


@pytest.fixture
def own_url(database_url: str) -> Iterator[str]:
    """A database of this test's own on the session's server (dropped after)."""
    name = f"zz_keys_{secrets.token_hex(4)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield make_conninfo(database_url, dbname=name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def world(own_url: str, city: str, tmp_path: Path) -> Iterator[World]:
    """A city of 7 centers under the old master, a case with a party's personal
    fields in 5 of them, and one center's key shredded."""
    tenants = Tenants(own_url, OLD)
    try:
        tree = write_divisions(tmp_path / "divisions", city)
        tenants.import_divisions(tmp_path / "divisions", city, "test", datetime.now(UTC))
        codes = [*tree["county"], *tree["township"], *tree["village"]][:5]
        cases = {}
        for code in codes:
            case = tenants.center(code).receive_case(
                channel=Channel.WINDOW, category="neighbour-dispute", summary="噪声扰民",
                parties=[Party(name=Personal(NAME), phone=Personal("13912345678"))],
                place=Place(code, "某路1号"), by="clerk-1", at=datetime.now(UTC))
            cases[code] = case.id
        shredded = tree["village"][-1]
        tenants.center(shredded).receive_case(
            channel=Channel.WINDOW, category="neighbour-dispute", summary="噪声扰民",
            parties=[Party(name=Personal(NAME))], place=Place(shredded, "某路2号"),
            by="clerk-1", at=datetime.now(UTC))
        tenants.shred_key(shredded, "dissolved", "test", datetime.now(UTC))
        yield World(own_url, tenants, cases, shredded)
    finally:
        tenants.close()


class World:
    def __init__(self, url: str, tenants: Tenants, cases: dict[str, UUID],
                 shredded: str) -> None:
        self.url, self.tenants, self.cases, self.shredded = url, tenants, cases, shredded

    def rows(self) -> dict[str, bytes | None]:
        with psycopg.connect(self.url) as conn:
            return {t: None if w is None else bytes(w) for t, w in conn.execute(
                "SELECT tenant, wrapped FROM zz_keys.tenant_keys ORDER BY tenant")}

    def under(self, master: bytes) -> set[str]:
        """The tenants whose wrapped key opens with ``master``."""
        aead, opened = AESGCM(master), set()
        for tenant, wrapped in self.rows().items():
            if wrapped is not None:
                try:
                    aead.decrypt(wrapped[:12], wrapped[12:], tenant.encode())
                except InvalidTag:
                    continue
                opened.add(tenant)
        return opened

    def names_read_with(self, master: bytes) -> dict[str, str | None]:
        """Every case's party name, read by a fresh process holding ``master``
        (another URL of the database: a pool of its own)."""
        other = Tenants(make_conninfo(self.url, application_name=f"m{secrets.token_hex(3)}"),
                        master)
        try:
            return {code: other.center(code).get_case(case_id).parties[0].name.text
                    for code, case_id in self.cases.items()}
        finally:
            other.close()


def test_after_rewrap_every_tenant_decrypts_with_the_new_master_and_none_with_the_old(
        world: World) -> None:
    # given every data key wrapped under the old master
    wrapped = {t: w for t, w in world.rows().items() if w is not None}
    assert world.under(OLD) == set(wrapped) == set(world.cases)
    data_keys = {t: world.tenants.keyring.data_key(t, create=False) for t in world.cases}

    # when they are re-wrapped under the new master
    report = rewrap_keys(world.tenants.datastore, OLD, NEW, batch=2)

    # then each key is under the new master only, and nothing else changed
    assert (report.rewrapped, report.already, report.shredded) == (5, 0, 1)
    assert world.under(NEW) == set(world.cases) and world.under(OLD) == set()
    assert world.rows()[world.shredded] is None  # a shredded key stays destroyed
    # and no row ever holds a data key in clear: only its new wrapping
    for tenant, blob in world.rows().items():
        key = data_keys.get(tenant)
        assert blob is None or (key is not None and key not in blob and blob != wrapped[tenant])
    # and a process with the new master reads every personal field written before
    assert world.names_read_with(NEW) == dict.fromkeys(world.cases, NAME)
    # while the old master opens none of them
    for tenant in world.cases:
        with pytest.raises(MasterKeyMismatch, match=f"tenant {tenant} does not open"):
            Keyring(world.tenants.datastore, OLD).data_key(tenant, create=False)
    # and running it again changes nothing
    again = rewrap_keys(world.tenants.datastore, OLD, NEW)
    assert (again.rewrapped, again.already, again.shredded) == (0, 5, 1)


def test_a_rewrap_cut_short_leaves_each_key_under_one_master_and_a_rerun_finishes(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = keys_module._rewrap_batch
    batches = 0

    def crash_in_the_second_batch(*args: object, **kwargs: object) -> tuple[int, int, int]:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise ConnectionError("process killed in the middle of a batch")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    # given a rewrap killed while re-wrapping its second batch of 2 keys
    monkeypatch.setattr(keys_module, "_rewrap_batch", crash_in_the_second_batch)
    with pytest.raises(ConnectionError):
        rewrap_keys(world.tenants.datastore, OLD, NEW, batch=2)
    monkeypatch.undo()

    # then the first batch is under the new master, the rest under the old, none under both
    under_new, under_old = world.under(NEW), world.under(OLD)
    assert len(under_new) == 2 and len(under_old) == 3
    assert under_new | under_old == set(world.cases) and not under_new & under_old

    # when it is run again with the same two keys, then it finishes the rest
    report = rewrap_keys(world.tenants.datastore, OLD, NEW, batch=2)
    assert (report.rewrapped, report.already) == (3, 2)
    assert world.under(NEW) == set(world.cases) and world.under(OLD) == set()
    assert world.names_read_with(NEW) == dict.fromkeys(world.cases, NAME)


def test_a_key_under_neither_master_stops_the_rewrap_naming_the_tenant(world: World) -> None:
    # given one tenant's key wrapped under a third master (a mistake, or tampering)
    stranger = sorted(world.cases)[0]
    third = AESGCM(secrets.token_bytes(32))
    nonce = secrets.token_bytes(12)
    with psycopg.connect(world.url) as conn:
        conn.execute("UPDATE zz_keys.tenant_keys SET wrapped = %s WHERE tenant = %s",
                     (nonce + third.encrypt(nonce, secrets.token_bytes(32), stranger.encode()),
                      stranger))
    before = world.rows()
    # when the rewrap meets it, then it stops naming the tenant, its batch unchanged
    with pytest.raises(MasterKeyMismatch,
                       match=rf"tenant {stranger} \(version 1\) opens with neither"):
        rewrap_keys(world.tenants.datastore, OLD, NEW)
    assert world.rows() == before


def test_rewrap_keys_command_rotates_a_laptops_master_key_file(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # given a laptop whose master key is <data dir>/master.key, and the new key in a file
    data = tmp_path / "data"
    data.mkdir()
    (data / "master.key").write_text(b64(OLD))
    new_file = tmp_path / "new.key"
    new_file.write_text(b64(NEW) + "\n")
    monkeypatch.setenv(DATABASE_URL, make_conninfo(world.url, application_name="rewrap-cli"))
    monkeypatch.setenv("ZONGZHI_DATA_DIR", str(data))
    monkeypatch.delenv(MASTER_KEY, raising=False)
    monkeypatch.delenv(NEW_MASTER_KEY, raising=False)

    # when the command runs
    assert main(["tenants", "rewrap-keys", "--new-master-key-file", str(new_file)]) == 0

    # then every key is under the new master and master.key holds it (mode 0600)
    out = capsys.readouterr().out
    assert "5 data keys re-wrapped under the new master key, 0 already were, 1 shredded" in out
    assert world.under(NEW) == set(world.cases)
    assert base64.urlsafe_b64decode((data / "master.key").read_text()) == NEW
    assert stat.S_IMODE(os.stat(data / "master.key").st_mode) == 0o600
    # and running it again (master.key now being the new key) is refused, changing nothing
    assert main(["tenants", "rewrap-keys", "--new-master-key-file", str(new_file)]) == 2
    assert "the new master key is the current one" in capsys.readouterr().err


def test_rewrap_keys_command_with_the_keys_in_the_environment(
        world: World, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(DATABASE_URL, make_conninfo(world.url, application_name="rewrap-env"))
    monkeypatch.setenv(MASTER_KEY, b64(OLD))
    monkeypatch.setenv(NEW_MASTER_KEY, b64(NEW))
    assert main(["tenants", "rewrap-keys"]) == 0
    out = capsys.readouterr().out
    assert "5 data keys re-wrapped" in out and f"put it in {MASTER_KEY}" in out
    assert world.names_read_with(NEW) == dict.fromkeys(world.cases, NAME)


@pytest.mark.parametrize(("new_key", "rule"), [
    (b64(secrets.token_bytes(16)), "ZONGZHI_NEW_MASTER_KEY must be urlsafe base64 of 32 bytes, "
                                   "got 16 bytes"),
    ("not base64 at all!", "ZONGZHI_NEW_MASTER_KEY must be urlsafe base64 of 32 bytes: it is "
                           "not base64"),
    ("", "the new master key is missing: set ZONGZHI_NEW_MASTER_KEY or give "
         "--new-master-key-file FILE"),
    (b64(OLD), "the new master key is the current one"),
])
def test_a_bad_new_master_key_is_refused_naming_the_rule_and_nothing_changes(
        world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        new_key: str, rule: str) -> None:
    # given the keys under the old master
    before = world.rows()
    monkeypatch.setenv(DATABASE_URL, make_conninfo(world.url, application_name="rewrap-bad"))
    monkeypatch.setenv(MASTER_KEY, b64(OLD))
    monkeypatch.setenv(NEW_MASTER_KEY, new_key)
    # when the command is given a bad new master key
    status = main(["tenants", "rewrap-keys"])
    # then it exits 2 naming the rule, and no key changed
    assert status == 2
    assert rule in capsys.readouterr().err
    assert world.rows() == before and world.under(OLD) == set(world.cases)


def test_rewrap_refuses_wrong_key_lengths_from_code_too(world: World) -> None:
    before = world.rows()
    with pytest.raises(KeyringError, match="master keys are 32 bytes"):
        rewrap_keys(world.tenants.datastore, OLD, NEW[:16])
    assert world.rows() == before


# -- data key versions ---------------------------------------------------------------------


def received(world: World, code: str, tenants: Tenants | None = None,
             phone: str = "13912345678") -> tuple[UUID, list[str]]:
    """A new case with a party's name and phone; (its id, its match keys)."""
    case = (tenants or world.tenants).center(code).receive_case(
        channel=Channel.WINDOW, category="neighbour-dispute", summary="噪声扰民",
        parties=[Party(name=Personal(NAME), phone=Personal(phone))],
        place=Place(code, "某路1号"), by="clerk-1", at=datetime.now(UTC))
    return case.id, case.match_keys


def stored_name(world: World, case_id: UUID) -> str:
    """The party's name as the Received event stores it (ciphertext text)."""
    city = str(case_id.int >> 80)[:4]
    with psycopg.connect(world.url) as conn:
        row = conn.execute(f"SELECT state FROM lg_{city}.events WHERE originator_id = %s "
                           "AND originator_version = 1", (case_id,)).fetchone()
    assert row is not None
    body = bytes(row[0]).decode()
    start = body.index('"name":') + len('"name":')
    return body[start:body.index("}", start)]


def read_name(tenants: Tenants, code: str, case_id: UUID) -> str | None:
    return tenants.center(code).get_case(case_id).parties[0].name.text


def test_after_a_data_key_rotation_new_fields_use_the_new_version_and_old_ones_still_read(
        world: World) -> None:
    # given a center with a case written under its first key
    code = sorted(world.cases)[0]
    first, keys_before = world.cases[code], world.tenants.center(code).get_case(
        world.cases[code]).match_keys
    assert "v2:" not in stored_name(world, first)

    # when its data key is rotated, twice, with a case written after each rotation
    assert world.tenants.keyring.rotate(code) == 2
    second, keys_second = received(world, code)
    assert world.tenants.keyring.rotate(code) == 3
    third, _ = received(world, code)

    # then each case's personal fields name the version that encrypted them
    assert '"v2:' in stored_name(world, second) and '"v3:' in stored_name(world, third)
    # (version 1 has no prefix: base64 has no ':', so no "v<n>:" can begin its data; a
    # check for a leading "v" alone failed when the ciphertext's first character was one)
    unprefixed = stored_name(world, first)
    assert unprefixed.startswith('{"_type_":"personal","_data_":"')
    assert re.match(r"v\d+:", unprefixed.removeprefix('{"_type_":"personal","_data_":"')) is None
    # and a fresh process reads all three
    names = world.names_read_with(OLD)
    assert names[code] == NAME
    other = Tenants(make_conninfo(world.url, application_name="versions"), OLD)
    try:
        assert [read_name(other, code, c) for c in (first, second, third)] == [NAME] * 3
    finally:
        other.close()
    # and the same phone still matches across the rotation (match keys keep version 1)
    assert keys_second == keys_before

    # when the center's key is shredded, then every version is gone and nothing reads
    world.tenants.shred_key(code, "dissolved", "test", datetime.now(UTC))
    with psycopg.connect(world.url) as conn:
        row = conn.execute("SELECT wrapped, rotated FROM zz_keys.tenant_keys WHERE tenant = %s",
                           (code,)).fetchone()
    assert row == (None, [])
    assert [read_name(world.tenants, code, c) for c in (first, second, third)] == [None] * 3
    assert world.tenants.keyring.versions(code) == 0
    with pytest.raises(TenantKeyShredded, match="nothing to rotate"):
        world.tenants.keyring.rotate(code)


def test_another_process_picks_up_a_rotation_at_its_next_write_and_read(world: World) -> None:
    code = sorted(world.cases)[1]
    # given a second process that read (and cached) the center's first key
    other = Tenants(make_conninfo(world.url, application_name="stale-cache"), OLD)
    try:
        assert read_name(other, code, world.cases[code]) == NAME
        # when the first process rotates the key and writes under version 2
        world.tenants.keyring.rotate(code)
        newer, _ = received(world, code)
        # then the second process reads it (it reloads the versions it lacks)
        assert read_name(other, code, newer) == NAME
        # and its own next write uses version 2 (each write looks past the cache)
        mine, _ = received(world, code, other)
        assert '"v2:' in stored_name(world, mine)
    finally:
        other.close()


def test_rewrap_moves_every_version_of_a_rotated_key(world: World) -> None:
    code = sorted(world.cases)[2]
    world.tenants.keyring.rotate(code)
    newer, _ = received(world, code)
    report = rewrap_keys(world.tenants.datastore, OLD, NEW)
    assert report.rewrapped == 5
    reader = Tenants(make_conninfo(world.url, application_name="rewrapped"), NEW)
    try:
        assert read_name(reader, code, world.cases[code]) == NAME  # version 1
        assert read_name(reader, code, newer) == NAME  # version 2
    finally:
        reader.close()
    with pytest.raises(MasterKeyMismatch):
        Keyring(world.tenants.datastore, OLD).data_key(code, create=False)


def test_rotate_key_command_and_its_bad_input(
        world: World, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(DATABASE_URL, make_conninfo(world.url, application_name="rotate-cli"))
    monkeypatch.setenv(MASTER_KEY, b64(OLD))
    code = sorted(world.cases)[3]
    # when an operator rotates a center's key, then the new version is said
    assert main(["tenants", "rotate-key", code]) == 0
    assert f"data key of {code} rotated: version 2" in capsys.readouterr().out
    assert world.tenants.keyring.versions(code) == 2
    # and bad input is refused naming the rule, changing nothing
    for argv, rule in (
            (["tenants", "rotate-key"], "rotate-key needs the center's code"),
            (["tenants", "rotate-key", "199901"], "no center is registered under code"),
            (["tenants", "rotate-key", world.shredded], "was shredded: there is nothing to "
                                                        "rotate")):
        assert main(argv) == 2
        assert rule in capsys.readouterr().err
    assert world.tenants.keyring.versions(code) == 2


def test_a_field_naming_a_key_version_that_does_not_exist_is_an_error(world: World) -> None:
    code = sorted(world.cases)[4]
    with pytest.raises(KeyringError, match=f"tenant {code} names key version 9, which does not "
                                           r"exist \(versions 1..1\)"):
        world.tenants.keyring.decrypt(code, "v9:AAAA")


def test_a_keyring_from_before_versions_gains_them_and_its_keys_still_open(
        own_url: str) -> None:
    # given a keyring table as it was before versions, holding a key and a field under it
    key = secrets.token_bytes(32)
    nonce, field_nonce = secrets.token_bytes(12), secrets.token_bytes(12)
    field = base64.b64encode(field_nonce + AESGCM(key).encrypt(
        field_nonce, NAME.encode(), b"610101")).decode()
    with psycopg.connect(own_url) as conn:
        conn.execute("CREATE SCHEMA zz_keys; CREATE TABLE zz_keys.tenant_keys (tenant text "
                     "PRIMARY KEY, wrapped bytea, created_at timestamptz NOT NULL DEFAULT "
                     "now(), shredded_at timestamptz)")
        conn.execute("INSERT INTO zz_keys.tenant_keys (tenant, wrapped) VALUES (%s, %s)",
                      ("610101", nonce + AESGCM(OLD).encrypt(nonce, key, b"610101")))
    tenants = Tenants(own_url, OLD)
    try:
        # when this version's keyring opens it, then the old field reads and rotation works
        assert tenants.keyring.decrypt("610101", field) == NAME
        assert tenants.keyring.rotate("610101") == 2
        assert tenants.keyring.encrypt("610101", "李四").startswith("v2:")
        assert tenants.keyring.decrypt("610101", field) == NAME
    finally:
        tenants.close()
