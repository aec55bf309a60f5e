"""Keyword search: Chinese word segmentation (jieba) at write time and query time, and term weights.

Each product stores its terms with a weight (name 8, brand and subtitle 4, description 1, summed
over the fields a term occurs in); a query ranks products by the summed weight of the query's
terms they hold. The same tokenizer runs on both sides, so "手机" meets "智能手机" (jieba's search
mode also emits the words inside a compound) and "iphone" meets "iPhone15" (lower case, and
letter/digit runs split apart).
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from typing import Any

NAME_WEIGHT, SUBTITLE_WEIGHT, DESCRIPTION_WEIGHT = 8, 4, 1
MAX_TERM_LENGTH = 32
MAX_QUERY_TERMS = 16
MAX_QUERY_LENGTH = 100  # characters of a query segmented (the gateway's limit of `q`): the rest is ignored
WORD = re.compile(r"\w", re.UNICODE)
ASCII_RUNS = re.compile(r"[a-z]+|[0-9]+")

_jieba: Any = None
_loading = threading.Lock()


def _segmenter() -> Any:
    """jieba, its dictionary loaded once (about a second) on first use, never at import."""
    global _jieba
    with _loading:
        if _jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba = jieba
    return _jieba


def warm_up() -> None:
    """Load the dictionary now (a service calls this on a background thread at start, so no request waits)."""
    _segmenter()


def terms(text: str) -> list[str]:
    """The distinct search terms of `text`, in order of first appearance."""
    if not text.strip():
        return []
    found: dict[str, None] = {}
    # NFKC: the full-width letters and digits of Chinese keyboards (ｉＰｈｏｎｅ１５) are the half-width ones
    for token in _segmenter().cut_for_search(unicodedata.normalize("NFKC", text).lower()):
        token = token.strip()
        if not token or not WORD.search(token):
            continue
        for term in (token, *ASCII_RUNS.findall(token)):
            if len(term) <= MAX_TERM_LENGTH:
                found.setdefault(term, None)
    return list(found)


def query_terms(q: str) -> tuple[str, ...]:
    return tuple(terms(q[:MAX_QUERY_LENGTH])[:MAX_QUERY_TERMS])


def term_weights(*, name: str, subtitle: str, description: str, brand: str = "") -> dict[str, int]:
    """term -> weight for one product (what the search index stores)."""
    weights: dict[str, int] = {}
    for text, weight in ((name, NAME_WEIGHT), (brand, SUBTITLE_WEIGHT), (subtitle, SUBTITLE_WEIGHT),
                         (description, DESCRIPTION_WEIGHT)):
        for term in terms(text):
            weights[term] = weights.get(term, 0) + weight
    return weights
