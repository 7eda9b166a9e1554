"""The BLAS thread policy: the rule, its overrides, that fit and predict apply it (seen from inside
a layer) and restore it, and that it leaves backends off the host alone."""

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


class Spy(ab.LayerBase):
    """The identity, recording how many BLAS threads are in force when it runs."""

    kind = "spy"

    def __init__(self, n):
        self.n_in = self.n_out = n
        self.seen = []

    def forward(self, ctx, params, state, x):
        self.seen.append(threads.blas_threads())
        return x, ()

    def backward(self, ctx, params, cache, dy, need_dx):
        return {}, dy


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(threads._launch, "cores", lambda: 2)
    for variable in (
        threads.ENV,
        *threads._launch.BLAS_THREAD_VARIABLES,
        "PMI_SIZE",
        "PMI_RANK",
        "MPI_LOCALNRANKS",
        "OMPI_COMM_WORLD_SIZE",
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize(
    "product,env,expected",
    [
        (64 * 64 * 128, {}, 1),
        (threads.SMALL_PRODUCT - 1, {}, 1),
        (threads.SMALL_PRODUCT, {}, 2),
        (512 * 784 * 1024, {}, 2),
        (
            512 * 784 * 1024,
            {"PMI_SIZE": "2", "PMI_RANK": "0", "MPI_LOCALNRANKS": "2"},
            1,
        ),  # two processes share the cores
        (512 * 784 * 1024, {"OPENBLAS_NUM_THREADS": "1"}, 1),  # the user's cap
    ],
)
def test_the_rule(two_cores, monkeypatch, product, env, expected):
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    assert threads.choose(product)[0] == expected


def test_overrides_and_their_errors(two_cores, monkeypatch):
    assert threads.choose(10**9, num_threads=1) == (1, "num_threads")
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.choose(10, None) == (3, threads.ENV)
    assert threads.choose(10, num_threads=2)[0] == 2  # the argument wins over the environment
    monkeypatch.setenv(threads.ENV, "many")
    with pytest.raises(
        ValueError, match=r"ANYBACKPROP_NUM_THREADS='many' is not a thread count; expected a positive integer"
    ):
        threads.choose(10)
    with pytest.raises(ValueError, match=r"num_threads must be a positive integer, got 0"):
        threads.choose(10, num_threads=0)


def test_largest_product_counts_dense_layers():
    model = ab.MLP([64, 128, 64, 10], norm="batch")
    assert threads.largest_product(model.layers, 64) == 64 * 64 * 128


def blas_available():
    return threads.blas_threads() is not None


@pytest.mark.skipif(not blas_available(), reason="threadpoolctl sees no BLAS library in this NumPy")
@pytest.mark.parametrize("width,expected", [(128, 1), (1024, 2)])  # 40 x 128 x 128: over tiny_product()
def test_fit_and_predict_apply_the_policy_and_restore_it(two_cores, width, expected, rng):
    before = threads.blas_threads()
    spy = Spy(width)
    model = ab.Sequential([ab.Dense(width, width, "relu"), spy, ab.Dense(width, 3)], backend="numpy")
    X, y = rng.standard_normal((40, width)), rng.integers(0, 3, 40)
    model.fit(X, y, epochs=1, batch_size=40, verbose=False)
    assert spy.seen and set(spy.seen) == {expected}
    assert threads.blas_threads() == before
    spy.seen.clear()
    model.fit(X, y, epochs=1, batch_size=40, num_threads=1, verbose=False)
    assert set(spy.seen) == {1}
    spy.seen.clear()
    model.predict(X)  # 40 x width x width multiply-adds
    assert set(spy.seen) == {1 if 40 * width * width < threads.SMALL_PRODUCT else 2}
    assert threads.blas_threads() == before


@pytest.mark.skipif(not blas_available(), reason="threadpoolctl sees no BLAS library in this NumPy")
def test_a_tiny_product_leaves_the_pools_alone(two_cores, rng):
    spy = Spy(16)
    model = ab.Sequential([ab.Dense(16, 16, "relu"), spy, ab.Dense(16, 3)], backend="numpy")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        model.predict(rng.standard_normal((1, 16)))  # 256 multiply-adds: BLAS keeps it on one thread itself
        assert spy.seen == [2]
        model.predict(rng.standard_normal((1100, 16)))  # 281,600, over tiny_product() on any BLAS: the policy applies
        assert spy.seen == [2, 1]


def test_backends_off_the_host_are_left_alone(rng):
    with ab.use_backend("array_api_strict") as backend:
        with threads.limited(backend, 10**9) as applied:
            assert applied is None
        with (
            pytest.raises(ValueError, match="num_threads must be a positive integer"),
            threads.limited(backend, 10, num_threads=-1),
        ):
            pass


def test_info_shows_the_policy(capsys, monkeypatch):
    from anybackprop import cli

    monkeypatch.setenv(threads.ENV, "1")
    assert cli.main(["info"]) == 0
    assert "BLAS threads: ANYBACKPROP_NUM_THREADS=1" in capsys.readouterr().out


def test_a_shuffled_epoch_is_the_steps_on_the_permuted_rows(rng):
    """Minibatches gathered one by one into a reused buffer give exactly the steps on
    X[permutation] (bitwise on NumPy)."""
    X, y = rng.standard_normal((50, 4)), rng.integers(0, 3, 50)
    model = ab.MLP([4, 8, 3], seed=1, backend="numpy")
    twin = model.copy()
    model.fit(X, y, epochs=1, batch_size=16, optimizer="sgd", lr=0.1, seed=7, verbose=False)
    order = np.random.default_rng(7).permutation(50)
    opt = ab.optim.SGD(lr=0.1)
    opt.init(twin)
    for start in range(0, 50, 16):
        rows = order[start : start + 16]
        _, grads = twin.loss_and_grads(X[rows], y[rows])
        opt.step(twin.backend.xp, twin.params, grads)
    for key in model.params:
        np.testing.assert_array_equal(ab.to_numpy(model.params[key]), ab.to_numpy(twin.params[key]))


def test_train_json_reports_the_threads_a_training_used(monkeypatch):
    """A tiny product leaves the pools as they are: ``train --json`` reports their count, not the
    policy's 1; a product the policy limits reports the limit; off the host, None."""
    from anybackprop import cli

    monkeypatch.delenv(threads.ENV, raising=False)
    tiny, limited = ab.MLP([4, 8, 3], backend="numpy"), ab.MLP([128, 128, 3], backend="numpy")
    if threads.blas_threads() is None:
        pytest.skip("no BLAS visible to threadpoolctl")
    with threads.limited(tiny.backend, threads.SMALL_PRODUCT, num_threads=2):  # the pools at 2 threads
        assert cli._where(tiny, 16, 1)["threads"] == 2
        assert cli._where(limited, 64, 1)["threads"] == 1  # 64 x 128 x 128 multiply-adds: one thread
    assert cli._where(ab.MLP([4, 8, 3], backend="array_api_strict"), 16, 1)["threads"] is None
