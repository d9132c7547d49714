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
from pathlib import Path

import mixlaws as ml
from IPython.display import Image, display

ROOT = Path.cwd() if (Path.cwd() / "fixtures").exists() else Path.cwd().parent
runs = ml.read_runs(ROOT / "fixtures" / "sweep.csv")
print(len(runs.data), "checkpoint rows;", "sources:", runs.sources, "domains:", runs.domains)
runs.data.head()

# %% [markdown]
# ## Fit
# Step laws `L_d(D) = E_d + B_d D^-beta` per run (`tie_beta="all"`: one exponent for all runs —
# steadiest when runs are short), then at the target `N* = 1e9`, `D* = 2e10` the size law
# `L(N) = E + A N^-alpha` per mixture and the mixing law `L_d(r) = c_d + k_d exp(t_d . r)`.

# %%
model = ml.NestedMixingLaw(tie_beta="all").fit(runs)
at = model.target(params=1e9, tokens=2e10)
print(at.fit_report())

# %% [markdown]
# ## Figures
# The same figures as `mixlaws run`'s `report.html` (here without the optimum, computed below).

# %%
from mixlaws.report import build_report  # noqa: E402

report = build_report(model, at, runs=runs)
for fig in report.figures:
    print(fig.title)
    display(Image(fig.png))

# %% [markdown]
# ## Optimise and compare with the truth

# %%
baseline = {"web": 0.6, "code": 0.1, "books": 0.1, "papers": 0.1, "wiki": 0.1}
best = at.optimize(baseline=baseline, seed=0)
print({s: round(w, 3) for s, w in best.mixture.items()})
print(f"predicted loss {best.predicted_loss:.4f} vs baseline {at.predict(baseline):.4f} "
      f"(gain {best.gain:.4f})")
truth = json.loads((ROOT / "fixtures" / "sweep_truth.json").read_text())
gen = truth["generation"]["target"]
print("true optimum:", gen["optimum"], f"true optimum loss {gen['optimum_loss']:.4f}")
assert best.predicted_loss < at.predict(baseline)

# %% [markdown]
# ## Export
# `best.export(fmt)` (or `mixlaws export MIX.json --format megatron`, `hf`, `olmo-core`, ...)
# writes the mixture for a data loader; `best.save("MIX.json")` writes the artifact;
# `mixlaws run` does all of the above in one command.

# %%
print(best.export("megatron"))
