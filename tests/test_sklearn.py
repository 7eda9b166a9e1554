"""scikit-learn's own estimator checks on both estimators (numpy and array_api_strict backends),
pipelines, cross-validation and grid search, agreement with ab.MLP, and pickling."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import anybackprop as ab  # noqa: E402
from anybackprop import datasets  # noqa: E402
from anybackprop.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ESTIMATORS = [
    MLPClassifier(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01, random_state=0),
    MLPRegressor(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01, random_state=0),
    MLPClassifier(
        hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01, random_state=0, backend="array_api_strict"
    ),
    MLPRegressor(
        hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01, random_state=0, backend="array_api_strict"
    ),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_importing_anybackprop_does_not_import_sklearn():
    code = "import sys, anybackprop; print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_pipeline_cross_validation_and_grid_search_on_digits():
    X, y = datasets.digits()
    pipe = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=30, learning_rate_init=3e-3, random_state=0)
    )
    # shuffled folds: the file's order groups writers, which makes unshuffled folds harder for any
    # model (scikit-learn's own MLPClassifier with these settings scores the same 0.968 / 0.934)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, X, y, cv=cv)
    assert scores.mean() >= 0.95
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=cv)
    grid.fit(X, y)
    assert grid.best_score_ >= 0.95 and grid.best_params_["mlpclassifier__alpha"] in (1e-4, 1e-2)


@pytest.mark.parametrize("solver,optimizer", [("sgd", "sgd"), ("adam", "adam")])
def test_agrees_with_ab_mlp_fit(solver, optimizer, rng):
    X, y = rng.standard_normal((120, 5)), rng.integers(0, 3, 120)
    clf = MLPClassifier(
        hidden_layer_sizes=(8, 6),
        solver=solver,
        alpha=0.0,
        batch_size=20,
        learning_rate_init=0.05,
        max_iter=7,
        random_state=3,
        tol=0.0,
        n_iter_no_change=100,
        backend="numpy",
    ).fit(X, y)
    with ab.use_backend("numpy"):
        model = ab.MLP([5, 8, 6, 3], activation="relu", output="softmax", seed=3, dtype="float64")
        model.fit(
            X, y, epochs=7, batch_size=20, optimizer=optimizer, lr=0.05, seed=3, early_stopping=100, verbose=False
        )
    for i, (coef, intercept) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True), start=1):
        np.testing.assert_array_equal(coef, ab.to_numpy(model.params[f"W{i}"]))
        np.testing.assert_array_equal(intercept, ab.to_numpy(model.params[f"b{i}"]))
    assert clf.n_iter_ == 7 and len(clf.loss_curve_) == 7


def test_string_labels_binary_and_pickle_round_trip(rng):
    X = rng.standard_normal((80, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    clf = MLPClassifier(
        hidden_layer_sizes=(8,), max_iter=50, learning_rate_init=0.02, random_state=1, backend="array_api_strict"
    ).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"] and clf.score(X, y) > 0.9
    assert isinstance(clf.predict(X), np.ndarray) and clf.predict_proba(X).shape == (80, 2)
    restored = pickle.loads(pickle.dumps(clf))
    assert "_model" not in restored.__dict__ and all(isinstance(c, np.ndarray) for c in restored.coefs_)
    with ab.use_backend("numpy"):
        np.testing.assert_array_equal(restored.predict(X), clf.predict(X))


def test_regressor_multi_output_and_partial_fit(rng):
    X = rng.uniform(-1, 1, (200, 3))
    Y = np.c_[X @ [1.0, -1.0, 0.5], X[:, 0] * 2]
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=200, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (200, 2) and reg.score(X, Y) > 0.95
    online = MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)
    losses = [online.partial_fit(X, Y[:, 0]).loss_curve_[-1] for _ in range(20)]
    assert losses[-1] < losses[0] and online.n_iter_ == 20


def test_early_stopping_uses_a_validation_split(rng):
    X, y = rng.standard_normal((300, 4)), rng.integers(0, 2, 300)  # noise: validation stops improving
    clf = MLPClassifier(
        hidden_layer_sizes=(32,),
        max_iter=200,
        learning_rate_init=0.01,
        early_stopping=True,
        n_iter_no_change=5,
        random_state=0,
    ).fit(X, y)
    assert clf.n_iter_ < 200 and len(clf.validation_loss_curve_) == clf.n_iter_


@pytest.mark.parametrize(
    "params,pattern",
    [
        ({"solver": "lbfgs"}, r"The 'solver' parameter of MLPClassifier must be a str among .*Got 'lbfgs' instead"),
        ({"activation": "gelu"}, r"The 'activation' parameter of MLPClassifier .*Got 'gelu' instead"),
        ({"hidden_layer_sizes": (0,)}, r"The 'hidden_layer_sizes' parameter of MLPClassifier must be an int >= 1"),
        ({"batch_size": 0}, r"The 'batch_size' parameter of MLPClassifier must be a str among \{'auto'\} or an int"),
        ({"backend": "tensorflow"}, r"The 'backend' parameter of MLPClassifier .*Got 'tensorflow' instead"),
    ],
)
def test_bad_parameters_fail_at_fit(params, pattern):
    clf = MLPClassifier(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=pattern):
        clf.fit(np.zeros((4, 2)), [0, 1, 0, 1])


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_integer_sample_weight_equals_repeated_rows(solver, rng):
    X, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    w = rng.integers(1, 4, 30)
    rep = np.repeat(np.arange(30), w)
    params = dict(
        hidden_layer_sizes=(8,),
        solver=solver,
        batch_size=1000,
        learning_rate_init=0.05,
        max_iter=15,
        tol=0.0,
        n_iter_no_change=100,
        random_state=0,
        backend="numpy",
    )
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**params).fit(X[rep], y[rep])
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)
    unweighted = MLPClassifier(**params).fit(X, y)
    assert not np.allclose(unweighted.predict_proba(X), weighted.predict_proba(X))


def test_partial_fit_accepts_sample_weight(rng):
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    w = rng.integers(1, 3, 40)
    rep = np.repeat(np.arange(40), w)
    a = MLPClassifier(
        hidden_layer_sizes=(6,), batch_size=1000, learning_rate_init=0.05, random_state=0, backend="numpy"
    )
    b = MLPClassifier(
        hidden_layer_sizes=(6,), batch_size=1000, learning_rate_init=0.05, random_state=0, backend="numpy"
    )
    for _ in range(3):
        a.partial_fit(X, y, classes=[0, 1], sample_weight=w)
        b.partial_fit(X[rep], y[rep], classes=[0, 1])
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-8, atol=1e-10)
    reg = MLPRegressor(hidden_layer_sizes=(6,), learning_rate_init=0.01, random_state=0)
    reg.partial_fit(X, X[:, 0], sample_weight=np.ones(40))
    assert reg.n_iter_ == 1
    with pytest.raises(ValueError, match="sample_weight"):
        MLPClassifier(random_state=0).fit(X, y, sample_weight=np.ones(39))
    with pytest.raises(ValueError, match="sample_weight"):
        MLPClassifier(random_state=0).fit(X, y, sample_weight=-np.ones(40))


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_estimators_take_dropout_and_norm_and_survive_pickling(norm):
    X, y = datasets.digits()
    X_train, X_test, y_train, y_test = datasets.train_test_split(StandardScaler().fit_transform(X), y, 0.3, seed=0)
    clf = MLPClassifier(
        hidden_layer_sizes=(32,), max_iter=20, learning_rate_init=3e-3, random_state=0, dropout=0.1, norm=norm
    )
    clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.93
    assert {"gamma1", "beta1"} <= set(clf.params_) and (set(clf.state_) == {"running_mean1", "running_var1"}) == (
        norm == "batch"
    )
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X_test), clf.predict_proba(X_test))
    with pytest.raises(ValueError, match=r"The 'norm' parameter of MLPClassifier .*Got 'group' instead"):
        MLPClassifier(norm="group").fit(X_train[:50], y_train[:50])
