"""`cvkd export`: a trained run as one ONNX model (all streams and the fusion), checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path



def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd export`."""
    parser = subparsers.add_parser(
        "export",
        help="export a trained run to ONNX (dynamic batch axis, class names and input settings as metadata)",
        description=(
            "Write the whole model (every stream and the late fusion) as ONNX: inputs named after the modalities, "
            "each (batch, segments, C, crop, crop); output the fused logits (batch, classes). With --check, "
            "onnxruntime and PyTorch score real samples and must agree within 1e-3."
        ),
    )
    parser.add_argument("run_path", metavar="RUN", help="run folder (its best checkpoint) or checkpoint file")
    parser.add_argument("--onnx", required=True, metavar="FILE", help="ONNX file to write")
    parser.add_argument("--segments", type=int, default=1, help="segments of the example and check inputs (default 1)")
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                        help="compare onnxruntime with PyTorch on real samples (default: on)")
    parser.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy",
                        help="torch.onnx exporter: legacy TorchScript (default, fast) or dynamo (torch.export)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Export, optionally check, and print what was written."""
    from cvkd.fileio import make_folder
    from cvkd.inference.onnx_export import export_run

    from cvkd.runs.checkpoint import resolve_checkpoint

    resolve_checkpoint(args.run_path)  # a bad run is said before any folder is made for its export
    make_folder(Path(args.onnx).parent)  # created like every other command's output folder; one line if it cannot be
    report = export_run(args.run_path, args.onnx, segments=args.segments, check=args.check, exporter=args.exporter)
    spec = report.spec
    print(
        f"exported {report.checkpoint} (epoch {report.epoch + 1}; {', '.join(spec.modalities)}; "
        f"{len(spec.class_names)} classes; crop {spec.crop_size}) -> {report.path} ({report.size_bytes / 1e6:.1f} MB)"
    )
    if report.check is not None:
        check = report.check
        print(
            f"check on {check.source}: max |logit difference| {check.max_abs_diff:.2e} "
            f"(batch sizes {', '.join(map(str, check.batch_sizes))}); median latency for a batch of {check.samples}: "
            f"onnxruntime {check.onnx_ms:.1f} ms, PyTorch {check.torch_ms:.1f} ms"
        )
    return 0
