"""
Train a breast-cancer classifier, following the SageMaker training-toolkit contract.

Reads:  $SM_CHANNEL_TRAIN/train.csv (first column: label), hyperparameters as --key value.
Writes: $SM_MODEL_DIR/model.joblib, and prints metric lines the metric definitions match.
Runs unchanged on the local backend, SageMaker and Kubernetes.
"""

import argparse
import json
import os
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--max_iter", type=int, default=500)
    args, _ = parser.parse_known_args()

    train_dir = Path(os.environ.get("SM_CHANNEL_TRAIN", "data/train"))
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "model"))
    data = np.loadtxt(train_dir / "train.csv", delimiter=",", skiprows=1)
    y, X = data[:, 0].astype(int), data[:, 1:]

    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))
    model.fit(X, y)

    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "features.json").write_text(json.dumps({"n_features": X.shape[1]}))
    print(f"train_accuracy={accuracy_score(y, model.predict(X)):.6f}")
    print(f"train_log_loss={log_loss(y, model.predict_proba(X)):.6f}")


if __name__ == "__main__":
    main()
