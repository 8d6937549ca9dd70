"""Label spreading on a sparse k-nearest-neighbour graph, warm-started from the last solution.

The iteration of D. Zhou, O. Bousquet, T. N. Lal, J. Weston and B. Schölkopf, "Learning with local
and global consistency" (NIPS 2003), as scikit-learn's ``LabelSpreading`` runs it:
``F <- alpha * S @ F + (1 - alpha) * Y`` with ``S = D^-1/2 W D^-1/2`` (the negated normalised
Laplacian of the graph ``W``, zero diagonal), until the summed change is below ``tol``. ``S`` stays
sparse (``n * k`` entries), so a round costs ``n * k * classes`` per iteration instead of the
dense kernel's ``n^2``. The fixed point does not depend on where the iteration starts, so each
round starts from the last round's ``F`` (the labels bought since move it a little) and needs
fewer iterations.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def normalised_graph(W: Any) -> Any:
    """``S`` for the connectivity graph ``W``, exactly as ``LabelSpreading._build_graph`` makes it
    (scipy's normalised Laplacian, negated, diagonal zeroed), in CSR."""
    from scipy.sparse.csgraph import laplacian

    S = (-laplacian(W.tocoo(), normed=True)).tocoo()
    S.data[S.row == S.col] = 0.0
    S = S.tocsr()
    S.eliminate_zeros()
    return S.astype(np.float32)


def spread(S: Any, rows: np.ndarray, codes: np.ndarray, n_classes: int, alpha: float, max_iter: int = 100,
           tol: float = 1e-3, start: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """``(F, iterations)``: the spread (unnormalised) label scores, ``n x n_classes`` float32, for
    the labeled ``rows`` with class ``codes``; ``start`` (a previous ``F`` with these columns)
    warm-starts the iteration."""
    n = S.shape[0]
    ones = np.unravel_index(np.unique(np.ravel_multi_index((rows, codes), (n, n_classes))), (n, n_classes))  # Y's 1s
    if start is None:
        F = np.zeros((n, n_classes), dtype=np.float32)
        F[ones] = 1.0
    else:
        F = np.array(start, dtype=np.float32)
    static = np.float32(1.0 - alpha)
    for it in range(max_iter):  # two n x classes arrays at a time (F, new): no dense Y, no temporaries
        new = S @ F
        new *= alpha
        new[ones] += static  # + (1 - alpha) Y: Y is zero elsewhere
        np.subtract(F, new, out=F)
        np.abs(F, out=F)
        change = float(F.sum(dtype=np.float64))
        F = new
        if change < tol:
            return F, it + 1
    return F, max_iter


def columns_for(previous: np.ndarray | None, old_classes: np.ndarray | None, classes: np.ndarray) -> np.ndarray | None:
    """The previous ``F`` with its columns in the order of ``classes`` (zeros for a class that is
    new); None when there is no previous solution."""
    if previous is None or old_classes is None:
        return None
    where = {c: j for j, c in enumerate(old_classes.tolist())}
    new = [j for j, c in enumerate(classes.tolist()) if c in where]
    old = [where[c] for c in classes.tolist() if c in where]
    if old == list(range(previous.shape[1])) and len(new) == classes.size:  # the same classes: one plain copy
        return np.array(previous, dtype=np.float32)
    if len(new) == classes.size:  # no class is new: one gather, row by row (no strided column writes)
        return np.asarray(previous[:, old], dtype=np.float32)
    F = np.zeros((previous.shape[0], classes.size), dtype=np.float32)
    F[:, new] = previous[:, old]
    return F


def normalise(F: np.ndarray) -> np.ndarray:
    """Rows of ``F`` as distributions (a row with no mass stays zero), as ``LabelSpreading`` ends."""
    total = F.sum(axis=1, keepdims=True)
    total[total == 0] = 1.0
    return F / total


def top_share(F: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Each row's largest share of its mass, ``normalise(F).max(axis=1)`` exactly (0 for a row
    with no mass), computed ``chunk`` rows at a time without dividing the whole row: division by
    the row's total is monotone (increasing for a positive total, decreasing for a negative one),
    so the largest quotient is the largest (or smallest) entry divided by the total, rounded the
    same way. No ``n x classes`` temporary."""
    out = np.empty(F.shape[0], dtype=F.dtype)
    for start in range(0, F.shape[0], chunk):
        part = F[start:start + chunk]
        total = part.sum(axis=1)
        top = part.max(axis=1)
        negative = total < 0
        if negative.any():  # dividing by a negative total: the smallest entry gives the largest share
            top[negative] = part[negative].min(axis=1)
        total[total == 0] = 1.0
        np.divide(top, total, out=out[start:start + chunk])
    return out


def surest(confidence: np.ndarray, keep: int) -> np.ndarray:
    """The positions of the ``keep`` largest ``confidence`` values, ties to the earlier position,
    in increasing position order: ``np.sort(np.argsort(-confidence, kind="stable")[:keep])``
    without sorting every value (one partition, then the ties at the threshold)."""
    keep = max(0, min(keep, confidence.size))
    if keep == 0:
        return np.empty(0, dtype=np.int64)
    if keep == confidence.size:
        return np.arange(confidence.size, dtype=np.int64)
    threshold = np.partition(confidence, confidence.size - keep)[confidence.size - keep]
    above = confidence > threshold
    ties = np.flatnonzero(confidence == threshold)[:keep - int(above.sum())]
    above[ties] = True
    return np.flatnonzero(above)


def respread(S: Any, F: np.ndarray, change: Any, alpha: float, max_iter: int = 100, tol: float = 1e-3,
             eps: float = 1e-7) -> int:
    """Move ``F``, the spread scores for the labels before, to those for the labels now, in place;
    ``change`` is ``Y_now - Y_before`` (sparse, ``n x classes``). Returns the iterations.

    The fixed point is linear in the labels: ``F = (1 - alpha) (I - alpha S)^-1 Y``, so the new
    labels add ``(1 - alpha) sum_t (alpha S)^t change``, a series whose terms stay sparse: each
    touches the neighbourhood of the items whose label changed, a few hops out, instead of the
    whole pool. Entries under ``eps`` are dropped; the series stops when a term's summed size is
    under ``tol`` (the test ``spread`` applies to the whole ``F``)."""
    term = (change * (1.0 - alpha)).astype(np.float32).tocsr()
    total = term.copy()
    for it in range(max_iter):
        term = (S @ term) * alpha
        term.data[np.abs(term.data) < eps] = 0.0
        term.eliminate_zeros()
        total = total + term
        if float(np.abs(term.data).sum(dtype=np.float64)) < tol:
            break
    total = total.tocoo()
    total.sum_duplicates()
    F[total.row, total.col] += total.data
    return it + 1


def label_matrix(rows: np.ndarray, codes: np.ndarray, n: int, n_classes: int) -> Any:
    """``Y``: one-hot rows for the labeled items (sparse, ``n x n_classes``)."""
    from scipy import sparse

    return sparse.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, codes)), shape=(n, n_classes))
