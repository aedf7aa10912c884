"""The top-level API is small, deliberate, and every name in it exists."""

from __future__ import annotations

import types

import framework


def test_every_public_name_is_importable_and_documented() -> None:
    assert 15 <= len(framework.__all__) <= 25
    assert sorted(framework.__all__) == framework.__all__
    for name in framework.__all__:
        value = getattr(framework, name)
        assert value.__doc__, f"framework.{name} has no docstring"


def test_nothing_public_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(framework).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(framework.__all__)
