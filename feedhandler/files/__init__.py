"""Market-data files through the same parsers and books as live traffic.

Per format, a reader and a replay: the capture format of recorded venue traffic
(``capture.py``, with ``record.py`` for ``hub capture`` and ``replay.py`` for ``hub
replay capture``), NASDAQ ITCH 5.0 (``itch.py``), LOBSTER (``lobster.py``) and
Databento MBO (``databento.py``). Each also yields its events as a paced source for
``hub feed --source <format>`` (``pacing.py``). A file that cannot be used raises its
format's BadInput error naming the file and line; the streaming sources report a bad
record and go on, or stop where the file cannot be read on.
"""
