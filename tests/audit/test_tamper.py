"""Tampering with a tenant's log directly in PostgreSQL (and with an export):
``audit verify`` catches each change, names the event, and an untouched or
crypto-shredded log verifies clean. Every tamper is checked live and offline
(an export of the tampered database, verified with no database)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_support import Log, drive
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.chain import Chainer
from audit.checkpoints import sign
from audit.verify import export_tenant, verify_file
from tenants.service import Tenants

MODES = ["database", "file"]


@pytest.mark.parametrize("mode", MODES)
def test_an_untouched_log_verifies_clean(log: Log, signing_key: Ed25519PrivateKey,
                                         mode: str, tmp_path: Path) -> None:
    assert log.checkpoint(signing_key) == 1
    report = log.verify(signing_key, mode, tmp=tmp_path)
    events = len(log.rows())
    assert report.ok, report.lines()
    assert (report.events, report.verified, report.head) == (events, events, events)
    assert report.checkpoints == 1 and report.pending == 0
    assert report.lines()[-1] == "OK: the log verifies"


@pytest.mark.parametrize("mode", MODES)
def test_an_edited_event_is_caught_and_named(log: Log, signing_key: Ed25519PrivateKey,
                                             mode: str, tmp_path: Path) -> None:
    log.checkpoint(signing_key)
    target = log.row(5)
    forged = bytes(target["state"]).replace(b'"by":"officer-1"', b'"by":"officer-9"')
    assert forged != bytes(target["state"])
    with log.connect() as conn:
        conn.execute(f"UPDATE {log.schema}.events SET state = %s WHERE tenant = %s "
                     "AND tenant_position = 5", (forged, log.tenant))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "edited" and broken.position == 5
    assert broken.originator_id == target["originator_id"]
    assert broken.originator_version == target["originator_version"]
    assert str(target["originator_id"]) in str(broken)


@pytest.mark.parametrize("mode", MODES)
def test_a_deleted_event_is_caught_and_named(log: Log, signing_key: Ed25519PrivateKey,
                                             mode: str, tmp_path: Path) -> None:
    target = log.row(7)
    with log.connect() as conn:
        conn.execute(f"DELETE FROM {log.schema}.events WHERE tenant = %s "
                     "AND tenant_position = 7", (log.tenant,))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "deleted" and broken.position == 7
    assert (broken.originator_id, broken.originator_version, broken.notification_id) == (
        target["originator_id"], target["originator_version"], target["notification_id"])


@pytest.mark.parametrize("mode", MODES)
def test_a_deleted_gap_closed_by_renumbering_is_still_a_deletion(
        log: Log, signing_key: Ed25519PrivateKey, mode: str, tmp_path: Path) -> None:
    target = log.row(4)
    with log.connect() as conn:
        conn.execute(f"DELETE FROM {log.schema}.events WHERE tenant = %s "
                     "AND tenant_position = 4", (log.tenant,))
        conn.execute(f"UPDATE {log.schema}.events SET tenant_position = tenant_position - 1 "
                     "WHERE tenant = %s AND tenant_position > 4", (log.tenant,))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "deleted" and broken.position == 4
    assert broken.originator_id == target["originator_id"]


@pytest.mark.parametrize("mode", MODES)
def test_reordered_events_are_caught_and_named(log: Log, signing_key: Ed25519PrivateKey,
                                               mode: str, tmp_path: Path) -> None:
    third, eighth = log.row(3), log.row(8)
    with log.connect() as conn, conn.transaction():  # swap the two positions
        conn.execute(f"UPDATE {log.schema}.events SET tenant_position = -1 "
                     "WHERE tenant = %s AND tenant_position = 3", (log.tenant,))
        conn.execute(f"UPDATE {log.schema}.events SET tenant_position = 3 "
                     "WHERE tenant = %s AND tenant_position = 8", (log.tenant,))
        conn.execute(f"UPDATE {log.schema}.events SET tenant_position = 8 "
                     "WHERE tenant = %s AND tenant_position = -1", (log.tenant,))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "reordered" and broken.position == 3
    assert broken.originator_id == eighth["originator_id"]
    assert broken.originator_version == eighth["originator_version"]
    assert "chained at position 8" in broken.detail
    assert third["originator_id"] != eighth["originator_id"] or \
        third["originator_version"] != eighth["originator_version"]


@pytest.mark.parametrize("mode", MODES)
def test_swapped_contents_are_caught_as_reordered(log: Log, signing_key: Ed25519PrivateKey,
                                                  mode: str, tmp_path: Path) -> None:
    """Positions and notification ids left alone, the rows' contents exchanged."""
    a, b = log.row(2), log.row(6)
    columns = "originator_id = %s, originator_version = %s, topic = %s, state = %s"
    with log.connect() as conn, conn.transaction():
        conn.execute(f"UPDATE {log.schema}.events SET originator_version = -1 "
                     "WHERE tenant = %s AND tenant_position = 6", (log.tenant,))
        conn.execute(f"UPDATE {log.schema}.events SET {columns} WHERE tenant = %s "
                     "AND tenant_position = 2", (b["originator_id"], b["originator_version"],
                                                 b["topic"], b["state"], log.tenant))
        conn.execute(f"UPDATE {log.schema}.events SET {columns} WHERE tenant = %s "
                     "AND tenant_position = 6", (a["originator_id"], a["originator_version"],
                                                 a["topic"], a["state"], log.tenant))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "reordered" and broken.position == 2
    assert broken.originator_id == b["originator_id"] and "chained at position 6" in broken.detail


@pytest.mark.parametrize("mode", MODES)
def test_an_inserted_event_is_caught_and_named(log: Log, signing_key: Ed25519PrivateKey,
                                               mode: str, tmp_path: Path) -> None:
    """A forged event slipped in at position 4, the later ones moved up to make room."""
    model = log.row(4)
    forged_state = bytes(model["state"]).replace(b'"by":"', b'"by":"forger-')
    with log.connect() as conn, conn.transaction():
        conn.execute(f"UPDATE {log.schema}.events SET tenant_position = -tenant_position - 1 "
                     "WHERE tenant = %s AND tenant_position >= 4", (log.tenant,))
        conn.execute(f"UPDATE {log.schema}.events SET tenant_position = -tenant_position "
                     "WHERE tenant = %s AND tenant_position < 0", (log.tenant,))
        conn.execute(f"INSERT INTO {log.schema}.events (originator_id, originator_version, "
                     "topic, state, tenant, tenant_position) VALUES (%s, %s, %s, %s, %s, 4)",
                     (model["originator_id"], 1000, model["topic"], forged_state, log.tenant))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "inserted" and broken.position == 4
    assert (broken.originator_id, broken.originator_version) == (model["originator_id"], 1000)
    assert "now stands at position 5" in broken.detail


@pytest.mark.parametrize("mode", MODES)
def test_an_event_appended_behind_the_chainer_is_caught(
        log: Log, signing_key: Ed25519PrivateKey, mode: str, tmp_path: Path) -> None:
    """A forged row at the tail that reuses a notification id the chainer has passed."""
    last = log.rows()[-1]
    with log.connect() as conn:
        conn.execute(f"INSERT INTO {log.schema}.events (originator_id, originator_version, "
                     "topic, state, tenant, tenant_position, notification_id) "
                     "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                     (last["originator_id"], 999, last["topic"], last["state"], log.tenant,
                      last["tenant_position"] + 1, -5))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "inserted"
    assert broken.position == last["tenant_position"] + 1 and broken.originator_version == 999


@pytest.mark.parametrize("mode", MODES)
def test_a_consistent_rewrite_of_events_and_chain_is_caught_by_the_signed_checkpoint(
        log: Log, signing_key: Ed25519PrivateKey, mode: str, tmp_path: Path) -> None:
    log.checkpoint(signing_key)
    head = len(log.rows())
    target = log.row(6)
    with log.connect() as conn:
        conn.execute(f"UPDATE {log.schema}.events SET state = %s WHERE tenant = %s "
                     "AND tenant_position = 6",
                     (bytes(target["state"]).replace(b'"by":"', b'"by":"x'), log.tenant))
    log.rechain(6)

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "checkpoint-mismatch"
    assert broken.position == head and f"positions 1..{head}" in broken.detail


def test_a_consistent_rewrite_after_the_last_checkpoint_is_not_detectable(
        log: Log, signing_key: Ed25519PrivateKey) -> None:
    """What the chain cannot prove (docs/audit.md): an event after the last
    checkpoint, rewritten together with its chain records, verifies."""
    target = log.row(len(log.rows()))
    with log.connect() as conn:
        conn.execute(f"UPDATE {log.schema}.events SET state = %s WHERE tenant = %s "
                     "AND tenant_position = %s",
                     (bytes(target["state"]) + b" ", log.tenant, target["tenant_position"]))
    log.rechain(target["tenant_position"])
    assert log.verify(signing_key).ok


@pytest.mark.parametrize("mode", MODES)
def test_a_checkpoint_with_a_bad_signature_is_caught(
        log: Log, signing_key: Ed25519PrivateKey, mode: str, tmp_path: Path) -> None:
    log.checkpoint(signing_key)
    with log.connect() as conn:
        conn.execute(f"UPDATE {log.schema}.audit_checkpoints "
                     "SET signature = set_byte(signature, 0, get_byte(signature, 0) # 1) "
                     "WHERE tenant = %s", (log.tenant,))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "bad-signature"
    assert broken.position == len(log.rows())


def test_checkpoints_signed_by_another_key_do_not_verify(
        log: Log, signing_key: Ed25519PrivateKey) -> None:
    log.checkpoint(Ed25519PrivateKey.generate())
    broken = log.verify(signing_key).broken
    assert broken is not None and broken.kind == "bad-signature"


def test_a_tail_removed_with_its_chain_is_caught_by_the_checkpoint(
        log: Log, signing_key: Ed25519PrivateKey) -> None:
    head = len(log.rows())
    log.checkpoint(signing_key)
    with log.connect() as conn:
        for table, column in (("events", "tenant_position"), ("audit_chain", "position")):
            conn.execute(f"DELETE FROM {log.schema}.{table} WHERE tenant = %s "
                         f"AND {column} > %s", (log.tenant, head - 3))

    broken = log.verify(signing_key).broken
    assert broken is not None and broken.kind == "truncated"
    assert broken.position == head - 2 and f"covers position {head}" in broken.detail


def test_a_cut_export_is_caught(log: Log, signing_key: Ed25519PrivateKey,
                                tmp_path: Path) -> None:
    log.checkpoint(signing_key)
    path = tmp_path / "export.jsonl"
    export_tenant(log.tenants, log.tenant, path, signing_key.public_key())
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    assert json.loads(lines[-1])["kind"] == "end"

    for cut in (data[:-1], b"".join(lines[:-1]), b"".join(lines[:-4]),
                b"".join(lines[:-4]) + lines[-4][:30]):
        path.write_bytes(cut)
        broken = verify_file(path, signing_key.public_key()).broken
        assert broken is not None and broken.kind == "truncated", broken


def test_an_export_truncated_and_patched_up_is_caught_by_the_checkpoint(
        log: Log, signing_key: Ed25519PrivateKey, tmp_path: Path) -> None:
    """The tail after position 10 dropped from the events and the chain, the end
    record rewritten to match: the signed checkpoint still covers the whole log."""
    head = len(log.rows())
    log.checkpoint(signing_key)
    path = tmp_path / "export.jsonl"
    export_tenant(log.tenants, log.tenant, path, signing_key.public_key())
    records = [json.loads(line) for line in path.read_text().splitlines()]
    kept = [r for r in records if r["kind"] not in ("event", "chain", "end")
            or (r["kind"] in ("event", "chain") and r["position"] <= 10)]
    kept.append({"kind": "end", "events": 10, "chain": 10})
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    broken = verify_file(path, signing_key.public_key()).broken
    assert broken is not None and broken.kind == "truncated" and broken.position == 11
    assert f"covers position {head}" in broken.detail


def test_an_export_with_an_edited_event_is_caught(log: Log, signing_key: Ed25519PrivateKey,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    export_tenant(log.tenants, log.tenant, path, signing_key.public_key())
    records = [json.loads(line) for line in path.read_text().splitlines()]
    event = next(r for r in records if r["kind"] == "event" and r["position"] == 9)
    event["state"] = base64.b64encode(base64.b64decode(event["state"]) + b" ").decode()
    path.write_text("".join(json.dumps(r) + "\n" for r in records))

    broken = verify_file(path, signing_key.public_key()).broken
    assert broken is not None and broken.kind == "edited" and broken.position == 9
    assert str(broken.originator_id) == event["originator_id"]


def test_an_export_re_signed_with_another_key_fails_against_the_published_key(
        log: Log, signing_key: Ed25519PrivateKey, tmp_path: Path) -> None:
    log.checkpoint(signing_key)
    path = tmp_path / "export.jsonl"
    forger = Ed25519PrivateKey.generate()
    export_tenant(log.tenants, log.tenant, path, forger.public_key())
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        if r["kind"] == "checkpoint":
            forged = sign(forger, r["tenant"], r["position"], bytes.fromhex(r["hash"]),
                          datetime.fromisoformat(r["at"]))
            r.update(forged.to_json())
    path.write_text("".join(json.dumps(r) + "\n" for r in records))

    assert verify_file(path).ok  # consistent with itself, under the key it names
    report = verify_file(path, signing_key.public_key())
    assert report.broken is not None and report.broken.kind == "bad-signature"


@pytest.mark.parametrize("mode", MODES)
def test_a_crypto_shredded_tenant_still_verifies(log: Log, signing_key: Ed25519PrivateKey,
                                                 mode: str, tmp_path: Path) -> None:
    log.checkpoint(signing_key)
    log.tenants.shred_key(log.tenant, "retention period over", "test", datetime.now(UTC))
    parties = log.tenants.center(log.tenant).get_case(log.cases[0]).parties
    assert parties[0].name is not None and parties[0].name.text is None  # unreadable now

    report = log.verify(signing_key, mode, tmp=tmp_path)
    assert report.ok and report.checkpoints >= 1, report.lines()
    assert report.verified >= len(log.rows()) - 1  # the shredding itself may add no event


def test_a_gap_the_chainer_met_is_reported(tenants: Tenants, city_tree: dict[str, list[str]],
                                           city: str, signing_key: Ed25519PrivateKey) -> None:
    """An event deleted before the chainer reached it: recorded, never skipped."""
    log = drive(tenants, city, city_tree["county"][0], cases=1, chain=False)
    with log.connect() as conn:
        conn.execute(f"DELETE FROM {log.schema}.events WHERE tenant = %s "
                     "AND tenant_position IN (3, 4)", (log.tenant,))
    log.chain()
    with log.connect() as conn:
        recorded = conn.execute(f"SELECT position, kind, detail FROM {log.schema}."
                                "audit_violations WHERE tenant = %s", (log.tenant,)).fetchall()
    assert [(r["position"], r["kind"]) for r in recorded] == [(3, "gap")]
    assert "positions 3..4 missing" in recorded[0]["detail"]

    broken = log.verify(signing_key).broken
    assert broken is not None and broken.kind == "gap" and broken.position == 3


def test_events_not_chained_yet_are_pending_not_broken(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str,
        signing_key: Ed25519PrivateKey) -> None:
    log = drive(tenants, city, city_tree["county"][0], cases=1, chain=False)
    Chainer(tenants, city)  # tables, no chaining
    report = log.verify(signing_key)
    assert report.ok and report.verified == 0 and report.pending == len(log.rows())
    assert any("not chained yet" in line for line in report.lines())
    log.chain()
    report = log.verify(signing_key)
    assert report.ok and report.pending == 0 and report.verified == len(log.rows())


def test_the_chain_is_per_tenant_and_never_rebuilt(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str,
        signing_key: Ed25519PrivateKey) -> None:
    from audit.chain import AuditError

    a = drive(tenants, city, city_tree["county"][0], cases=1, chain=False)
    b = drive(tenants, city, city_tree["township"][0], cases=1)
    assert a.verify(signing_key).ok and b.verify(signing_key).ok
    with a.connect() as conn:  # an edit of one tenant leaves the other verifying
        conn.execute(f"UPDATE {a.schema}.events SET state = state || ' '::bytea "
                     "WHERE tenant = %s AND tenant_position = 2", (a.tenant,))
    assert not a.verify(signing_key).ok and b.verify(signing_key).ok
    with pytest.raises(AuditError, match="never rebuilt"):
        Chainer(tenants, city).rebuild()


@pytest.mark.parametrize("mode", MODES)
def test_a_chain_record_removed_with_the_event_left_alone_is_caught(
        log: Log, signing_key: Ed25519PrivateKey, mode: str, tmp_path: Path) -> None:
    with log.connect() as conn:
        conn.execute(f"DELETE FROM {log.schema}.audit_chain WHERE tenant = %s "
                     "AND position = 4", (log.tenant,))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "chain-altered" and broken.position == 4


@pytest.mark.parametrize("mode", MODES)
def test_a_chain_record_altered_with_the_event_left_alone_is_told_apart(
        log: Log, signing_key: Ed25519PrivateKey, mode: str, tmp_path: Path) -> None:
    """The chain's last record (always compared) altered: the checkpoint on it shows the
    event is as chained, so the record, not the event, is named as altered."""
    head = len(log.rows())
    log.checkpoint(signing_key)
    with log.connect() as conn:
        conn.execute(f"UPDATE {log.schema}.audit_chain SET hash = sha256(hash) "
                     "WHERE tenant = %s AND position = %s", (log.tenant, head))

    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "chain-altered" and broken.position == head


@pytest.mark.parametrize("mode", MODES)
def test_small_blocks_verify_across_block_boundaries(
        log: Log, signing_key: Ed25519PrivateKey, mode: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With blocks of 4 positions the fast pass spans several blocks and samples
    positions 4, 8, ...: clean, then a sampled chain record altered in the middle
    (the next link shows the event is intact), then an edited event."""
    import audit.verify

    monkeypatch.setattr(audit.verify, "BLOCK", 4)
    log.checkpoint(signing_key)
    report = log.verify(signing_key, mode, tmp=tmp_path)
    assert report.ok and report.verified == len(log.rows()) > 12, report.lines()

    with log.connect() as conn:
        conn.execute(f"UPDATE {log.schema}.audit_chain SET hash = sha256(hash) "
                     "WHERE tenant = %s AND position = 8", (log.tenant,))
    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "chain-altered" and broken.position == 8

    with log.connect() as conn:
        conn.execute(f"UPDATE {log.schema}.events SET state = state || ' '::bytea "
                     "WHERE tenant = %s AND tenant_position = 6", (log.tenant,))
    broken = log.verify(signing_key, mode, tmp=tmp_path).broken
    assert broken is not None and broken.kind == "edited" and broken.position == 6
