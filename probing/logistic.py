"""Batched L2-regularised logistic regression: every layer × problem fitted at once, in torch.

Why: a probe run fits one logistic regression per layer and fold (and per control labelling and
candidate C). Those problems share their rows, so one pass over a layer's matrix serves them all.

Problem ``(g, p)`` (layer ``g`` of ``X``; problem ``p`` = a training mask, a label row and a
``C``) standardises the features with the mean and std of its own training rows (as
scikit-learn's ``StandardScaler``: near-constant features get std 1) and minimises over ``w, b``

    sum_{i in train_p} log(1 + exp(-(2 y_pi - 1) (w · x_i + b))) + ||w||² / (2 C_p)

which is scikit-learn's ``LogisticRegression(C=C_p)`` objective (intercept unpenalised), with
its stopping rule: the largest gradient entry of that objective divided by the number of
training rows is at most ``tol`` (default 1e-4, as scikit-learn; at least 1e-7, the float32
floor).

How: each layer is standardised once over all rows (float32 data, statistics from a centred
second pass); fold standardisation is affine and the intercept is free, so problem ``p`` is
evaluated on those shared features with weights ``w / s`` and a shifted intercept (``m, s`` =
the fold's training mean and std in shared units), and its iterates are those of a fit on the
fold-standardised rows. The solver is L-BFGS with Armijo backtracking, all problems stepping
together: float64 parameters, history, signed margins and row losses; float32 matrix products.
Each step costs two passes over the shared matrix and one float64 softplus and one exponential
per row: the trial point's row losses give the Armijo test and, once accepted, the residuals of
the next gradient (``sigmoid(-margin) = exp(-margin - loss)``). Layers whose problems are all
done drop out of the products.

Where the time goes (31 layers × 2,000 × 576, 11 problems, 36 steps, 2 cores; one fit of 1.73 s):
the two products about 0.9 s, the row-wise softplus and exponential about 0.3 s, the two-loop
recursion 0.2 s; ``benchmarks/bench_probe.py`` compares it with a scikit-learn loop.

Why not Newton with Cholesky: measured on 13 layers × 2,000 × 768 with 5 folds, a Newton step
needs its own ``d × d`` Hessian and Cholesky factor per problem (about 1 s per step for all 65
on 2 cores; a layer-shared Hessian is a poor preconditioner because fold models disagree by
~45% in per-row curvature), while an L-BFGS step is two thin products over the shared matrix
(about 15-20 ms with its element-wise work); L-BFGS needs 30-50 steps, Newton 6-8.
"""

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from valuetrace.errors import DataError

_ARMIJO = 1e-4
_MAX_HALVINGS = 50
# The gradient's float32 rounding floor is about 1e-8 in these (per-row, standardised) units.
_MIN_TOL = 1e-7
# Below this many matrix entries a second thread costs more in barriers than it saves. The
# solver's vector work ([g, p, d] and [g, p, n] element-wise ops) always runs on one thread:
# measured on 31 × 2,000 × 576 with 11 problems on 2 busy cores, two threads made each such op
# 10-25× slower (barrier waits) and the whole fit 98 s instead of 14 s.
_PARALLEL_MIN_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class LogisticFit:
    """Fitted problems ``[g layers, p problems]`` in each problem's standardised units."""

    coef: Float[Tensor, "g p d"]
    intercept: Float[Tensor, "g p"]
    mean: Float[Tensor, "g p d"]
    std: Float[Tensor, "g p d"]
    decision: Float[Tensor, "g p n"]
    n_iter: int
    converged: Bool[Tensor, "g p"]


@dataclass(frozen=True)
class _Problems:
    """Shared-unit design and the per-problem data that every evaluation needs."""

    Xc: Tensor  # [g, n, d] float32, each layer standardised over all rows
    inv_scale: Tensor  # [g, p, d] float64, 1 / (fold std in shared units)
    shift: Tensor  # [g, p, d] float64, fold mean in shared units
    lam: Tensor  # [p] float64, 1 / C
    sign: Tensor  # [p, n] float64, 2 y - 1: a row's margin is sign * decision
    M: Tensor  # [p, n] float64 training masks
    threads: int  # intra-op threads for the products over Xc; all other work runs on one

    def rows(self, index: Tensor) -> "_Problems":
        """The problems of the matrix's leading layers, ``index`` giving their parameters."""
        return replace(
            self, Xc=self.Xc[: len(index)], inv_scale=self.inv_scale[index], shift=self.shift[index]
        )

    def decision(self, theta: Tensor) -> Tensor:
        """Decision values ``[g, p, n]`` (float32) of parameters ``[g, p, d+1]``; linear."""
        v, offset = self._weights(theta)
        with _threads(self.threads):
            # (X v^T)^T: 13 vs 16 ms for v @ X^T on 31 x 2,000 x 576 with 11 problems, 2 cores
            x_v = torch.bmm(self.Xc, v.mT).mT
        return x_v.add_(offset[..., None])

    def _weights(
        self, theta: Tensor, layers: Tensor | slice = slice(None)
    ) -> tuple[Tensor, Tensor]:
        """Shared-unit weights ``[k, p, d]`` and intercepts ``[k, p]`` (float32) of ``theta``."""
        v = theta[..., :-1] * self.inv_scale[layers]
        offset = theta[..., -1] - torch.linalg.vecdot(v, self.shift[layers])
        return v.float(), offset.float()

    def decision_of(self, layers: Tensor, theta: Tensor) -> Tensor:
        """Decision values ``[k, p, n]`` of some layers' parameters; reads those layers in place."""
        v, offset = self._weights(theta, layers)
        with _threads(self.threads):
            x_v = [torch.mm(w, self.Xc[g].T) for g, w in zip(layers.tolist(), v, strict=True)]
        return torch.stack(x_v).add_(offset[..., None])

    def gradient(self, point: "_Point", theta: Tensor) -> Tensor:
        """Gradient ``[g, p, d+1]`` of the objective at ``point``.

        A row's residual ``sigmoid(z) - y`` is ``-sign * sigmoid(-margin)``, and
        ``sigmoid(-margin) = exp(-margin - loss)``: one exponential of terms already held.
        """
        r = torch.exp(torch.add(point.margin, point.loss).neg_()).mul_(self.sign).mul_(self.M)
        r_sum = -r.sum(-1)
        with _threads(self.threads):
            x_r = torch.bmm(r.float(), self.Xc).double().neg_()
        g_w = (x_r - self.shift * r_sum[..., None]) * self.inv_scale
        g_w += self.lam[:, None] * theta[..., :-1]
        return torch.cat([g_w, r_sum[..., None]], dim=-1)

    def change(
        self, point: "_Point", moved: "_Point", theta: Tensor, step: Tensor, t: Tensor
    ) -> Tensor:
        """Objective change ``[g, p]`` from ``point`` to ``moved`` (parameters ``+ t * step``).

        Row losses are float64, so their differences keep about 1e-16 of a row's loss: far
        below the Armijo threshold at any tolerance this solver accepts.
        """
        loss = torch.sub(moved.loss, point.loss).mul_(self.M).sum(-1)
        w, dw = theta[..., :-1], step[..., :-1]
        penalty = self.lam * (t * torch.linalg.vecdot(w, dw) + 0.5 * t**2 * (dw * dw).sum(-1))
        return loss + penalty


@dataclass(frozen=True)
class _Point:
    """Signed margins ``(2y - 1) z`` at the current parameters and each row's log-loss there."""

    margin: Tensor  # [g, p, n] float64: many small steps accumulate without drift
    loss: Tensor  # [g, p, n] float64: softplus(-margin)

    @classmethod
    def at(cls, margin: Tensor) -> "_Point":
        """The point with signed margins ``margin``."""
        return cls(margin, F.softplus(-margin))

    def moved(self, signed_step: Tensor, t: Tensor) -> "_Point":
        """The point after moving each problem's parameters by ``t`` times a step."""
        return _Point.at(torch.addcmul(self.margin, t[..., None], signed_step))

    def rows(self, index: Tensor) -> "_Point":
        """The point restricted to some layers."""
        return _Point(self.margin[index], self.loss[index])


def fit_logistic(
    X: Float[Tensor, "g n d"],
    y: Float[Tensor, "p n"],
    train: Bool[Tensor, "p n"],
    C: Float[Tensor, " p"],
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    history: int = 10,
) -> LogisticFit:
    """Fit every (layer, problem) pair at once; ``decision`` covers all rows, held out included."""
    _check_problems(X, y, train, C, tol)
    n_train = train.sum(1).double()
    pos_rate = (y * train).sum(1) / n_train
    threads = torch.get_num_threads() if X.numel() >= _PARALLEL_MIN_ELEMENTS else 1
    with _threads(threads):
        problems, mean, std = _standardise(X, train, y, C, threads)
    with _threads(1):
        theta, decision, converged, n_iter = _lbfgs(
            problems, n_train, pos_rate, tol, max_iter, history
        )
    return LogisticFit(
        coef=theta[..., :-1].float(),
        intercept=theta[..., -1].float(),
        mean=mean,
        std=std,
        decision=decision,
        n_iter=n_iter,
        converged=converged,
    )


def _lbfgs(
    problems: _Problems,
    n_train: Tensor,
    pos_rate: Tensor,
    tol: float,
    max_iter: int,
    history: int,
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Batched L-BFGS: parameters, decisions ``[g, p, n]``, convergence, iterations.

    A layer whose problems have all converged (or stalled) retires: its results are stored and
    a live layer is moved into its slot of the shared matrix, so products read live layers only.
    """
    n_layers, n_rows, width = problems.Xc.shape
    out_theta = torch.empty(n_layers, len(n_train), width + 1, dtype=torch.float64)
    out_decision = torch.empty(n_layers, len(n_train), n_rows)
    out_converged = torch.zeros(n_layers, len(n_train), dtype=torch.bool)
    index = torch.arange(n_layers)  # input layer held by each live row
    theta = torch.zeros_like(out_theta)
    theta[..., width] = torch.logit(pos_rate)
    point = _Point.at(problems.sign * problems.decision(theta))
    grad = problems.gradient(point, theta)
    # The first step's inverse-Hessian scale: the curvature of the standardised problem at zero.
    gamma = (1.0 / (0.25 * n_train + problems.lam)).expand(n_layers, -1).clone()
    pairs: deque[tuple[Tensor, Tensor, Tensor]] = deque(maxlen=history)
    stalled = torch.zeros_like(gamma, dtype=torch.bool)
    n_iter = 0
    while True:
        converged = grad.abs().amax(-1) / n_train <= tol
        active = ~(converged | stalled)
        live = active.any(1) & (n_iter < max_iter)
        if not bool(live.all()):
            done = torch.nonzero(~live).flatten()
            out_theta[index[done]] = theta[done]
            out_converged[index[done]] = converged[done]
            out_decision[index[done]] = problems.decision_of(done, theta[done])
            if not bool(live.any()):
                return out_theta, out_decision, out_converged, n_iter
            problems, keep = _retire(problems, live)
            index, theta, grad, gamma, stalled, active = (
                t[keep] for t in (index, theta, grad, gamma, stalled, active)
            )
            point = point.rows(keep)
            pairs = deque(((s[keep], yv[keep], r[keep]) for s, yv, r in pairs), maxlen=history)
        n_iter += 1
        step = -_two_loop(grad, pairs, gamma) * active[..., None]
        t, failed, point = _backtrack(problems, point, theta, grad, step)
        stalled |= failed & active
        s = t[..., None] * step
        theta = theta + s
        grad_new = problems.gradient(point, theta)
        yv = grad_new - grad
        sy = torch.linalg.vecdot(s, yv)
        yy = torch.linalg.vecdot(yv, yv)
        curved = sy > 1e-10 * (torch.linalg.vecdot(s, s) * yy).sqrt()
        pairs.append((s, yv, torch.where(curved, 1.0 / sy, torch.zeros_like(sy))))
        gamma = torch.where(curved, sy / yy, gamma)
        grad = grad_new


def _retire(problems: _Problems, live: Tensor) -> tuple[_Problems, Tensor]:
    """Fill retired layers' slots with live layers from the end; return the new row order."""
    n_live = int(live.sum())
    keep = torch.arange(len(live))
    holes = torch.nonzero(~live[:n_live]).flatten()
    movers = torch.nonzero(live[n_live:]).flatten() + n_live
    keep[holes] = movers
    problems.Xc[holes] = problems.Xc[movers]
    return problems.rows(keep[:n_live]), keep[:n_live]


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads: tiny ops stall on thread barriers on busy cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_problems(X: Tensor, y: Tensor, train: Tensor, C: Tensor, tol: float) -> None:
    """Reject shapes that do not line up and problems whose training rows hold one class."""
    if X.ndim != 3 or y.ndim != 2 or train.shape != y.shape or C.shape != (y.shape[0],):
        raise DataError(
            f"fit_logistic got X {tuple(X.shape)}, y {tuple(y.shape)}, train "
            f"{tuple(train.shape)}, C {tuple(C.shape)}; pass X [layers, n, d], y and train "
            "[problems, n] and C [problems]"
        )
    if y.shape[1] != X.shape[1]:
        raise DataError(f"X has {X.shape[1]} rows but y has {y.shape[1]}; pass one label per row")
    positives = (y * train).sum(1)
    one_class = (positives == 0) | (positives == train.sum(1))
    if bool(one_class.any()):
        bad = torch.nonzero(one_class).flatten().tolist()
        raise DataError(
            f"problems {bad} have one class in their training rows; give each problem "
            "training rows of both classes"
        )
    if bool((C <= 0).any()):
        raise DataError(f"C must be positive, got {C.tolist()}; pass C > 0")
    if tol < _MIN_TOL:
        raise DataError(f"tol {tol} is below what float32 products resolve; use tol >= {_MIN_TOL}")


def _standardise(
    X: Tensor, train: Tensor, y: Tensor, C: Tensor, threads: int
) -> tuple[_Problems, Tensor, Tensor]:
    """Standardise each layer over all rows; fold statistics come from training rows only.

    Means and sums of squares are matrix products (rows weighted by 1/count) on data centred
    by a first float32 mean, so the float32 sums carry no cancellation. A feature that is
    constant over a problem's training rows gets std 1, as in scikit-learn.
    """
    n = X.shape[1]
    masks, inverse = torch.unique(train, dim=0, return_inverse=True)
    masks = torch.cat([torch.ones(1, n, dtype=torch.bool), masks])  # all rows, then each mask
    counts = masks.sum(1, keepdim=True)
    weights = masks.float() / counts.float()
    X32 = X.float()
    rough_mean = torch.matmul(weights[:1], X32)  # [g, 1, d]
    first = torch.empty(X.shape[0], len(masks), X.shape[2], dtype=torch.float64)
    second = torch.empty_like(first)
    Xc = torch.empty_like(X32)
    squares = torch.empty_like(X32[0])
    for layer, rough, mean, square, centred in zip(X32, rough_mean, first, second, Xc, strict=True):
        torch.sub(layer, rough, out=centred)  # one layer at a time stays in cache
        mean.copy_(weights @ centred)  # means of the centred rows, all rows then each mask
        square.copy_(weights @ torch.square(centred, out=squares))
    raw_mean = rough_mean.double() + first
    raw_var = (second - first**2).clamp_min(0.0)
    # float32 sums leave a constant feature a variance of up to ~1e-4 of its centred mean
    # squared: check such features exactly
    constant = raw_var == 0
    suspect = torch.nonzero((raw_var <= 1e-3 * first**2).any(1).any(0)).flatten()
    if len(suspect):
        constant[..., suspect] |= _constant_features(X32[..., suspect], masks)
    raw_std = torch.where(constant, torch.ones_like(raw_var), raw_var.sqrt())
    sd_c, mu_c = raw_std[:, :1], first[:, :1]  # shared units: all rows centred and scaled
    Xc.sub_(mu_c.float()).div_(sd_c.float())  # the small shift exact
    fold_mean, fold_std = raw_mean[:, 1:][:, inverse], raw_std[:, 1:][:, inverse]
    problems = _Problems(
        Xc=Xc,
        inv_scale=sd_c / fold_std,
        shift=(first[:, 1:][:, inverse] - mu_c) / sd_c,
        lam=1.0 / C.double(),
        sign=2.0 * y.double() - 1.0,
        M=train.double(),
        threads=threads,
    )
    return problems, fold_mean.float(), fold_std.float()


def _constant_features(X: Tensor, masks: Tensor) -> Tensor:
    """``[g, u, d]``: feature takes one value over mask ``u``'s rows (exact, via max == min).

    Rows are grouped by which masks hold them; one pass finds each group's max and min.
    """
    patterns, group = torch.unique(masks.T, dim=0, return_inverse=True)  # [a, u], [n]
    index = group.view(1, -1, 1).expand_as(X)
    shape = (X.shape[0], len(patterns), X.shape[2])
    hi = torch.full(shape, -torch.inf).scatter_reduce(1, index, X, "amax")
    lo = torch.full(shape, torch.inf).scatter_reduce(1, index, X, "amin")
    member = patterns.T[None, :, :, None]  # [1, u, a, 1]
    mask_hi = torch.where(member, hi[:, None], -torch.inf).amax(2)
    mask_lo = torch.where(member, lo[:, None], torch.inf).amin(2)
    return mask_hi == mask_lo


def _two_loop(grad: Tensor, pairs: deque[tuple[Tensor, Tensor, Tensor]], gamma: Tensor) -> Tensor:
    """L-BFGS inverse-Hessian product per problem; pairs with ``rho = 0`` are inert."""
    q = grad.clone()
    alphas = []
    for s, yv, rho in reversed(pairs):
        alpha = rho * torch.linalg.vecdot(s, q)
        q.addcmul_(alpha[..., None], yv, value=-1.0)
        alphas.append(alpha)
    q *= gamma[..., None]
    for (s, yv, rho), alpha in zip(pairs, reversed(alphas), strict=True):
        beta = rho * torch.linalg.vecdot(yv, q)
        q.addcmul_((alpha - beta)[..., None], s)
    return q


def _backtrack(
    problems: _Problems, point: _Point, theta: Tensor, grad: Tensor, step: Tensor
) -> tuple[Tensor, Tensor, _Point]:
    """Armijo backtracking per problem: step sizes, where no step descends, the new point."""
    slope = torch.linalg.vecdot(grad, step)
    signed_step = problems.sign * problems.decision(step)
    t = torch.ones_like(slope)
    for _ in range(_MAX_HALVINGS):
        moved = point.moved(signed_step, t)
        ok = problems.change(point, moved, theta, step, t) <= _ARMIJO * t * slope
        if bool(ok.all()):
            return t, torch.zeros_like(ok), moved
        t = torch.where(ok, t, t / 2)
    t = torch.where(ok, t, torch.zeros_like(t))
    return t, ~ok, point.moved(signed_step, t)
