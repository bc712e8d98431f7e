"""The witness: checkpoints published to NATS JetStream contradict a later
rewrite of the log, its chain and its checkpoints, even one re-signed with the
deployment's own key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_support import Log, drive
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoints import key_id, sign, witness_checkpoints, write_checkpoints
from tenants.service import Tenants


def _rewrite_and_resign(log: Log, key: Ed25519PrivateKey, position: int) -> None:
    """The key holder edits an event, recomputes the chain and signs it afresh."""
    target = log.row(position)
    with log.connect() as conn:
        conn.execute(f"UPDATE {log.schema}.events SET state = %s WHERE tenant = %s "
                     "AND tenant_position = %s",
                     (bytes(target["state"]).replace(b'"by":"', b'"by":"z'), log.tenant,
                      position))
        conn.execute(f"DELETE FROM {log.schema}.audit_checkpoints WHERE tenant = %s",
                     (log.tenant,))
    log.rechain(position)
    assert len(write_checkpoints(log.tenants, log.city, datetime.now(UTC), key)) == 1


def test_checkpoints_reach_the_witness_and_are_held_in_order(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str,
        signing_key: Ed25519PrivateKey, nats_url: str) -> None:
    log = drive(tenants, city, city_tree["county"][0], cases=1)
    other = drive(tenants, city, city_tree["village"][0], cases=1)
    assert log.checkpoint(signing_key, nats_url) == 2  # both tenants of the city
    first = len(log.rows())
    drive(tenants, city, city_tree["county"][0], cases=1)
    assert log.checkpoint(signing_key, nats_url) == 1  # only the tenant that moved
    assert log.checkpoint(signing_key, nats_url) == 0

    # the session's server keeps its stream between sessions: earlier sessions' keys
    # signed checkpoints of the same tenant codes, so look at this key's only
    ours = key_id(signing_key.public_key())
    held = [c for c in witness_checkpoints(nats_url, log.tenant) if c.key_id == ours]
    assert [c.position for c in held] == [first, len(log.rows())]
    assert all(c.valid(signing_key.public_key()) for c in held)
    assert [c.position for c in witness_checkpoints(nats_url, other.tenant)
            if c.key_id == ours] == [len(other.rows())]
    report = log.verify(signing_key, witness=nats_url)
    assert report.ok and report.witnessed == 2 and report.checkpoints == 2, report.lines()


@pytest.mark.parametrize("mode", ["database", "file"])
def test_a_rewrite_re_signed_by_the_key_holder_contradicts_the_witness(
        log: Log, signing_key: Ed25519PrivateKey, nats_url: str, mode: str,
        tmp_path: Path) -> None:
    head = len(log.rows())
    log.checkpoint(signing_key, nats_url)
    _rewrite_and_resign(log, signing_key, 6)

    alone = log.verify(signing_key, mode, tmp=tmp_path)
    assert alone.ok and alone.checkpoints == 1  # the database agrees with itself

    report = log.verify(signing_key, mode, tmp=tmp_path, witness=nats_url)
    assert report.broken is not None and report.broken.kind == "witness-mismatch"
    assert report.broken.position == head


def test_a_tail_removed_and_re_signed_contradicts_the_witness(
        log: Log, signing_key: Ed25519PrivateKey, nats_url: str) -> None:
    head = len(log.rows())
    log.checkpoint(signing_key, nats_url)
    with log.connect() as conn:
        for table, column in (("events", "tenant_position"), ("audit_chain", "position"),
                              ("audit_checkpoints", "position")):
            conn.execute(f"DELETE FROM {log.schema}.{table} WHERE tenant = %s "
                         f"AND {column} > %s", (log.tenant, head - 4))
        row = conn.execute(f"SELECT hash FROM {log.schema}.audit_chain WHERE tenant = %s "
                           "AND position = %s", (log.tenant, head - 4)).fetchone()
        assert row is not None
        forged = sign(signing_key, log.tenant, head - 4, bytes(row["hash"]), datetime.now(UTC))
        conn.execute(f"INSERT INTO {log.schema}.audit_checkpoints VALUES (%s, %s, %s, %s, %s, "
                     "%s)", (forged.tenant, forged.position, forged.hash, forged.at,
                             forged.key_id, forged.signature))

    assert log.verify(signing_key).ok
    broken = log.verify(signing_key, witness=nats_url).broken
    assert broken is not None and broken.kind == "truncated"
    assert broken.position == head - 3 and f"covers position {head}" in broken.detail


def test_witness_checkpoints_of_another_key_are_set_aside(
        log: Log, signing_key: Ed25519PrivateKey, nats_url: str) -> None:
    """Another deployment's (or an earlier key's) checkpoints prove nothing here."""
    log.checkpoint(Ed25519PrivateKey.generate(), nats_url)
    with log.connect() as conn:
        conn.execute(f"DELETE FROM {log.schema}.audit_checkpoints WHERE tenant = %s",
                     (log.tenant,))
    report = log.verify(signing_key, witness=nats_url)
    assert report.ok and report.witnessed == 0
    assert any("signed by other keys" in line for line in report.lines())
