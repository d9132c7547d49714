"""How the CLI writes files: atomically, and never onto one of the command's inputs.

Every writer of the CLI goes through :func:`write_text`: the text goes to a temporary
file in the destination's directory, which then replaces the destination with
:func:`os.replace` (so a reader never sees half a file, and an interrupted command
leaves the old file intact).  A destination that is one of the command's input
files (same resolved path, or :func:`os.path.samefile` for links) is refused with
a :class:`~mixlaws.errors.MixlawsError` before anything is computed.

:class:`Staging` is how ``mixlaws run`` writes its output directory: everything
goes to a hidden staging directory beside it and is moved into place only when
the whole run succeeded; files that a previous run listed in its ``summary.json``
and this run did not write are removed, so no stale output sits beside new ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from typing import Iterable

from ..errors import MixlawsError

__all__ = ["INPUT_ARGS", "input_paths", "check_outputs", "write_text", "Staging"]

INPUT_ARGS = ("runs", "fit", "mixture_file", "mixtures", "mixture", "constraints", "paths",
              "doc_lengths", "val_weights", "draws_file", "files")
"""Attributes of a parsed command line that may name input files."""


def input_paths(args: argparse.Namespace) -> list[str]:
    """The existing files among the arguments in :data:`INPUT_ARGS` (lists flattened)."""
    out = []
    for name in INPUT_ARGS:
        value = getattr(args, name, None)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, str) and v and os.path.isfile(v):
                out.append(v)
    return out


def _same(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet
        return False


def check_outputs(outputs: Iterable[str | None], inputs: Iterable[str], flag: str = "-o") -> None:
    """Raise when an output path is one of the inputs (resolved paths or the same file)."""
    inputs = list(inputs)
    for out in outputs:
        if not out:
            continue
        hit = next((i for i in inputs if _same(out, i)), None)
        if hit is not None:
            raise MixlawsError(f"{flag} {out} is an input of this command ({hit}); mixlaws never "
                               "writes over its inputs: choose another output file", path=out)


def write_text(path: str, text: str | bytes, inputs: Iterable[str] = ()) -> None:
    """Write ``text`` (or bytes) to ``path`` atomically (temp file in the same directory +
    os.replace), refusing a ``path`` that is one of ``inputs``."""
    check_outputs([path], inputs)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        if os.path.exists(path):
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Staging:
    """A staging directory for an output directory: ``with Staging(outdir, inputs) as stage``.

    Write into ``stage.path(name)``; :meth:`publish` moves the listed files into
    ``outdir`` (creating it) and removes files of the previous run (those listed in
    ``outdir/summary.json``) that this run did not write.  Leaving the block without
    :meth:`publish` (an error, Ctrl-C) removes the staging directory and leaves
    ``outdir`` as it was.
    """

    def __init__(self, outdir: str, inputs: Iterable[str] = ()) -> None:
        self.outdir = outdir
        self.inputs = list(inputs)
        if os.path.exists(outdir) and not os.path.isdir(outdir):
            raise MixlawsError(f"-o {outdir} exists and is not a directory; give a directory "
                               "for the outputs of `mixlaws run`", path=outdir)
        self.dir = ""

    def __enter__(self) -> "Staging":
        parent = os.path.dirname(os.path.abspath(self.outdir))
        os.makedirs(parent, exist_ok=True)
        self.dir = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(self.outdir)}.staging-")
        return self

    def path(self, name: str) -> str:
        """Where to write output ``name`` (relative to the output directory)."""
        return os.path.join(self.dir, name)

    def publish(self, files: Iterable[str]) -> None:
        """Move ``files`` (relative names) into the output directory; drop the previous run's rest."""
        files = list(files)
        targets = [os.path.join(self.outdir, f) for f in files]
        check_outputs(targets, self.inputs)
        previous = _previous_files(self.outdir)
        os.makedirs(self.outdir, exist_ok=True)
        for name, target in zip(files, targets):
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            os.replace(self.path(name), target)
        for name in sorted(set(previous) - set(files)):
            stale = os.path.join(self.outdir, name)
            if os.path.isfile(stale) and not any(_same(stale, i) for i in self.inputs):
                os.unlink(stale)

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _previous_files(outdir: str) -> list[str]:
    """Relative names a previous ``mixlaws run`` listed in ``outdir/summary.json`` (safe ones)."""
    try:
        with open(os.path.join(outdir, "summary.json"), encoding="utf-8") as f:
            files = json.load(f).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    safe = []
    for name in files if isinstance(files, list) else []:
        if isinstance(name, str) and not os.path.isabs(name) and ".." not in name.split(os.sep):
            safe.append(name)
    return safe + ["summary.json"]
