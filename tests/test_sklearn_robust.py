"""Issue 9, classes 4 and 5 for the scikit-learn estimators: every parameter is validated with
scikit-learn's names (never the core's), sparse input trains as dense input does, one minibatch
densified at a time, and a pickled, deep-copied or cloned estimator keeps training and predicting
(optimizer state kept, a missing backend falls back to NumPy), with scikit-learn's score-based
early stopping and its single-class behaviour. One parametrised table per class."""

import copy
import pickle
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
import scipy.sparse  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402

import anybackprop as ab  # noqa: E402
from anybackprop import sklearn as ab_sklearn  # noqa: E402
from anybackprop.sklearn import BackendFallbackWarning, MLPClassifier, MLPRegressor  # noqa: E402

# the core's names for these settings: an estimator's error must never show them
CORE_NAMES = re.compile(
    r"layer_sizes(?<!hidden_layer_sizes)|weight_decay|\bepochs\b|\blr\b|min_delta|early_stopping=\d|\bseed\b"
)


def _data(n=60, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, rng.integers(0, classes, n), X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.standard_normal(n)


# --- class 4: parameters with scikit-learn's names, sparse input -------------------------------

PARAMETER_CASES = [
    # (parameter as the user wrote it, bad value, message pattern after "The '<name>' parameter of <Estimator> must be")
    ("hidden_layer_sizes", (0,), r"an int >= 1 or a sequence of ints >= 1\. Got \(0,\)"),
    ("hidden_layer_sizes", (8, -1), r"an int >= 1 or a sequence of ints >= 1\. Got \(8, -1\)"),
    ("hidden_layer_sizes", (2.5,), r"an int >= 1 or a sequence of ints >= 1"),
    ("hidden_layer_sizes", (True, 3), r"an int >= 1 or a sequence of ints >= 1"),
    ("hidden_layer_sizes", "wide", r"an array-like or an int in the range \[1, inf\)\. Got 'wide'"),
    ("hidden_layer_sizes", 0, r"an array-like or an int in the range \[1, inf\)\. Got 0"),
    ("activation", "gelu", r"a str among .*Got 'gelu'"),
    ("activation", ["relu"], r"a str among .*Got \['relu'\]"),
    ("solver", "momentum", r"a str among .*'adam'.*Got 'momentum'"),
    ("learning_rate", "cyclic", r"a str among .*'invscaling'.*Got 'cyclic'"),
    ("power_t", -0.5, r"a float in the range \[0\.0, inf\)\. Got -0\.5"),
    ("shuffle", "yes", r"an instance of 'bool'.*Got 'yes'"),
    ("warm_start", 1.0, r"an instance of 'bool'.*Got 1\.0"),
    ("nesterovs_momentum", None, r"an instance of 'bool'.*Got None"),
    ("beta_1", 1.0, r"a float in the range \[0\.0, 1\.0\)\. Got 1\.0"),
    ("beta_2", -0.1, r"a float in the range \[0\.0, 1\.0\)\. Got -0\.1"),
    ("epsilon", 0.0, r"a float in the range \(0\.0, inf\)\. Got 0\.0"),
    ("max_fun", 0, r"an int in the range \[1, inf\)\. Got 0"),
    ("max_fun", True, r"an int in the range \[1, inf\)\. Got True"),
    ("max_iter", True, r"an int in the range \[1, inf\)\. Got True"),
    ("n_iter_no_change", False, r"an int in the range \[1, inf\) or a float among \{inf\}\. Got False"),
    ("n_iter_no_change", -np.inf, r"an int in the range \[1, inf\) or a float among \{inf\}\. Got -inf"),
    ("alpha", -1.0, r"a float in the range \[0\.0, inf\)\. Got -1\.0"),
    ("alpha", "big", r"a float in the range \[0\.0, inf\)\. Got 'big'"),
    ("batch_size", 0, r"a str among \{'auto'\} or an int in the range \[1, inf\)\. Got 0"),
    ("batch_size", "all", r"a str among \{'auto'\} or an int in the range \[1, inf\)\. Got 'all'"),
    ("batch_size", 2.5, r"a str among \{'auto'\} or an int in the range \[1, inf\)\. Got 2\.5"),
    ("learning_rate_init", 0.0, r"a float in the range \(0\.0, inf\)\. Got 0\.0"),
    ("learning_rate_init", -0.1, r"a float in the range \(0\.0, inf\)\. Got -0\.1"),
    ("max_iter", 0, r"an int in the range \[1, inf\)\. Got 0"),
    ("max_iter", 1.5, r"an int in the range \[1, inf\)\. Got 1\.5"),
    ("momentum", 1.0, r"a float in the range \[0\.0, 1\.0\)\. Got 1\.0"),
    ("momentum", -0.1, r"a float in the range \[0\.0, 1\.0\)\. Got -0\.1"),
    ("tol", -1e-4, r"a float in the range \[0\.0, inf\)\. Got -0\.0001"),
    ("n_iter_no_change", 0, r"an int in the range \[1, inf\) or a float among \{inf\}\. Got 0"),
    ("validation_fraction", -0.1, r"a float in the range \[0\.0, 1\.0\)\. Got -0\.1"),
    ("validation_fraction", 1.0, r"a float in the range \[0\.0, 1\.0\)\. Got 1\.0"),
    ("early_stopping", "yes", r"an instance of 'bool'.*Got 'yes'"),
    ("verbose", "loud", r"an int in the range \[0, inf\), an instance of 'bool'.*Got 'loud'"),
    ("random_state", "zero", r"an int in the range \[0, 4294967295\].*Got 'zero'"),
    ("random_state", -1, r"an int in the range \[0, 4294967295\].*Got -1"),
    ("dropout", 1.0, r"a float in the range \[0\.0, 1\.0\).*Got 1\.0"),
    (
        "dropout",
        [0.1, 0.2],
        r"a float in \[0, 1\) or a list of 1 such floats \(one per hidden layer\)\. Got \[0\.1, 0\.2\]",
    ),
    ("norm", "group", r"a str among .*'batch'.*or None\. Got 'group'"),
    ("backend", "tensorflow", r"a str among .*'numpy'.*Got 'tensorflow'"),
    ("backend", 3, r"a str among .*'torch'.*Got 3 instead"),
    ("dtype", "float16", r"a str among .*'float32'.*Got 'float16'"),
    ("dtype", int, r"'float32', 'float64', np\.float32, np\.float64 or None\. Got <class 'int'>"),
]


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("name,value,pattern", PARAMETER_CASES)
def test_bad_parameters_named_as_scikit_learn_names_them(Estimator, method, name, value, pattern):
    X, y_class, y_reg = _data()
    y = y_class if Estimator is MLPClassifier else y_reg
    params = {"hidden_layer_sizes": (4,), "max_iter": 2, "random_state": 0, name: value}
    est = Estimator(**params)  # __init__ only stores
    kwargs = {"classes": [0, 1, 2]} if method == "partial_fit" and Estimator is MLPClassifier else {}
    with pytest.raises(
        InvalidParameterError, match=rf"^The '{name}' parameter of {Estimator.__name__} must be {pattern}"
    ) as info:
        getattr(est, method)(X, y, **kwargs)
    assert isinstance(info.value, ValueError) and not CORE_NAMES.search(str(info.value)), str(info.value)
    assert not hasattr(est, "coefs_")


# parameters that are each valid alone but not together, and environment-dependent ones
COMBINATION_CASES = [
    (
        {"solver": "lbfgs", "dropout": 0.2},
        ValueError,
        r"The 'dropout' parameter of MLPClassifier must be 0 with solver='lbfgs'\. Got 0\.2",
    ),
    (
        {"solver": "lbfgs", "norm": "batch"},
        ValueError,
        r"The 'norm' parameter of MLPClassifier must be None or layer with solver='lbfgs'\. Got 'batch'",
    ),
    (
        {"hidden_layer_sizes": (4, 4), "dropout": [0.1]},
        ValueError,
        r"The 'dropout' parameter .* a list of 2 such floats",
    ),
    ({"hidden_layer_sizes": (4,), "dropout": [1.5]}, ValueError, r"The 'dropout' parameter .*Got \[1\.5\]"),
    (
        {"backend": "cupy"} if "cupy" not in ab.available_backends() else {"backend": "tensorflow"},
        ValueError,
        r"backend=",
    ),
]


@pytest.mark.parametrize("params,exc,pattern", COMBINATION_CASES)
def test_bad_parameter_combinations(params, exc, pattern):
    X, y, _ = _data()
    with pytest.raises(exc, match=pattern) as info:
        MLPClassifier(max_iter=2, random_state=0, **params).fit(X, y)
    assert not CORE_NAMES.search(str(info.value)), str(info.value)


GOOD_PARAMETERS = [
    {"hidden_layer_sizes": 5},
    {"hidden_layer_sizes": [5, 3]},
    {"hidden_layer_sizes": np.array([5, 3])},
    {"hidden_layer_sizes": ()},
    {"dtype": np.float32},
    {"dtype": "float64"},
    {"dropout": [0.2]},
    {"solver": "sgd", "momentum": 0.0},
    {"solver": "sgd", "learning_rate": "invscaling", "power_t": 0.25},
    {"solver": "lbfgs", "norm": "layer"},
    {"n_iter_no_change": np.inf},
    {"random_state": np.random.RandomState(0)},
    {"verbose": 0},
]


@pytest.mark.parametrize("params", GOOD_PARAMETERS, ids=repr)
def test_good_parameters_train(params):
    X, y, _ = _data()
    clf = MLPClassifier(**{"max_iter": 3, "random_state": 0, **params}).fit(X, y)
    assert np.isfinite(clf.predict_proba(X)).all() and clf.n_iter_ >= 1
    if "dtype" in params:
        assert clf.coefs_[0].dtype == np.dtype(params["dtype"])


SPARSE_CASES = ["fit", "partial_fit", "predict", "predict_proba", "score"]


@pytest.mark.parametrize(
    "Estimator,method",
    [
        (E, m)
        for E in (MLPClassifier, MLPRegressor)
        for m in SPARSE_CASES
        if not (m == "predict_proba" and E is MLPRegressor)
    ],
)
@pytest.mark.parametrize("container", [scipy.sparse.csr_matrix, scipy.sparse.csc_array])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_sparse_input_gives_what_dense_input_gives(Estimator, method, container, solver):
    X, y_class, y_reg = _data()
    X[X < 0.3] = 0.0  # mostly zeros
    y = y_class if Estimator is MLPClassifier else y_reg
    if method == "partial_fit" and solver == "lbfgs":
        return  # no partial_fit with lbfgs (test_partial_fit_errors)
    make = lambda: Estimator(hidden_layer_sizes=(5,), solver=solver, batch_size=16, max_iter=4, random_state=0)  # noqa: E731
    sparse_est, dense_est = make(), make()
    classes = {"classes": [0, 1, 2]} if Estimator is MLPClassifier else {}
    for est, data in ((sparse_est, container(X)), (dense_est, X)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if method == "partial_fit":
                est.partial_fit(data, y, **classes)
            else:
                est.fit(X, y)  # dense fit, sparse prediction below, unless fit is the method
                if method == "fit":
                    est.fit(data, y)
    for a, b in zip(sparse_est.coefs_, dense_est.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    if method in ("predict", "predict_proba", "score"):
        got, expected = (
            getattr(sparse_est, method)(container(X), *([y] if method == "score" else [])),
            getattr(dense_est, method)(X, *([y] if method == "score" else [])),
        )
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_sparse_rows_are_densified_one_minibatch_at_a_time(monkeypatch):
    """Bounded memory: training densifies at most batch_size rows at once, prediction a chunk."""
    X, y, _ = _data(n=100)
    X[X < 0.5] = 0.0
    sizes = []
    dense = scipy.sparse.csr_matrix.toarray

    def spy(self, *args, **kwargs):
        if self.shape[1] == X.shape[1]:  # rows of X, not the one-hot labels (3 columns), which
            sizes.append(self.shape[0])  # scikit-learn < 1.9's label_binarize densifies from a csr_matrix
        return dense(self, *args, **kwargs)

    monkeypatch.setattr(scipy.sparse.csr_matrix, "toarray", spy)
    clf = MLPClassifier(hidden_layer_sizes=(5,), batch_size=16, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scipy.sparse.csr_matrix(X), y)
    assert sizes and max(sizes) == 16 and sum(sizes) == 3 * 100  # every row once an epoch, 16 at a time
    sizes.clear()
    monkeypatch.setattr(ab_sklearn, "_CHUNK_ELEMENTS", 4 * 10)  # 10 rows of 4 features per chunk
    clf.predict(scipy.sparse.csr_matrix(X))
    assert sizes == [10] * 10


# --- class 5: estimators that survive copying -------------------------------------------------


def _pickled(est):
    return pickle.loads(pickle.dumps(est))


COPIES = {"pickle": _pickled, "deepcopy": copy.deepcopy}


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("solver", ["adam", "sgd", "sgd-adaptive"])
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_copied_estimator_continues_exactly(Estimator, solver, how, backend):
    """A copy of a fitted estimator keeps its optimizer state: partial_fit on the copy gives
    bit for bit what partial_fit on the original gives."""
    X, y_class, y_reg = _data()
    y = y_class if Estimator is MLPClassifier else y_reg
    schedule = {"learning_rate": "adaptive", "tol": 10.0, "n_iter_no_change": 1} if solver == "sgd-adaptive" else {}
    original = Estimator(
        hidden_layer_sizes=(6,),
        solver=solver.split("-")[0],
        max_iter=4,
        learning_rate_init=0.01,
        random_state=0,
        backend=backend,
        **schedule,
    ).fit(X, y)
    if schedule:  # the rate the schedule left is kept too
        assert original.learning_rate_ < 0.01
    copied = COPIES[how](original)
    assert "_model" not in copied.__dict__ and "_optimizer" not in copied.__dict__  # rebuilt on use
    for est in (original, copied):
        est.partial_fit(X, y)
        est.partial_fit(X, y)
    # as scikit-learn's: n_iter_ counts the last call's epochs, t_ every sample seen
    assert copied.t_ == original.t_ == 6 * len(X) and copied.n_iter_ == original.n_iter_ == 1
    np.testing.assert_array_equal(copied.predict(X), original.predict(X))
    for a, b in zip(copied.coefs_, original.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    # the kept state matters (momentum, Adam's moments, the adapted rate): a fresh optimizer trains differently
    fresh = _pickled(original)
    fresh.__dict__.pop("_optimizer_state")
    original.partial_fit(X, y)
    fresh.partial_fit(X, y)
    assert not np.array_equal(fresh.coefs_[0], original.coefs_[0])


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_cloned_estimator_fits_partial_fits_and_predicts(Estimator, early_stopping):
    X, y_class, y_reg = _data(n=80)
    y = y_class if Estimator is MLPClassifier else y_reg
    original = Estimator(hidden_layer_sizes=(6,), max_iter=5, random_state=0, early_stopping=early_stopping).fit(X, y)
    cloned = clone(original)
    assert not hasattr(cloned, "coefs_")
    cloned.fit(X, y)
    for est in (original, cloned):
        if early_stopping:  # as scikit-learn's: no validation split in one epoch
            with pytest.raises(ValueError, match=r"^partial_fit does not support early_stopping=True$"):
                est.partial_fit(X, y)
        else:
            est.partial_fit(X, y)
    np.testing.assert_array_equal(cloned.predict(X), original.predict(X))
    # a clone of an unpickled estimator too
    again = clone(_pickled(original)).fit(X, y)
    if not early_stopping:
        again.partial_fit(X, y)
    np.testing.assert_array_equal(again.predict(X), original.predict(X))


def test_unfitted_copies_and_partial_fit_from_a_pickle_of_an_unfitted_estimator():
    X, y, _ = _data()
    for make in (_pickled, copy.deepcopy, clone):
        est = make(MLPClassifier(hidden_layer_sizes=(4,), random_state=0))
        est.partial_fit(X, y, classes=[0, 1, 2])
        est = _pickled(est).partial_fit(X, y)
        assert est.t_ == 2 * 60 and est.n_iter_ == 1 and est.predict(X).shape == (60,)


FALLBACK_CASES = [
    # (backend fitted on, estimator)
    ("array_api_strict", MLPClassifier),
    ("array_api_strict", MLPRegressor),
    ("torch", MLPClassifier),
    ("torch", MLPRegressor),
]


@pytest.mark.parametrize("backend,Estimator", FALLBACK_CASES)
def test_missing_backend_falls_back_to_numpy_with_a_warning(backend, Estimator, monkeypatch):
    if backend not in ab.available_backends():
        pytest.skip(f"{backend} is not usable here")
    X, y_class, y_reg = _data()
    y = y_class if Estimator is MLPClassifier else y_reg
    fitted = Estimator(hidden_layer_sizes=(6,), max_iter=5, random_state=0, backend=backend, dtype="float64").fit(X, y)
    blob = pickle.dumps(fitted)
    monkeypatch.setattr(
        ab_sklearn, "unavailable_reason", lambda name: f"{name} is not installed" if name == backend else None
    )
    restored = pickle.loads(blob)
    with pytest.warns(
        BackendFallbackWarning,
        match=rf"fitted with backend='{backend}', which is not usable here \({backend} is not "
        rf"installed\).*backend='numpy'",
    ):
        predicted = restored.predict(X)
    assert restored._model.backend.name == "numpy"
    np.testing.assert_allclose(predicted, fitted.predict(X), rtol=1e-12, atol=1e-12)
    restored.partial_fit(X, y)  # trains on numpy, from the kept optimizer state
    assert restored.t_ == fitted.t_ + len(X) and np.isfinite(restored.coefs_[0]).all()


_NO_TORCH = textwrap.dedent(
    """
    import importlib.abc, pickle, sys, warnings

    # import torch raises ModuleNotFoundError, as where it is not installed
    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NoTorch())
    import numpy as np
    est, X, expected = pickle.load(open(sys.argv[1], "rb"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = est.predict(X)
    messages = [str(w.message) for w in caught if type(w.message).__name__ == "BackendFallbackWarning"]
    assert len(messages) == 1 and "backend='torch'" in messages[0], [str(w.message) for w in caught]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    est.partial_fit(X, got if got.dtype.kind != "f" else expected)
    assert "torch" not in sys.modules
    print("ok", est._model.backend.name)
    """
)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_fitted_on_torch_predicts_in_a_process_without_torch(Estimator, tmp_path):
    if "torch" not in ab.available_backends():
        pytest.skip("torch is not usable here")
    X, y_class, y_reg = _data()
    y = y_class if Estimator is MLPClassifier else y_reg
    fitted = Estimator(hidden_layer_sizes=(6,), max_iter=5, random_state=0, backend="torch", dtype="float64").fit(X, y)
    path = tmp_path / "est.pkl"
    path.write_bytes(pickle.dumps((fitted, X, fitted.predict(X))))
    run = subprocess.run([sys.executable, "-c", _NO_TORCH, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok numpy", run.stderr


EARLY_STOPPING_CASES = [
    # (estimator, tol, n_iter_no_change, max_iter, expected n_iter_ or None: stops by the rule before max_iter)
    (MLPClassifier, 1e9, 3, 100, 5),  # no epoch after the first improves by tol: the first + 3 + 1
    (MLPRegressor, 1e9, 2, 100, 4),
    (MLPClassifier, 0.0, 50, 6, 6),  # patience longer than max_iter: every epoch runs
    (MLPRegressor, 0.0, 50, 6, 6),
    (MLPClassifier, 1e-4, 4, 300, None),  # noise labels: the validation accuracy stalls
    (MLPRegressor, 1e-4, 4, 300, None),
]


def _scikit_learn_stop(scores, tol, patience):
    """The epoch (1-based) at which scikit-learn's MLP stops for these validation scores, or None."""
    best, count = -np.inf, 0
    for epoch, score in enumerate(scores, start=1):
        count = count + 1 if score < best + tol else 0
        best = max(best, score)
        if count > patience:
            return epoch
    return None


@pytest.mark.parametrize("Estimator,tol,patience,max_iter,expected", EARLY_STOPPING_CASES)
def test_early_stopping_is_scikit_learns(Estimator, tol, patience, max_iter, expected):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 4))
    y = rng.integers(0, 3, 200) if Estimator is MLPClassifier else X[:, 0] - X[:, 1] + 0.5 * rng.standard_normal(200)
    est = Estimator(
        hidden_layer_sizes=(16,),
        learning_rate_init=0.01,
        max_iter=max_iter,
        tol=tol,
        n_iter_no_change=patience,
        early_stopping=True,
        validation_fraction=0.2,
        random_state=0,
    ).fit(X, y)
    scores = est.validation_scores_
    assert len(scores) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(scores)
    stop = _scikit_learn_stop(scores, tol, patience)
    if est.n_iter_ < max_iter:  # stopped exactly where scikit-learn's rule says
        assert stop == est.n_iter_
    else:
        assert stop in (None, max_iter)
    if expected is not None:
        assert est.n_iter_ == expected
    else:
        assert est.n_iter_ < max_iter
    # the kept parameters are the best epoch's: they score best_validation_score_ on the held-out rows
    # scikit-learn's split: random_state draws the initial weights (layer by layer, weights then
    # biases), then splits, stratified only for one output (3 classes have 3)
    rs = np.random.RandomState(0)
    n_out = 3 if Estimator is MLPClassifier else 1
    for fan_in, fan_out in ((4, 16), (16, n_out)):
        rs.uniform(size=(fan_in, fan_out)), rs.uniform(size=fan_out)
    _, X_val, _, y_val = train_test_split(X, y, test_size=0.2, random_state=rs)
    held_out = est.score(X_val, y_val) if Estimator is MLPClassifier else r2_score(y_val, est.predict(X_val))
    assert held_out == pytest.approx(est.best_validation_score_, abs=1e-12)
    # accuracy for the classifier, R^2 for the regressor
    assert all(0 <= s <= 1 for s in scores) if Estimator is MLPClassifier else all(s <= 1 for s in scores)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_without_early_stopping_there_are_no_validation_scores(Estimator):
    X, y_class, y_reg = _data()
    est = Estimator(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(
        X, y_class if Estimator is MLPClassifier else y_reg
    )
    assert est.validation_scores_ is None and est.best_validation_score_ is None  # as scikit-learn's


OUTPUT_CASES = [
    # (labels passed, expected out_activation_, outputs)
    ([0, 1], "logistic", 1),
    (["a", "b"], "logistic", 1),
    ([0, 1, 2], "softmax", 3),
    ([7], "logistic", 1),  # one class: scikit-learn fits it (a sigmoid that learns "not the class")
]


@pytest.mark.parametrize("classes,output,n_outputs", OUTPUT_CASES)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_outputs_and_a_single_class_as_scikit_learns(classes, output, n_outputs, method):
    from sklearn.neural_network import MLPClassifier as ScikitLearnMLPClassifier

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = np.array(classes)[np.arange(30) % len(classes)]
    ours = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    theirs = ScikitLearnMLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    for clf in (ours, theirs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y) if method == "fit" else clf.partial_fit(X, y, classes=classes)
    assert ours.out_activation_ == theirs.out_activation_ == output and ours.n_outputs_ == n_outputs
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-10)
    if len(classes) > 1:
        assert np.allclose(ours.predict_proba(X).sum(axis=1), 1)
    else:
        assert (ours.predict(X) == classes[0]).all()


@pytest.mark.parametrize("tol,patience", [(1e-2, 2), (1e-4, 3)])
def test_without_a_validation_split_training_stops_by_scikit_learns_rule(tol, patience):
    """The training loss, more than n_iter_no_change epochs without beating the best by tol;
    replayed on loss_curve_, the rule must fire at the last epoch (or never, at max_iter)."""
    X, y, _ = _data()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, tol=tol, n_iter_no_change=patience, random_state=0).fit(
        X, y
    )
    best, count, stop = float("inf"), 0, None
    for i, loss in enumerate(clf.loss_curve_):
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        if count > patience:
            stop = i
            break
    assert (stop == len(clf.loss_curve_) - 1) if stop is not None else clf.n_iter_ == 200
    assert clf.n_iter_ == len(clf.loss_curve_)
