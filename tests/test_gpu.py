"""What only CuPy on a GPU can show: the estimators with backend="cupy", TF32 switched on and off
around the work, and a model on a second device allocating only there. Each test skips, naming
the reason, where CuPy is not usable (``ANYBACKPROP_TEST_BACKENDS=cupy`` instead stops the run)."""

import numpy as np
import pytest

import anybackprop as ab
from anybackprop.backend import create_backend, unavailable_reason
from anybackprop.sklearn import MLPClassifier, MLPRegressor

CUPY_REASON = unavailable_reason("cupy")
pytestmark = pytest.mark.skipif(CUPY_REASON is not None, reason=f"cupy is not usable here: {CUPY_REASON}")


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_estimators_train_on_cupy_like_numpy_and_return_numpy(Estimator, rng):
    X = rng.standard_normal((60, 5))
    y = rng.integers(0, 3, 60) if Estimator is MLPClassifier else rng.standard_normal(60)
    fitted = {
        name: Estimator(hidden_layer_sizes=(16,), max_iter=20, random_state=0, backend=name, dtype="float64").fit(X, y)
        for name in ("numpy", "cupy")
    }
    predictions = {name: est.predict(X) for name, est in fitted.items()}
    assert type(predictions["cupy"]) is np.ndarray
    np.testing.assert_allclose(predictions["cupy"], predictions["numpy"], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("tf32", [True, False, None])
def test_tf32_is_applied_inside_activate_and_restored_after(tf32, rng):
    import cupy
    from cupy._core import _routines_linalg as linalg

    capability = cupy.cuda.Device().compute_capability
    if tf32 and int(capability) < 80:
        pytest.skip(f"TF32 needs compute capability 8.0; this GPU has {capability} (CuPy keeps DEFAULT and warns)")
    before = linalg.get_compute_type(cupy.float32)
    backend = create_backend("cupy", tf32=tf32)
    with backend.activate():
        inside = linalg.get_compute_type(cupy.float32)
    assert inside == {True: linalg.COMPUTE_TYPE_TF32, False: linalg.COMPUTE_TYPE_DEFAULT, None: before}[tf32]
    assert linalg.get_compute_type(cupy.float32) == before
    X, y = rng.standard_normal((64, 32)), rng.integers(0, 4, 64)
    model = ab.MLP([32, 64, 4], seed=0, backend=backend)
    reference = ab.MLP([32, 64, 4], seed=0, backend="numpy")
    loss, want = model.loss(X, y), reference.loss(X, y)
    assert abs(loss - want) <= (1e-2 if tf32 else 1e-5) * abs(want)  # TF32 keeps 10 mantissa bits


def test_a_model_on_the_second_device_allocates_only_there(rng):
    import cupy

    count = cupy.cuda.runtime.getDeviceCount()
    if count < 2:
        pytest.skip(f"needs two CUDA devices; this machine has {count}")
    X, y = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    opt = ab.get_optimizer("adam", 1e-2)
    with cupy.cuda.Device(0), ab.use_backend("cupy", device=1):
        model = ab.MLP([6, 8, 3], seed=0)
        model.fit(X, y, epochs=2, batch_size=8, optimizer=opt, validation_data=(X, y), verbose=False)
        grads = ab.gradcheck(model.copy(dtype="float64"), X[:4], y[:4])
        predicted = model.predict(X)
    arrays = [*model.params.values(), *(a for slot in opt.state.values() for a in slot.values()), predicted]
    assert {a.device.id for a in arrays} == {1}
    assert grads < 1e-4
