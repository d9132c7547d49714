"""Speed and mixing of the nested posterior on Ye et al. (2024) RedPajama runs.

1. Fit on the whole table (70M-410M) and time ``mixlaws.posterior.sample_posterior`` at the
   1B target (805.7M non-embedding params, 100k steps of 2^20 tokens); print the chain
   diagnostics it returns and the effective sample size of the target-scale prediction itself:
   the aggregate (Pile-weighted) loss of the default RedPajama mixture (the ``*-999`` runs),
   computed on the size-stage chain *in chain order* (Rao-Blackwellised: each (alpha, tau) state
   is mapped to the conditional-mean size-stage losses at N*, then through the linearised
   mixing law, J^+ d log Y), and its emcee integrated autocorrelation time; and on the mixing
   stage's chains (one emcee run, one block per domain, so the domains' chains share their
   step index): the aggregate over domains of each state's conditional-mean loss of that
   mixture. The prediction's ESS is the smaller of the two. The posterior draws themselves are
   resampled with replacement from the flattened chains, so their order carries no
   autocorrelation; their effective number for the mean is ~ 1 / (1/n_draws + 1/ESS).
2. ESS per second of the size-stage sampler: the JAX-jitted, walker-vectorised log-probability
   (as ``sample_size_stage`` builds it, emcee ``vectorize=True``) against a plain numpy
   implementation of the same log-probability evaluated walker by walker (emcee
   ``vectorize=False``), same data, same start, same seed, same number of steps.

Run:  python benchmarks/posterior_speed.py [--steps N] [--n-draws 2000]
"""

from __future__ import annotations

import argparse
import sys
import time

import emcee
import jax
import jax.numpy as jnp
import numpy as np

import mixlaws.posterior._nested as unc
from mixlaws.laws import sum_zero_basis
from mixlaws.posterior._mixing import _conditional as _mix_conditional
from mixlaws.posterior._mixing import _upstream_cov
from mixlaws.posterior import mixing_response
from mixlaws.fit import NestedMixingLaw
from mixlaws.laws import EXPONENT_MAX as _ALPHA_MAX
from mixlaws.laws import RUN_LOG_TAU as _LOG_TAU
from mixlaws.posterior import integrated_time, size_log_marginal
from _data import load_redpajama  # benchmarks/ is on sys.path

TARGET = (805.7e6, 100_000 * 2**20)


def size_log_marginal_np(theta, x_log, y, s2, w, block):
    """numpy twin of :func:`mixlaws.posterior.size_log_marginal` (one walker)."""
    la, lt = theta[:-1], theta[-1]
    alpha = np.exp(la)
    if not (np.all(alpha < _ALPHA_MAX) and _LOG_TAU[0] < lt < _LOG_TAU[1]):
        return -np.inf
    ab = alpha[block][:, None]
    x = np.expm1(-ab * x_log) / ab
    v = y * y * (s2 + np.exp(2 * lt))
    iv = w / v
    s0, s1, s2_ = iv.sum(1), (iv * x).sum(1), (iv * x * x).sum(1)
    b0, b1 = (iv * y).sum(1), (iv * x * y).sum(1)
    det = s0 * s2_ - s1 * s1
    e = (s2_ * b0 - s1 * b1) / det
    a = (s0 * b1 - s1 * b0) / det
    rss = (iv * y * y).sum(1) - (e * b0 + a * b1)
    with np.errstate(all="ignore"):
        lp = np.sum(-0.5 * (w * np.log(v)).sum(1) - 0.5 * np.log(det) - 0.5 * rss) + np.sum(la)
    return float(lp) if np.isfinite(lp) else -np.inf


def cond_mean_at_target(th, x_log, y, s2, w, block, x_target, chunk=1000):
    """Conditional-mean size-stage losses ``(K, G)`` at N* for chain states ``th (K, B+1)``."""
    out = np.empty((th.shape[0], y.shape[0]))
    for i in range(0, th.shape[0], chunk):
        t = th[i:i + chunk]
        ag = np.exp(t[:, :-1])[:, block][..., None]                    # (k, G, 1)
        tau2 = np.exp(2 * t[:, -1])[:, None, None]
        x = np.expm1(-ag * x_log[None]) / ag
        iv = w[None] / (y[None] ** 2 * (s2[None] + tau2))
        s0, s1, s2_ = iv.sum(2), (iv * x).sum(2), (iv * x * x).sum(2)
        b0, b1 = (iv * y).sum(2), (iv * x * y).sum(2)
        det = s0 * s2_ - s1 * s1
        e = (s2_ * b0 - s1 * b1) / det
        a = (s0 * b1 - s1 * b0) / det
        ag = ag[..., 0]
        out[i:i + chunk] = e + a * np.expm1(-ag * x_target) / ag
    return out


def run_fixed(log_prob, x0, steps, seed, vectorize):
    """emcee for a fixed number of steps; returns (seconds, chain, acceptance)."""
    nw, dim = x0.shape
    sampler = emcee.EnsembleSampler(nw, dim, log_prob, vectorize=vectorize)
    sampler.random_state = np.random.RandomState(seed).get_state()
    t0 = time.perf_counter()
    sampler.run_mcmc(x0, steps, progress=False)
    dt = time.perf_counter() - t0
    return dt, sampler.get_chain(), float(np.mean(sampler.acceptance_fraction))


def ess_of(chain):
    n, nw, _ = chain.shape
    burn = n // 5
    tau = integrated_time(chain[burn:])
    return nw * (n - burn) / float(np.max(tau)), tau


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-draws", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=0,
                    help="steps of the JAX-vs-numpy comparison (0: as many as the production chain)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    loaded = load_redpajama()
    if loaded is None:
        return 0
    runs, w = loaded

    t0 = time.perf_counter()
    model = NestedMixingLaw(val_weights=w).fit(runs)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    target = model.target(*TARGET)
    t_target = time.perf_counter() - t0

    # record what sample_posterior hands to (and gets from) the size-stage sampler
    rec: dict = {}
    orig = unc.sample_size_stage

    def recording(*a, **kw):
        rec["args"] = a
        rec["kw"] = kw
        out = orig(*a, **kw)
        rec["chain"] = out[2]
        return out

    orig_mix = unc.sample_mixing_stage

    def recording_mix(*a, **kw):
        out = orig_mix(*a, **kw)
        rec["mix_args"], rec["mix"] = a, out
        return out

    unc.sample_size_stage = recording
    unc.sample_mixing_stage = recording_mix
    try:
        t0 = time.perf_counter()
        draws = unc.sample_posterior(model, runs, *TARGET, n_draws=args.n_draws, seed=args.seed)
        t_post = time.perf_counter() - t0
    finally:
        unc.sample_size_stage = orig
        unc.sample_mixing_stage = orig_mix
    print(f"[posterior, 1B / 100k steps] fit {t_fit:.1f} s, point target fit {t_target:.1f} s, "
          f"sample_posterior {t_post:.1f} s ({args.n_draws} draws, "
          f"{len(target.mixture_labels)} mixtures x {len(model.domains_)} domains; "
          f"issue target < 60 s on 2 cores): {'OK' if t_post < 60 else 'TOO SLOW'}")
    for d in draws.diagnostics:
        print(f"  chain '{d['name']}': {d['n_walkers']} walkers x {d['n_steps']} steps "
              f"(burn {d['burn']}), tau = {[round(x, 1) for x in d['tau']]}, "
              f"steps/tau = {d['steps_per_tau']:.1f}, ESS = {d['ess']:.0f}, "
              f"acceptance = {d['acceptance']:.3f}, converged = {d['converged']}")

    # ESS of the target-scale prediction (default mixture, aggregate loss), chain order
    x_log, y, s2, wm, block, a_hat, x_target = rec["args"][:7]
    chain = rec["chain"].samples                                        # (n, nw, dim)
    n, nw, dim = chain.shape
    labels = list(target.mixture_labels)
    idx = next((i for i, lab in enumerate(labels) if lab.endswith("-999")), None)
    if idx is None:
        idx, name = 0, labels[0]
    else:
        name = f"{labels[idx]} (RedPajama default)"
    r_def = target.mixtures[idx]
    nd = len(model.domains_)
    Ym = cond_mean_at_target(chain.reshape(-1, dim), x_log, y, s2, wm, block, x_target)
    Ym = Ym.reshape(n * nw, len(labels), nd)
    H = sum_zero_basis(len(model.sources_))
    RH = target.mixtures @ H
    th = unc._theta_hat(target, H)
    resp = mixing_response(RH, th)                                      # (nd, P, n_mix)
    dlog = np.log(np.maximum(Ym, 1e-12)) - np.log(target.stage_losses)[None]
    theta = th[None] + np.einsum("dpn,snd->sdp", resp, dlog)            # (K, nd, P)
    dom = theta[..., 0] + np.exp(theta[..., 1] + theta[..., 2:] @ (H.T @ r_def))
    pred = (dom @ draws.weights).reshape(n, nw)
    tau_pred = float(emcee.autocorr.integrated_time(pred[..., None], c=5, tol=0, quiet=True)[0])
    ess_pred = n * nw / tau_pred
    d_loss = np.asarray(draws.loss_draws(r_def[None]))[:, 0]
    print(f"  prediction of {name}, aggregate Pile loss at 1B: draws mean {d_loss.mean():.4f}, "
          f"sd {d_loss.std():.4f} (point fit {float(target.loss(jnp.asarray(r_def))):.4f})")
    print(f"  that prediction along the size chain (kept {n} steps x {nw} walkers, "
          f"Rao-Blackwellised + linearised mixing): tau = {tau_pred:.1f} steps, "
          f"steps/tau = {n / tau_pred:.1f}, ESS = {ess_pred:.0f}")
    # ... and along the mixing chains (conditional mean of (c, k) given each (u, sigma) state)
    RHm, ym, dlm = rec["mix_args"][:3]
    Qm, lam = _upstream_cov(dlm)
    mix_chains = rec["mix"].chains
    km = min(c.samples.shape[0] for c in mix_chains)
    agg = 0.0
    for d, c in enumerate(mix_chains):
        smp = c.samples[-km:]                                           # (km, nw_m, dim_m)
        flat = smp.reshape(-1, smp.shape[-1])
        mean, _ = _mix_conditional(jnp.asarray(flat), jnp.asarray(RHm), jnp.asarray(ym[:, d]),
                                   jnp.asarray(Qm[d]), jnp.asarray(lam[d]))
        mean = np.asarray(mean)
        Ld = mean[:, 0] + mean[:, 1] * np.exp(flat[:, :-1] @ (H.T @ r_def))
        agg = agg + draws.weights[d] * Ld.reshape(smp.shape[:2])
    tau_mix = float(emcee.autocorr.integrated_time(agg[..., None], c=5, tol=0, quiet=True)[0])
    ess_mix = agg.size / tau_mix
    ess_target = min(ess_pred, ess_mix)
    print(f"  that prediction along the mixing chains (kept {km} steps x {agg.shape[1]} walkers, "
          f"domains aggregated state by state): tau = {tau_mix:.1f} steps, ESS = {ess_mix:.0f}")
    print(f"  ESS of the target-scale prediction = min = {ess_target:.0f} (issue target ≥ 1000: "
          f"{'OK' if ess_target >= 1000 else 'LOW'}); the {args.n_draws} draws are resampled iid "
          f"from the chains: effective ~ {1 / (1 / args.n_draws + 1 / ess_target):.0f}")

    # ESS/s: JAX-jitted vectorised log-prob vs numpy walker by walker, same steps
    steps = args.steps or int(rec["chain"].diagnostics.n_steps)
    jargs = tuple(jnp.asarray(a) for a in (x_log, y, s2, wm)) + (jnp.asarray(block),)
    lp_j = jax.jit(jax.vmap(lambda t: size_log_marginal(t, *jargs, profile=False)))  # the twin's form
    f_j = lambda X: np.asarray(lp_j(jnp.asarray(X)))  # noqa: E731
    f_n = lambda t: size_log_marginal_np(np.asarray(t), x_log, y, s2, wm, block)  # noqa: E731
    rng = np.random.default_rng([args.seed, 11])
    center = np.concatenate([np.log(np.clip(a_hat, 1e-3, 1.9)), [np.log(1e-3)]])
    x0 = center + 0.05 * rng.standard_normal((nw, center.size))
    t0 = time.perf_counter()
    lp0 = f_j(x0)
    t_jit = time.perf_counter() - t0
    lp0n = np.array([f_n(x) for x in x0])
    ok = np.isfinite(lp0) & np.isfinite(lp0n)
    x0[~ok] = center
    print(f"\n[size-stage log-prob, {nw} walkers x {steps} steps, dim {dim}, G = {y.shape[0]} "
          f"groups] max |lp_jax - lp_numpy| at start = {np.max(np.abs(lp0[ok] - lp0n[ok])):.2e}; "
          f"jit compile {t_jit:.2f} s (excluded below)")
    res = {}
    for label, f, vec in (("jax vectorised", f_j, True), ("numpy per walker", f_n, False)):
        dt, ch, acc = run_fixed(f, x0, steps, args.seed, vec)
        ess, tau = ess_of(ch)
        res[label] = (dt, ess)
        print(f"  {label:17s}: {dt:7.2f} s, tau = {[round(float(x), 1) for x in tau]}, "
              f"ESS = {ess:.0f}, acceptance = {acc:.3f}, ESS/s = {ess / dt:.1f}")
    (dj, ej), (dn, en) = res["jax vectorised"], res["numpy per walker"]
    print(f"  ESS/s ratio jax/numpy = {(ej / dj) / (en / dn):.1f}x "
          f"(wall-time ratio {dn / dj:.1f}x; incl. jit compile {(ej / (dj + t_jit)) / (en / dn):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
