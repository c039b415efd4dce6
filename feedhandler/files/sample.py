"""``hub sample DIR``: small, deterministic sample files of every file format the hub replays,
so a new user can try each replay without hunting for data.

Every file is written by the product's own writers beside its reader (``itch_write``,
``lobster_write``, ``databento_write``), from a seed, so the same seed writes the same bytes:

- an ITCH 5.0 session (gzip) of three stocks: adds (some attributed), executions with and
  without price, cancels, replaces, deletes, hidden and cross prints, trading actions;
- a LOBSTER message + orderbook file pair per stock (submissions, partial cancellations,
  deletions, visible and hidden executions), the orderbook file checking every row;
- a Databento MBO file of two instruments, as DBN (zstd) and as CSV: adds, cancels,
  modifies, trades and fills, one event per F_LAST;
- a Gemini market-data capture (``capture_write``) of two symbols: symbol details,
  full books, level changes and trades, for ``hub replay capture``.

``write_samples`` returns what it wrote and the command that replays each file.
"""

from __future__ import annotations

import dataclasses
import gzip
import shlex
from dataclasses import dataclass
from pathlib import Path

from feedhandler.files import databento_write, itch_write, lobster_write
from feedhandler.files.capture_write import write_gemini_capture
from feedhandler.files.databento import MboRecord

ITCH_SYMBOLS = ("AAPL", "MSFT", "NVDA")
ITCH_NAME = "12302019.NASDAQ_ITCH50.gz"
"""NASDAQ's file name (MMDDYYYY) gives the trading day the replay stamps events with."""
ITCH_MESSAGES = 3000
LOBSTER_SYMBOLS = ("AAPL", "MSFT")
LOBSTER_COMMANDS = 600
DATABENTO_INSTRUMENTS = (101, 202)
DATABENTO_COMMANDS = 400
DATABENTO_START_NS = 1_577_716_200_000_000_000
"""2019-12-30 14:30 UTC (the US open of the ITCH sample's day: the samples but LOBSTER's
overlap in time, so a merged export or replay interleaves them)."""
CAPTURE_NAME = "gemini-sample_l2-trades_2019-12-30.jsonl.zst"
OPEN_NS = 34_200 * 10**9
"""09:30 after the exchange's midnight, where the ITCH sample's order flow starts."""


@dataclass(frozen=True)
class Sample:
    """One sample: its format, the files written and the command that replays them."""

    kind: str
    files: tuple[Path, ...]
    command: tuple[str, ...]
    about: str

    def shell(self) -> str:
        return shlex.join(self.command)


def write_itch(folder: Path, seed: int) -> Path:
    data = itch_write.random_session(
        seed, ITCH_MESSAGES, ITCH_SYMBOLS, start_ns=OPEN_NS, step_ns=2_000_000
    )
    path = folder / ITCH_NAME
    path.write_bytes(gzip.compress(data, mtime=0))  # mtime 0: the same seed, the same bytes
    return path


def databento_records(seed: int) -> list[MboRecord]:
    """Sessions of each instrument, interleaved one engine command at a time and restamped
    on one clock (a record every 1-3 ms) with one channel sequence."""
    sessions = [
        databento_write.session(seed + i, DATABENTO_COMMANDS, instrument)[0]
        for i, instrument in enumerate(DATABENTO_INSTRUMENTS)
    ]
    out: list[MboRecord] = []
    ts = DATABENTO_START_NS
    for n in range(max(len(s) for s in sessions)):
        for batches in sessions:
            if n >= len(batches):
                continue
            ts += 1_000_000 + (n * 7919 + len(out) * 104_729) % 2_000_000
            for r in batches[n]:
                out.append(
                    dataclasses.replace(r, ts_event=ts, ts_recv=ts + 50_000, sequence=len(out) + 1)
                )
    return out


def write_samples(folder: Path, seed: int = 1) -> list[Sample]:
    """Write every sample into ``folder`` (made if absent); what was written, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Sample] = []
    itch = write_itch(folder, seed)
    out.append(
        Sample(
            "itch",
            (itch,),
            ("hub", "replay", "itch", str(itch)),
            f"NASDAQ ITCH 5.0, {ITCH_MESSAGES} messages, {', '.join(ITCH_SYMBOLS)}",
        )
    )
    for i, symbol in enumerate(LOBSTER_SYMBOLS):
        messages, orderbook, _trades = lobster_write.write_session(
            folder, seed + i, LOBSTER_COMMANDS, symbol, partial=True
        )
        out.append(
            Sample(
                "lobster",
                (messages, orderbook),
                ("hub", "replay", "lobster", str(messages), "--orderbook", str(orderbook)),
                f"LOBSTER level-10 message + orderbook files of {symbol}",
            )
        )
    records = databento_records(seed)
    dbn_path = folder / "sample.mbo.dbn.zst"
    csv_path = folder / "sample.mbo.csv"
    databento_write.write_dbn(dbn_path, [records])
    databento_write.write_csv(csv_path, [records])
    instruments = ", ".join(map(str, DATABENTO_INSTRUMENTS))
    for path, form in ((dbn_path, "DBN (zstd)"), (csv_path, "CSV")):
        out.append(
            Sample(
                "databento",
                (path,),
                ("hub", "replay", "databento", str(path)),
                f"Databento MBO as {form}, {len(records)} records, instruments {instruments}",
            )
        )
    capture = folder / CAPTURE_NAME
    write_gemini_capture(capture, seed)
    out.append(
        Sample(
            "capture",
            (capture,),
            ("hub", "replay", "capture", str(capture), "--check"),
            "a Gemini market-data capture of BTCUSD and ETHUSD (the capture format)",
        )
    )
    return out
