"""Serving output of ``coldstart train``: app and user vectors beside the model.

With ``recmodel.model.architecture: two_tower`` the trained version gets

    <version>/embeddings/apps.parquet   app_id, is_cold_start, vector, bias:
                                        every app of ref.apps, cold apps included
    <version>/embeddings/users/         user_id, ds, event_id, vector, bias (Parquet,
                                        written by Spark): every user of the window,
                                        from their latest impression (profile + context)

A retrieval service loads the app vectors into its index and ranks apps for a
user by ``vector . app_vector + app_bias``: exactly the model's ranking
(``recmodel.serving``). The user table is the nightly precompute; a service that
knows the request's context computes the user vector with the saved model's
user tower instead. Both are written before ``meta.json``, so a version whose
embeddings failed is an unfinished write (invisible to readers). A DNN head has
no such factorisation: it writes none, and ``meta.json`` says why.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

from jobs.platform import fs
from jobs.platform import schema as S

if TYPE_CHECKING:
    from configs.settings import Settings
    from recmodel.features import FeatureEncoder
    from recmodel.model import RecallModel

log = logging.getLogger(__name__)

APPS_FILE = "embeddings/apps.parquet"
USERS_DIR = "embeddings/users"


def write_embeddings(
    settings: Settings,
    path: str,
    model: RecallModel,
    encoder: FeatureEncoder,
    tables: dict[str, dict],
) -> dict[str, Any]:
    """Write the version's app and user vectors under ``path``; the figures for meta.json.

    ``tables`` is the run's lineage (``TrainInputs.tables``): the same Delta
    versions and days the model was trained on are read here.
    """
    if model.cfg.architecture != "two_tower":
        return {
            "written": False,
            "reason": f"architecture {model.cfg.architecture!r} has no user / app towers",
        }
    apps = _write_apps(settings, path, model, encoder, tables[settings.tables.apps])
    users = _write_users(settings, path, model, encoder, tables[settings.tables.user_logs])
    return {
        "written": True,
        "apps": apps,
        "users": users,
        "dim": model.cfg.tower_dim,
        "paths": {"apps": APPS_FILE, "users": USERS_DIR},
    }


def _write_apps(settings, path, model, encoder, table: dict) -> dict[str, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recmodel import reader
    from recmodel.serving import ITEM_KEEP, with_vectors

    apps = reader.read_pandas(table["path"], version=table["version"])
    out = with_vectors(model, encoder, apps, "item", ITEM_KEEP, f"table {table['path']}")
    out[S.IS_COLD_START] = out[S.IS_COLD_START].fillna(False).astype(bool)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), buf)
    fs.write_bytes(f"{path}/{APPS_FILE}", buf.getvalue())
    return {"rows": len(out), "cold_start": int(out[S.IS_COLD_START].sum())}


def _write_users(settings, path, model, encoder, table: dict) -> dict[str, int]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from jobs.platform.spark import get_spark
    from jobs.platform.tables import read_table
    from recmodel.model import model_state
    from recmodel.serving import USER_KEEP, tower_fields, user_vector_fn

    spark = get_spark(settings.spark)
    user_fields, _ = tower_fields(model)
    logs = read_table(spark, table["path"], table["days"], version=table["version"])
    latest = Window.partitionBy(S.USER_ID).orderBy(F.desc(S.DS), F.desc(S.EVENT_ID))
    users = (
        logs.withColumn("_latest", F.row_number().over(latest))
        .where(F.col("_latest") == 1)
        .select(*USER_KEEP, *user_fields)
    )
    key_types = {f.name: f.dataType.simpleString() for f in logs.schema.fields}
    ddl = ", ".join(f"{c} {key_types[c]}" for c in USER_KEEP) + ", vector array<float>, bias float"
    vectors = users.mapInPandas(user_vector_fn(model_state(model, encoder), USER_KEEP), ddl)
    target = f"{path}/{USERS_DIR}"
    vectors.write.mode("overwrite").parquet(target)
    rows = spark.read.parquet(target).count()
    log.info("user vectors: %d users -> %s", rows, target)
    return {"rows": rows}
