"""Simulator v2: latent app themes, hidden quality and user tastes.

Why: with category / price / rating alone a new app is statistically identical
to a warm app with the same fields, so there is no cold-start problem to
solve. Here every app has a few *themes* (from ``THEMES``) and a hidden
*quality*; its description mentions some of its themes in one of several
paraphrases (each theme is omitted with some probability, and a decoy phrase of
a theme the app does not have is sometimes added), so a reader of the
description can infer part of them, never all. Every user has a *taste* over
the themes: a profile-driven affinity (``THEMES[t].affinity``, plausible links
such as entry phones -> lightweight apps) plus a per-user hash-normal draw, so
tastes are correlated with the profile but not determined by it.

The click logit gains ``theme_weight * sum(taste[t] for t in app themes) +
quality``. All draws are hashes of (seed, salt, key) as in the rest of the
simulator; the numpy mirror (``pair_logits``) is what the oracle arm of the
cold-start evaluation uses. Nothing outside the simulator and the evaluation's
oracle may read these latents (the LLM stages see profiles, descriptions and
logs only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from jobs.platform import schema as S
from jobs.platform.hashing import uniform

if TYPE_CHECKING:
    from pyspark.sql import Column


@dataclass(frozen=True)
class Theme:
    """One latent attribute: its paraphrases and its profile affinities."""

    name: str
    phrases: tuple[str, str, str]
    affinity: tuple[tuple[str, str, float], ...]  # (profile field, value, taste shift)


def _t(name: str, phrases: tuple[str, str, str], *aff: tuple[str, str, float]) -> Theme:
    return Theme(name, phrases, aff)


AG, IN, DV, CT, GN, AC = S.AGE_BAND, S.INTEREST, S.DEVICE, S.CITY_TIER, S.GENDER, S.ACTIVITY_LEVEL
THEMES: tuple[Theme, ...] = (
    _t("multiplayer", ("Play together with friends online", "Team up in live matches with other people", "Invite your crew and play in real time"), (IN, "games", 0.9), (AG, "18-24", 0.6), (AG, "25-34", 0.3)),  # noqa: E501
    _t("offline", ("Works without an internet connection", "Use it anywhere, no signal needed", "Everything is available offline after download"), (DV, "entry", 0.6), (CT, "tier4", 0.6), (CT, "tier3", 0.3)),  # noqa: E501
    _t("kids", ("Safe for children, with parental controls", "Designed for kids and families", "Child-friendly content checked by educators"), (AG, "35-44", 0.9), (AG, "25-34", 0.3), (AG, "18-24", -0.5)),  # noqa: E501
    _t("privacy", ("No tracking and end-to-end encryption", "Your data stays on your phone", "Privacy first: nothing is shared or sold"), (IN, "finance", 0.6), (IN, "tools", 0.6), (AG, "45-54", 0.3)),  # noqa: E501
    _t("ad_free", ("Completely free of ads", "No advertising interruptions, ever", "A clean experience without banners"), (DV, "flagship", 0.4), (AG, "25-34", 0.3)),  # noqa: E501
    _t("subscription", ("Premium features with a monthly plan", "Subscribe to unlock the full catalogue", "Members get everything for one monthly fee"), (DV, "flagship", 0.5), (CT, "tier1", 0.5), (DV, "entry", -0.7)),  # noqa: E501
    _t("ar", ("Augmented reality through your camera", "Point your camera and see AR effects", "Virtual objects placed in the real world"), (DV, "flagship", 0.9), (AG, "18-24", 0.4), (DV, "entry", -0.6)),  # noqa: E501
    _t("large_text", ("Big buttons and large, readable text", "A simple layout that is easy on the eyes", "Accessibility options for older users"), (AG, "65+", 1.3), (AG, "55-64", 0.8), (AG, "18-24", -0.5)),  # noqa: E501
    _t("sharing", ("Share your results with friends in one tap", "Post highlights straight to your feed", "Show off your progress to followers"), (IN, "social", 0.9), (AG, "18-24", 0.5)),  # noqa: E501
    _t("learning", ("Learn something new every day", "Lessons that build real skills", "Study with short guided courses"), (IN, "education", 1.0), (AG, "18-24", 0.3)),  # noqa: E501
    _t("fitness", ("Track workouts and stay in shape", "Guided exercise plans for every level", "Count steps and burn calories"), (IN, "health", 1.0), (AG, "25-34", 0.3)),  # noqa: E501
    _t("deals", ("Save money with coupons and cashback", "Daily discounts and price drops", "Find the cheapest offers nearby"), (IN, "shopping", 0.7), (CT, "tier3", 0.4), (CT, "tier4", 0.4)),  # noqa: E501
    _t("local", ("Discover places near you", "Recommendations around your neighbourhood", "Maps of local spots and events"), (IN, "travel", 0.8), (CT, "tier1", 0.3)),  # noqa: E501
    _t("audio", ("High quality sound and soundtracks", "Listen with rich studio audio", "Great music and sound effects"), (IN, "music", 0.9), (AG, "18-24", 0.3)),  # noqa: E501
    _t("hd_video", ("Stream in crisp high definition", "Watch in HD on the big screen", "Sharp video playback in full quality"), (IN, "video", 0.8), (DV, "tablet", 0.7)),  # noqa: E501
    _t("productivity", ("Get more done with lists and reminders", "Organise tasks, notes and schedules", "Plan your week in minutes"), (AG, "35-44", 0.5), (AG, "45-54", 0.4), (IN, "tools", 0.4)),  # noqa: E501
    _t("lightweight", ("A tiny download that saves storage", "Runs smoothly on older phones", "Small app size and low battery use"), (DV, "entry", 1.0), (DV, "mid", 0.3), (DV, "flagship", -0.4)),  # noqa: E501
    _t("competitive", ("Climb the leaderboards and rankings", "Ranked seasons and weekly tournaments", "Beat rivals and prove you are the best"), (IN, "games", 0.6), (GN, "male", 0.3), (AG, "18-24", 0.4)),  # noqa: E501
    _t("relaxing", ("Calm and relaxing to use", "Unwind with soothing sessions", "A peaceful, stress-free experience"), (AG, "45-54", 0.4), (AG, "55-64", 0.5), (IN, "health", 0.3)),  # noqa: E501
    _t("news", ("Daily headlines and updates", "Stay informed with the latest stories", "Breaking news alerts as they happen"), (AG, "55-64", 0.6), (AG, "65+", 0.5)),  # noqa: E501
    _t("creative", ("Create and edit your own content", "Tools for drawing, design and editing", "Make something original and share it"), (AG, "18-24", 0.5), (IN, "video", 0.4), (GN, "female", 0.2)),  # noqa: E501
    _t("community", ("Join groups of people who share your hobbies", "Forums and clubs for every interest", "Meet a friendly community"), (IN, "social", 0.6), (AC, "high", 0.4)),  # noqa: E501
    _t("rewards", ("Earn points and rewards every day", "Collect coins and daily bonuses", "Check in daily for prizes"), (AC, "high", 0.5), (CT, "tier3", 0.3)),  # noqa: E501
    _t("tablet", ("Optimised for large screens and tablets", "A split-screen layout for tablets", "Made for the big display"), (DV, "tablet", 1.2)),  # noqa: E501
    _t("fast_delivery", ("Same-day delivery to your door", "Orders arrive within hours", "Quick doorstep delivery"), (IN, "shopping", 0.6), (CT, "tier1", 0.5)),  # noqa: E501
    _t("pro_tools", ("Advanced settings for power users", "Pro controls and custom shortcuts", "Fine-tune every option"), (AC, "high", 0.4), (GN, "male", 0.2), (IN, "tools", 0.3)),  # noqa: E501
)  # fmt: skip
THEME_NAMES: tuple[str, ...] = tuple(t.name for t in THEMES)


@dataclass(frozen=True)
class ThemeParams:
    """The knobs of the latent layer (from ``SimulateSettings``)."""

    seed: int
    per_app: int = 3
    weight: float = 0.8
    taste_sd: float = 0.8
    quality_sd: float = 0.5
    mention_rate: float = 0.6
    decoy_rate: float = 0.3


# -- Spark columns --------------------------------------------------------------


def hash_normal(seed: int, salt: str, *cols: Column) -> Column:
    """A N(0, 1) draw by Box-Muller on two hash uniforms (partition independent)."""
    from pyspark.sql import functions as F

    u1 = F.greatest(uniform(seed, f"{salt}.n1", *cols), F.lit(1e-12))
    u2 = uniform(seed, f"{salt}.n2", *cols)
    return F.sqrt(-2.0 * F.log(u1)) * F.cos(2.0 * math.pi * u2)


def app_theme_columns(p: ThemeParams, idx: Column) -> tuple[Column, Column, Column]:
    """(themes array<int>, quality double, description suffix) of app ``idx``."""
    from pyspark.sql import functions as F

    n = len(THEMES)
    picks = [(uniform(p.seed, f"app.theme{j}", idx) * n).cast("int") for j in range(p.per_app)]
    themes = F.array_distinct(F.array(*picks))
    quality = hash_normal(p.seed, "app.quality", idx) * p.quality_sd
    phrases = F.array(*[F.array(*map(F.lit, t.phrases)) for t in THEMES])

    def phrase(theme: Column, salt: str) -> Column:
        k = (uniform(p.seed, f"{salt}.para", idx) * 3).cast("int") + 1
        return F.element_at(F.element_at(phrases, theme + 1), k)

    said = [
        F.when(
            uniform(p.seed, f"app.say{j}", idx) < p.mention_rate, phrase(picks[j], f"app.say{j}")
        )
        for j in range(p.per_app)
    ]
    decoy_t = (uniform(p.seed, "app.decoy", idx) * n).cast("int")
    decoy = F.when(
        (uniform(p.seed, "app.decoy.on", idx) < p.decoy_rate) & ~F.array_contains(themes, decoy_t),
        phrase(decoy_t, "app.decoy"),
    )
    return themes, quality, F.concat_ws(". ", *said, decoy)


def user_taste_column(p: ThemeParams, idx: Column) -> Column:
    """array<double> taste over ``THEMES``: profile affinity + hash-normal noise."""
    from pyspark.sql import functions as F

    out = []
    for t, theme in enumerate(THEMES):
        term = hash_normal(p.seed, f"user.taste{t}", idx) * p.taste_sd
        for field, value, shift in theme.affinity:
            term = term + F.when(F.col(field) == value, F.lit(shift)).otherwise(F.lit(0.0))
        out.append(term)
    return F.array(*out)


def theme_logit(p: ThemeParams, taste: Column, themes: Column, quality: Column) -> Column:
    """``weight * sum(taste[t] for t in themes) + quality`` on joined columns."""
    from pyspark.sql import functions as F

    dot = F.aggregate(
        themes, F.lit(0.0), lambda acc, t: acc + F.element_at(taste, t + 1).cast("double")
    )
    return F.lit(p.weight) * dot + quality


# -- numpy mirror (intercept calibration and the oracle) ------------------------


def affinity_matrix(profiles: dict[str, np.ndarray]) -> np.ndarray:
    """(n_users, n_themes) profile-driven part of the taste."""
    n = len(next(iter(profiles.values())))
    out = np.zeros((n, len(THEMES)))
    for t, theme in enumerate(THEMES):
        for field, value, shift in theme.affinity:
            out[:, t] += shift * (np.asarray(profiles[field]) == value)
    return out


def theme_multi_hot(themes: list[list[int]] | np.ndarray) -> np.ndarray:
    """(n_apps, n_themes) 0/1 matrix of each app's themes."""
    out = np.zeros((len(themes), len(THEMES)))
    for i, ts in enumerate(themes):
        out[i, list(ts)] = 1.0
    return out


def pair_theme_logits(
    p: ThemeParams, taste: np.ndarray, themes_hot: np.ndarray, quality: np.ndarray
) -> np.ndarray:
    """(n_users, n_apps) theme + quality part of the true logit."""
    return p.weight * taste @ themes_hot.T + quality[None, :]


def sample_theme_logit(
    p: ThemeParams, profiles: dict[str, np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """Monte Carlo draws of the theme term for random (user, app) pairs (calibration)."""
    n = len(next(iter(profiles.values())))
    taste = affinity_matrix(profiles) + rng.normal(0, p.taste_sd, (n, len(THEMES)))
    picks = rng.integers(0, len(THEMES), (n, p.per_app))
    hot = np.zeros_like(taste)
    np.put_along_axis(hot, picks, 1.0, axis=1)
    return p.weight * (taste * hot).sum(1) + rng.normal(0, p.quality_sd, n)
