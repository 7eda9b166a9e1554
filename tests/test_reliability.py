"""Nothing silent: one table per class of defect (issue "nothing silent, nothing lost"), each row an
input, the exception or value expected, and the message pattern."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import datasets


def _run(code, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


# --- class 1: silent wrong numbers -----------------------------------------------------------------


def _uint8_labels_with_300_classes():
    y = np.array([5, 255, 0], dtype=np.uint8)
    model = ab.MLP([2, 300], seed=0, dtype="float64")
    onehot = ab.to_numpy(model.check_data(np.zeros((3, 2)), y)[1])
    return onehot.sum(axis=1).tolist(), onehot.argmax(axis=1).tolist()


def _constant_target_perfect_fit():
    model = ab.MLP([1, 1], activation=[], output="identity", dtype="float64")
    model.set_params({"W1": [[0.0]], "b1": [3.0]})
    return model.score(np.ones((4, 1)), np.full(4, 3.0)), model.score(np.ones((4, 1)), np.full(4, 3.5))


CLASS1 = {
    "uint8 labels, 300 classes: one hot entry each": (
        _uint8_labels_with_300_classes,
        None,
        ([1.0, 1.0, 1.0], [5, 255, 0]),
    ),
    "R^2 of a perfect fit to a constant target": (_constant_target_perfect_fit, None, (1.0, 0.0)),
    "1e39 into a float32 model": (
        lambda: ab.MLP([2, 2]).predict(np.array([[1.0, 1e39]])),
        ValueError,
        r"X has the value 1e\+39 at row 0, column 1, beyond the largest float32 \(3.40282e\+38\)",
    ),
    "targets beyond float32": (
        lambda: ab.MLP([1, 1], output="identity").loss(np.ones((2, 1)), [1.0, -1e40]),
        ValueError,
        r"y has the value -1e\+40 at row 1, column 0, beyond the largest float32",
    ),
    "NaN parameters": (
        lambda: ab.MLP([2, 2]).set_params({"W1": np.full((2, 2), np.nan), "b1": np.zeros(2)}),
        ValueError,
        r"params\['W1'\] contains NaN at row 0, column 0",
    ),
    "infinite running average": (
        lambda: ab.MLP([2, 3, 2], norm="batch").set_state({"running_mean1": [0, np.inf, 0], "running_var1": [1, 1, 1]}),
        ValueError,
        r"state\['running_mean1'\] contains infinity at row 1",
    ),
    "gradcheck eps=0": (
        lambda: ab.gradcheck(ab.MLP([2, 2]), np.ones((2, 2)), [0, 1], eps=0),
        ValueError,
        r"eps must be a finite number > 0, got 0",
    ),
    "gradcheck eps=nan": (
        lambda: ab.gradcheck(ab.MLP([2, 2]), np.ones((2, 2)), [0, 1], eps=float("nan")),
        ValueError,
        r"eps must be a finite number > 0",
    ),
    "a schedule going negative": (
        lambda: ab.MLP([2, 2]).fit(np.ones((4, 2)), [0, 1, 0, 1], schedule=lambda e, n: -1.0, verbose=False),
        ValueError,
        r"schedule returned -1.0 for epoch 0; expected a finite factor >= 0",
    ),
    "a schedule giving NaN": (
        lambda: ab.MLP([2, 2]).fit(np.ones((4, 2)), [0, 1, 0, 1], schedule=lambda e, n: float("nan"), verbose=False),
        ValueError,
        r"schedule returned nan for epoch 0",
    ),
    "split of a float regression target": (
        lambda: [len(p) for p in datasets.train_test_split(np.zeros((10, 1)), np.linspace(0, 1, 10))],
        None,
        [8, 2, 8, 2],
    ),
    "a split leaving the training part empty": (
        lambda: datasets.train_test_split(np.zeros((2, 1)), np.arange(2), 0.9, stratify=False),
        ValueError,
        r"test_size=0.9 of 2 rows leaves the training part empty",
    ),
    "a single-output softmax": (
        lambda: ab.MLP([3, 1], output="softmax"),
        ValueError,
        r"a softmax output needs at least 2 units .* got 1; use output='sigmoid'",
    ),
    "odd n for spirals": (lambda: [a.shape for a in datasets.spirals(7)], None, [(7, 2), (7,)]),
}


def _diverge_in_the_last_update():
    """One batch per epoch: the epoch's loss comes from logits before the update that blows up."""
    model = ab.MLP([2, 4, 2], seed=0)
    before = {k: ab.to_numpy(v).copy() for k, v in model.params.items()}
    X, y = np.random.default_rng(0).standard_normal((8, 2)), np.arange(8) % 2
    try:
        with np.errstate(all="ignore"):  # the overflow is the point
            model.fit(
                X, y, epochs=1, batch_size=8, optimizer="sgd", lr=100.0, schedule=lambda e, n: 1e38, verbose=False
            )
    except ValueError as exc:
        same = all(np.array_equal(ab.to_numpy(model.params[k]), before[k]) for k in before)
        return str(exc).split(";")[:2], same
    return "no error", None


def _diverge_in_validation_only():
    model = ab.MLP([2, 4, 2], seed=0)
    X, y = np.random.default_rng(0).standard_normal((8, 2)), np.arange(8) % 2
    seen = []
    try:
        with np.errstate(all="ignore"):  # the overflow is the point
            model.fit(
                X,
                y,
                epochs=3,
                batch_size=4,
                validation_data=(np.full((2, 2), 3e38), [0, 1]),
                verbose=False,
                callbacks=[lambda epoch, history, m: seen.append(epoch)],
            )
    except ValueError as exc:
        finite = all(np.isfinite(ab.to_numpy(v)).all() for v in model.params.values())
        return str(exc).split(";")[0], finite, seen
    return "no error", None, seen


CLASS1["a blow-up in the last update"] = (
    _diverge_in_the_last_update,
    None,
    (
        [
            "training diverged at epoch 1: the largest parameter is inf",
            " the model keeps its parameters from before training",
        ],
        True,
    ),
)
CLASS1["a divergence seen only in the validation loss"] = (
    _diverge_in_validation_only,
    None,
    ("training diverged at epoch 1: the val_loss is nan", True, []),
)


@pytest.mark.parametrize("case", list(CLASS1))
def test_class1_no_silent_wrong_numbers(case):
    call, exception, expected = CLASS1[case]
    if exception is None:
        assert call() == expected
    else:
        with pytest.raises(exception, match=expected):
            call()


def test_the_finite_check_cannot_overflow_itself():
    from anybackprop.validation import check_X

    X = np.full((3, 2), 1e307)  # finite; their sum is not
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(check_X(ab.backend.create_backend("numpy"), X, 2, np.float64), X)


# --- class 4: clear errors, not raw Python ones ----------------------------------------------------

CLASS4 = {
    "loss as a list": (lambda: ab.MLP([2, 2], loss=["mse"]), ValueError, r"unknown loss \['mse'\]; accepted values"),
    "activation as a list of one for no hidden layer": (
        lambda: ab.MLP([2, 3, 2], activation=[["relu"]]),
        ValueError,
        r"unknown activation \['relu'\]",
    ),
    "output as a list": (lambda: ab.MLP([2, 2], output=["softmax"]), ValueError, r"unknown activation \['softmax'\]"),
    "norm as a list": (
        lambda: ab.MLP([2, 3, 2], norm=["batch"]),
        ValueError,
        r"unknown norm \['batch'\]; accepted values: batch, layer",
    ),
    "dataset as a list": (lambda: datasets.load(["digits"]), ValueError, r"unknown dataset \['digits'\]"),
    "a ragged list": (
        lambda: ab.MLP([2, 2]).predict([[1.0, 2.0], [3.0]]),
        ValueError,
        r"X is not a rectangular array of numbers \(a ragged or mixed nested list\?\)",
    ),
    "scipy sparse input": (
        lambda: ab.MLP([3, 2]).predict(pytest.importorskip("scipy.sparse").csr_matrix(np.eye(3))),
        TypeError,
        r"X is a sparse matrix \(csr_matrix\); sparse input is not supported; call .toarray\(\)",
    ),
    "gradcheck of a string": (
        lambda: ab.gradcheck("x", np.ones((2, 2)), [0, 1]),
        TypeError,
        r"gradcheck expects an anybackprop model \(MLP or Sequential\), got str",
    ),
    "gradcheck mode as a list": (
        lambda: ab.gradcheck(ab.MLP([2, 2]), np.ones((2, 2)), [0, 1], mode=["full"]),
        ValueError,
        r"unknown mode \['full'\]",
    ),
}


@pytest.mark.parametrize("case", list(CLASS4))
def test_class4_clear_errors(case):
    call, exception, pattern = CLASS4[case]
    with pytest.raises(exception, match=pattern):
        call()


def test_torch_inputs_that_require_grad_train_on_a_detached_copy_and_negative_strides_work():
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(0).standard_normal((8, 3))
    with ab.use_backend("torch"):
        model = ab.MLP([3, 2], activation=[], output="identity", dtype="float64")
        Xt = torch.tensor(X, requires_grad=True)
        model.fit(Xt, torch.tensor(X[:, :2]), epochs=2, verbose=False)
        assert not any(p.requires_grad for p in model.params.values()) and Xt.grad is None
        assert model.loss(X[::-1], X[::-1, :2]) == pytest.approx(model.loss(X[::-1].copy(), X[::-1, :2].copy()))


@pytest.mark.parametrize(
    "env,pattern",
    [
        ({"ANYBACKPROP_DEVICE": "gpu"}, r"ANYBACKPROP_DEVICE='gpu' is not a device of the numpy backend"),
        (
            {"ANYBACKPROP_BACKEND": "array_api_strict", "ANYBACKPROP_DEVICE": "TPU"},
            r"ANYBACKPROP_DEVICE='TPU' is not a device of the array_api_strict backend",
        ),
        ({"ANYBACKPROP_DTYPE": "float16"}, r"ANYBACKPROP_DTYPE='float16' is not a float dtype"),
    ],
)
def test_environment_errors_name_the_variable_that_is_wrong(env, pattern):
    result = _run("import anybackprop as ab; ab.MLP([2, 2])", **env)
    assert result.returncode == 1 and "ANYBACKPROP_BACKEND=" not in result.stderr.splitlines()[-1]
    assert pytest.importorskip("re").search(pattern, result.stderr), result.stderr


# --- class 6: process-level behaviour ----------------------------------------------------------------


def test_set_backend_is_the_process_default_and_use_backend_stays_local():
    seen = {}
    ab.set_backend("array_api_strict")
    worker = threading.Thread(target=lambda: seen.setdefault("thread", ab.get_backend().name))
    worker.start()
    worker.join()
    assert seen["thread"] == "array_api_strict"
    with ab.use_backend("numpy"):
        inner = threading.Thread(target=lambda: seen.setdefault("inner", ab.get_backend().name))
        inner.start()
        inner.join()
        assert ab.get_backend().name == "numpy"
    assert seen["inner"] == "array_api_strict"  # a use_backend block does not leak into other threads
    assert ab.get_backend().name == "array_api_strict"


def test_the_cli_called_from_python_leaves_the_callers_backend_alone(capsys):
    from anybackprop import cli

    before = ab.get_backend()
    assert cli.main(["gradcheck", "--backend", "array_api_strict"]) == 0
    assert ab.get_backend() is before
    assert "central differences in float64 on array_api_strict" in capsys.readouterr().out


def test_info_works_and_explains_when_the_environment_names_an_unusable_backend():
    result = _run("from anybackprop.cli import main; raise SystemExit(main(['info']))", ANYBACKPROP_BACKEND="no-such")
    assert result.returncode == 0, result.stderr
    assert "current backend: none usable: ANYBACKPROP_BACKEND='no-such' is not a backend" in result.stdout
    assert "  numpy             usable" in result.stdout


def test_ctrl_c_during_training_exits_130_with_one_line_and_no_file(tmp_path):
    model_path = tmp_path / "model.npz"
    code = (  # --validation-size 0: no early stop, the epochs really run
        "from anybackprop.cli import main; "
        "raise SystemExit(main(['train', '--epochs', '100000', '--validation-size', '0', '--quiet', "
        f"'--save', {str(model_path)!r}]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    time.sleep(4)  # imports, data, and into the epochs
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "anybackprop: interrupted"
    assert sorted(os.listdir(tmp_path)) == []


def test_a_closed_pipe_ends_quietly():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    result = subprocess.run(
        f"{sys.executable} -c "
        "\"from anybackprop.cli import main; raise SystemExit(main(['train', '--epochs', '200']))\" | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.stdout.startswith("digits: ") and result.stdout.count("\n") == 1
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr


# --- a property over the public API ----------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

ARGUMENTS = (
    "X",
    "y",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "sample_weight",
    "schedule",
    "weight_decay",
    "momentum",
)
_values = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, -np.inf, 1e39, 0.0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    X=arrays(np.float64, st.tuples(st.integers(0, 6), st.integers(1, 3)), elements=_values),
    labels=st.lists(st.integers(-1, 3), min_size=0, max_size=7),
    epochs=st.one_of(st.integers(-1, 3), st.just(1.5)),
    batch_size=st.one_of(st.integers(0, 8), st.just("8")),
    lr=st.one_of(st.floats(-1.0, 1e3), st.just(float("nan"))),
    optimizer=st.sampled_from(["sgd", "adam", "momentum", "nesterov", "rmsprop", ["adam"]]),
    weights=st.one_of(st.none(), st.lists(st.floats(-1.0, 3.0), min_size=0, max_size=7)),
)
def test_any_input_trains_to_finite_parameters_or_raises_naming_an_argument(
    X, labels, epochs, batch_size, lr, optimizer, weights
):
    model = ab.MLP([X.shape[1], 4, 3], seed=0, backend="numpy")
    try:
        with np.errstate(all="ignore"):
            model.fit(
                X,
                np.array(labels),
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                optimizer=optimizer,
                sample_weight=None if weights is None else np.array(weights),
                verbose=False,
            )
    except (ValueError, TypeError) as exc:
        assert any(name in str(exc) for name in ARGUMENTS), str(exc)
    else:
        assert all(np.isfinite(ab.to_numpy(p)).all() for p in model.params.values())


@pytest.mark.parametrize(
    "make,pattern",
    [
        (lambda: ab.Dense(0, 3), r"n_in must be a positive integer, got 0"),
        (lambda: ab.Dense(2, -1), r"n_out must be a positive integer, got -1"),
        (lambda: ab.BatchNorm(True), r"n must be a positive integer, got True"),
        (lambda: ab.Dropout(2.5, 0.1), r"n must be a positive integer, got 2.5"),
    ],
)
def test_layer_sizes_are_checked(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def _tampered_table_model(tmp_path, change):
    """A table model saved by the CLI, its metadata edited as a hostile file would be."""
    from anybackprop import cli

    csv = tmp_path / "t.csv"
    csv.write_text("a,c,y\n" + "".join(f"{i % 7},{'uv'[i % 2]},{i % 2}\n" for i in range(40)))
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(csv),
                "--target",
                "y",
                "--epochs",
                "1",
                "--quiet",
                "--save",
                str(tmp_path / "m.npz"),
            ]
        )
        == 0
    )
    return _tampered(tmp_path, tmp_path / "m.npz", change)


def _tampered(tmp_path, saved, change):
    import json
    import zipfile

    with zipfile.ZipFile(saved) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta_name = "__anybackprop__.npy"
    meta = json.loads(str(np.lib.format.read_array(__import__("io").BytesIO(members[meta_name]))))
    change(meta)
    buffer = __import__("io").BytesIO()
    np.lib.format.write_array(buffer, np.array(json.dumps(meta)))
    members[meta_name] = buffer.getvalue()
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return tmp_path / "bad.npz"


def _columns(meta):
    table = meta["table"]
    return table["encoder"]["columns"]


@pytest.mark.parametrize(
    "change",
    [
        lambda meta: _columns(meta)[0].pop("fill"),
        lambda meta: _columns(meta)[1].__setitem__("categories", "uv"),
        lambda meta: _columns(meta)[0].__setitem__("name", 3),
    ],
    ids=["numeric fill removed", "categories a string", "a column name not a string"],
)
def test_a_tampered_model_file_is_refused_at_load(tmp_path, change):
    path = _tampered_table_model(tmp_path, change)
    with pytest.raises(ValueError, match=rf"{path} is not a valid anybackprop model file"):
        ab.load(path)


def test_a_saved_layer_of_zero_inputs_is_refused_at_load(tmp_path):
    ab.save(ab.Sequential([ab.Dense(3, 4, "relu"), ab.Dense(4, 2)]), tmp_path / "s.npz")
    path = _tampered(tmp_path, tmp_path / "s.npz", lambda meta: meta["layers"][1]["config"].__setitem__("n_in", 0))
    with pytest.raises(
        ValueError, match=rf"{path} is not a valid anybackprop model file: .*n_in must be a positive integer, got 0"
    ):
        ab.load(path)
