"""JAX's persistent compilation cache as the ``mixlaws`` command sets it up (fresh processes:
the cache directory is fixed at a process's first compilation)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import jax, jax.numpy as jnp
from mixlaws._config import use_compile_cache
print(use_compile_cache())
jax.jit(lambda x: jnp.sin(x) * 2.0)(jnp.arange(3.0)).block_until_ready()
"""


def _probe(tmp_path, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    e.pop("MIXLAWS_COMPILE_CACHE", None)
    e.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), **env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=e, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("setting", [None, "custom", "off", "on"])
def test_cache_directory_default_override_and_off(tmp_path, setting, monkeypatch):
    monkeypatch.chdir(tmp_path)          # "on" must not become a directory ./on
    env = {} if setting is None else {"MIXLAWS_COMPILE_CACHE": str(tmp_path / "c")
                                      if setting == "custom" else setting}
    printed = _probe(tmp_path, **env)
    default = tmp_path / "xdg" / "mixlaws" / "jax"
    where = {None: default, "on": default, "custom": tmp_path / "c"}.get(setting)
    assert not (tmp_path / "on").exists()
    if where is None:
        assert printed == "None" and not (tmp_path / "xdg").exists()
    else:
        assert printed == str(where) and any(where.iterdir())   # the program was written
