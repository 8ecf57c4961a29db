"""Fixtures of the update-rule tests."""

import pytest
from scheme_toys import make_batch


@pytest.fixture
def batch():
    return make_batch()
