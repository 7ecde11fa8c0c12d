"""Train a ridge regression on scikit-learn's diabetes data (SageMaker training-toolkit contract)."""

import argparse
import os
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import Ridge


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, default=1.0)
    args, _ = parser.parse_known_args()
    data = np.loadtxt(Path(os.environ.get("SM_CHANNEL_TRAIN", "data/train")) / "train.csv", delimiter=",", skiprows=1)
    model = Ridge(alpha=args.alpha).fit(data[:, 1:], data[:, 0])
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "model"))
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    print(f"train_r2={model.score(data[:, 1:], data[:, 0]):.6f}")


if __name__ == "__main__":
    main()
