"""Stand-in models for the local endpoint tests: a model folder and the inference code that serves it."""

from __future__ import annotations

import json
from pathlib import Path

#: ``model.json`` says how the model behaves: ``broken`` fails to load; ``kill_router`` (a router.json
#: path) kills the endpoint's router while this version starts, that is mid-deploy.
INFERENCE = """
import json, os, signal
from pathlib import Path

def model_fn(model_dir):
    spec = json.loads(Path(model_dir, "model.json").read_text())
    if spec.get("broken"):
        raise RuntimeError("this model cannot load")
    if spec.get("kill_router"):
        pid = json.loads(Path(spec["kill_router"]).read_text())["pid"]
        os.killpg(pid, signal.SIGKILL)
    return spec

def predict_fn(data, model):
    return {"version": model["name"], "echo": data}
"""


def model_folder(tmp: Path, name: str, **extra: object) -> str:
    """A model folder under ``tmp`` whose model answers with its ``name``."""
    folder = tmp / f"model-{name}"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"name": name, **extra}))
    return str(folder)
