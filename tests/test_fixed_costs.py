"""The per-call shortcuts of issue 22 (fixed costs on NumPy) keep every check and every result: a
small input takes one quick test and anything that fails it the full checks with their errors; the
softmax head predicts from its logits what its probabilities say; the divergence guard finds a
non-finite parameter in its cheaper reductions and skips only the copy no epoch needs; the thread
policy's limits come back after a block. (Speed itself is measured in benchmarks/fixed_costs.py.)"""

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import threads
from anybackprop.backend import ADAPTERS, ReadOnlyArray
from anybackprop.divergence import DivergenceGuard
from anybackprop.validation import _SMALL


@pytest.fixture
def model():
    return ab.MLP([4, 8, 3], seed=0, backend="numpy")


def test_only_a_small_finite_array_used_as_it_is_skips_the_full_checks():
    numpy, read_only, on_device = ADAPTERS["numpy"], ADAPTERS["numpy_readonly"], ADAPTERS["numpy_device"]
    row = np.ones((1, 4), dtype=np.float32)
    assert numpy.ready_rows(row, 4, np.float32, _SMALL)
    not_ready = {
        "float64 for a float32 model": row.astype(np.float64),
        "a list": row.tolist(),
        "1-D": row[0],
        "another width": np.ones((1, 5), dtype=np.float32),
        "no rows": np.ones((0, 4), dtype=np.float32),
        "NaN": np.array([[1.0, np.nan, 0.0, 0.0]], dtype=np.float32),
        "infinity": np.array([[1.0, 0.0, -np.inf, 0.0]], dtype=np.float32),
        "more entries than the quick test takes": np.ones((_SMALL // 4 + 1, 4), dtype=np.float32),
        "an ndarray subclass": row.view(np.matrix),
    }
    for why, x in not_ready.items():
        assert not numpy.ready_rows(x, 4, np.float32, _SMALL), why
    # the test backends: a plain array must still become theirs (read-only, on the current device)
    assert not read_only.ready_rows(row, 4, np.float32, _SMALL)
    assert read_only.ready_rows(row.view(ReadOnlyArray), 4, np.float32, _SMALL)
    assert not on_device.ready_rows(row, 4, np.float32, _SMALL)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.array([[1.0, 2.0, np.nan, 0.0]], dtype=np.float32), "X contains NaN at row 0, column 2; expected finite"),
        (np.array([[1.0, np.inf, 0.0, 0.0]], dtype=np.float32), "X contains infinity at row 0, column 1"),
        (np.ones((1, 5), dtype=np.float32), "X has 5 features, but the model is expecting 4 features as input"),
        (np.ones(4, dtype=np.float32), r"X must be 2-D of shape \(m, 4\); got 1-D shape \(4,\)"),
        (np.ones((0, 4), dtype=np.float32), "X has 0 samples"),
    ],
)
def test_a_bad_row_to_predict_gets_the_full_checks_error(model, X, message):
    for call in (model.predict, model.predict_proba, model.forward):
        with pytest.raises(ValueError, match=message):
            call(X)


def test_a_row_predicts_the_same_through_the_quick_test_and_the_full_checks(model, rng):
    X = rng.standard_normal((50, 4)).astype(np.float32)
    quick = [ab.to_numpy(model.predict(X[i : i + 1]))[0] for i in range(50)]
    full = ab.to_numpy(model.predict(X.astype(np.float64)))  # cast on the way in: the full checks
    np.testing.assert_array_equal(quick, full)
    np.testing.assert_array_equal(ab.to_numpy(model.forward(X[:1])), ab.to_numpy(model.forward(X[:1].tolist())))


@pytest.mark.parametrize("loss", [None, "mse"])
def test_softmax_predicts_the_class_of_the_largest_probability(backend, rng, loss):
    model = ab.MLP([5, 16, 4], seed=3, loss=loss)
    X = rng.standard_normal((300, 5)) * 3
    proba = ab.to_numpy(model.predict_proba(X))
    predicted = ab.to_numpy(model.predict(X))
    assert predicted.shape == (300,)
    np.testing.assert_array_equal(predicted, proba.argmax(axis=1))
    # and the accuracy counts the same classes
    assert model.score(X, predicted) == 1.0


def test_the_guard_finds_a_non_finite_parameter_and_restores_the_kept_ones(model):
    before = {k: ab.to_numpy(v).copy() for k, v in model.params.items()}
    guard = DivergenceGuard(model, 0)
    huge = {k: ab.to_numpy(v) for k, v in model.params.items()}
    huge["W1"] = np.full_like(huge["W1"], 3e38)  # finite float32: a sum of them is not
    model.set_params(huge)
    guard.check(1, {"loss": 1.0}, 0.1, keep=False)  # finite: no error, and nothing kept
    model.params["b2"][1] = np.nan
    with pytest.raises(ValueError, match="training diverged at epoch 2: the largest parameter is nan"):
        guard.check(2, {"loss": 1.0}, 0.1)
    for key, value in before.items():  # epoch 1 was not kept: back to before training
        np.testing.assert_array_equal(ab.to_numpy(model.params[key]), value)


def test_the_guard_keeps_a_finite_epoch_for_the_next(model):
    guard = DivergenceGuard(model, 0)
    model.params["W1"][...] = 2.0
    guard.check(1, {"loss": 1.0}, 0.1)
    model.params["W1"][0, 0] = np.inf
    with pytest.raises(ValueError, match="the largest parameter is inf; the model keeps its parameters from after"):
        guard.check(2, {"loss": 1.0}, 0.1)
    np.testing.assert_array_equal(ab.to_numpy(model.params["W1"]), np.full((4, 8), 2.0, dtype=np.float32))


def test_a_tiny_product_leaves_the_pools_alone_and_a_limit_comes_back(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    backend = ab.backend.create_backend("numpy")
    before = threads.blas_threads()
    with threads.limited(backend, threads.tiny_product() - 1) as applied:
        assert applied is None and threads.blas_threads() == before
    if before is None:
        pytest.skip("no BLAS visible to threadpoolctl")
    with threads.limited(backend, threads.tiny_product()) as applied:
        assert applied == 1 and threads.blas_threads() == 1
        with threads.limited(backend, threads.SMALL_PRODUCT, num_threads=2) as inner:
            assert inner == 2 and threads.blas_threads() == 2
        assert threads.blas_threads() == 1
    assert threads.blas_threads() == before


class _Pool:
    user_api = "blas"

    def __init__(self, internal_api):
        self.internal_api = internal_api


@pytest.mark.parametrize(
    "apis, tiny",
    [
        (["openblas"], threads.OPENBLAS_ONE_THREAD + 1),
        (["openblas", "mkl"], threads.TINY_PRODUCT),
        (["blis"], threads.TINY_PRODUCT),
        ([], threads.TINY_PRODUCT),
    ],
)
def test_the_pools_are_left_alone_up_to_openblas_own_one_thread_gemm_only_on_openblas(monkeypatch, apis, tiny):
    """OpenBLAS's interface/gemm.c runs M*N*K <= 65536 * 4 on one thread itself; another BLAS
    (or none visible) keeps the library-independent threshold."""
    monkeypatch.delenv(threads.ENV, raising=False)
    controller = type("Controller", (), {"lib_controllers": [_Pool(api) for api in apis]})()
    monkeypatch.setattr(threads, "_controller", lambda: controller)
    threads._tiny_for_the_blas.cache_clear()
    try:
        assert threads.tiny_product() == tiny
        assert threads.tiny_product(threads.TINY_PRODUCT - 1) == threads.TINY_PRODUCT
        assert threads._untouched(tiny - 1, None) and not threads._untouched(tiny, None)
        assert not threads._untouched(tiny - 1, 1)  # an explicit count is always applied
    finally:
        threads._tiny_for_the_blas.cache_clear()
    assert 64 * 32 * 32 < threads.OPENBLAS_ONE_THREAD == 262_144


@pytest.mark.parametrize("entries", [10, 70_000])  # one concatenation, or each array's max and min
def test_the_largest_magnitude_fast_path_is_its_formula(rng, entries):
    from anybackprop.divergence import largest_magnitude
    from anybackprop.fastpaths.numpy_paths import largest_magnitude_reduce

    arrays = [rng.standard_normal((entries, 2)).astype(np.float32), rng.standard_normal(7).astype(np.float32)]
    assert largest_magnitude_reduce(np, arrays) == largest_magnitude(np, arrays)
    arrays[1][3] = -1e30
    assert largest_magnitude_reduce(np, arrays) == largest_magnitude(np, arrays) == np.float32(1e30)
    arrays[0][entries - 1, 1] = np.nan
    assert np.isnan(largest_magnitude_reduce(np, arrays)) and np.isnan(largest_magnitude(np, arrays))
    assert largest_magnitude_reduce(np, []) == largest_magnitude(np, []) == 0.0


def test_the_quick_predict_reads_the_parameters_in_force(model, rng, tmp_path):
    """Nothing of the parameters is kept between calls: new parameters, a float64 copy and a
    loaded model predict what their own forward pass gives."""
    X = rng.standard_normal((20, 4)).astype(np.float32)

    def by_hand(m, x):
        a = np.maximum(x @ ab.to_numpy(m.params["W1"]) + ab.to_numpy(m.params["b1"]), 0)
        return (a @ ab.to_numpy(m.params["W2"]) + ab.to_numpy(m.params["b2"])).argmax(axis=1)

    first = [int(model.predict(X[i : i + 1])[0]) for i in range(20)]
    np.testing.assert_array_equal(first, by_hand(model, X))
    model.set_params({k: -ab.to_numpy(v) for k, v in model.params.items()})
    second = [int(model.predict(X[i : i + 1])[0]) for i in range(20)]
    np.testing.assert_array_equal(second, by_hand(model, X))
    assert second != first
    wide = model.copy(dtype="float64")
    np.testing.assert_array_equal([int(wide.predict(X[i : i + 1].astype(np.float64))[0]) for i in range(20)], second)
    ab.save(model, tmp_path / "m.npz")
    loaded = ab.load(tmp_path / "m.npz")
    np.testing.assert_array_equal([int(loaded.predict(X[i : i + 1])[0]) for i in range(20)], second)


@pytest.mark.parametrize("fast", [True, False])
def test_the_guard_keeps_one_flat_copy_refilled_in_place_and_restores_every_shape(model, fast):
    """The kept parameters are one flat copy (NumPy refills the same buffer each epoch; the
    portable formula makes a new one); a divergence puts every parameter back in its shape."""
    if not fast:
        model.fast = ab.fastpaths.NONE
    guard = DivergenceGuard(model, 0)
    first = guard.params
    assert first.shape == (sum(v.size for v in model.params.values()),)
    for value in model.params.values():
        value[...] = 0.5
    guard.check(1, {"loss": 1.0}, 0.1)
    assert (guard.params is first) == fast and bool(np.all(guard.params == 0.5))
    kept = {k: ab.to_numpy(v).copy() for k, v in model.params.items()}
    model.params["W2"][...] = -np.inf
    with pytest.raises(ValueError, match="training diverged at epoch 2: the largest parameter is inf"):
        guard.check(2, {"loss": 1.0}, 0.1)
    assert list(model.params) == list(kept)
    for key, value in kept.items():
        np.testing.assert_array_equal(ab.to_numpy(model.params[key]), value)


def test_numpy_one_hot_rows_are_fresh_arrays_from_an_identity_made_once(rng):
    """The identity is made once per size and dtype and cannot be written; each call's rows are
    the caller's own (writing into them changes no later call's)."""
    from anybackprop.fastpaths.numpy_paths import _identity, one_hot_take

    assert _identity(4, np.dtype(np.float32)) is _identity(4, np.dtype(np.float32))
    assert not _identity(4, np.dtype(np.float32)).flags.writeable
    labels = rng.integers(0, 4, 30)
    first = one_hot_take(np, labels, 4, np.float32, "cpu")
    first[...] = 7.0
    again = one_hot_take(np, labels, 4, np.float32, "cpu")
    np.testing.assert_array_equal(again, np.eye(4, dtype=np.float32)[labels])
    assert again.flags.writeable and again.dtype == np.float32
    assert one_hot_take(np, labels, 5, "float64", "cpu").shape == (30, 5)


def test_the_cached_dtype_kind_test_answers_as_isdtype(backend):
    from anybackprop.validation import is_kind

    xp = backend.xp
    for dtype in (xp.float32, xp.int64, xp.bool):
        for kind in ("integral", "real floating", "bool"):
            assert is_kind(xp, dtype, kind) == xp.isdtype(dtype, kind)


@pytest.mark.parametrize("seed", [0, 1, 2**40, np.int64(7)])
def test_the_host_generator_is_default_rngs_bit_for_bit_with_its_words_mixed_once(seed):
    """host_rng mixes SeedSequence's words for PCG64 once per seed: a first and a second generator
    of a seed are default_rng's, in state, draws, spawned children (and theirs), the seed
    sequence's other words, and a pickled copy."""
    import pickle

    from anybackprop.backend import _pcg64_words, host_rng

    def sequence(generator):  # Generator.spawn and BitGenerator.seed_seq are NumPy >= 1.25
        return generator.bit_generator._seed_seq

    def draws(seed_sequence):
        return np.random.Generator(np.random.PCG64(seed_sequence)).random(5)

    for _ in range(2):  # the second comes from the mixed words
        ours, numpys = host_rng(seed), np.random.default_rng(seed)
        assert ours.bit_generator.state == numpys.bit_generator.state
        np.testing.assert_array_equal(ours.permutation(100), numpys.permutation(100))
        for child, theirs in zip(sequence(ours).spawn(2), sequence(numpys).spawn(2), strict=True):
            np.testing.assert_array_equal(draws(child), draws(theirs))
            np.testing.assert_array_equal(draws(child.spawn(1)[0]), draws(theirs.spawn(1)[0]))
        np.testing.assert_array_equal(sequence(ours).generate_state(8), sequence(numpys).generate_state(8))
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(ours)).random(4), numpys.random(4))
    assert _pcg64_words.cache_info().hits > 0 and not _pcg64_words(int(seed), ()).flags.writeable
    assert host_rng(None).random() != host_rng(None).random()  # no seed: fresh entropy each time


def test_the_adapters_writeable_test_answers_as_array_api_compat(backend):
    """The optimizer's in-place decision reads the adapter's writeable test (NumPy: the flag)."""
    import array_api_compat

    x = backend.asarray(np.ones((3, 2)), "float32")
    owned = backend.xp.asarray(x, copy=True)
    for a in (x, owned):
        assert backend.adapter.writeable(a) == array_api_compat.is_writeable_array(a)
    locked = np.ones(3)
    locked.flags.writeable = False
    assert not ADAPTERS["numpy"].writeable(locked) and ADAPTERS["numpy"].writeable(np.ones(3))


def test_plain_sgds_in_place_loop_is_the_base_update_bit_for_bit(model, rng):
    """SGD without momentum or decay on writable parameters updates in its own loop: the same
    ``P -= lr * g`` as Optimizer's per-key loop, bit for bit."""
    from anybackprop.optim import SGD, Optimizer

    opt = SGD(0.05)
    opt.init(model)
    grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in model.params.items()}
    base = {k: v.copy() for k, v in model.params.items()}
    opt.step(np, model.params, grads)
    Optimizer._apply(opt, np, base, grads, opt.state, opt._scalars(opt.lr, 1), True)
    for key, value in base.items():
        np.testing.assert_array_equal(model.params[key], value)


@pytest.mark.parametrize("factor", [True, -0.5, float("nan"), "1"])
def test_a_schedules_factor_is_still_checked(factor):
    from anybackprop.optim import SGD

    with pytest.raises(ValueError, match=f"schedule returned {factor!r} for epoch 0"):
        SGD(0.1, schedule=lambda epoch, epochs: factor).start_epoch(0, 3)


@pytest.mark.parametrize("factor", [0.5, 1, np.float32(0.25)])
def test_a_schedules_real_factor_scales_the_rate(factor):
    from anybackprop.optim import SGD

    opt = SGD(0.1, schedule=lambda epoch, epochs: factor)
    opt.start_epoch(0, 3)
    assert opt.lr == 0.1 * float(factor) and type(opt.lr) is float
