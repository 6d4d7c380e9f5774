"""serving/README.md lists every setting the service reads, once."""

from __future__ import annotations

from pathlib import Path

from serving.settings import Settings

README = Path(__file__).resolve().parents[2] / "serving" / "README.md"


def test_every_setting_is_documented_in_one_settings_section() -> None:
    text = README.read_text(encoding="utf-8")
    heading = "## Settings (environment, prefix `NBA_`)"
    assert text.count(heading) == 1
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    missing = [n for n in Settings.model_fields if f"`{n.upper()}`" not in section]
    assert missing == []
