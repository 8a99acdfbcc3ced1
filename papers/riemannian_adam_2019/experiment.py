"""One row, one seed: Poincaré embeddings (Nickel & Kiela 2017) of the transitive closure of a
balanced tree, trained with Riemannian SGD, Adam or AMSGrad (method.py).

Data: a `branching`-ary tree of the given `depth` (3 and 5: 364 nodes, 1,641 closure pairs), each
pair (u, v) a node and one of its ancestors. Every step takes `batch_size` pairs (an epoch visits
each once, shuffled by the seed) and, for each, `negatives` nodes unrelated to u (neither ancestor,
descendant nor u), and minimizes

    -log  exp(-d(u, v)) / (exp(-d(u, v)) + sum_{v' in negatives} exp(-d(u, v')))

with d the Poincaré distance. Embeddings start uniform in [-init_scale, init_scale]^dim, in float64
(so points may come within 1e-5 of the boundary; float32 would stop them at 4e-3).

Metrics, on the final embedding: `full_loss`, the same loss with every unrelated node as a
negative (deterministic given the embedding, the training objective without sampling noise);
`early_loss`, the full loss after the first `early_epochs` epochs (how fast it falls); the
reconstruction `mean_rank` (for each closure pair, 1 + the number of nodes unrelated to u nearer u
than v) and `map` (mean average precision of ranking each node's related nodes, in %). The full
loss is logged every epoch for the figure."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.geometry import PoincareBall

from . import method

OPTIMIZERS = ("rsgd", "radam", "ramsgrad")


@dataclass
class EmbedConfig(BaseConfig):
    branching: int = 3
    depth: int = 5
    dim: int = 5
    """Dimension of the Poincaré ball."""
    c: float = 1.0
    """The ball's curvature is -c."""
    negatives: int = 10
    batch_size: int = 32
    epochs: int = 40
    early_epochs: int = 4
    optimizer: str = "radam"
    """rsgd, radam or ramsgrad."""
    lr: float = 0.01
    betas: tuple = (0.9, 0.999)
    init_scale: float = 1e-3
    closure_csv: str = ""
    """A closure CSV (id1,id2[,weight]; e.g. WordNet nouns) instead of the tree: the full scale.
    Relative paths are taken from the working directory."""


def preflight(cfg: EmbedConfig) -> None:
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    if cfg.branching < 2 or cfg.depth < 1:
        raise ConfigError(f"branching >= 2 and depth >= 1 needed, got branching={cfg.branching} depth={cfg.depth}")
    if cfg.branching ** cfg.depth > 100_000:
        raise ConfigError(f"a tree with {cfg.branching}^{cfg.depth} leaves is too large for a dense distance matrix")
    if cfg.dim < 1 or cfg.negatives < 1 or cfg.batch_size < 1 or cfg.epochs < 0:
        raise ConfigError(f"dim, negatives and batch_size must be >= 1 and epochs >= 0, got dim={cfg.dim} "
                          f"negatives={cfg.negatives} batch_size={cfg.batch_size} epochs={cfg.epochs}")
    if not 0 <= cfg.early_epochs <= cfg.epochs:
        raise ConfigError(f"early_epochs must be in [0, epochs={cfg.epochs}], got {cfg.early_epochs}")
    if not (cfg.lr > 0 and cfg.c > 0 and 0 < cfg.init_scale < 0.5):
        raise ConfigError(f"lr and c must be > 0 and init_scale in (0, 0.5), got lr={cfg.lr} c={cfg.c} "
                          f"init_scale={cfg.init_scale}")
    if cfg.closure_csv and not os.path.exists(cfg.closure_csv):
        read_closure(cfg.closure_csv)  # raises the ConfigError that says how to build it
    try:
        PoincareBall(cfg.c)
        method.RiemannianAdam([torch.zeros(1, 1)], lr=cfg.lr, betas=tuple(cfg.betas))
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None


class Closure:
    """A transitive closure: n nodes, pairs (node, ancestor) as a (P, 2) long tensor, and each
    node's related nodes (ancestors and descendants) in CSR form, so nothing is n x n."""

    def __init__(self, n: int, pairs: torch.Tensor, names: list[str] | None = None):
        self.n, self.pairs, self.names = n, pairs, names
        self.device = pairs.device
        both = torch.cat([pairs, pairs.flip(1)])
        keys = torch.unique(both[:, 0] * n + both[:, 1])  # sorted
        self.keys = keys
        rows = keys // n
        self.indices = keys % n
        self.indptr = torch.zeros(n + 1, dtype=torch.long, device=self.device)
        self.indptr[1:] = torch.bincount(rows, minlength=n).cumsum(0)
        self.degree = self.indptr[1:] - self.indptr[:-1]

    def is_related(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = u * self.n + v
        pos = torch.searchsorted(self.keys, q).clamp(max=len(self.keys) - 1)
        return self.keys[pos] == q

    def related_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), n) bool: related[i, j] for i in rows."""
        dev = self.device
        mask = torch.zeros(len(rows), self.n, dtype=torch.bool, device=dev)
        counts = self.degree[rows]
        which = torch.repeat_interleave(torch.arange(len(rows), device=dev), counts)
        start = torch.repeat_interleave(self.indptr[rows], counts)
        offset = torch.arange(int(counts.sum()), device=dev) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        mask[which, self.indices[start + offset]] = True
        return mask

    def sample_negatives(self, u: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
        """k nodes per u drawn uniformly among those unrelated to u and not u (by rejection; the
        draws come from the CPU generator `g` whatever the device)."""
        out = torch.randint(self.n, (len(u), k), generator=g).to(self.device)
        for _ in range(1000):
            bad = self.is_related(u[:, None].expand_as(out), out) | (out == u[:, None])
            if not bool(bad.any()):
                return out
            out[bad] = torch.randint(self.n, (int(bad.sum()),), generator=g).to(self.device)
        raise ConfigError("could not sample negatives: some node is related to almost every other")


def tree_closure(branching: int, depth: int, device="cpu") -> Closure:
    """The closure of a balanced tree, nodes numbered breadth-first from the root 0."""
    parent, level = [-1], [0]
    for d in range(depth):
        for p in [i for i, lv in enumerate(level) if lv == d]:
            for _ in range(branching):
                parent.append(p)
                level.append(d + 1)
    pairs = []
    for u in range(len(parent)):
        a = parent[u]
        while a >= 0:
            pairs.append((u, a))
            a = parent[a]
    return Closure(len(parent), torch.tensor(pairs, dtype=torch.long, device=device))


def read_closure(path: str, device="cpu") -> Closure:
    """A closure from a CSV of `id1,id2[,weight]` rows with a header (Nickel & Kiela's
    wordnet/transitive_closure.py writes mammal and noun closures in this format): id1 is-a id2."""
    if not os.path.exists(path):
        raise ConfigError(f"closure file {path} not found: build WordNet's noun closure with Nickel & Kiela's "
                          "poincare-embeddings wordnet/transitive_closure.py (needs nltk's wordnet corpus) and "
                          "set closure_csv to it")
    index: dict[str, int] = {}
    pairs = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or len(header) < 2:
            raise ConfigError(f"{path}: expected a header 'id1,id2[,weight]'")
        for line, row in enumerate(reader, start=2):
            if len(row) < 2:
                raise ConfigError(f"{path}:{line}: expected 'id1,id2[,weight]', got {row!r}")
            a, b = (index.setdefault(x, len(index)) for x in row[:2])
            if a != b:
                pairs.append((a, b))
    if not pairs:
        raise ConfigError(f"{path}: no pairs")
    return Closure(len(index), torch.tensor(pairs, dtype=torch.long, device=device), names=list(index))


def _distances(ball: PoincareBall, emb: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return ball.dist(emb[rows][:, None, :], emb[None, :, :]).squeeze(-1)


def _chunks(n: int, device, size: int = 512):
    for k in range(0, n, size):
        yield torch.arange(k, min(n, k + size), device=device)


def full_loss(ball: PoincareBall, emb: torch.Tensor, cl: Closure) -> float:
    """The loss with every unrelated node as a negative, averaged over closure pairs (rows in chunks)."""
    total, u_all = 0.0, cl.pairs[:, 0]
    for rows in _chunks(cl.n, cl.device):
        sel = (u_all >= rows[0]) & (u_all <= rows[-1])
        if not bool(sel.any()):
            continue
        d = _distances(ball, emb, rows)
        excluded = cl.related_rows(rows)
        excluded[torch.arange(len(rows), device=cl.device), rows] = True
        lse = torch.logsumexp((-d).masked_fill(excluded, float("-inf")), dim=1)
        u, v = cl.pairs[sel, 0] - rows[0], cl.pairs[sel, 1]
        pos = -d[u, v]
        total += float((torch.logaddexp(pos, lse[u]) - pos).sum())
    return total / len(cl.pairs)


def reconstruction(ball: PoincareBall, emb: torch.Tensor, cl: Closure):
    """(mean rank, MAP in %): for each closure pair, 1 + the number of nodes unrelated to u nearer
    u than v; for each node with related nodes, the average precision of ranking all others by distance."""
    rank_sum, ap_sum, n_ap = 0.0, 0.0, 0
    u_all = cl.pairs[:, 0]
    for rows in _chunks(cl.n, cl.device):
        d = _distances(ball, emb, rows)
        rel = cl.related_rows(rows)
        self_ = torch.zeros_like(rel)
        self_[torch.arange(len(rows), device=cl.device), rows] = True
        unrel = ~rel & ~self_
        sel = (u_all >= rows[0]) & (u_all <= rows[-1])
        u, v = cl.pairs[sel, 0] - rows[0], cl.pairs[sel, 1]
        rank_sum += float((1 + ((d[u] < d[u, v][:, None]) & unrel[u]).sum(1)).sum())
        keep = rel.any(1)
        order = torch.argsort(d.masked_fill(self_, float("inf"))[keep], dim=1, stable=True)[:, :-1]
        hits = torch.gather(rel[keep], 1, order).double()
        prec = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1, dtype=torch.float64, device=cl.device)
        ap_sum += float(((prec * hits).sum(1) / hits.sum(1)).sum())
        n_ap += int(keep.sum())
    return rank_sum / len(cl.pairs), 100 * ap_sum / n_ap


def make_optimizer(cfg: EmbedConfig, emb: torch.Tensor, ball: PoincareBall):
    group = [{"params": [emb], "manifold": ball}]
    if cfg.optimizer == "rsgd":
        return method.RiemannianSGD(group, lr=cfg.lr)
    return method.RiemannianAdam(group, lr=cfg.lr, betas=tuple(cfg.betas), amsgrad=cfg.optimizer == "ramsgrad")


def run(cfg: EmbedConfig, ctx) -> dict:
    ctx.no_checkpoint("an embedding table: seconds for the tree; a WordNet run restarts from scratch")
    ball = PoincareBall(cfg.c)
    dev = torch.device(cfg.device)
    cl = read_closure(cfg.closure_csv, dev) if cfg.closure_csv else tree_closure(cfg.branching, cfg.depth, dev)
    pairs = cl.pairs
    g = torch.Generator().manual_seed(cfg.seed * 7919 + 11)  # CPU: the same draws on every device
    emb = ((torch.rand(cl.n, cfg.dim, generator=g, dtype=torch.float64) * 2 - 1) * cfg.init_scale).to(dev)
    emb.requires_grad_()
    opt = make_optimizer(cfg, emb, ball)
    early = last = full_loss(ball, emb.detach(), cl)
    ctx.log(0, full_loss=early)
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(pairs), generator=g).to(dev)
        for k in range(0, len(order), cfg.batch_size):
            b = pairs[order[k:k + cfg.batch_size]]
            negs = cl.sample_negatives(b[:, 0], cfg.negatives, g)
            cand = torch.cat([b[:, 1:], negs], dim=1)  # (B, 1 + negatives): the positive first
            d = ball.dist(emb[b[:, 0]][:, None, :], emb[cand]).squeeze(-1)
            loss = torch.nn.functional.cross_entropy(-d, torch.zeros(len(b), dtype=torch.long, device=dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        last = full_loss(ball, emb.detach(), cl)
        ctx.log(epoch, full_loss=last, steps=step)
        if epoch == cfg.early_epochs:
            early = last
    emb = emb.detach()
    mean_rank, mean_ap = reconstruction(ball, emb, cl)
    return {"full_loss": last, "early_loss": early, "mean_rank": mean_rank,
            "map": mean_ap, "max_norm": float(emb.norm(dim=-1).max())}
