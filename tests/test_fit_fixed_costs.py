"""The per-call work of a small ``fit`` made cheaper (issue 22, item 3, second round) keeps every
result and every error: the one-hot targets and their label checks, through the portable
formulas and NumPy's fast paths alike. (Speed itself is measured in benchmarks/fixed_costs.py.)"""

import array_api_compat.numpy as xnp
import numpy as np
import pytest

import anybackprop as ab
from anybackprop import losses
from anybackprop.fastpaths import numpy_paths


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labels", [np.array([2, 0, 1, 1, 0, 2, 2]), np.array([2.0, 0.0, 1.0, 1.0]), np.array([1])])
def test_one_hot_and_label_range_fast_paths_are_their_formulas(labels, dtype):
    expected = (labels[:, None] == np.arange(3)).astype(dtype)  # the definition, e_{y_i}
    for one_hot in (losses.one_hot, numpy_paths.one_hot_take):
        got = one_hot(xnp, labels, 3, dtype, "cpu")  # NumPy through the standard's namespace, as the model has it
        assert got.dtype == dtype and got.shape == (len(labels), 3)
        np.testing.assert_array_equal(got, expected)
    for label_range in (losses.label_range, numpy_paths.label_range_reduce):
        low, high = label_range(xnp, labels)
        assert (low, high) == (float(labels.min()), float(labels.max())) and type(low) is type(high) is float


@pytest.mark.parametrize("n", [numpy_paths.IDENTITY_CLASSES, numpy_paths.IDENTITY_CLASSES + 1, 4000])
def test_one_hot_of_many_classes_keeps_no_large_identity(n):
    """Up to IDENTITY_CLASSES the rows come from a kept identity; above it they are written
    directly and nothing of that size is kept; either way they are the formula's."""
    numpy_paths._identity.cache_clear()
    labels = np.array([n - 1, 0, n // 2, n - 1])
    got = numpy_paths.one_hot_take(xnp, labels, n, np.float32, "cpu")
    np.testing.assert_array_equal(got, losses.one_hot(xnp, labels, n, np.float32, "cpu"))
    assert got.dtype == np.float32 and got.flags.writeable
    assert numpy_paths._identity.cache_info().currsize == (1 if n <= numpy_paths.IDENTITY_CLASSES else 0)


def test_encoded_targets_are_the_one_hot_rows_on_every_backend(backend):
    model = ab.MLP([2, 4, 5], seed=0)
    X = np.zeros((6, 2))
    for y in ([4, 0, 3, 3, 1, 2], np.array([4.0, 0.0, 3.0, 3.0, 1.0, 2.0])):
        with model.backend.activate():  # check_data runs inside fit's activate()
            _, dense, _ = model.check_data(X, y)
        np.testing.assert_array_equal(ab.to_numpy(dense), np.eye(5)[[4, 0, 3, 3, 1, 2]])
        assert ab.to_numpy(dense).dtype == np.dtype(model.dtype_name)


@pytest.mark.parametrize(
    "y, message",
    [
        ([0, 1, 3, 1], r"y has labels in \[0, 3\]; the softmax output has 3 classes, expected integers in \[0, 2\]"),
        ([0, -1, 2, 1], r"y has labels in \[-1, 2\]; the softmax output has 3 classes"),
        ([0.0, 1e300, 2.0, 1.0], r"y has labels in \[0, 1e\+300\]; the softmax output has 3 classes"),
        ([0.0, 1.5, 2.0, 1.0], "y holds non-integer values; a softmax output expects integer class labels"),
        ([0.0, np.nan, 2.0, 1.0], "y contains NaN"),
        (["a", "b", "c", "a"], "y has dtype <U1; expected real numbers"),
    ],
)
def test_bad_labels_keep_their_errors_in_fit(y, message):
    model = ab.MLP([2, 4, 3], seed=0, backend="numpy")
    with pytest.raises((ValueError, TypeError), match=message):
        model.fit(np.zeros((4, 2)), np.array(y), epochs=1, verbose=False)


@pytest.mark.parametrize("value", [1, 0.5, 3e-3, np.float32(2.0), np.int64(4), 10**30])
def test_a_positive_number_of_any_real_type_is_a_python_float(value):
    from anybackprop.validation import check_positive_float

    got = check_positive_float(value, "lr")
    assert type(got) is float and got == float(value)


@pytest.mark.parametrize(
    "value", [True, False, 0, 0.0, -1, -0.5, float("nan"), float("inf"), np.float64("-inf"), "1", None]
)
def test_a_bad_rate_keeps_its_error(value):
    from anybackprop.validation import check_positive_float

    with pytest.raises(
        ValueError, match=rf"^lr must be a finite number > 0, got {__import__('re').escape(repr(value))}$"
    ):
        check_positive_float(value, "lr")
    if value in (0, 0.0) and not isinstance(value, bool):
        assert check_positive_float(value, "weight_decay", allow_zero=True) == 0.0


def test_schedules_by_name_are_built_when_asked_for():
    from anybackprop.optim import _constant, cosine_schedule, get_schedule

    step = get_schedule("step")
    assert [step(e, 30) for e in (0, 9, 10, 20)] == [1.0, 1.0, 0.5, 0.25]
    assert get_schedule("cosine") is cosine_schedule and get_schedule("constant") is _constant
    with pytest.raises(
        ValueError, match=r"unknown schedule 'linear'; accepted values: constant, step, cosine or a callable"
    ):
        get_schedule("linear")
    with pytest.raises(ValueError, match=r"unknown schedule \['step'\]"):
        get_schedule(["step"])


@pytest.mark.parametrize("value", [1, 64, np.int64(4), np.uint8(3), 10**30])
def test_a_positive_integer_of_any_integral_type_is_a_python_int(value):
    from anybackprop.validation import check_positive_int

    got = check_positive_int(value, "epochs")
    assert type(got) is int and got == int(value)


@pytest.mark.parametrize("value", [True, False, 0, -1, 2.5, 2.0, np.float64(3.0), np.int64(0), "3", None])
def test_a_bad_count_keeps_its_error(value):
    from anybackprop.validation import check_positive_int

    with pytest.raises(
        ValueError, match=rf"^epochs must be an integer >= 1, got {__import__('re').escape(repr(value))}$"
    ):
        check_positive_int(value, "epochs")
