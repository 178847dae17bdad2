"""Column names and vocabularies shared by every job, UDF and model.

One module so that a renamed column is a one-line change and so that the
simulator, the prompts, the validators and the recall model agree on what a
field is called and which values it may take.
"""

from __future__ import annotations

# -- keys -------------------------------------------------------------------
DS = "ds"
EVENT_ID = "event_id"
USER_ID = "user_id"
APP_ID = "app_id"
CLICKED = "clicked"
CLUSTER_ID = "cluster_id"
CLUSTER_SIZE = "cluster_size"
SYNTH_ID = "synth_id"
WEIGHT = "weight"
LOG_WEIGHT = "log_weight"
RUN_ID = "run_id"

# -- user profile fields (what the LLM writes for a synthetic user) ---------
AGE_BAND = "age_band"
GENDER = "gender"
CITY_TIER = "city_tier"
DEVICE = "device"
OS = "os"
INTEREST = "interest"
ACTIVITY_LEVEL = "activity_level"

# -- app fields (from ref.apps, denormalised onto every impression) ---------
CATEGORY = "category"
PRICE = "price"
RATING = "rating"
DEVELOPER = "developer"
DESCRIPTION = "description"
IS_COLD_START = "is_cold_start"
LAUNCH_DS = "launch_ds"

# -- context fields of an impression ----------------------------------------
HOUR = "hour"
WEEKDAY = "weekday"
NETWORK = "network"
SLOT = "slot"

# -- vocabularies -----------------------------------------------------------
CATEGORIES: tuple[str, ...] = (
    "games",
    "social",
    "video",
    "music",
    "shopping",
    "finance",
    "education",
    "health",
    "travel",
    "tools",
)
VOCAB: dict[str, tuple[str, ...]] = {
    AGE_BAND: ("18-24", "25-34", "35-44", "45-54", "55-64", "65+"),
    GENDER: ("female", "male", "unknown"),
    CITY_TIER: ("tier1", "tier2", "tier3", "tier4"),
    DEVICE: ("entry", "mid", "flagship", "tablet"),
    OS: ("android12", "android13", "android14", "harmonyos4"),
    INTEREST: CATEGORIES,
    ACTIVITY_LEVEL: ("low", "medium", "high"),
    CATEGORY: CATEGORIES,
    NETWORK: ("wifi", "4g", "5g"),
    SLOT: ("home_feed", "search", "category_list", "banner"),
}

PROFILE_FIELDS: tuple[str, ...] = (
    AGE_BAND,
    GENDER,
    CITY_TIER,
    DEVICE,
    OS,
    INTEREST,
    ACTIVITY_LEVEL,
)
APP_FIELDS: tuple[str, ...] = (CATEGORY, PRICE, RATING)
CONTEXT_FIELDS: tuple[str, ...] = (HOUR, WEEKDAY, NETWORK, SLOT)

# Numeric fields: bucketized or linearly embedded by models, quantile-binned
# for the frequency tables of stage 2. Everything else is categorical.
NUMERIC_FIELDS: tuple[str, ...] = (PRICE, RATING)
# Ranges the validators enforce on LLM output and the simulator respects.
NUMERIC_RANGES: dict[str, tuple[float, float]] = {PRICE: (0.0, 50.0), RATING: (1.0, 5.0)}

# Feature fields of a real impression, in model order.
LOG_FEATURE_FIELDS: tuple[str, ...] = PROFILE_FIELDS + APP_FIELDS + CONTEXT_FIELDS
# Feature fields a synthetic row has: the LLM writes profiles and judges apps;
# it does not invent impression context.
SYNTH_FEATURE_FIELDS: tuple[str, ...] = PROFILE_FIELDS + APP_FIELDS

# raw.user_logs column order (the simulator writes exactly these).
USER_LOG_COLUMNS: tuple[str, ...] = (
    EVENT_ID,
    USER_ID,
    APP_ID,
    *PROFILE_FIELDS,
    *APP_FIELDS,
    *CONTEXT_FIELDS,
    CLICKED,
)
APP_COLUMNS: tuple[str, ...] = (
    APP_ID,
    CATEGORY,
    PRICE,
    RATING,
    DEVELOPER,
    DESCRIPTION,
    IS_COLD_START,
    LAUNCH_DS,
)
