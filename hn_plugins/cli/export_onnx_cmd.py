"""``hn export-onnx``: write an ONNX copy (fp32 and int8) of a cross-encoder folder for faster CPU reranking."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hn_plugins.cli.validation import bounded_int

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    from hn_plugins.rerankers.onnx_cross_encoder import export_onnx

    try:
        info = export_onnx(args.model, int8=not args.no_int8, opset=args.opset, attention=args.attention)
    except RuntimeError as exc:  # the fp32 copy did not match PyTorch; the earlier export was kept
        sys.stderr.write(f"hn export-onnx: error: {exc}\n")
        return 2
    folder = Path(info["folder"])
    lines = [f"ONNX export of {folder}:"]
    for precision, relative in info["files"].items():
        size = (folder / relative).stat().st_size / 2**20
        lines.append(f"  {precision:<5} {folder / relative}  ({size:.1f} MiB)")
    lines.append(f"  check on {info['check']['pairs']} pairs: {json.dumps(info['check'])}")
    best = "onnx-int8" if "int8" in info["files"] else "onnx"
    lines.append(
        f"use it: hn eval DATA --model {args.model} --backend {best}  (or backend={best!r} in Python)"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export a cross-encoder folder to ONNX (fp32 + int8) for faster CPU reranking",
        description="Writes <MODEL>/onnx/model.onnx, model_qint8.onnx and export.json (checked against PyTorch). "
        "Then load it with --backend onnx-int8 (hn eval), backend='onnx-int8' (load_reranker and the adapters).",
    )
    parser.add_argument(
        "model", type=Path, help="cross-encoder folder (hn train / hn bootstrap output, registry)"
    )
    parser.add_argument("--no-int8", action="store_true", help="write the fp32 copy only")
    parser.add_argument("--opset", type=bounded_int(7, 20), default=17, help="ONNX opset (default: 17)")
    parser.add_argument(
        "--attention",
        choices=["eager", "model"],
        default="eager",
        help="attention to export: eager (default; faster in onnxruntime) or the model's own",
    )
    parser.set_defaults(func=run)
