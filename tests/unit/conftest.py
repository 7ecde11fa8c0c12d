"""Fixtures shared by the unit tests of the local backend: a training script that follows the container contract."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    hps = json.loads(Path(os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json").read_text())
    Path(os.environ["COUNTER"]).open("a").write("started\\n")
    rows = Path(os.environ["SM_CHANNEL_TRAIN"], "rows.txt").read_text().split()
    Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text(str(len(rows)))
    Path(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json").write_text(json.dumps({"rows": len(rows)}))
    print(f"loss={float(hps['lr']) * 2}")
    print("args", sys.argv[1:])
    if hps.get("fail"):
        Path(os.environ["SM_OUTPUT_DIR"], "failure").write_text("boom: the data is bad")
        sys.exit(3)
    time.sleep(float(hps.get("sleep", 0)))
    """
)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A model folder (code/train.py) and a data channel (data/rows.txt) for local jobs."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.txt").write_text("a b c")
    return tmp_path
