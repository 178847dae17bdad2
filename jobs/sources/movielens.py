"""MovieLens-100K shaped like a day of app-store logs (users as users, movies as apps).

Used by the stage-1 end-to-end test and by the evaluation issue as a real,
public data set next to the simulator. ``load_movielens`` reads ``u.data``,
``u.user`` and ``u.item`` from any directory (the data's licence forbids
copying it into the repo; ``locate_movielens`` finds it: $COLDSTART_MOVIELENS_DIR,
``../shared/data/ml-100k``, or a checksummed download into a user cache) and
returns one row per rating with the log columns the stage-1 transforms read:

    ds, event_id, user_id, app_id, age_band, gender, occupation, region,
    category, stars, clicked, is_cold_start

``clicked`` is ``rating >= 4`` (the usual implicit-feedback convention),
``category`` the movie's first genre in ``u.genre`` order, ``region`` the
first zip digit (US zone; non-numeric zips -> "other"), ``is_cold_start``
marks movies with at most ``cold_start_max_ratings`` ratings. Profile and
category columns differ from the app-store ones: pass ``ML_PROFILE_FIELDS``
and ``ML_CATEGORIES`` to the transforms.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.platform import schema as S
from jobs.platform.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# Where the data is looked for, in order (``locate_movielens``), as scikit-learn's
# dataset fetchers do: an explicit directory, then the environment, then the
# shared data folder beside the checkout, then a user cache filled by a
# checksummed download from the publisher.
ENV_DIR = "COLDSTART_MOVIELENS_DIR"
ENV_DATA_HOME = "COLDSTART_DATA_HOME"  # cache root (default ~/.cache/coldstart)
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"
URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
URL_MD5 = "0e33842e24a9c977be4e0107933c0723"  # the publisher's ml-100k.zip.md5
DEFAULT_DS = "1998-04-22"  # the last day of the ML-100K collection period

OCCUPATION = "occupation"
REGION = "region"
STARS = "stars"

ML_CATEGORIES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ML_PROFILE_FIELDS: tuple[str, ...] = (S.AGE_BAND, S.GENDER, OCCUPATION, REGION)
ML_FEATURE_FIELDS: tuple[str, ...] = (*ML_PROFILE_FIELDS, S.CATEGORY)
ML_LOG_COLUMNS: tuple[str, ...] = (
    S.DS,
    S.EVENT_ID,
    S.USER_ID,
    S.APP_ID,
    *ML_PROFILE_FIELDS,
    S.CATEGORY,
    STARS,
    S.CLICKED,
    S.IS_COLD_START,
)
FILES = ("u.data", "u.user", "u.item")
# event_id = user * ITEM_SPAN + item: unique per rating (ML-100K has < 2,000 items).
ITEM_SPAN = 100_000


def _complete(root: Path) -> bool:
    return all((root / f).is_file() for f in FILES)


def data_home() -> Path:
    """The user cache for downloaded data: ``$COLDSTART_DATA_HOME`` or ~/.cache/coldstart."""
    env = os.environ.get(ENV_DATA_HOME)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "coldstart"


def download(url: str, md5: str, home: Path) -> Path:
    """Fetch ``url`` (a zip holding ``ml-100k/``), check its MD5, unpack it under ``home``.

    Unpacked into a temporary folder and renamed into place: a cut download
    never leaves a half folder that a later run would take for the data.
    """
    import hashlib
    import io
    import shutil
    import tempfile
    import urllib.request
    import zipfile

    with urllib.request.urlopen(url, timeout=60) as resp:
        blob = resp.read()
    got = hashlib.md5(blob).hexdigest()
    if got != md5:
        raise InputError(f"{url}: MD5 {got}, expected {md5} (corrupt or changed download)")
    home.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ml-100k-", dir=home))
    try:
        zipfile.ZipFile(io.BytesIO(blob)).extractall(tmp)
        target = home / "ml-100k"
        if not _complete(target):
            shutil.rmtree(target, ignore_errors=True)
            (tmp / "ml-100k").rename(target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def locate_movielens(path: str | Path | None = None, *, url: str = URL, md5: str = URL_MD5) -> Path:
    """The ml-100k directory: ``path`` if given, else ``$COLDSTART_MOVIELENS_DIR``, else
    ``../shared/data/ml-100k``, else the user cache (downloaded from the publisher
    with a checksum when absent). ``InputError`` naming every place tried."""
    if path is not None:
        root = Path(path)
        if not _complete(root):
            missing = [f for f in FILES if not (root / f).is_file()]
            raise InputError(
                f"MovieLens directory {root}: missing {missing} (expected ml-100k files)"
            )
        return root
    tried: list[str] = []
    env = os.environ.get(ENV_DIR)
    if env:
        if _complete(Path(env)):
            return Path(env)
        tried.append(f"${ENV_DIR}={env} (lacks {', '.join(FILES)})")
    else:
        tried.append(f"${ENV_DIR} (not set)")
    if _complete(DEFAULT_DIR):
        return DEFAULT_DIR
    tried.append(f"{DEFAULT_DIR} (not there)")
    cached = data_home() / "ml-100k"
    if _complete(cached):
        return cached
    try:
        return download(url, md5, data_home())
    except (OSError, InputError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        tried.append(f"download {url} into {cached} failed: {reason}")
    raise InputError("MovieLens-100K not found: tried " + "; ".join(tried))


def _csv(spark: SparkSession, path: Path, sep: str, names: list[str]) -> DataFrame:
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(n, StringType(), True) for n in names])
    # u.item is Latin-1 (accented titles); the other files are ASCII.
    return spark.read.csv(str(path), sep=sep, schema=schema, encoding="ISO-8859-1")


def age_band(age: Column) -> Column:
    """Spark column: age in years -> the app-store age bands, "<18" below them."""
    from pyspark.sql import functions as F

    expr = F.when(age < 18, F.lit("<18"))
    for lo, hi in ((18, 24), (25, 34), (35, 44), (45, 54), (55, 64)):
        expr = expr.when(age <= hi, F.lit(f"{lo}-{hi}"))
    return expr.when(age.isNotNull(), F.lit("65+"))


def _users(spark: SparkSession, root: Path) -> DataFrame:
    from pyspark.sql import functions as F

    raw = _csv(spark, root / "u.user", "|", ["uid", "age", "gender", OCCUPATION, "zip"])
    gender = F.when(F.col("gender") == "M", "male").when(F.col("gender") == "F", "female")
    first = F.substring(F.col("zip"), 1, 1)
    return raw.select(
        F.col("uid").cast("long").alias("uid"),
        age_band(F.col("age").cast("int")).alias(S.AGE_BAND),
        gender.otherwise(F.lit("unknown")).alias(S.GENDER),
        F.col(OCCUPATION),
        F.when(first.rlike("^[0-9]$"), F.concat(F.lit("zone"), first))
        .otherwise(F.lit("other"))
        .alias(REGION),
    )


def _items(spark: SparkSession, root: Path) -> DataFrame:
    from pyspark.sql import functions as F

    flags = [f"g{i}" for i in range(len(ML_CATEGORIES))]
    raw = _csv(spark, root / "u.item", "|", ["iid", "title", "date", "video", "url", *flags])
    genre = F.coalesce(
        *[F.when(F.col(f) == "1", F.lit(g)) for f, g in zip(flags, ML_CATEGORIES, strict=True)]
    )
    return raw.select(F.col("iid").cast("long").alias("iid"), genre.alias(S.CATEGORY))


def movie_items(spark: SparkSession, path: str | Path = DEFAULT_DIR) -> DataFrame:
    """One row per movie: app_id, category (first genre), year and a description.

    The description is the only text ML-100K has: ``"<title>. Genres: <all
    genres>."`` (the title carries the year); what the LLM stage of the
    cold-start protocol reads. ``year`` is null where the release date is.
    """
    from pyspark.sql import functions as F

    root = Path(path)
    if not (root / "u.item").is_file():
        raise InputError(f"MovieLens directory {root}: missing ['u.item'] (expected ml-100k files)")
    flags = [f"g{i}" for i in range(len(ML_CATEGORIES))]
    raw = _csv(spark, root / "u.item", "|", ["iid", "title", "date", "video", "url", *flags])
    names = [F.when(F.col(f) == "1", F.lit(g)) for f, g in zip(flags, ML_CATEGORIES, strict=True)]
    genres = F.concat_ws(", ", *names)
    return raw.select(
        F.col("iid").cast("long").cast("string").alias(S.APP_ID),
        F.coalesce(*names).alias(S.CATEGORY),
        F.substring(F.col("date"), -4, 4).cast("double").alias("year"),
        F.concat(
            F.coalesce(F.col("title"), F.lit("Untitled")), F.lit(". Genres: "), genres, F.lit(".")
        ).alias(S.DESCRIPTION),
    )


def load_movielens(
    spark: SparkSession,
    path: str | Path | None = None,
    *,
    ds: str = DEFAULT_DS,
    cold_start_max_ratings: int = 5,
) -> DataFrame:
    """MovieLens-100K ratings as log rows (columns ``ML_LOG_COLUMNS``).

    ``path`` None: found by ``locate_movielens``. Raises ``InputError`` naming
    the directory and the missing file (or every place tried).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from jobs.platform.tables import validate_ds

    validate_ds(ds)
    root = locate_movielens(path)
    ratings = _csv(spark, root / "u.data", "\t", ["uid", "iid", STARS, "ts"]).select(
        F.col("uid").cast("long").alias("uid"),
        F.col("iid").cast("long").alias("iid"),
        F.col(STARS).cast("int").alias(STARS),
    )
    per_item = F.count(F.lit(1)).over(Window.partitionBy("iid"))
    joined = (
        ratings.withColumn("_n", per_item)
        .join(F.broadcast(_users(spark, root)), "uid", "left")
        .join(F.broadcast(_items(spark, root)), "iid", "left")
    )
    return joined.select(
        F.lit(ds).alias(S.DS),
        (F.col("uid") * ITEM_SPAN + F.col("iid")).alias(S.EVENT_ID),
        F.col("uid").cast("string").alias(S.USER_ID),
        F.col("iid").cast("string").alias(S.APP_ID),
        *ML_PROFILE_FIELDS,
        S.CATEGORY,
        STARS,
        (F.col(STARS) >= 4).cast("int").alias(S.CLICKED),
        (F.col("_n") <= cold_start_max_ratings).alias(S.IS_COLD_START),
    )
