"""Fixtures of the emulator's own tests."""

import pytest

from . import load, restore


@pytest.fixture
def ext():
    """The emulated build's module; the settings a test changes are restored after it."""
    ext = load()
    saved = ext.config()
    yield ext
    restore(ext, saved)
