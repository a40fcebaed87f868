"""Helpers shared by the sub-commands: the one-line error and the progress bar."""

from __future__ import annotations

import sys

from ..progress import ProgressEvent


class CliError(Exception):
    """An error reported as one line, with exit status 2."""


def check_batch_size(value: int) -> int:
    """``--batch-size`` as given, or CliError: one line, exit 2, as every command's errors."""
    if value < 1:
        raise CliError(f"--batch-size must be at least 1, got {value}")
    return value


class ProgressBar:
    """A tqdm bar driven by ProgressEvents (quiet when stderr is no terminal
    unless forced)."""

    def __init__(self, desc: str, enabled: bool | None = None, one_pass: bool = False) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.desc = desc
        #: a one-pass family's fit (PatchCore): its one "epoch" is the fit's validation
        self.one_pass = one_pass
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None

    def __call__(self, ev: ProgressEvent) -> None:
        if ev.kind == "step":
            total = max(1, ev.epochs * ev.steps) if ev.epochs else ev.steps
            done = (ev.epoch - 1) * ev.steps + ev.step if ev.epochs else ev.step
            if self.bar is None:
                self.bar = self._tqdm(total=total, desc=self.desc, disable=not self.enabled, file=sys.stderr, leave=False)
            self.bar.total = total
            self.bar.n = done
            if ev.losses:
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in list(ev.losses.items())[:4]}, refresh=False)
            self.bar.refresh()
        elif ev.kind == "epoch":
            one_pass = self.one_pass
            parts = ["validation of the fitted model:" if one_pass else f"epoch {ev.epoch}/{ev.epochs}"]
            parts += [f"{k}={v:.4g}" for k, v in ev.losses.items() if k.endswith("loss")]
            parts += [f"{k}={v:.4f}" for k, v in ev.metrics.items()]
            if ev.eta_s is not None and not one_pass:
                parts.append(f"eta {ev.eta_s:.0f}s")
            self._write("  ".join(parts))
        elif ev.kind == "message" and ev.message:
            self._write(ev.message)

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
