"""Ranking pieces of hybrid search that need no database: exact vector search and rank fusion.

:class:`VectorMatrix` holds an archive's chunk vectors as one unit-normalised float32 matrix and
answers cosine top-k by a matrix-vector product (numpy), exact by construction. It is the embedded
default because it measured better here than an embedded HNSW library: at 100,000 x 384 it answers in
tens of milliseconds, filters are a mask, and it needs no build (an HNSW index took minutes to build
on two cores and missed most true neighbours of random vectors at default search settings; see
``docs/knowledge.md``). :func:`reciprocal_rank_fusion` merges rankings (vector and keyword) by
``sum(weight / (k + rank))``, the rule of Cormack et al. that needs no score calibration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["RRF_K", "VectorMatrix", "from_blob", "reciprocal_rank_fusion", "to_blob"]

RRF_K = 60
"""The fusion's rank constant (the value of the original paper, and of most engines since)."""


def to_blob(vector: Sequence[float]) -> bytes:
    """A vector as little-endian float32 bytes, normalised to unit length."""
    import numpy as np

    array = np.asarray(vector, dtype="<f4")
    norm = float(np.linalg.norm(array))
    if norm > 0:
        array = array / norm
    return bytes(array.astype("<f4").tobytes())


def from_blob(blob: bytes) -> np.ndarray[Any, Any]:
    import numpy as np

    return np.frombuffer(blob, dtype="<f4")


class VectorMatrix:
    """Exact cosine search over a fixed set of unit vectors."""

    def __init__(self, ids: Sequence[str], blobs: Sequence[bytes], dimensions: int,
                 groups: Sequence[str] | None = None) -> None:
        import numpy as np

        self.ids = list(ids)
        self.dimensions = dimensions
        self.matrix = (np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dimensions)
                       if blobs else np.zeros((0, dimensions), dtype="<f4"))
        self.groups = np.asarray(list(groups)) if groups is not None else None
        """A label per row (its file id) that filters select on."""

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: Sequence[float], k: int, *,
               allowed_groups: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` rows most similar to ``query`` (cosine), best first; only ``allowed_groups`` when given."""
        import numpy as np

        if not self.ids or k <= 0:
            return []
        vector = np.asarray(query, dtype="<f4")
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            return []
        scores = self.matrix @ (vector / norm)
        if allowed_groups is not None and self.groups is not None:
            mask = np.isin(self.groups, list(allowed_groups))
            scores = np.where(mask, scores, -np.inf)
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in top if np.isfinite(scores[i])]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, k: int = RRF_K,
                           weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Ids ranked by ``sum(weight / (k + rank))`` over the rankings they appear in (rank from 1)."""
    scores: dict[str, float] = {}
    for index, ranking in enumerate(rankings):
        weight = weights[index] if weights is not None else 1.0
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def fused_ranks(rankings: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
    """For each id, its rank (from 1) in each named ranking it appears in."""
    ranks: dict[str, dict[str, int]] = {}
    for name, ranking in rankings.items():
        for rank, item in enumerate(ranking, start=1):
            ranks.setdefault(item, {})[name] = rank
    return ranks
