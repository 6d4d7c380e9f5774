"""The child process entry point of NativeLearner: light imports, clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nba.policies import vw_child


def test_child_imports_neither_numpy_nor_arrow() -> None:
    code = (
        "import sys, nba.policies.vw_child; "
        "print(sorted(m for m in ('numpy', 'pyarrow', 'nba.policies.vw') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_child_learns_saves_and_reports(tmp_path: Path) -> None:
    data = tmp_path / "ex.txt"
    data.write_text("shared |p a\n0:-1:0.5 |x b\n|x c\n\nshared |p d\n|x b\n0:0:0.5 |x c\n\n")
    spec = {
        "args": ["--cb_explore_adf", "--epsilon", "0.1", "-d", str(data), "--holdout_off"],
        "model": str(tmp_path / "m.vw"),
        "stats": str(tmp_path / "s.json"),
    }
    assert vw_child.main(json.dumps(spec)) == 0
    assert (tmp_path / "m.vw").stat().st_size > 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["weighted_examples"] == 2.0


def test_child_names_a_refused_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {
        "args": ["--no_such_option"],
        "model": str(tmp_path / "m"),
        "stats": str(tmp_path / "s"),
    }
    assert vw_child.main(json.dumps(spec)) == 2
    assert "VW refused the command line '--no_such_option'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
