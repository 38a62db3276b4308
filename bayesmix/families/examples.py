"""Tiny data shared by the families' ``example(two_level)`` models (the
registry tests build every family from its module's example)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def example_data(seed: int = 1):
    """48 persons in 8 clusters: binary items y1..y4 from two classes, a
    covariate x and a continuous score (shared by the registry examples)."""
    rng = np.random.default_rng(seed)
    tau = np.array([[-1.0, -0.5, 0.0, -1.5], [1.0, 1.5, 0.5, 1.0]])
    cluster = np.repeat(np.arange(8), 6)
    u = rng.normal(0.0, 0.7, size=8)[cluster]
    cls = (rng.uniform(size=48) > 1 / (1 + np.exp(-(0.2 + u)))).astype(int)
    y = (rng.logistic(size=(48, 4)) > tau[cls]).astype(float)
    df = pd.DataFrame(y, columns=["y1", "y2", "y3", "y4"])
    df["cluster"] = cluster
    df["x"] = rng.normal(size=48)
    df["score"] = y.sum(axis=1) + 0.5 * df["x"] + rng.normal(size=48)
    return df
