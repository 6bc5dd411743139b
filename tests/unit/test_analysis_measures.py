"""Known answers for CKA, Procrustes, Gromov-Wasserstein and DSA (chunkscope.analysis)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chunkscope.analysis import compare, dsa, geometry, gw
from chunkscope.analysis.states import States

SERVICE = Path(__file__).resolve().parents[2] / "service"


def _orthogonal(n: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q * np.sign(np.diag(r))


@pytest.fixture(scope="module")
def rep() -> np.ndarray:
    """A non-isotropic representation: 120 samples of 8 units."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(120, 8)) @ np.diag([3, 2, 2, 1.5, 1, 0.7, 0.5, 0.2])


@pytest.fixture(scope="module")
def transformed(rep: np.ndarray) -> np.ndarray:
    """rep rotated, scaled by 4.5 and translated."""
    return 4.5 * rep @ _orthogonal(8, 1) + np.arange(8.0)


def test_cka_of_a_rotated_scaled_translated_copy_is_one(rep, transformed) -> None:
    assert geometry.linear_cka(rep, transformed) == pytest.approx(1.0, abs=1e-10)


def test_cka_of_independent_noise_is_near_zero() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4000, 10)), rng.normal(size=(4000, 10))
    assert geometry.linear_cka(x, y) < 0.02
    # and a partly shared signal lies in between
    z = x + rng.normal(size=x.shape)
    assert 0.3 < geometry.linear_cka(x, z) < 0.7


def test_cka_uses_the_gram_form_when_wider_than_long() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 50))
    y = x @ _orthogonal(50, 2) * 2.0
    assert geometry.linear_cka(x, y) == pytest.approx(1.0, abs=1e-10)
    assert geometry.linear_cka(x, rng.normal(size=(20, 50))) < 0.9


def test_procrustes_of_a_rotated_scaled_translated_copy_is_zero(rep, transformed) -> None:
    r = geometry.procrustes(rep, transformed)
    assert r.distance == pytest.approx(0.0, abs=1e-6)
    assert r.angle == pytest.approx(0.0, abs=1e-6)


def test_procrustes_matches_its_closed_form_and_zero_pads(rep) -> None:
    rng = np.random.default_rng(5)
    other = rng.normal(size=(120, 5))
    r = geometry.procrustes(rep, other)
    # brute force: best orthogonal map from centred unit-norm `other` (padded to 8) onto rep
    x = rep - rep.mean(0)
    y = np.hstack([other - other.mean(0), np.zeros((120, 3))])
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    u, _, vt = np.linalg.svd(y.T @ x)
    assert r.distance == pytest.approx(np.linalg.norm(x - y @ (u @ vt)), abs=1e-10)
    assert 0 < r.normalized_angle < 1
    assert r.distance == pytest.approx(math.sqrt(2 - 2 * math.cos(r.angle)), abs=1e-12)


def test_paired_measures_refuse_unpaired_sets(rep) -> None:
    with pytest.raises(ValueError, match="same number of samples"):
        geometry.linear_cka(rep, rep[:50])


def test_gw_of_a_rotated_scaled_translated_copy_is_zero(rep, transformed) -> None:
    for init in ("product", "identity"):
        r = gw.gromov_wasserstein(rep, transformed, gw.GWParams(init=init))
        assert r.value == pytest.approx(0.0, abs=1e-8), init


def test_gw_of_a_permuted_copy_is_zero_from_the_product_start(rep) -> None:
    rng = np.random.default_rng(6)
    rows, cols = rng.permutation(rep.shape[0]), rng.permutation(rep.shape[1])
    r = gw.gromov_wasserstein(rep, rep[rows][:, cols], gw.GWParams(init="product"))
    assert r.value == pytest.approx(0.0, abs=1e-8)
    assert r.init_used == "product"


def test_gw_grows_with_distortion(rep) -> None:
    rng = np.random.default_rng(7)
    small = gw.gromov_wasserstein(rep, rep + 0.1 * rng.normal(size=rep.shape), gw.GWParams())
    large = gw.gromov_wasserstein(rep, np.tanh(rep) ** 3, gw.GWParams())
    assert 0 < small.value < large.value
    assert large.metric_distance == pytest.approx(0.5 * math.sqrt(large.value))


def test_gw_compares_sets_of_different_sizes_and_widths(rep) -> None:
    r = gw.gromov_wasserstein(rep[:60], rep[:90, :5], gw.GWParams())
    assert r.init_used == "product" and r.value > 0


def _linear_system(eigs, n=6, trials=20, steps=50, seed=0, noise=0.01) -> np.ndarray:
    """Trajectories of x_{t+1} = M x_t + noise, M with the given (modulus, angle) pairs."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n, n))
    for i, (r, th) in enumerate(eigs):
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = r * np.array(
            [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
        )
    q = _orthogonal(n, seed + 100)
    m = q @ m @ q.T
    x = np.zeros((trials, steps, n))
    x[:, 0] = rng.normal(size=(trials, n))
    for t in range(1, steps):
        x[:, t] = x[:, t - 1] @ m.T + noise * rng.normal(size=(trials, n))
    return x


EIGS = [(0.95, 0.3), (0.9, 0.7), (0.8, 1.2)]
OTHER = [(0.7, 0.1), (0.99, 1.5), (0.5, 0.5)]


@pytest.fixture(scope="module")
def systems() -> dict[str, States]:
    x = _linear_system(EIGS)
    return {
        "x": States.from_array(x),
        "rotated": States.from_array(3.0 * x @ _orthogonal(6, 9).T),
        "other": States.from_array(_linear_system(OTHER, seed=1)),
    }


def test_dsa_of_a_rotated_system_is_near_zero_and_of_another_clearly_larger(systems) -> None:
    params = compare.Params(dsa=dsa.DSAParams(rank=6, iters=200))
    same = compare.compare("dsa", systems["x"], systems["rotated"], params)
    other = compare.compare("dsa", systems["x"], systems["other"], params)
    assert same.value < 1e-3
    assert other.value > 0.2 > 100 * same.value
    spec_same = compare.compare("dsa_eigenvalues", systems["x"], systems["rotated"], params)
    spec_other = compare.compare("dsa_eigenvalues", systems["x"], systems["other"], params)
    assert spec_same.value < 1e-6
    assert spec_other.value > 0.1
    assert len(same.eigenvalues) == 12  # 6 of a, then 6 of b


def test_dsa_recovers_the_true_eigenvalues(systems) -> None:
    op = dsa.fit_operator(systems["x"], dsa.DSAParams(), 6)
    got = np.sort_complex(np.round(op.eigenvalues, 6))
    want = np.sort_complex(
        np.array([r * np.exp(s * 1j * th) for r, th in EIGS for s in (1, -1)]).round(6)
    )
    assert np.allclose(got, want, atol=0.02)


def test_procrustes_over_vector_fields_finds_an_orthogonal_conjugation() -> None:
    rng = np.random.default_rng(11)
    a = rng.normal(size=(5, 5))
    for seed in (0, 1):
        q = _orthogonal(5, 20 + seed)
        r = dsa.procrustes_vector_fields(a, q @ a @ q.T, dsa.DSAParams(seed=seed))
        assert r.angle < 0.02, r
    unrelated = dsa.procrustes_vector_fields(a, rng.normal(size=(5, 5)), dsa.DSAParams())
    assert unrelated.angle > 0.3


def test_dsa_subsamples_whole_trajectories_with_its_seed(systems) -> None:
    small, cut = dsa.subsample_trajectories(systems["x"], 200, seed=3)
    again, _ = dsa.subsample_trajectories(systems["x"], 200, seed=3)
    assert cut and small.n_samples == 200 and len(small.trajectories) == 4
    assert all(
        np.array_equal(p, q) for p, q in zip(small.trajectories, again.trajectories, strict=True)
    )
    params = compare.Params(dsa=dsa.DSAParams(rank=6, max_samples=200, iters=50))
    out = compare.compare("dsa", systems["x"], systems["rotated"], params)
    assert out.subsampled and out.samples_used == 200 and out.samples_total == 1000


def test_delay_embedding_layout() -> None:
    x = np.arange(10.0).reshape(5, 2)
    h = dsa.hankel(x, 3, 1)
    assert h.shape == (3, 6)
    assert h[0].tolist() == [4, 5, 2, 3, 0, 1]  # most recent block first


def test_dsa_refuses_trajectories_too_short_for_the_embedding() -> None:
    s = States.from_array(np.random.default_rng(0).normal(size=(4, 3, 2)))
    with pytest.raises(ValueError, match="long enough"):
        dsa.fit_operator(s, dsa.DSAParams(n_delays=5), 2)


_SELF_DISTANCES = """
import numpy as np
from chunkscope.analysis import dsa
rng = np.random.default_rng(0)
mats = [rng.normal(size=(n, n)) * scale for n in (2, 4, 6) for scale in (1e-3, 1, 1e3)]
print(max(dsa.eigenvalue_wasserstein(a, a) for a in mats))
"""


@pytest.mark.parametrize("coretype", ["", "Haswell"])
def test_eigenvalue_distance_of_a_system_with_itself_is_exactly_zero(coretype: str) -> None:
    """Every eigenvalue meets itself at cost 0, so the optimal transport costs exactly 0. The
    |a|²+|b|²−2ab form of the cost left ~1e-17 there with OpenBLAS's FMA (Haswell) kernels,
    which the square root turned into ~1e-8; run where those kernels are chosen too."""
    if coretype and "avx2" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this CPU cannot run OpenBLAS's Haswell kernels")
    env = dict(os.environ, OPENBLAS_CORETYPE=coretype)
    env["PYTHONPATH"] = os.pathsep.join([str(SERVICE), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", _SELF_DISTANCES], env=env, capture_output=True, text=True,
        check=True, timeout=120,
    ).stdout  # fmt: skip
    assert float(out) == 0.0
    rng = np.random.default_rng(1)
    assert dsa.eigenvalue_wasserstein(rng.normal(size=(4, 4)), rng.normal(size=(4, 4))) > 0.1
