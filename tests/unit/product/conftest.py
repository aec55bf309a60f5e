"""Product unit tests split words on spaces: jieba's dictionary is a file (the integration suite runs it)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.product import search


@pytest.fixture(autouse=True)
def whitespace_segmenter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "_segmenter", lambda: SimpleNamespace(cut_for_search=str.split))
