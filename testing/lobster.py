"""The LOBSTER file writers, for tests and benchmarks: they live in the product
(``feedhandler/files/lobster_write.py``,
which ``hub sample`` uses); this name stays for the tests."""

from feedhandler.files.lobster_write import *  # noqa: F403
