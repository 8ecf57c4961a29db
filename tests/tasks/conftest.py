"""Fixtures of the task tests: user kinds registered by a test are removed afterwards."""

from __future__ import annotations

import gc

import pytest


@pytest.fixture
def restore_registries():
    """Snapshot every Registry (task kinds, models, ...) and restore it after the test, so kinds a test
    registers do not leak into the docs tables or other tests."""
    from mtlzoo.registry import Registry

    registries = [obj for obj in gc.get_objects() if type(obj) is Registry]  # type(): no proxy __class__ lookups
    saved = [dict(registry._entries) for registry in registries]
    yield
    for registry, entries in zip(registries, saved, strict=True):
        registry._entries.clear()
        registry._entries.update(entries)
