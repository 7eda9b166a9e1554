"""scikit-learn's own estimator checks on both estimators (numpy and array_api_strict backends),
pipelines, cross-validation and grid search, agreement with ab.MLP, and pickling."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
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


PARITY_CASES = [
    # (estimator, solver, extra parameters): the same call trains the same model as scikit-learn's
    ("classifier", "sgd", {}),  # momentum 0.9 with Nesterov, as scikit-learn's default
    ("classifier", "sgd", {"nesterovs_momentum": False, "learning_rate": "invscaling", "power_t": 0.25}),
    ("classifier", "sgd", {"momentum": 0.0, "learning_rate": "adaptive", "tol": 1.0, "n_iter_no_change": 1}),
    ("classifier", "adam", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6}),
    ("classifier", "adam", {"epsilon": 0.1}),  # where epsilon enters shows only when it is large
    ("classifier", "adam", {"shuffle": False, "activation": "tanh"}),
    ("classifier", "adam", {"early_stopping": True, "validation_fraction": 0.2}),
    ("classifier", "lbfgs", {"activation": "logistic"}),
    ("multilabel", "adam", {}),
    ("multilabel", "lbfgs", {}),
    ("regressor", "sgd", {"learning_rate_init": 0.01}),
    ("regressor", "adam", {"early_stopping": True}),
    ("regressor", "adam", {"alpha": 0.0}),
    # one output: with several, scikit-learn's L-BFGS objective (its loss averaged over the outputs)
    # disagrees with the gradient it passes (summed), where ours is the sum's (see the README)
    ("regressor1", "lbfgs", {"activation": "tanh"}),
    ("poisson", "adam", {"learning_rate_init": 0.01}),
]


@pytest.mark.parametrize("kind,solver,extra", PARITY_CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_trains_what_scikit_learns_mlp_trains(kind, solver, extra, weighted, rng):
    """Same initial weights, batch order, solver, L2 term and stopping: the same weights, bit for
    bit but for float rounding, on every solver, with and without sample weights."""
    from sklearn.neural_network import MLPClassifier as SkClassifier
    from sklearn.neural_network import MLPRegressor as SkRegressor

    X = rng.standard_normal((90, 5))
    y = {
        "classifier": rng.integers(0, 3, 90),
        "multilabel": (X[:, :3] + rng.standard_normal((90, 3)) > 0).astype(int),
        "regressor": X @ rng.standard_normal((5, 2)),
        "regressor1": X @ rng.standard_normal(5),
        "poisson": rng.poisson(np.exp(0.3 * X[:, 0])),
    }[kind]
    sample_weight = rng.integers(1, 4, 90).astype(float) if weighted else None
    params = dict(hidden_layer_sizes=(7, 4), solver=solver, batch_size=32, max_iter=12, random_state=5, **extra)
    if kind == "poisson":
        params["loss"] = "poisson"
    ours, theirs = (
        (MLPRegressor(**params), SkRegressor(**params))
        if kind in ("regressor", "regressor1", "poisson")
        else (MLPClassifier(**params), SkClassifier(**params))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y, sample_weight=sample_weight)
        theirs.fit(X, y, sample_weight=sample_weight)
    assert ours.n_iter_ == theirs.n_iter_ and ours.out_activation_ == theirs.out_activation_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-7, atol=1e-9)
    if solver != "lbfgs":
        assert ours.t_ == theirs.t_ and len(ours.loss_curve_) == len(theirs.loss_curve_)
        # the L2 term with the weights as the epoch ends, not as each minibatch begins
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)
    if extra.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)


def test_string_labels_binary_and_pickle_round_trip(rng):
    X = rng.standard_normal((80, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    clf = MLPClassifier(
        hidden_layer_sizes=(8,), max_iter=150, learning_rate_init=0.02, random_state=1, backend="array_api_strict"
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
    assert losses[-1] < losses[0] and online.t_ == 20 * 200


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
    assert clf.n_iter_ < 200 and len(clf.validation_scores_) == clf.n_iter_


@pytest.mark.parametrize(
    "params,pattern",
    [
        ({"solver": "newton"}, r"The 'solver' parameter of MLPClassifier must be a str among .*Got 'newton' instead"),
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


def test_lbfgs_is_scipys_on_every_backend(backend, rng):
    """L-BFGS runs scipy's L-BFGS-B on the host with the loss and gradient from the backend:
    the same iterates as scikit-learn's (scipy on NumPy) on every backend."""
    from sklearn.neural_network import MLPRegressor as SkRegressor

    X = rng.standard_normal((40, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    params = dict(solver="lbfgs", hidden_layer_sizes=(6,), activation="tanh", max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPRegressor(**params).fit(X, y)
        theirs = SkRegressor(**params).fit(X, y)
    assert ours._get_model().backend.name == backend.name
    assert ours.n_iter_ == theirs.n_iter_ and ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


def test_early_stopping_uploads_the_rows_once(monkeypatch, rng):
    """The training rows and the held-out rows go to the device once per fit, not every epoch."""
    X, y = rng.standard_normal((100, 6)), rng.integers(0, 2, 100)
    uploads = []
    upload = ab.Backend.asarray

    def spy(self, x, dtype=None, *, name="array"):
        if getattr(x, "ndim", 0) == 2 and x.shape[1] == 6:
            uploads.append(tuple(x.shape))
        return upload(self, x, dtype, name=name)

    monkeypatch.setattr(ab.Backend, "asarray", spy)
    for max_iter in (3, 20):
        uploads.clear()
        MLPClassifier(
            hidden_layer_sizes=(4,),
            early_stopping=True,
            max_iter=max_iter,
            n_iter_no_change=100,
            random_state=0,
            backend="array_api_strict",
        ).fit(X, y)
        assert sorted(uploads) == [(10, 6), (90, 6)]


def test_multilabel_targets_train_one_sigmoid_per_label(rng):
    X = rng.standard_normal((120, 4))
    Y = np.c_[X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < 0.5].astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=300, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3 and list(clf.classes_) == [0, 1, 2]
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 3) and not np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.predict(X), (proba > 0.5).astype(int))
    assert clf.score(X, Y) > 0.95  # subset accuracy, every label of a row right


def test_poisson_regressor_refuses_negative_targets():
    with pytest.raises(ValueError, match=r"^y has a value -2\.0; loss='poisson' needs targets y >= 0$"):
        MLPRegressor(loss="poisson").fit(np.zeros((3, 2)), [1.0, -2.0, 0.0])


def test_lbfgs_verbose_and_a_warm_start_with_another_solver(rng, capsys):
    X = rng.standard_normal((50, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=3, verbose=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        assert "Iteration 3, loss = " in capsys.readouterr().out
        first = clf.coefs_[0].copy()
        clf.set_params(solver="sgd", warm_start=True, early_stopping=True, verbose=False).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.validation_scores_) == 3 and clf.best_loss_ is None
    assert not np.array_equal(clf.coefs_[0], first)
