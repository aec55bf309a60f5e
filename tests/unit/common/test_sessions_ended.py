"""Notices of ended sessions on the wire (services/common/sessions.py): trailing-metadata values and back."""

from __future__ import annotations

import logging

import pytest

from services.common import sessions
from services.common.sessions import SESSIONS_ENDED_KEY, SessionsEnded

EVERY_TOKEN = SessionsEnded(user_id=42, before=1795680300.250001, until=1795681200.250001)
ONE_SESSION = SessionsEnded(user_id=42, session_id="0b9f6c1e-4f1a-4c55-9a55-6f4c2f0f2f7a", until=1795681200.0)


@pytest.mark.parametrize("notice", [EVERY_TOKEN, ONE_SESSION])
def test_a_notice_comes_back_from_its_trailer_exactly(notice: SessionsEnded) -> None:
    assert sessions.from_trailers(sessions.trailers([notice])) == [notice]


def test_only_notices_are_read_from_trailers_and_an_unreadable_one_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    metadata = [("mall-error-code", "REFRESH_TOKEN_REUSED"), (SESSIONS_ENDED_KEY, "42 nonsense"),
                (SESSIONS_ENDED_KEY, EVERY_TOKEN.encode().encode()), (SESSIONS_ENDED_KEY, ONE_SESSION.encode())]

    with caplog.at_level(logging.ERROR):
        found = sessions.from_trailers(metadata)

    assert (found, len(caplog.records)) == ([EVERY_TOKEN, ONE_SESSION], 1)


def test_what_is_told_during_a_call_is_collected_for_it_alone() -> None:
    with sessions.collecting() as outer:
        sessions.tell(EVERY_TOKEN)
        with sessions.collecting() as inner:
            sessions.tell(ONE_SESSION)

    assert (outer, inner) == ([EVERY_TOKEN], [ONE_SESSION])


def test_told_outside_a_call_it_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        sessions.tell(EVERY_TOKEN)

    assert "no gateway is told" in caplog.text
