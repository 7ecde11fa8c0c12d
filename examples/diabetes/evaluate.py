"""Evaluate the regression on the held-out channel: MSE, MAE and R² into evaluation.json."""

import json
import os
from pathlib import Path

import joblib
import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


def main() -> None:
    data = np.loadtxt(Path(os.environ.get("SM_CHANNEL_TEST", "data/test")) / "test.csv", delimiter=",", skiprows=1)
    model = joblib.load(Path(os.environ.get("SM_CHANNEL_MODEL", "model")) / "model.joblib")
    predicted = model.predict(data[:, 1:])
    metrics = {
        "mse": float(mean_squared_error(data[:, 0], predicted)),
        "mae": float(mean_absolute_error(data[:, 0], predicted)),
        "r2": float(r2_score(data[:, 0], predicted)),
    }
    out_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "output"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps({"task": "regression", "metrics": metrics}, indent=2))
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
