"""Pandas UDFs that score picklable models on executors, one Arrow batch at a time.

Stage 2 needs a per-row model term on every synthetic row (millions a day):
the label-model term ``log M_real(y|x) - log M_syn(y|x)`` and, for the
classifier / hybrid methods, a real-vs-synthetic log density ratio. The models
are trained on bounded samples on the driver and shipped to the executors in
the UDF's closure (cloudpickle); rows never travel to the driver. Batch size
is Spark's ``spark.sql.execution.arrow.maxRecordsPerBatch``.
"""

# No ``from __future__ import annotations`` here: Spark reads the pandas UDFs'
# type hints at definition time to pick the UDF kind, so they must be real types.
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import Column

# Probabilities are clipped before the log: a label model that is sure of the
# wrong class must not send a weight to 0 or infinity on its own.
PROB_CLIP = 1e-4


class ProbOfLabel(Protocol):
    def prob_of_label(self, pdf: pd.DataFrame, fold: np.ndarray) -> np.ndarray: ...


class FoldLogRatio(Protocol):
    def log_ratio(self, pdf: pd.DataFrame, fold: np.ndarray) -> np.ndarray: ...


def label_log_ratio(
    m_real: ProbOfLabel,
    m_syn: ProbOfLabel,
    columns: Sequence[str],
    fold: "Column",
    clip: float = PROB_CLIP,
) -> "Column":
    """Column ``log M_real(y|x) - log M_syn(y|x)``, each by its out-of-fold model.

    ``columns`` must include the label; ``fold`` is the row's cross-fitting
    fold (the same hash both models' training rows were split by).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def score(folds: pd.Series, pdf: pd.DataFrame) -> pd.Series:
        k = np.asarray(folds, dtype=np.int64)
        p_real = np.clip(np.asarray(m_real.prob_of_label(pdf, k), dtype=float), clip, 1.0)
        p_syn = np.clip(np.asarray(m_syn.prob_of_label(pdf, k), dtype=float), clip, 1.0)
        return pd.Series(np.log(p_real) - np.log(p_syn))

    return score(fold, F.struct(*[F.col(c) for c in columns]))


def fold_log_ratio(model: FoldLogRatio, columns: Sequence[str], fold: "Column") -> "Column":
    """Column ``model.log_ratio(rows, fold)``: out-of-fold density-ratio scores."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def score(folds: pd.Series, pdf: pd.DataFrame) -> pd.Series:
        return pd.Series(model.log_ratio(pdf, np.asarray(folds, dtype=int)))

    return score(fold, F.struct(*[F.col(c) for c in columns]))


def model_payload_size(model: Any) -> int:
    """Bytes a model costs in every task's closure (logged: large models hurt)."""
    import cloudpickle

    return len(cloudpickle.dumps(model))
