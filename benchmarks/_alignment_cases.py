"""Public-style tables with known structure for ``benchmarks/alignment.py``.

Neither is a copy of a public data set (nothing beyond ../shared/data is read);
both are drawn from a seeded generator shaped like one, so the damage planted
on them has a known truth:

* ``credit``: numeric-heavy, shaped like the UCI default-of-credit-card table
  (20 features: 14 numeric - limit, age, six monthly bills in an AR(1) chain,
  six payments - and 6 categorical: sex, education, marriage, three
  repayment-status integers), label ``default`` driven by a latent risk;
* ``app_usage``: categorical-heavy, shaped like a mobile app-usage log
  (10 categorical fields with dependent pairs: device -> os, age -> interest
  -> app category; 2 numeric), label ``clicked``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def credit(rows: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """Numeric-heavy: 14 numeric + 6 categorical features, binary ``default``."""
    rng = np.random.default_rng([seed, 19])  # not the stream the benchmark splits by
    z, u = rng.normal(size=rows), rng.normal(size=rows)  # wealth, risk
    limit = np.round(np.exp(11.5 + 0.7 * z + 0.3 * rng.normal(size=rows)), -3)
    age = np.clip(np.round(36 + 3 * z + 9 * rng.normal(size=rows)), 21, 75)
    df = pd.DataFrame({"limit_bal": limit, "age": age})
    df["sex"] = rng.choice(["male", "female"], rows, p=[0.4, 0.6])
    edu_p = _sigmoid(z)
    df["education"] = np.where(
        rng.random(rows) < edu_p,
        np.where(rng.random(rows) < 0.4, "graduate", "university"),
        np.where(rng.random(rows) < 0.7, "high_school", "other"),
    )
    df["marriage"] = np.where(age + 6 * rng.normal(size=rows) > 34, "married", "single")
    util = _sigmoid(0.8 * u + 0.5 * rng.normal(size=rows) - 0.3)
    bill = limit * util
    status = np.clip(np.round(0.9 * u + 0.7 * rng.normal(size=rows) - 0.4), -2, 8).astype(int)
    for t in range(1, 7):
        df[f"bill_amt{t}"] = np.round(bill, 0)
        pay_share = _sigmoid(-0.8 * u + 0.6 * rng.normal(size=rows) - 1.0)
        df[f"pay_amt{t}"] = np.round(bill * pay_share, 0)
        if t <= 3:
            df[f"pay_{t}"] = status
        bill = np.maximum(0.0, 0.9 * bill + 0.08 * limit * rng.normal(size=rows))
        status = np.clip(status + rng.choice([-1, 0, 0, 0, 1], rows), -2, 8)
    logit = -1.6 + 1.1 * u - 0.3 * z + 0.5 * (df["pay_1"] > 0) - 0.2 * (df["sex"] == "female")
    df["default"] = (rng.random(rows) < _sigmoid(logit.to_numpy())).astype(int)
    cat = ["sex", "education", "marriage", "pay_1", "pay_2", "pay_3"]
    num = [c for c in df.columns if c not in cat and c != "default"]
    q = float(np.quantile(df["bill_amt1"], 0.75))
    spec = {
        "categorical": cat,
        "numeric": num,
        "label": "default",
        "region": ("bill_amt1 > q75", lambda d, q=q: d["bill_amt1"] > q),
        "segment": ("education == university", lambda d: d["education"] == "university"),
        "pair": ("bill_amt1", "bill_amt2"),
    }
    return df, spec


def app_usage(rows: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """Categorical-heavy: 10 categorical + 2 numeric features, binary ``clicked``."""
    rng = np.random.default_rng([seed, 19])  # not the stream the benchmark splits by
    pick = rng.choice
    ages = np.array(["13-17", "18-24", "25-34", "35-44", "45+"])
    age_i = pick(5, rows, p=[0.1, 0.3, 0.3, 0.2, 0.1])
    interests = np.array(["games", "social", "video", "music", "news", "finance", "shopping"])
    # Interest depends on age: the young lean to games/social, the old to news/finance.
    shift = np.clip(age_i + rng.integers(-1, 2, rows), 0, 4)
    int_i = np.clip(shift + pick([0, 1, 2], rows, p=[0.5, 0.3, 0.2]), 0, 6)
    cats = np.array(["games", "social", "video", "music", "news", "finance", "shopping", "tools"])
    same = rng.random(rows) < 0.6
    cat_i = np.where(same, int_i, pick(8, rows))
    device = pick(["android", "iphone", "tablet", "web"], rows, p=[0.5, 0.3, 0.1, 0.1])
    os = np.where(
        device == "iphone",
        "ios",
        np.where(device == "web", pick(["windows", "macos"], rows), "android"),
    )
    os = np.where((device == "tablet") & (rng.random(rows) < 0.4), "ipados", os)
    df = pd.DataFrame(
        {
            "age_band": ages[age_i],
            "gender": pick(["f", "m", "x"], rows, p=[0.48, 0.48, 0.04]),
            "country": pick(["us", "in", "br", "de", "jp", "id", "mx", "fr"], rows),
            "device": device,
            "os": os,
            "network": pick(["wifi", "4g", "5g"], rows, p=[0.6, 0.3, 0.1]),
            "hour_band": pick(["night", "morning", "noon", "afternoon", "evening"], rows),
            "interest": interests[int_i],
            "app_category": cats[cat_i],
            "price_tier": pick(["free", "low", "high"], rows, p=[0.8, 0.15, 0.05]),
            "session_min": np.round(np.exp(2.0 - 0.2 * age_i + 0.6 * rng.normal(size=rows)), 1),
            "rating": np.round(np.clip(3.9 + 0.5 * rng.normal(size=rows), 1, 5), 1),
        }
    )
    logit = (
        -2.0
        + 1.4 * (int_i == np.minimum(cat_i, 6))
        + 0.4 * (df["network"] == "wifi")
        - 0.8 * (df["price_tier"] == "high")
        + 0.3 * (device == "iphone")
        + 0.2 * (df["rating"] - 3.9)
    )
    df["clicked"] = (rng.random(rows) < _sigmoid(logit.to_numpy())).astype(int)
    spec = {
        "categorical": [c for c in df.columns if c not in ("session_min", "rating", "clicked")],
        "numeric": ["session_min", "rating"],
        "label": "clicked",
        "region": ("app_category == games", lambda d: d["app_category"] == "games"),
        "segment": ("age_band == 18-24", lambda d: d["age_band"] == "18-24"),
    }
    return df, spec
