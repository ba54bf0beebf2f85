"""Report a training script's metrics to slaw. No dependencies: copy this file next to yours.

    from slaw_report import report

    report(params=n_params, flops_per_example=6 * n_params)  # once, optional
    report(step=step, examples=seen, train_loss=loss, lr=lr)
    report(step=step, val_loss=val_loss, val_accuracy=acc, grad_norm=g)

Each call writes one JSON object as one line to the file named by $SLAW_METRICS, which slaw sets
for every trial, or to stdout when the script runs on its own; so the script may print anything
else it likes. Known names: step, examples, train_loss, val_loss, val_accuracy, lr, and the
declarations params, params_non_embedding and flops_per_example; any other name is stored too.
Values may be Python numbers or numpy/torch scalars (anything with .item()); NaN and infinities
are written as Python's json writes them, and slaw reads a non-finite loss as divergence.
"""

import json
import os
import sys

__all__ = ["report"]

_out = None


def _stream():
    global _out
    if _out is None:
        path = os.environ.get("SLAW_METRICS")
        # Line-buffered append: every line reaches slaw at once, whole, even from forked workers.
        _out = open(path, "a", buffering=1, encoding="utf-8") if path else sys.stdout
    return _out


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy and torch scalars
        try:
            return value.item()
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def report(**metrics):
    """Writes `metrics` as one line of slaw's protocol and flushes it."""
    line = json.dumps({name: _plain(v) for name, v in metrics.items()})
    out = _stream()
    out.write(line + "\n")
    out.flush()
