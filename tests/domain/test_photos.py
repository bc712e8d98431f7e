"""Photos on a case (evidence): the rules the aggregate keeps, without a server."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from case_builders import T0, receive

from domain import Case, IllegalTransition, ValidationError
from domain.case import MAX_PHOTO_BYTES, MAX_PHOTOS, photo_type

JPEG = b"\xff\xd8\xff\xe0" + bytes(32)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


def attach(case: Case, content: bytes = JPEG, attachment_id: UUID | None = None) -> None:
    case.attach_photo(attachment_id or uuid4(), hashlib.sha256(content).hexdigest(),
                      photo_type(content), len(content), "clerk-1", T0 + timedelta(minutes=1))


def test_a_photo_type_is_read_from_its_magic_bytes_never_its_name() -> None:
    assert photo_type(JPEG) == "image/jpeg"
    assert photo_type(PNG) == "image/png"
    for content in (b"GIF89a" + bytes(10), b"photo.jpg", b"<svg/>", b"\xff\xd8"):
        with pytest.raises(ValidationError, match="JPEG or PNG"):
            photo_type(content)
    with pytest.raises(ValidationError, match="empty"):
        photo_type(b"")
    with pytest.raises(ValidationError, match="at most 5 MB"):
        photo_type(b"\xff\xd8\xff" + bytes(MAX_PHOTO_BYTES))


def test_an_attached_photo_is_an_event_that_replays_into_the_case() -> None:
    # given a received case
    case = receive()
    # when a photo is attached
    attach(case, PNG)
    # then the case lists it, and its events rebuild the same case
    events = case.collect_events()
    assert type(events[-1]).__name__ == "PhotoAttached"
    assert [(p.content_type, p.size) for p in case.photos] == [("image/png", len(PNG))]
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert replayed is not None and replayed.photos == case.photos


def test_a_case_holds_at_most_its_cap_of_photos_each_once() -> None:
    case = receive()
    first = uuid4()
    attach(case, attachment_id=first)
    with pytest.raises(ValidationError, match="already attached"):
        attach(case, attachment_id=first)
    for _ in range(MAX_PHOTOS - 1):
        attach(case)
    with pytest.raises(ValidationError, match=f"at most {MAX_PHOTOS} photos"):
        attach(case)
    assert len(case.photos) == MAX_PHOTOS


def test_a_photo_record_with_a_bad_type_size_or_digest_is_refused() -> None:
    case = receive()
    at = T0 + timedelta(minutes=1)
    digest = hashlib.sha256(JPEG).hexdigest()
    with pytest.raises(ValidationError, match="JPEG or PNG"):
        case.attach_photo(uuid4(), digest, "image/gif", 10, "c", at)
    with pytest.raises(ValidationError, match="1 byte to"):
        case.attach_photo(uuid4(), digest, "image/jpeg", MAX_PHOTO_BYTES + 1, "c", at)
    with pytest.raises(ValidationError, match="SHA-256"):
        case.attach_photo(uuid4(), "abc", "image/jpeg", 10, "c", at)
    assert case.photos == []


def test_photos_are_attached_only_to_an_open_case() -> None:
    case = receive()
    case.withdraw("当事人撤回", "clerk-1", T0 + timedelta(minutes=1))
    with pytest.raises(IllegalTransition, match="open case"):
        attach(case)
