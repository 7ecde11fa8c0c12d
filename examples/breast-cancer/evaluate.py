"""
Evaluate the trained classifier on the held-out channel.

Reads:  $SM_CHANNEL_TEST/test.csv and $SM_CHANNEL_MODEL/model.joblib.
Writes: $SM_OUTPUT_DATA_DIR/evaluation.json with F1, precision, recall, accuracy and the
        confusion matrix (the file the pipeline gates and registers on).
"""

import json
import os
from pathlib import Path

import joblib
import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score


def main() -> None:
    test_dir = Path(os.environ.get("SM_CHANNEL_TEST", "data/test"))
    model_dir = Path(os.environ.get("SM_CHANNEL_MODEL", "model"))
    out_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "output"))
    data = np.loadtxt(test_dir / "test.csv", delimiter=",", skiprows=1)
    y, X = data[:, 0].astype(int), data[:, 1:]
    model = joblib.load(model_dir / "model.joblib")
    predicted = model.predict(X)
    report = {
        "task": "classification",
        "metrics": {
            "f1": float(f1_score(y, predicted)),
            "precision": float(precision_score(y, predicted)),
            "recall": float(recall_score(y, predicted)),
            "accuracy": float(accuracy_score(y, predicted)),
        },
        "confusion_matrix": {"labels": ["malignant", "benign"], "matrix": confusion_matrix(y, predicted).tolist()},
        "samples": int(len(y)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["metrics"]))


if __name__ == "__main__":
    main()
