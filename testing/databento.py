"""The Databento MBO writers, for tests and benchmarks: they live in the product
(``feedhandler/files/databento_write.py``,
which ``hub sample`` uses); this name stays for the tests."""

from feedhandler.files.databento_write import *  # noqa: F403
