"""The recorder's /healthz: not ok while the database is down or the lag is too long."""

from __future__ import annotations

from hub.config import HubConfig, RecorderConfig
from recorder.service import Recorder


def test_health_says_what_is_wrong() -> None:
    rec = Recorder(HubConfig(recorder=RecorderConfig(max_lag=1000)))
    rec.db_ok = True
    rec.lag = {("md.trades", 0): 400, ("md.bbo", 0): 500}
    health = rec.health()
    assert (health["ok"], health["consumer_lag"], health["lagging"]) == (True, 900, False)
    rec.lag[("md.depth", 0)] = 101
    assert rec.health()["ok"] is False and rec.health()["lagging"] is True
    rec.lag = {}
    rec.db_ok = False
    assert rec.health()["ok"] is False and rec.health()["database"] == "down"
