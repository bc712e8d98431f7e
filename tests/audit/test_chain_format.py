"""The chain's byte format is fixed (docs/audit.md defines it for third-party
verifiers): a known answer, and the fast ``Linker`` agreeing with ``link``."""

from __future__ import annotations

import hashlib
import random
import struct
from uuid import UUID

from audit.chain import Linker, genesis, link

ID = UUID("00000009-4f35-899b-8b6d-4a091d6d11b7")


def test_the_format_is_the_documented_one() -> None:
    state = b'{"by":"clerk-1"}'
    topic = "domain.case:Case.Triaged"
    expected = hashlib.sha256(
        hashlib.sha256(b"zongzhi:330109").digest()
        + struct.pack(">H", 6) + b"330109" + struct.pack(">q", 1) + struct.pack(">q", 2)
        + ID.bytes + struct.pack(">I", len(topic)) + topic.encode()
        + struct.pack(">Q", len(state)) + state).digest()
    assert genesis("330109") == hashlib.sha256(b"zongzhi:330109").digest()
    assert link(genesis("330109"), "330109", 1, ID, 2, topic, state) == expected
    # a known answer: a change of the format breaks every chain already recorded
    assert expected.hex() == "7e5ce0ddaec91f801c133107b708757bed2d8c1630f7ba09307822829950de9f"


def test_the_linker_computes_what_link_computes() -> None:
    rng = random.Random(7)
    for tenant in ("3301", "330109", "330109001001"):
        linker, prev = Linker(tenant), genesis(tenant)
        for position in range(1, 200):
            oid = UUID(int=rng.getrandbits(128))
            version = rng.randrange(1, 40)
            topic = rng.choice(["domain.case:Case.Received", "domain.case:Case.Closed", "话题"])
            state = rng.randbytes(rng.randrange(0, 3000))
            want = link(prev, tenant, position, oid, version, topic, state)
            assert linker(prev, position, oid.bytes, version, topic, state) == want
            prev = want
