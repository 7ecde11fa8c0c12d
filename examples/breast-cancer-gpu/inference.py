"""
Inference handlers, named as in the SageMaker inference toolkit.

Request:  {"instances": [[30 feature values], ...]}
Response: {"predictions": ["malignant" | "benign", ...], "probabilities": [p(benign), ...]}
"""

import json
from pathlib import Path

import joblib
import numpy as np

LABELS = ["malignant", "benign"]


def model_fn(model_dir):
    return joblib.load(Path(model_dir) / "model.joblib")


def input_fn(body, content_type):
    if not content_type.startswith("application/json"):
        raise ValueError(f"unsupported content type {content_type}; send application/json")
    payload = json.loads(body)
    instances = payload["instances"] if isinstance(payload, dict) else payload
    return np.asarray(instances, dtype=float)


def predict_fn(data, model):
    probabilities = model.predict_proba(data)[:, 1]
    return {
        "predictions": [LABELS[int(p >= 0.5)] for p in probabilities],
        "probabilities": [round(float(p), 6) for p in probabilities],
    }


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
