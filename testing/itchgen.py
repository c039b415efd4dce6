"""The ITCH 5.0 message writers, for tests and benchmarks: they live in the product
(``feedhandler/files/itch_write.py``,
which ``hub sample`` uses); this name stays for the tests."""

from feedhandler.files.itch_write import *  # noqa: F403
