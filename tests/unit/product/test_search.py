"""Keyword segmentation: what a shopper types meets what a product's name was indexed under."""

from __future__ import annotations

from services.product import search


def test_full_width_letters_and_digits_from_a_chinese_keyboard_meet_the_half_width_name() -> None:
    indexed = set(search.term_weights(name="Apple iPhone15 手机", subtitle="", description=""))

    assert set(search.query_terms("ｉＰｈｏｎｅ１５")) <= indexed


def test_only_the_first_characters_of_a_very_long_query_are_segmented() -> None:
    # the gateway takes 100; a service caller could send megabytes, whose segmentation cost seconds of CPU
    terms = search.query_terms("x" * search.MAX_QUERY_LENGTH + " 手机")

    assert terms == ()
