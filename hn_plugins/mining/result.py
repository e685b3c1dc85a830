"""The output of mining: one record per (query, positive) with its negatives and their distances.

Records stream to JSON Lines with the schema of design.md::

    {"query_id", "positive_id", "negative_ids": [...], "d_q_pos": float, "d_q_neg": [...], "d_pos_neg": [...],
     "selector": str}

Distances are cosine distances in the space the selector used (``null`` where a selector has no such space,
e.g. ``random``), so anyone can audit a negative.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hn_plugins.data import DatasetError, RetrievalDataset, read_utf8_lines

logger = logging.getLogger(__name__)

__all__ = ["MiningResult", "TripletRecord"]


@dataclass
class TripletRecord:
    """Negatives mined for one (query, positive) pair; distances in the selector's space (``None`` if none)."""

    query_id: str
    positive_id: str
    negative_ids: list[str]
    d_q_pos: float | None
    d_q_neg: list[float | None]
    d_pos_neg: list[float | None]
    selector: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TripletRecord:
        return cls(
            query_id=str(record["query_id"]),
            positive_id=str(record["positive_id"]),
            negative_ids=[str(n) for n in record["negative_ids"]],
            d_q_pos=record.get("d_q_pos"),
            d_q_neg=list(record.get("d_q_neg") or [None] * len(record["negative_ids"])),
            d_pos_neg=list(record.get("d_pos_neg") or [None] * len(record["negative_ids"])),
            selector=str(record.get("selector", "")),
        )


def _quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{int(q * 100)}": float(np.quantile(arr, q)) for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)}


@dataclass
class MiningResult:
    """Mined negatives plus diagnostics.

    Args:
        records: one :class:`TripletRecord` per (query, positive) pair, including pairs left without a negative
            (empty ``negative_ids``).
        selector: the selector's name.
        diagnostics: counts gathered by the selector (criteria rejections, depth limits, ...).

    Example:
        >>> rec = TripletRecord("q1", "d1", ["d7"], 0.4, [0.3], [0.5], "paper")
        >>> result = MiningResult([rec], selector="paper")
        >>> result.summary()["selection_rate"]
        1.0
        >>> [t for t in result.iter_triplets()]
        [('q1', 'd1', 'd7')]
    """

    records: list[TripletRecord]
    selector: str
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def iter_triplets(self) -> Iterator[tuple[str, str, str]]:
        """(query_id, positive_id, negative_id) for every mined negative."""
        for rec in self.records:
            for neg in rec.negative_ids:
                yield rec.query_id, rec.positive_id, neg

    # ------------------------------------------------------------------ diagnostics
    def summary(self) -> dict[str, Any]:
        """Selection rate, negatives per pair, distance quantiles, queries without a negative, plus the selector's
        own counters."""
        pairs = len(self.records)
        with_neg = sum(1 for r in self.records if r.negative_ids)
        by_query: dict[str, int] = {}
        for r in self.records:
            by_query[r.query_id] = by_query.get(r.query_id, 0) + len(r.negative_ids)
        d_q_pos = [r.d_q_pos for r in self.records if r.d_q_pos is not None]
        d_q_neg = [d for r in self.records for d in r.d_q_neg if d is not None]
        d_pos_neg = [d for r in self.records for d in r.d_pos_neg if d is not None]
        return {
            "selector": self.selector,
            "pairs": pairs,
            "pairs_with_negative": with_neg,
            "selection_rate": with_neg / pairs if pairs else 0.0,
            "negatives": sum(len(r.negative_ids) for r in self.records),
            "queries": len(by_query),
            "queries_without_negative": sorted(q for q, n in by_query.items() if n == 0),
            "distance_quantiles": {
                "d_q_pos": _quantiles(d_q_pos),
                "d_q_neg": _quantiles(d_q_neg),
                "d_pos_neg": _quantiles(d_pos_neg),
            },
            **self.diagnostics,
        }

    def format_summary(self) -> str:
        """The summary as a plain-text table (what ``hn mine`` prints)."""
        s = self.summary()
        rows = [
            ("selector", s["selector"]),
            ("(query, positive) pairs", s["pairs"]),
            ("pairs with >= 1 negative", f"{s['pairs_with_negative']} ({100 * s['selection_rate']:.1f}%)"),
            ("negatives mined", s["negatives"]),
            ("queries without a negative", f"{len(s['queries_without_negative'])} of {s['queries']}"),
        ]
        for key in (
            "pairs_from_primary",
            "pairs_from_fallback",
            "pairs_without_hard_negative",
            "random_negatives_added",
            "paper.rejected_eq5",
            "paper.rejected_eq6",
            "candidates_examined",
            "rejected_eq5",
            "rejected_eq6",
            "rejected_margin",
            "excluded_positive",
            "depth_limited_pairs",
            "search_depth",
        ):
            if key in s:
                rows.append((key.replace("_", " "), s[key]))
        verifier = s.get("verifier")
        if isinstance(verifier, dict):
            rows.append(("verifier", f"{verifier.get('teacher')} (margin {verifier.get('margin')})"))
            for key in ("negatives_checked", "negatives_dropped", "pairs_emptied_by_verifier"):
                if key in s:
                    rows.append((key.replace("_", " "), s[key]))
        for name, q in s["distance_quantiles"].items():
            if q:
                rows.append((f"{name} p10/p50/p90", f"{q['p10']:.3f} / {q['p50']:.3f} / {q['p90']:.3f}"))
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)

    # ------------------------------------------------------------------ I/O
    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Stream the records to a JSON Lines file (written to a temporary name, then renamed)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for rec in self.records:
                handle.write(rec.to_json())
                handle.write("\n")
        os.replace(tmp, target)
        return target

    def save_diagnostics(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`summary` as JSON."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.summary(), indent=2, default=str), encoding="utf-8")
        return target

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> MiningResult:
        """Read a triplet file written by :meth:`to_jsonl` (or by ``hn mine``)."""
        source = Path(path)
        if not source.is_file():
            raise DatasetError(
                f"Triplet file {source} does not exist; create it with `hn mine ... --out FILE`."
            )
        records: list[TripletRecord] = []
        for line_no, line in read_utf8_lines(source):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                records.append(TripletRecord.from_dict(raw))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(
                    f"{source}:{line_no}: not a triplet record ({exc}); each line needs query_id, positive_id "
                    "and negative_ids."
                ) from exc
        if not records:
            raise DatasetError(f"Triplet file {source} is empty; mine first with `hn mine`.")
        selectors = {r.selector for r in records}
        return cls(records, selector=",".join(sorted(selectors)))

    def check_ids(self, dataset: RetrievalDataset) -> None:
        """Raise :class:`DatasetError` if a record names a query or document missing from ``dataset``."""
        for rec in self.records:
            if rec.query_id not in dataset.queries:
                raise DatasetError(
                    f"Triplets name query {rec.query_id!r}, which is not in dataset "
                    f"{dataset.name!r}; mine and train on the same data."
                )
            for doc_id in (rec.positive_id, *rec.negative_ids):
                if doc_id not in dataset.corpus:
                    raise DatasetError(
                        f"Triplets name document {doc_id!r}, which is not in the corpus of "
                        f"{dataset.name!r}; mine and train on the same data."
                    )

    # ------------------------------------------------------------------ sentence-transformers formats
    def to_rows(
        self,
        dataset: RetrievalDataset,
        output_format: Literal["triplet", "n-tuple", "labeled-pair"] = "triplet",
    ) -> list[dict[str, Any]]:
        """Texts in sentence-transformers' ``mine_hard_negatives`` output formats.

        - ``triplet``: ``{"anchor", "positive", "negative"}`` per negative;
        - ``n-tuple``: ``{"anchor", "positive", "negative_1", ..., "negative_n"}`` per pair with ``n`` negatives
          (pairs with fewer are skipped; ``n`` = the most common count);
        - ``labeled-pair``: ``{"anchor", "passage", "label"}`` with 1 for the positive and 0 for each negative.
        """
        self.check_ids(dataset)
        rows: list[dict[str, Any]] = []
        if output_format == "triplet":
            for q, p, n in self.iter_triplets():
                rows.append(
                    {
                        "anchor": dataset.queries[q],
                        "positive": dataset.document_text(p),
                        "negative": dataset.document_text(n),
                    }
                )
        elif output_format == "n-tuple":
            counts = [len(r.negative_ids) for r in self.records if r.negative_ids]
            if not counts:
                return rows
            n_negatives = max(set(counts), key=counts.count)
            for r in self.records:
                if len(r.negative_ids) < n_negatives:
                    continue
                row = {
                    "anchor": dataset.queries[r.query_id],
                    "positive": dataset.document_text(r.positive_id),
                }
                for i, neg in enumerate(r.negative_ids[:n_negatives], start=1):
                    row[f"negative_{i}"] = dataset.document_text(neg)
                rows.append(row)
        elif output_format == "labeled-pair":
            for r in self.records:
                if not r.negative_ids:
                    continue
                rows.append(
                    {
                        "anchor": dataset.queries[r.query_id],
                        "passage": dataset.document_text(r.positive_id),
                        "label": 1,
                    }
                )
                for neg in r.negative_ids:
                    rows.append(
                        {
                            "anchor": dataset.queries[r.query_id],
                            "passage": dataset.document_text(neg),
                            "label": 0,
                        }
                    )
        else:
            raise ValueError(
                f"output_format must be 'triplet', 'n-tuple' or 'labeled-pair', got {output_format!r}."
            )
        return rows

    def to_dataset(
        self,
        dataset: RetrievalDataset,
        output_format: Literal["triplet", "n-tuple", "labeled-pair"] = "triplet",
    ) -> Any:
        """A Hugging Face ``datasets.Dataset`` in the given format (needs the ``train`` extra)."""
        try:
            from datasets import Dataset
        except ImportError as exc:  # pragma: no cover
            raise ImportError(
                'to_dataset() needs the datasets package: pip install "hn-plugins[train]"'
            ) from exc
        return Dataset.from_list(self.to_rows(dataset, output_format))

    @staticmethod
    def concat(results: Iterable[MiningResult]) -> MiningResult:
        results = list(results)
        return MiningResult(
            [r for res in results for r in res.records],
            selector=",".join(dict.fromkeys(res.selector for res in results)),
        )
