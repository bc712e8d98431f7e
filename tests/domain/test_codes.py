"""Division codes and stream ids that carry their tenant."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import (
    Tier,
    ValidationError,
    city_of,
    is_within,
    new_stream_id,
    parent_of,
    stream_id,
    tenant_of,
    tier_of,
)

VILLAGE, TOWNSHIP, COUNTY, CITY = "330782101203", "330782101", "330782", "3307"


@pytest.mark.parametrize(
    ("code", "tier"),
    [(CITY, Tier.CITY), (COUNTY, Tier.COUNTY), (TOWNSHIP, Tier.TOWNSHIP), (VILLAGE, Tier.VILLAGE)],
)
def test_a_stream_id_carries_its_tenant_at_every_tier(code: str, tier: Tier) -> None:
    assert tier_of(code) is tier
    sid = stream_id(code, "case:ZZ-1")
    assert sid.version == 8 and sid.variant == uuid.RFC_4122
    assert tenant_of(sid) == code
    assert tenant_of(new_stream_id(code)) == code
    assert stream_id(code, "case:ZZ-1") == sid != stream_id(code, "case:ZZ-2")


def test_ids_made_elsewhere_carry_no_tenant() -> None:
    assert tenant_of(uuid.uuid4()) is None
    assert tenant_of(uuid.UUID(int=0)) is None


def test_the_parent_chain_climbs_to_the_city_and_stops() -> None:
    assert parent_of(VILLAGE) == TOWNSHIP
    assert parent_of(TOWNSHIP) == COUNTY
    assert parent_of(COUNTY) == CITY
    assert parent_of(CITY) is None
    assert city_of(VILLAGE) == CITY


def test_inside_is_a_prefix_test_including_itself_and_the_province() -> None:
    assert is_within(VILLAGE, TOWNSHIP) and is_within(TOWNSHIP, TOWNSHIP)
    assert is_within(COUNTY, "33")
    assert not is_within(COUNTY, TOWNSHIP)
    assert not is_within("330783", COUNTY)


@pytest.mark.parametrize(
    "code", ["", "33", "330", "0330782", "33078", "3307821012", "33078210120x", "３３０７", 3307]
)
def test_a_malformed_code_is_refused_naming_the_rule(code: object) -> None:
    with pytest.raises(ValidationError, match="4, 6, 9 or 12 digits"):
        tier_of(code)  # type: ignore[arg-type]


@given(
    length=st.sampled_from([4, 6, 9, 12]),
    digits=st.text(alphabet="0123456789", min_size=11, max_size=11),
    first=st.sampled_from("123456"),
    key=st.text(max_size=40),
)
def test_every_tenant_code_round_trips_through_any_stream_id(
    length: int, digits: str, first: str, key: str
) -> None:
    code = (first + digits)[:length]
    assert tenant_of(stream_id(code, key)) == code
    assert tenant_of(new_stream_id(code)) == code
