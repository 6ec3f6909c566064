"""Fixtures of the emulator's own tests."""

import pytest

from . import load


@pytest.fixture
def ext():
    """The emulated build's module; the settings a test changes are restored after it."""
    ext = load()
    saved = ext.config()
    yield ext
    ext.configure(seed=saved["seed"], workers=saved["workers"], max_grid_dim=saved["max_grid_dim"])
