"""The browser checks' one Chromium (Debian's, through Playwright): outside requests refused."""

from __future__ import annotations

import pytest

import check_book


@pytest.fixture(scope="module")
def browser():
    with check_book.open_browser() as context:
        yield context
