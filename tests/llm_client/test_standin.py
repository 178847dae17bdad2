"""The offline stand-in as an HTTP server: protocol, honesty, seeds, schemas, faults."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from jobs.platform import schema as S
from llm_client import prompts, schemas
from llm_client.standin import standin_server
from tests.llm_helpers import admin, reset, wait_embedder

EXEMPLARS = [
    dict(zip(S.PROFILE_FIELDS, v, strict=True))
    for v in (
        ("25-34", "female", "tier1", "mid", "android13", "games", "high"),
        ("45-54", "male", "tier3", "entry", "android12", "finance", "low"),
        ("18-24", "female", "tier2", "flagship", "android14", "music", "medium"),
        ("35-44", "unknown", "tier4", "tablet", "harmonyos4", "education", "medium"),
    )
]


@pytest.fixture(scope="module")
def standin():
    with standin_server() as handle:
        wait_embedder(handle)
        yield handle


@pytest.fixture(autouse=True)
def clean(standin):
    reset(standin)


def post(standin, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{standin.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def profile_body(seed: int, rows: int = 4, n: int = 1) -> dict:
    msgs = prompts.profile_messages(prompts.load_prompts("v1"), EXEMPLARS, rows)
    fmt = schemas.response_format(schemas.PROFILE_SCHEMA_NAME, schemas.profile_schema(rows))
    return {"model": "offline-standin", "messages": msgs, "response_format": fmt, "seed": seed,
            "n": n}  # fmt: skip


def click_body(
    apps: list[dict], users: list[dict], ctr: float, seed: int = 1, examples: tuple = ()
) -> dict:
    version = "v2" if examples else "v1"
    msgs = prompts.click_messages(
        prompts.load_prompts(version), apps, users, {"base_ctr": ctr}, examples
    )
    schema = schemas.click_schema([u["ref"] for u in users], [a["app_id"] for a in apps])
    fmt = schemas.response_format(schemas.CLICK_SCHEMA_NAME, schema)
    return {"model": "offline-standin", "messages": msgs, "response_format": fmt, "seed": seed}


def test_standin__says_it_is_not_an_llm(standin):
    with urllib.request.urlopen(f"{standin.base_url}/models", timeout=10) as resp:
        models = json.loads(resp.read())
    assert [m["id"] for m in models["data"]] == ["offline-standin"]
    assert "not an LLM" in models["data"][0]["owned_by"]
    status, reply = post(standin, profile_body(1))
    assert status == 200 and reply["model"] == "offline-standin"
    assert "not an LLM" in reply["system_fingerprint"]


def test_standin__unknown_model_and_bad_body_are_4xx(standin):
    status, reply = post(standin, {**profile_body(1), "model": "gpt-x"})
    assert status == 404 and "not served" in reply["error"]["message"]
    status, reply = post(standin, {"model": "offline-standin", "messages": "hi"})
    assert status == 400


def test_standin__seed_reproduces_and_n_choices(standin):
    _, a = post(standin, profile_body(seed=11, n=3))
    _, b = post(standin, profile_body(seed=11, n=3))
    _, c = post(standin, profile_body(seed=12, n=3))
    texts = [ch["message"]["content"] for ch in a["choices"]]
    assert len(texts) == 3 and len(set(texts)) == 3
    assert texts == [ch["message"]["content"] for ch in b["choices"]]
    assert texts != [ch["message"]["content"] for ch in c["choices"]]
    assert a["usage"]["prompt_tokens"] > 0


def test_standin__profiles_follow_schema_and_are_new(standin):
    seeds = {schemas.profile_key(e) for e in EXEMPLARS}
    new = 0
    for seed in range(20):
        _, reply = post(standin, profile_body(seed, rows=5))
        doc = json.loads(reply["choices"][0]["message"]["content"])
        v = schemas.validate_profiles(doc, seed_keys=seeds)
        assert len(v.items) == 5 and not v.dropped
        new += len(v.items)
        # Recombined from the exemplars: most values come from them.
        from_ex = sum(p[f] in {e[f] for e in EXEMPLARS} for p in v.items for f in S.PROFILE_FIELDS)
        assert from_ex >= 0.6 * 5 * len(S.PROFILE_FIELDS)
    assert new == 100


def test_standin__clicks_calibrated_to_base_ctr_and_semantic(standin):
    apps = [
        {"app_id": f"a{i}", "category": c, "description": d, "price": 0.0, "rating": 4.0}
        for i, (c, d) in enumerate(
            [
                ("games", "an online battle arena with ranked seasons"),
                ("finance", "a stock trading app with live quotes"),
                ("music", "a karaoke app with scored duets"),
                ("education", "an exam-prep app with practice tests"),
            ]
        )
    ]
    users = [{"ref": f"u{i}", **e} for i, e in enumerate(EXEMPLARS)]
    for ctr in (0.03, 0.2):
        _, reply = post(standin, click_body(apps, users, ctr))
        doc = json.loads(reply["choices"][0]["message"]["content"])
        v = schemas.validate_clicks(doc, [u["ref"] for u in users], [a["app_id"] for a in apps])
        assert len(v.items) == 16 and not v.dropped
        probs = np.array([j["click_prob"] for j in v.items]).reshape(4, 4)
        assert abs(probs.mean() - ctr) < 0.01 * ctr + 1e-4
        # Each user's interest app is among that user's two most likely apps.
        assert all(np.argsort(-probs[i])[:2].tolist().count(i) for i in range(4)), probs


def test_standin__labelled_examples_are_parsed_as_data_and_do_not_move_it(standin):
    """Examples (warm apps with descriptions, labels, no ids) are neither taken for cold
    apps nor for users; the stand-in stays zero-shot (a heuristic use of them lowered
    its correlation with the simulator's truth), so its judgement is unchanged."""
    apps = [
        {"app_id": "m", "category": "music", "description": "sing along to lyrics and record "
         "duets", "price": 0.0, "rating": 4.0},
        {"app_id": "f", "category": "finance", "description": "track spending and pay bills",
         "price": 0.0, "rating": 4.0},
    ]  # fmt: skip
    users = [{"ref": "u0", **EXEMPLARS[3]}, {"ref": "u1", **EXEMPLARS[0]}]
    examples = tuple(
        {**EXEMPLARS[3], "category": c, "description": f"a {c} app", "price": 0.0,
         "rating": 4.0, "clicked": c == "music"}
        for c in ("music", "finance", "games")
    )  # fmt: skip

    def judged(ex: tuple) -> dict:
        _, reply = post(standin, click_body(apps, users, 0.2, examples=ex))
        doc = json.loads(reply["choices"][0]["message"]["content"])
        v = schemas.validate_clicks(doc, ["u0", "u1"], ["m", "f"])
        assert len(v.items) == 4 and not v.dropped
        return {(j["user"], j["app_id"]): j["click_prob"] for j in v.items}

    assert judged(examples) == judged(())


def test_standin__fault_config_validated_and_applied(standin):
    with pytest.raises(urllib.error.HTTPError) as err:
        admin(standin, "/admin/faults", {"rate_42": 1.0})
    assert err.value.code == 400
    reset(standin, rate_500=1.0)
    status, _ = post(standin, profile_body(1))
    assert status == 500
    reset(standin, rate_invalid_json=1.0)
    status, reply = post(standin, profile_body(1))
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply["choices"][0]["message"]["content"])
    stats = admin(standin, "/admin/stats")
    assert stats["calls"] == 1 and stats["by_status"] == {"200": 1}
