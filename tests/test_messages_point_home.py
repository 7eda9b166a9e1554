"""Class table: raw errors and messages that pointed elsewhere now name what the user wrote (the
variable, the flag, the label) or do the right thing (cast on the host, accept NumPy numbers)."""

import re
import warnings

import numpy as np
import pytest
from test_cli import cli

import anybackprop as ab
from anybackprop import datasets

X = np.random.default_rng(0).standard_normal((20, 3))
Y = (X[:, 0] > 0).astype(int)


def _fit(model=None, X=X, Y=Y, **kwargs):
    model = model or ab.MLP([3, 4, 2])
    return model.fit(X, Y, **{"epochs": 2, "verbose": False, **kwargs})


# (id, what raises, its type, its message)
ERRORS = [
    (
        "huge-float-label",
        lambda: _fit(Y=np.where(Y == 1, 1e300, 0.0)),
        ValueError,
        r"^y has labels in \[0, 1e\+300\]; the softmax output has 2 classes",
    ),
    (
        "negative-float-label",
        lambda: _fit(Y=np.where(Y == 1, -3.0, 0.0)),
        ValueError,
        r"^y has labels in \[-3, 0\]; the softmax output has 2 classes",
    ),
    (
        "one-hot-of-no-labels",
        lambda: datasets.one_hot(np.array([], dtype=int)),
        ValueError,
        r"^y has no labels, so the number of classes is unknown; pass n_classes",
    ),
    ("one-hot-n-classes", lambda: datasets.one_hot(np.array([0]), n_classes=0), ValueError, r"^n_classes must be"),
    (
        "huge-layer",
        lambda: ab.MLP([3, 10**14, 2]),
        ValueError,
        r"^layer sizes \[3, 100000000000000, 2\] make 600,000,000,000,002 parameters, .* GiB, more than this machine",
    ),
    (
        "class-weight-key-out-of-range",
        lambda: _fit(class_weight={np.int64(2): 1.0}),
        ValueError,
        r"^class_weight has key (np\.int64\(2\)|2); expected class indices 0\.\.1",  # NumPy 1 prints 2
    ),
]


@pytest.mark.parametrize("call,kind,message", [pytest.param(*c[1:], id=c[0]) for c in ERRORS])
def test_the_error_names_what_the_user_wrote(call, kind, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cast warning instead of the error is a failure too
        with pytest.raises(kind, match=message):
            call()


def test_the_dtype_variable_is_named_whatever_names_the_backend(monkeypatch):
    monkeypatch.setenv("ANYBACKPROP_DTYPE", "float16")
    for make in (lambda: ab.MLP([2, 2], backend="numpy"), lambda: ab.backend.create_backend("numpy")):
        with pytest.raises(ValueError, match=r"^ANYBACKPROP_DTYPE='float16' is not a float dtype"):
            make()
    with pytest.raises(ValueError, match=r"^dtype='float16' is not a float dtype"):
        ab.backend.create_backend("numpy", dtype="float16")


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--seed", "-1"], "argument --seed: expected a non-negative int, got '-1'"),
        (["--hidden", ",,,"], "argument --hidden: expected comma-separated positive ints such as 128,64, got ',,,'"),
        (["--hidden", "32,,16"], "argument --hidden: expected comma-separated positive ints"),
        (["--hidden", "100000000000000"], "more than this machine's"),
        (["--test-size", "2"], "argument --test-size: expected a share of the rows in (0, 1), got '2'"),
        (["--weight-decay", "-1"], "argument --weight-decay: expected a finite number >= 0, got '-1'"),
        (["--bins", "-1"], "argument --bins: expected auto or a non-negative int, got '-1'"),
        (["--loss", "poisson"], "argument --loss: invalid choice: 'poisson'"),  # needs the exp output
    ],
)
def test_the_command_line_names_the_flag(flags, message):
    done = cli("train", "--epochs", "1", *flags)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_numpy_integer_class_weight_keys_and_numpy_weights_are_accepted():
    with_ints = _fit(ab.MLP([3, 4, 2]), class_weight={1: 2.0})
    with_numpy = _fit(ab.MLP([3, 4, 2]), class_weight={np.int64(1): np.float32(2.0)})
    assert with_numpy.loss == with_ints.loss


def test_a_numpy_float_gamma_works_on_every_backend():
    model = ab.MLP([3, 4, 2], backend="array_api_strict")
    history = _fit(model, epochs=3, schedule=ab.optim.step_schedule(1, np.float64(0.5)))
    plain = _fit(ab.MLP([3, 4, 2], backend="array_api_strict"), epochs=3, schedule=ab.optim.step_schedule(1, 0.5))
    assert history.loss == plain.loss


def test_read_only_numpy_input_on_torch_gives_no_warning():
    pytest.importorskip("torch")
    X_read_only = X.copy()
    X_read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = ab.MLP([3, 4, 2], backend="torch")
        _fit(model, X=X_read_only)
        model.predict(X_read_only)
    assert X_read_only.tobytes() == X.tobytes()


def test_a_float32_model_on_a_device_without_float64_casts_numpy_input_on_the_host():
    pytest.importorskip("array_api_strict")
    backend = ab.backend.create_backend("array_api_strict", device="no_float64")
    assert not backend.holds_float64 and ab.backend.create_backend("numpy").holds_float64
    model = ab.MLP([3, 4, 2], backend=backend, seed=1)
    reference = ab.MLP([3, 4, 2], backend="array_api_strict", seed=1)
    w = np.linspace(0.5, 1.5, 20)
    assert _fit(model, sample_weight=w).loss == _fit(reference, sample_weight=w).loss
    assert np.array_equal(ab.to_numpy(model.predict(X)), ab.to_numpy(reference.predict(X)))
    regressor = ab.MLP([3, 4, 1], output="identity", backend=backend)
    assert _fit(regressor, Y=X[:, 0]).epochs == 2
    with pytest.raises(ValueError, match=re.escape("beyond the largest float32")):
        model.predict(X * 1e300)
