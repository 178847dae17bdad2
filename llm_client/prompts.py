"""SampleLLM prompts (seed paper sections 2.3-2.4), rendered from versioned templates.

Layout for prefix caching: the system message holds everything shared by all
requests of a task on a day (instruction, dataset description, column
semantics, output rules) and comes first; the user message holds what varies
(exemplars, apps, profiles) and comes last, so vLLM's automatic prefix cache
serves the long shared part once.

Untrusted text (app descriptions, profile values) enters a prompt only as a
JSON value on its own line: ``json.dumps`` escapes quotes and newlines, so a
description cannot close its string, start a new line or pose as a section
of the prompt. Backticks and angle brackets are escaped too, so it cannot
open a Markdown fence or a pseudo-tag either.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any

from jobs.platform import schema as S
from jobs.platform.errors import ConfigError

TEMPLATES = (
    "profile_instruction",
    "click_instruction",
    "dataset_description",
    "profile_system",
    "profile_user",
    "click_system",
    "click_user",
    "refine_system",
    "refine_user",
)
MEANINGS: dict[str, str] = {
    S.AGE_BAND: "age group of the user in years",
    S.GENDER: "gender the user gave at sign-up",
    S.CITY_TIER: "size tier of the user's city (tier1 = largest)",
    S.DEVICE: "price class of the user's phone or tablet",
    S.OS: "operating system and version of the device",
    S.INTEREST: "app category the user installs and opens most",
    S.ACTIVITY_LEVEL: "how often the user browses the store",
    S.CATEGORY: "store category of the app",
    S.PRICE: "price of the app in US dollars (0 = free)",
    S.RATING: "average user rating of the app",
}
Message = dict[str, str]


def quote(value: Any) -> str:
    """One line of JSON with nothing that can break out of the data position."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=False)
    return text.replace("`", "\\u0060").replace("<", "\\u003c").replace(">", "\\u003e")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PromptSet:
    """The templates of one prompt version, plus the instruction in force."""

    version: str
    templates: Mapping[str, str]
    instruction: str
    # Set when the instruction came from a stored refinement, not the template.
    instruction_hash: str | None = None

    @property
    def prompt_version(self) -> str:
        """Recorded on every row: template version, plus the refined instruction's hash."""
        if self.instruction_hash is None:
            return self.version
        return f"{self.version}+i{self.instruction_hash[:10]}"

    def with_instruction(self, instruction: str) -> PromptSet:
        return PromptSet(self.version, self.templates, instruction, text_hash(instruction))

    def render(self, name: str, **values: Any) -> str:
        return Template(self.templates[name]).substitute(values).strip()


@lru_cache(maxsize=8)
def load_prompts(version: str) -> PromptSet:
    """Read ``configs/prompts/<version>/*.txt``; ConfigError naming a missing file.

    A version directory may hold a ``BASE`` file naming the version it extends:
    templates it does not hold come from there, so a new version states only
    what it changes (and the old one stays byte-for-byte what its rows record).
    """
    templates: dict[str, str] = {}
    seen: list[str] = []
    current: str | None = version
    while current is not None:
        if current in seen:
            raise ConfigError(f"prompt version {version}: BASE cycle {' -> '.join(seen)}")
        seen.append(current)
        root = resources.files("configs") / "prompts" / current
        if not root.is_dir():
            raise ConfigError(
                f"prompt version {current}: configs/prompts/{current}/ not found "
                "(synthesize.prompt_version)"
            )
        for name in TEMPLATES:
            path = root / f"{name}.txt"
            if name not in templates and path.is_file():
                templates[name] = path.read_text(encoding="utf-8")
        base = root / "BASE"
        current = base.read_text(encoding="utf-8").strip() if base.is_file() else None
    missing = [n for n in TEMPLATES if n not in templates]
    if missing:
        raise ConfigError(
            f"prompt template configs/prompts/{version}/{missing[0]}.txt: file not found "
            "(synthesize.prompt_version)"
        )
    return PromptSet(version, templates, templates["profile_instruction"].strip())


def column_semantics(fields: Sequence[str]) -> str:
    doc = {}
    for f in fields:
        entry: dict[str, Any] = {"meaning": MEANINGS[f]}
        if f in S.VOCAB:
            entry["allowed_values"] = list(S.VOCAB[f])
        if f in S.NUMERIC_RANGES:
            entry["range"] = list(S.NUMERIC_RANGES[f])
        doc[f] = entry
    return json.dumps(doc, indent=1)


def profile_messages(prompts: PromptSet, exemplars: Sequence[Mapping[str, Any]], rows: int) -> list:
    """System (shared, first) + user (exemplars, last) for profile synthesis."""
    fields = list(S.PROFILE_FIELDS)
    system = prompts.render(
        "profile_system",
        instruction=prompts.instruction,
        dataset_description=prompts.templates["dataset_description"].strip(),
        column_semantics=column_semantics(fields),
        rows=rows,
        fields=", ".join(fields),
    )
    shown = [{f: str(e[f]) for f in fields} for e in exemplars]
    user = prompts.render("profile_user", exemplars=quote(shown), rows=rows)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def click_messages(
    prompts: PromptSet,
    apps: Sequence[Mapping[str, Any]],
    profiles: Sequence[Mapping[str, Any]],
    facts: Mapping[str, Any],
    examples: Sequence[Mapping[str, Any]] = (),
) -> list:
    """Click judgement: real base CTR in the shared part, apps, users and examples last.

    ``profiles`` carry a ``ref`` (u0, u1 ...) the model copies back.
    ``examples`` are labelled real impressions (profile fields, the warm app's
    fields, ``clicked``; see ``example_fields``): few-shot evidence of what
    drives a click. A prompt version whose click template has no ``$examples``
    is zero-shot; giving it examples is a ConfigError, not a silent drop.
    """
    has_slot = "$examples" in prompts.templates["click_user"]
    if examples and not has_slot:
        raise ConfigError(
            f"prompt version {prompts.version}: click_user.txt has no $examples, but "
            f"{len(examples)} labelled examples were given (synthesize.click_exemplars: "
            "set it to 0 or use a prompt version with examples, e.g. v2)"
        )
    system = prompts.render(
        "click_system",
        instruction=prompts.templates["click_instruction"].strip(),
        dataset_description=prompts.templates["dataset_description"].strip(),
        facts=quote(dict(facts)),
        column_semantics=column_semantics([*S.PROFILE_FIELDS, *S.APP_FIELDS]),
    )
    app_cols = (S.APP_ID, S.CATEGORY, S.DESCRIPTION, S.PRICE, S.RATING)
    shown_apps = [{c: a[c] for c in app_cols} for a in apps]
    shown_users = [{"ref": p["ref"], **{f: p[f] for f in S.PROFILE_FIELDS}} for p in profiles]
    shown_examples = [{c: e[c] for c in example_fields(e)} for e in examples]
    user = prompts.render(
        "click_user", apps=quote(shown_apps), profiles=quote(shown_users),
        examples=quote(shown_examples),
    )  # fmt: skip
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


EXAMPLE_FIELDS = (*S.PROFILE_FIELDS, S.CATEGORY, S.DESCRIPTION, S.PRICE, S.RATING, S.CLICKED)


def example_fields(example: Mapping[str, Any]) -> list[str]:
    """The fields of a labelled example that a prompt shows, in a fixed order.

    Never an id (a warm app's id means nothing to the model and would pose as a
    cold app to a reader matching on ``app_id``); ``clicked`` is required.
    """
    if S.CLICKED not in example:
        raise ValueError(f"labelled example without {S.CLICKED!r}: {sorted(example)}")
    return [c for c in EXAMPLE_FIELDS if c in example]


def refine_messages(
    prompts: PromptSet, instruction: str, samples: Sequence[Mapping[str, Any]]
) -> list:
    """One round of eq. 4: I_{t+1} = LLM(I_t, docs, samples)."""
    fields = list(S.PROFILE_FIELDS)
    user = prompts.render(
        "refine_user",
        instruction=quote(instruction),
        dataset_description=prompts.templates["dataset_description"].strip(),
        column_semantics=column_semantics(fields),
        samples=quote([{f: str(s[f]) for f in fields} for s in samples]),
    )
    return [
        {"role": "system", "content": prompts.render("refine_system")},
        {"role": "user", "content": user},
    ]


def shared_prefix_share(messages: Sequence[Message]) -> tuple[int, int]:
    """(chars of the stable system prefix, total chars): the prefix-cacheable share."""
    total = sum(len(m["content"]) for m in messages)
    prefix = sum(len(m["content"]) for m in messages if m["role"] == "system")
    return prefix, total
