"""docs/configuration.md documents every setting with its true default."""

from __future__ import annotations

import dataclasses

from hub.config import HubConfig
from tests.conftest import ROOT


def test_every_setting_documented_with_default() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    cfg = HubConfig()
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(value):
            assert f"| `{section.name}` |" in doc
            continue
        for field in dataclasses.fields(value):
            default = getattr(value, field.name)
            if isinstance(default, tuple):
                shown = ",".join(default)
            elif isinstance(default, bool):
                shown = str(default).lower()
            else:
                shown = str(default)
            env = f"HUB_{section.name.upper()}__{field.name.upper()}"
            row = f"| `{section.name}.{field.name}` | `{env}` | `{shown}` |"
            assert row in doc, f"docs/configuration.md lacks or misstates: {row}"
