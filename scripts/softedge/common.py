"""Small helpers shared by the offline CLIs: paths, atomic writes, one-line CLI errors."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SOFTEDGE_CACHE", ROOT / ".cache"))


class CliError(Exception):
    """An error the user can fix; printed as one line, exit code 2."""


def run_cli(main):
    """Run main(), turning CliError (and common IO errors) into a one-line message and exit 2."""
    try:
        main()
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


@contextmanager
def atomic_path(dest: Path | str, suffix: str = ""):
    """Yield a temp path beside dest; rename it onto dest only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix + ".tmp", dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(dest: Path | str):
    """Yield a temp directory beside dest; it replaces dest only if the block succeeds."""
    import shutil

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path | str, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_figure(figsize=(7, 4)):
    """A matplotlib figure on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def save_figure(fig, path: Path | str) -> None:
    """Write a PNG atomically and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


class Progress:
    """A progress bar on a terminal; in a log file, plain lines instead of carriage-return redraws: each write(), and
    a status line (step, postfix) at most every `every_s` seconds."""

    def __init__(self, total: int, initial: int = 0, unit: str = "step", every_s: float = 60.0):
        import sys
        import time

        from tqdm import tqdm

        self._time = time.time
        self.tty = sys.stderr.isatty()
        self.bar = tqdm(
            total=total, initial=initial, unit=unit, dynamic_ncols=True, mininterval=2, disable=not self.tty
        )
        self.n, self.total, self.t0, self.last, self.every_s = initial, total, time.time(), time.time(), every_s

    def update(self, **postfix):
        self.n += 1
        self.bar.update(1)
        if postfix:
            self.bar.set_postfix(**postfix)
        if not self.tty and self._time() - self.last >= self.every_s:
            self.last = self._time()
            self.write(f"step {self.n}/{self.total} " + " ".join(f"{k} {v}" for k, v in postfix.items()))

    def write(self, msg: str):
        if self.tty:
            self.bar.write(msg)
        else:
            print(f"[{self._time() - self.t0:7.1f}s] {msg}", flush=True)

    def close(self):
        self.bar.close()
