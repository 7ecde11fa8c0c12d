"""Write the train/test CSV channels from scikit-learn's bundled diabetes dataset (no download)."""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

here = Path(__file__).parent
data = load_diabetes()
X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.25, random_state=7)
header = ",".join(["label", *[f"f{i}" for i in range(data.data.shape[1])]])
for name, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
    out = here / "data" / name / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(out, np.column_stack([y, X]), delimiter=",", header=header, comments="", fmt="%.6g")
    print(f"wrote {out} ({len(y)} rows)")
