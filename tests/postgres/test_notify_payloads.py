"""NOTIFY payloads: a send names every partition of a topic that moved in one
notice, listeners get one ``Notification`` per partition back, and a payload that
is not the framework's is ignored with a warning rather than failing the reader."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.postgres.notify import (
    Notification,
    notifications,
    payload,
    payloads,
)

topics = st.text(min_size=0, max_size=20)
offsets = st.dictionaries(
    st.integers(0, 10_000), st.integers(-1, 2**62), min_size=1, max_size=450
)


@given(topics, offsets)
def test_every_partition_comes_back_from_the_payloads(
    topic: str, moved: dict[int, int]
) -> None:
    texts = payloads(topic, moved)
    assert all(len(text.encode()) < 8000 for text in texts)  # PostgreSQL's cap
    assert len(texts) == -(-len(moved) // 200)
    back = [n for text in texts for n in notifications(text)]
    assert back == [Notification(topic, p, o) for p, o in sorted(moved.items())]


def test_a_single_partition_payload_keeps_its_old_shape() -> None:
    assert payload("t", 3, 17) == '["t",3,17]'
    assert payloads("t", {3: 17}) == ['["t",3,17]']
    assert notifications('["t",3,17]') == [Notification("t", 3, 17)]


@pytest.mark.parametrize("text", ["", "hello", "[]", "[1,2,3]", '["t",1]', "{}"])
def test_a_foreign_payload_is_ignored_with_a_warning(
    text: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="framework.postgres"):
        assert notifications(text) == []
    assert "not the framework's" in caplog.text
