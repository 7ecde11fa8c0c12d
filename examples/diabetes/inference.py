"""Inference handlers: {"instances": [[10 features], ...]} -> {"predictions": [...]}."""

import json
from pathlib import Path

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(Path(model_dir) / "model.joblib")


def input_fn(body, content_type):
    payload = json.loads(body)
    return np.asarray(payload["instances"] if isinstance(payload, dict) else payload, dtype=float)


def predict_fn(data, model):
    return {"predictions": [round(float(v), 4) for v in model.predict(data)]}
