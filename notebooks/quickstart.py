# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # mixlaws quickstart
#
# Walk the bundled simulated sweep (`fixtures/sweep.csv`: 16 mixtures of 5 sources × 4 model
# sizes × 10 checkpoints) through the pipeline: read → fit the step laws → fit the size and
# mixing laws at a target scale → look at the fits → optimise the mixture → export it.
# The true law behind the fixture is in `fixtures/sweep_truth.json`, so we can check the answer.

# %%
import json
import warnings
from pathlib import Path

import numpy as np
from IPython.display import Image, display

from mixlaws.report import _plots as plots
from mixlaws.report import fit_report
from mixlaws.fit import NestedMixingLaw
from mixlaws.optimize import optimize_mixture
from mixlaws.report import build_report
from mixlaws.runs import read_runs

warnings.simplefilter("ignore")
ROOT = Path.cwd() if (Path.cwd() / "fixtures").exists() else Path.cwd().parent
runs = read_runs(ROOT / "fixtures" / "sweep.csv")
print(len(runs.data), "checkpoint rows;", "sources:", runs.sources, "domains:", runs.domains)
runs.data.head()

# %% [markdown]
# ## Fit
# Step laws `L_d(D) = E_d + B_d D^-beta` per run (`tie_beta="all"`: one exponent for all runs —
# steadiest when runs are short), then at the target `N* = 1e9`, `D* = 2e10` the size law
# `L(N) = E + A N^-alpha` per mixture and the mixing law `L_d(r) = c_d + k_d exp(t_d . r)`.

# %%
model = NestedMixingLaw(tie_beta="all").fit(runs)
target = model.target(1e9, 2e10)
print(fit_report(model, target))

# %% [markdown]
# ## Figures
# The same figures as `mixlaws run`'s `report.html` (here without the optimum, computed below).

# %%
report = build_report(model, target, runs=runs)
for fig in report.figures:
    print(fig.title)
    display(Image(fig.png))

# %% [markdown]
# ## Optimise and compare with the truth

# %%
baseline = np.array([0.6, 0.1, 0.1, 0.1, 0.1])
result = optimize_mixture(target.loss, model.sources_, baseline=baseline, total_tokens=2e10,
                          domain_losses=target.domain_losses, domains=model.domains_, seed=0)
print({s: round(float(w), 3) for s, w in zip(model.sources_, result.mixture)})
print(f"predicted loss {result.loss:.4f} vs baseline {result.baseline_loss:.4f} "
      f"(gain {result.gain:.4f})")
truth = json.loads((ROOT / "fixtures" / "sweep_truth.json").read_text())
gen = truth["generation"]["target"]
print("true optimum:", gen["optimum"], f"true optimum loss {gen['optimum_loss']:.4f}")
assert result.loss < result.baseline_loss

# %%
display(Image(plots.to_png(plots.mixture_bars(
    model.sources_, result.mixture, baseline,
    {"optimum": (result.loss, None, None), "baseline": (result.baseline_loss, None, None)}))))

# %% [markdown]
# ## Export
# `mixlaws export MIX.json --format megatron` (or `hf`, `olmo-core`, ...) writes the mixture
# for a data loader; `mixlaws run` does all of the above in one command.

# %%
from mixlaws.export._writers import export  # noqa: E402
from mixlaws.export._manifest import manifest_from_dict  # noqa: E402

doc = {"kind": "mixlaws.mixture", "mixlaws_version": "notebook",
       "target": {"params": 1e9, "tokens": 2e10, "progress": "tokens"}}
doc.update(result.to_dict())
print(export(manifest_from_dict(doc), "megatron"))
