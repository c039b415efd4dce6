"""docs/feeds.md lists every source ``hub feed --source`` takes, every venue has its
section in docs/venues.md or its row in feeds.md's rules table, and no row names a
source the code does not have."""

from __future__ import annotations

import re

from feedhandler.venues import VENUES
from hub.config import LIVE_SOURCES
from tests.conftest import ROOT

FEEDS = (ROOT / "docs" / "feeds.md").read_text()
VENUE_DOC = (ROOT / "docs" / "venues.md").read_text()


def source_table() -> set[str]:
    """The `source` column of the sources table at the top of docs/feeds.md."""
    rows = FEEDS.split("| source | what | example |", 1)[1].split("\n\n", 1)[0]
    names: set[str] = set()
    for line in rows.splitlines()[2:]:
        names.update(re.findall(r"`([a-z0-9-]+)`", line.split("|")[1]))
    return names


def test_the_sources_table_lists_every_venue_and_nothing_else() -> None:
    files = {"sim", "capture", "itch", "lobster", "databento"}
    assert source_table() == set(VENUES) | files
    assert set(VENUES) <= set(LIVE_SOURCES)


def test_every_venue_has_its_detail_in_venues_md_or_the_rules_table() -> None:
    rules = FEEDS.split("| venue | feed | sync and checks |", 1)[1].split("\n\n", 1)[0]
    for name in VENUES:
        assert f"`{name}`" in VENUE_DOC or name.split("-")[0] in rules.lower(), name
