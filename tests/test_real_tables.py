"""Real tables, handled right (issue 18): one table of cases per class of defect.

The tables are scikit-learn's bundled datasets written to CSV (nobody here wrote them) and small
files that each hold one of the problems users meet: missing values of every kind, huge integer
labels, odd encodings and delimiters, broken rows, ID-like columns. Expected figures come from
NumPy or scikit-learn, never from the code under test."""

import json
import math
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import datasets
from anybackprop.tablefiles import READERS, read_table
from anybackprop.tables import TableEncoder, TabularModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = {"epochs": 2, "batch_size": 32, "verbose": False, "optimizer": "adam"}


def cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "anybackprop.cli", *map(str, args)], capture_output=True, text=True, env=env
    )


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def sklearn_csv(tmp_path, name):
    """A scikit-learn bundled dataset as a CSV file written by pandas (iris with species names)."""
    sk = pytest.importorskip("sklearn.datasets")
    bunch = getattr(sk, f"load_{name}")(as_frame=True)
    frame = bunch.frame
    if name == "iris":
        frame["target"] = np.asarray(bunch.target_names)[bunch.target]
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def readers():
    """The CSV readers usable here (pyarrow only when installed)."""
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return ["csv"]
    return list(READERS)


def small_model(**options):
    return TabularModel([8], seed=0, **options)


# --- 1. silent wrong answers --------------------------------------------------------------------


def missing_text_values(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    for gap in (np.nan, None, pd.NA):
        colour = np.array(["red", gap, "blue", "red"], dtype=object)
        columns = {"colour": colour, "size": np.arange(4.0)}
        with pytest.raises(ValueError, match=r"column 'colour' has a missing value in data row 2 \(1 in all\)"):
            small_model().fit(columns, np.array([0, 1, 0, 1]), **FAST)
        model = small_model(impute="most_frequent")
        model.fit(columns, np.array([0, 1, 0, 1]), **FAST)
        assert model.encoder.columns[0]["categories"] == ["blue", "red"]  # no "nan", "None" or "<NA>" category
        assert model.encoder.filled == {"colour": 1}
        np.testing.assert_array_equal(model.encode(columns)[1, :2], [0.0, 1.0])  # filled with "red"
    path = write(tmp_path / "gap.csv", "colour,size,y\nred,1,0\n,2,1\nblue,3,0\nred,4,1\n")
    columns, y = datasets.load_table(path, "y")
    with pytest.raises(ValueError, match=rf"column 'colour' has a missing value in line 3 of {path}"):
        small_model().fit(columns, y, **FAST)


def missing_labels(tmp_path, capsys):
    columns = {"x": np.arange(4.0)}
    for y in (np.array(["a", None, "b", "a"], dtype=object), np.array([0.0, 1.0, np.nan, 1.0])):
        with pytest.raises(ValueError, match=r"target 'label' has a missing value in data row \d"):
            small_model().fit(columns, y, target="label", **FAST)
    path = write(tmp_path / "nolabel.csv", "x,label\n1,a\n2,\n3,b\n")
    with pytest.raises(ValueError, match=rf"target 'label' has a missing value in line 3 of {path}"):
        datasets.load_table(path, "label")


def integer_labels_keep_every_digit(tmp_path, capsys):
    big = [2**53, 2**53 + 1, 2**53 + 2]
    lines = "".join(f"{i % 7},{big[i % 3]},{2**60 + i}\n" for i in range(30))
    columns, y = datasets.load_table(write(tmp_path / "big.csv", "x,label,id\n" + lines), "label")
    assert y.dtype == np.int64 and sorted(set(y.tolist())) == big
    assert columns["id"].dtype == np.int64 and columns["id"][0] == 2**60  # integer columns keep their values
    model = small_model()
    model.fit({"x": columns["x"]}, y, **FAST)
    assert model.classes.tolist() == big
    huge = ["9223372036854775808", "9223372036854775809"]  # beyond int64: kept as written
    lines = "".join(f"{i},{huge[i % 2]}\n" for i in range(10))
    _, y = datasets.load_table(write(tmp_path / "huge.csv", "x,label\n" + lines), "label")
    assert sorted(set(y.tolist())) == huge


def numeric_labels_from_a_file_are_stratified(tmp_path, capsys):
    lines = "".join(f"{i},{int(i < 10)}\n" for i in range(100))
    columns, y = datasets.load_table(write(tmp_path / "rare.csv", "x,label\n" + lines), "label")
    for seed in range(6):
        _, _, y_train, y_test = datasets.split_table(columns, y, 0.2, seed=seed, stratify=True)
        assert (np.sum(y_test == 1), np.sum(y_train == 1)) == (2, 8), seed


def train_test_split_allocates_as_scikit_learn(tmp_path, capsys):
    model_selection = pytest.importorskip("sklearn.model_selection")
    for counts, test_size in (([3] * 10, 0.5), ([5, 17, 40], 0.25), ([2, 2, 9], 0.3), ([50, 7], 0.1)):
        y = np.repeat(np.arange(len(counts)), counts)
        X = np.arange(len(y))
        _, X_test, _, y_test = datasets.train_test_split(X, y, test_size, seed=1)
        splitter = model_selection.StratifiedShuffleSplit(1, test_size=test_size, random_state=0)
        _, reference = next(splitter.split(X, y))
        assert len(X_test) == len(reference)
        ours = sorted(np.bincount(y_test, minlength=len(counts)).tolist())
        assert ours == sorted(np.bincount(y[reference], minlength=len(counts)).tolist()), counts
    y = np.r_[np.repeat(np.arange(9), 3), [9]]
    with pytest.raises(ValueError, match="class 9 has a single row"):
        datasets.train_test_split(np.arange(len(y)), y, 0.5)


def standardisation_of_extreme_scales(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for scale in (1e30, 1e-30):
        X = rng.standard_normal((200, 3)) * scale + 2 * scale
        model = ab.MLP([3, 4, 2], standardize=True, dtype="float32")
        model.learn_preprocessing(model.backend.asarray(X, "float32"))
        np.testing.assert_allclose(ab.to_numpy(model.state["scale1"]), X.std(axis=0), rtol=1e-5)
        np.testing.assert_allclose(ab.to_numpy(model.state["mean1"]), X.mean(axis=0), rtol=1e-5)
    X = rng.standard_normal((100, 2)) * 1e30
    np.testing.assert_allclose(np.std(datasets.standardize(X)[0], axis=0), 1.0, rtol=1e-9)


def complex_numbers_are_refused(tmp_path, capsys):
    np.savez(tmp_path / "c.npz", X=np.ones((4, 2), dtype=complex), y=np.arange(4))
    with pytest.raises(TypeError, match="column 'x0' holds complex numbers"):
        read_table(tmp_path / "c.npz")
    with pytest.raises(TypeError, match="column 'z' holds complex numbers"):
        small_model().fit({"z": np.ones(4, dtype=complex)}, np.array([0, 1, 0, 1]), **FAST)


def early_stopping_never_sees_the_test_rows(tmp_path, capsys):
    path = sklearn_csv(tmp_path, "wine")
    out = cli(
        "train",
        "--data",
        path,
        "--target",
        "target",
        "--hidden",
        "8",
        "--epochs",
        "6",
        "--early-stopping",
        "2",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    test = math.ceil(0.2 * 178)
    validation = math.ceil(0.1 * (178 - test))
    assert result["rows"] == {"train": 178 - test - validation, "validation": validation, "test": test}
    assert result["test"]["rows"] == test and len(result["history"]["val_loss"]) == result["epochs"]
    refused = cli("train", "--data", path, "--target", "target", "--early-stopping", "2", "--validation-size", "0")
    assert refused.returncode == 2 and "--early-stopping needs a validation split" in refused.stderr


def resume_checks_the_fingerprint(tmp_path, capsys):
    sk = pytest.importorskip("sklearn.datasets")
    frame = sk.load_wine(as_frame=True).frame
    columns = {k: frame[k].to_numpy() for k in frame.columns if k != "target"}
    y = frame["target"].to_numpy()
    small_model().fit(columns, y, epochs=2, verbose=False, checkpoint=tmp_path / "c.ckpt")
    fewer = {k: v[:150] for k, v in columns.items()}
    with pytest.raises(ValueError, match=r"what differs: .*rows \(178 there, 150 here\); data \(they differ\)"):
        small_model().fit(fewer, y[:150], epochs=4, verbose=False, resume=tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match=r"encoding \(they differ\)"):
        small_model(impute="mean").fit(columns, y, epochs=4, verbose=False, resume=tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match=r"settings.lr \(None there, 0.5 here\)"):
        small_model().fit(columns, y, epochs=4, lr=0.5, verbose=False, resume=tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match=r"model.layer_sizes \(\[13, 8, 3\] there, \[13, 9, 3\] here\)"):
        TabularModel([9], seed=0).fit(columns, y, epochs=4, verbose=False, resume=tmp_path / "c.ckpt")
    history = small_model().fit(columns, y, epochs=4, verbose=True, resume=tmp_path / "c.ckpt")
    assert f"resumed from {tmp_path / 'c.ckpt'} at epoch 2" in capsys.readouterr().out and history.epochs == 4
    ab.MLP([13, 3]).fit(np.zeros((4, 13)), np.arange(4) % 3, epochs=1, verbose=False, checkpoint=tmp_path / "p.ckpt")
    with pytest.raises(ValueError, match="holds no fingerprint"):
        small_model().fit(columns, y, epochs=4, verbose=False, resume=tmp_path / "p.ckpt")


def labels_that_are_no_class(tmp_path, capsys):
    model = small_model()
    model.fit({"x": np.arange(6.0)}, np.array([0, 1, 2, 0, 1, 2]), **FAST)
    for y, shown in ((np.array([1.5]), "1.5"), (np.array(["a"]), "'a'"), (np.array([7]), "7")):
        with pytest.raises(ValueError, match=rf"the target holds {shown}, which is not one of the classes \[0, 1, 2\]"):
            model.encode_target(y)
    np.testing.assert_array_equal(model.encode_target(np.array([2.0, 1.0])), [2, 1])


SILENT = [
    labels_that_are_no_class,
    missing_text_values,
    missing_labels,
    integer_labels_keep_every_digit,
    numeric_labels_from_a_file_are_stratified,
    train_test_split_allocates_as_scikit_learn,
    standardisation_of_extreme_scales,
    complex_numbers_are_refused,
    early_stopping_never_sees_the_test_rows,
    resume_checks_the_fingerprint,
]


@pytest.mark.parametrize("case", SILENT, ids=lambda f: f.__name__)
def test_no_silent_wrong_answer(case, tmp_path, capsys):
    case(tmp_path, capsys)


# --- 2. a model file that is a model ------------------------------------------------------------


@pytest.fixture(scope="module")
def wine_model(tmp_path_factory):
    """A model written by ``anybackprop train --save`` on scikit-learn's wine table, its CSV
    file and the table's columns."""
    tmp = tmp_path_factory.mktemp("wine")
    path = sklearn_csv(tmp, "wine")
    options = ("--hidden", "16", "--epochs", "5", "--bins", "0")  # the network's parts, without the bins' choice
    out = cli("train", "--data", path, "--target", "target", *options, "--save", tmp / "m.npz")
    assert out.returncode == 0, out.stderr
    columns, y = datasets.load_table(path, "target")
    return ab.load(tmp / "m.npz"), tmp, columns, y


def model_parts(wine_model, tmp_path):
    model, _, columns, _ = wine_model
    assert isinstance(model, TabularModel) and model.network is not None
    assert model.layer_sizes == [13, 16, 3] and model.columns == list(columns)
    assert set(model.params) == {"W1", "b1", "W2", "b2"} and set(model.state) == {"center1", "scale1"}
    assert [layer.kind for layer in model.layers] == ["robust_scale", "dense", "dense"]  # --scaling robust
    assert ab.to_numpy(model.forward(columns)).shape == (178, 3)
    np.testing.assert_array_equal(model.encode(columns), np.column_stack(list(columns.values())))


def model_predicts_arrays_dicts_and_frames(wine_model, tmp_path):
    pd = pytest.importorskip("pandas")
    model, _, columns, _ = wine_model
    by_name = model.predict(columns)
    array = np.column_stack([columns[name] for name in model.columns])
    np.testing.assert_array_equal(model.predict(array), by_name)
    frame = pd.DataFrame({name: columns[name] for name in reversed(model.columns)})  # another order, by name
    np.testing.assert_array_equal(model.predict(frame), by_name)
    np.testing.assert_allclose(model.predict_proba(array), model.predict_proba(frame))
    with pytest.raises(ValueError, match=r"the data has 12 columns; expected 13, the training columns in order: alco"):
        model.predict(array[:, 1:])
    with pytest.raises(TypeError, match="a 2-D array of the training columns in order"):
        model.predict(array[0])


def every_model_has_a_summary(wine_model, tmp_path):
    model, *_ = wine_model
    text = model.summary()
    total = sum(int(np.prod(p.shape)) for p in model.params.values())
    assert "13 columns -> 13 features (missing values refused)" in text and "alcohol: number" in text
    assert f"trainable parameters: {total:,}" in text and "(m, 16)" in text
    layers = [ab.layers.Dense(4, 5, "tanh"), ab.layers.Dense(5, 2, "identity")]
    sequential = ab.Sequential(layers, "softmax")
    assert "trainable parameters: 37" in sequential.summary() and "dense(activation=tanh" in sequential.summary()
    sklearn = pytest.importorskip("anybackprop.sklearn")
    estimator = sklearn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(np.eye(4), np.arange(4.0))
    assert "trainable parameters: 19" in estimator.summary()


def tampered_table_sections_are_refused(wine_model, tmp_path):
    _, tmp, _, _ = wine_model
    with np.load(tmp / "m.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["__anybackprop__"]))
    for change, reason in (
        (lambda m: m["table"]["encoder"].update(impute="guess"), "unknown impute 'guess'"),
        (lambda m: m["table"]["encoder"]["columns"][0].update(kind="categorical", categories=["a"], other="yes"), ""),
        (lambda m: m["table"]["encoder"]["columns"][0].update(kind="categorical", categories=["a"], fill=3), ""),
        (lambda m: m["table"]["encoder"].update(max_categories=1), "max_categories"),
    ):
        bad = json.loads(json.dumps(meta))
        change(bad)
        np.savez(tmp_path / "bad.npz", **{**arrays, "__anybackprop__": np.array(json.dumps(bad))})
        with pytest.raises(ValueError, match=rf"is not a valid anybackprop model file: its table section .*{reason}"):
            ab.load(tmp_path / "bad.npz")


def tampered_fingerprints_are_refused_briefly(wine_model, tmp_path):
    _, _, columns, y = wine_model
    small_model().fit(columns, y, epochs=1, verbose=False, checkpoint=tmp_path / "c.ckpt")
    with np.load(tmp_path / "c.ckpt") as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["__meta__"]))
    meta["fingerprint"]["settings"]["lr"] = "x" * 100_000
    with open(tmp_path / "c.ckpt", "wb") as f:  # np.savez would add .npz to the name
        np.savez(f, **{**arrays, "__meta__": np.array(json.dumps(meta))})
    with pytest.raises(ValueError, match=r"settings.lr \('xxxx+\.\.\. there, None here\)") as caught:
        small_model().fit(columns, y, epochs=2, verbose=False, resume=tmp_path / "c.ckpt")
    assert len(str(caught.value)) < 400
    meta["fingerprint"] = ["not", "a", "dict"]
    with open(tmp_path / "c.ckpt", "wb") as f:  # np.savez would add .npz to the name
        np.savez(f, **{**arrays, "__meta__": np.array(json.dumps(meta))})
    with pytest.raises(ValueError, match="holds no fingerprint"):
        small_model().fit(columns, y, epochs=2, verbose=False, resume=tmp_path / "c.ckpt")


MODEL_FILE = [
    tampered_fingerprints_are_refused_briefly,
    model_parts,
    model_predicts_arrays_dicts_and_frames,
    every_model_has_a_summary,
    tampered_table_sections_are_refused,
]


@pytest.mark.parametrize("case", MODEL_FILE, ids=lambda f: f.__name__)
def test_a_model_file_is_a_model(case, wine_model, tmp_path):
    case(wine_model, tmp_path)


# --- 3. real files -------------------------------------------------------------------------------


def assert_same_table(found, expected):
    assert list(found) == list(expected)
    for name in expected:
        assert found[name].dtype == expected[name].dtype, name
        np.testing.assert_array_equal(found[name], expected[name], err_msg=name)


def readers_agree_on_scikit_learn_tables(wine_model, tmp_path):
    for name in ("wine", "iris", "diabetes", "breast_cancer"):
        path = sklearn_csv(tmp_path, name)
        reference = read_table(path, reader="csv")
        for reader in readers():
            assert_same_table(read_table(path, reader=reader), reference)
    iris = read_table(tmp_path / "iris.csv")
    assert iris["target"].dtype == object and iris["sepal length (cm)"].dtype == np.float64
    assert read_table(tmp_path / "wine.csv")["proline"].dtype == np.float64  # written as 1065.0 by pandas


BAD_FILES = {
    "ragged row": ("a,b\n1,2\n3\n", "line 3 of {path} has 1 fields, the header has 2"),
    "not UTF-8": (
        "a,b\ncaf\xe9,1\n",
        "{path} is not UTF-8 text (line 2 holds the byte 0xe9); give the file's encoding",
    ),
    "empty file": ("", "{path} is empty; expected a header row"),
    "header only": ("a,b\n", "{path} has a header but no data rows"),
    "infinity": ("a,b\n1,2\n3,inf\n", "column 'b' holds 'inf' (infinity) in line 3 of {path}"),
    "repeated name": ("a,a\n1,2\n", "{path} names the column(s) 'a' more than once"),
}


def bad_files_give_the_same_error_with_every_reader(wine_model, tmp_path):
    for label, (text, message) in BAD_FILES.items():
        path = tmp_path / f"{label.replace(' ', '_')}.csv"
        path.write_bytes(text.encode("latin-1"))
        for reader in readers():
            with pytest.raises(ValueError) as caught:
                read_table(path, reader=reader)
            assert message.format(path=path) in str(caught.value), (label, reader, str(caught.value))
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(ValueError, match=r"folder\.csv is a directory"):
        read_table(tmp_path / "folder.csv")


def delimiters_and_encodings(wine_model, tmp_path):
    expected = {"name": np.array(["café", "thé"], dtype=object), "price": np.array([2.5, 3.0])}
    for text, options in (
        ("name;price\ncafé;2,5\nthé;3\n".replace("2,5", "2.5"), {}),
        ("name\tprice\ncafé\t2.5\nthé\t3\n", {}),
        ("name|price\ncafé|2.5\nthé|3\n", {"delimiter": "|"}),
    ):
        for reader in readers():
            path = write(tmp_path / "d.csv", text, "latin-1")
            assert_same_table(read_table(path, encoding="latin-1", reader=reader, **options), expected)
    path = write(tmp_path / "semi.csv", "name;price;y\ncafé;2.5;0\nthé;3;1\n" * 10, "cp1252")
    out = cli("train", "--data", path, "--target", "y", "--epochs", "1", "--quiet")
    assert out.returncode == 2 and "is not UTF-8 text" in out.stderr and "--encoding" in out.stderr
    out = cli("train", "--data", path, "--target", "y", "--epochs", "1", "--quiet", "--encoding", "cp1252")
    assert out.returncode == 0, out.stderr


def bad_values_are_named_by_column_and_line(wine_model, tmp_path):
    model, tmp, _, _ = wine_model
    lines = (tmp / "wine.csv").read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[3].split(",")
    fields[header.index("ash")] = "n/a?"
    write(tmp_path / "new.csv", "\n".join([lines[0], lines[1], lines[2], ",".join(fields), lines[4]]) + "\n")
    with pytest.raises(ValueError, match=r"column 'ash' was numeric in training but holds 'n/a\?' in line 4 of "):
        model.predict(read_table(tmp_path / "new.csv"))
    out = cli("predict", tmp / "m.npz", tmp_path / "new.csv")
    assert out.returncode == 2 and "holds 'n/a?' in line 4 of" in out.stderr


def in_memory_columns(wine_model, tmp_path):
    pd = pytest.importorskip("pandas")
    colour = np.array(["red", "blue", "red", "green"] * 5)  # a plain NumPy string column
    model = small_model()
    model.fit({"colour": colour, "x": np.arange(20.0)}, np.arange(20) % 2, **FAST)
    assert model.feature_names == ["colour=blue", "colour=green", "colour=red", "x"]
    with pytest.raises(ValueError, match=r"columns have different lengths \('colour': 20, 'x': 19\)"):
        small_model().fit({"colour": colour, "x": np.arange(19.0)}, np.arange(20) % 2, **FAST)
    frame = pd.DataFrame({"n": pd.array([1, 2, 3, 2**62], dtype="Int64"), "m": pd.array([1, None, 3, 4], "Int64")})
    table = ab.tables.columns_from_frame(frame)
    assert table["n"].dtype == np.int64 and table["n"][3] == 2**62
    assert table["m"].dtype == np.float64 and np.isnan(table["m"][1])
    with pytest.raises(ValueError, match=r"column 'm' has a missing value in data row 2"):
        small_model().fit(frame, np.array([0, 1, 0, 1]), **FAST)


def parquet_infinity(wine_model, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")  # pandas writes Parquet with pyarrow
    infinite = pd.DataFrame({"v": [1.0, np.inf]})
    infinite.to_parquet(tmp_path / "inf.parquet")
    with pytest.raises(ValueError, match=rf"column 'v' holds inf \(infinity\) in data row 2 of {tmp_path}"):
        read_table(tmp_path / "inf.parquet")


REAL_FILES = [
    readers_agree_on_scikit_learn_tables,
    bad_files_give_the_same_error_with_every_reader,
    delimiters_and_encodings,
    bad_values_are_named_by_column_and_line,
    in_memory_columns,
    parquet_infinity,
]


@pytest.mark.parametrize("case", REAL_FILES, ids=lambda f: f.__name__)
def test_real_files(case, wine_model, tmp_path):
    case(wine_model, tmp_path)


# --- 4. categorical columns that cannot blow up -----------------------------------------------------


def id_like_column_is_capped_with_a_warning(tmp_path):
    rows = 2000
    columns = {"id": np.array([f"user{i:05d}" for i in range(rows)], dtype=object), "x": np.arange(rows) / rows}
    with pytest.warns(UserWarning, match=r"column 'id' has 2000 distinct values in 2000 rows: kept the 255 most"):
        X = TableEncoder().fit(columns).transform(columns)
    assert X.shape == (rows, 257)  # 255 categories, <other>, x
    assert X[:, 255].sum() == rows - 255 and np.all(X[:, :256].sum(axis=1) == 1)


def a_column_of_a_few_hundred_categories_keeps_them_all(tmp_path):
    # a country or family column (the benchmark's SumHes: 125 countries, GaltonFamilies: 205
    # families) is one-hot whole by default: grouping it as <other> cost those tables' R^2
    families = np.array([f"f{i:03d}" for i in range(205)] * 3, dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder = TableEncoder().fit({"family": families})
    assert len(encoder.feature_names) == 205 and "other" not in encoder.columns[0]
    np.testing.assert_array_equal(encoder.transform({"family": families[:205]}), np.eye(205))


def max_categories_keeps_the_most_frequent(tmp_path):
    values = np.array(list("aaaaabbbbccc" + "defgh"), dtype=object)
    encoder = TableEncoder(max_categories=4)
    with pytest.warns(UserWarning, match=r"column 'c' has 8 distinct values in 17 rows: kept the 3 most frequent"):
        encoder.fit({"c": values})
    assert encoder.feature_names == ["c=a", "c=b", "c=c", "c=<other>"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unseen category joins <other> without a warning
        X = encoder.transform({"c": np.array(["b", "zzz", "e"], dtype=object)})
    np.testing.assert_array_equal(X, [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]])


def min_frequency_groups_rare_categories(tmp_path):
    values = np.array(list("aaaabbbccd"), dtype=object)
    for min_frequency, kept in ((3, ["a", "b"]), (0.25, ["a", "b"]), (2, ["a", "b", "c"])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoder = TableEncoder(min_frequency=min_frequency).fit({"c": values})
        assert encoder.columns[0]["categories"] == kept and encoder.columns[0]["other"] is True
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="min_frequency must be"):
            TableEncoder(min_frequency=bad)
    for bad in (1, 2.0, False):
        with pytest.raises(ValueError, match="max_categories must be"):
            TableEncoder(max_categories=bad)


def caps_survive_saving(tmp_path):
    rng = np.random.default_rng(0)
    city = rng.choice([f"c{i}" for i in range(30)], 300).astype(object)
    columns = {"city": city, "x": rng.standard_normal(300)}
    model = small_model(max_categories=10)
    with pytest.warns(UserWarning, match="column 'city' has 30 distinct values"):
        model.fit(columns, (columns["x"] > 0).astype(int), **FAST)
    ab.save(model, tmp_path / "m.npz")
    loaded = ab.load(tmp_path / "m.npz")
    assert loaded.feature_names == model.feature_names and len(loaded.feature_names) == 11
    np.testing.assert_array_equal(loaded.predict_proba(columns), model.predict_proba(columns))
    out = cli(
        "train", "--data", write_table(tmp_path, columns), "--target", "y", "--epochs", "1", "--max-categories", "5"
    )
    assert out.returncode == 0 and "anybackprop: warning: column 'city' has 30 distinct values" in out.stderr


def write_table(tmp_path, columns):
    lines = ["city,x,y", *(f"{c},{x!r},{int(x > 0)}" for c, x in zip(columns["city"], columns["x"], strict=True))]
    return write(tmp_path / "cities.csv", "\n".join(lines) + "\n")


CATEGORIES = [
    id_like_column_is_capped_with_a_warning,
    a_column_of_a_few_hundred_categories_keeps_them_all,
    max_categories_keeps_the_most_frequent,
    min_frequency_groups_rare_categories,
    caps_survive_saving,
]


@pytest.mark.parametrize("case", CATEGORIES, ids=lambda f: f.__name__)
def test_categorical_columns_cannot_blow_up(case, tmp_path):
    case(tmp_path)


# --- 5. what users are told ------------------------------------------------------------------------


def impute_strategies_and_their_counts(tmp_path):
    x = np.array([1.0, 2.0, np.nan, 2.0, 10.0, np.nan])  # no row misses both values
    colour = np.array(["red", None, "blue", "red", None, "red"], dtype=object)
    present = x[~np.isnan(x)]
    for impute, fill in (("mean", present.mean()), ("median", np.median(present)), ("most_frequent", 2.0)):
        encoder = TableEncoder(impute).fit({"x": x, "colour": colour})
        X = encoder.transform({"x": x, "colour": colour})
        np.testing.assert_array_equal(X[:, 0], [1.0, 2.0, fill, 2.0, 10.0, fill])
        np.testing.assert_array_equal(X[[1, 4], 1:], [[0, 1], [0, 1]])  # text columns take the most frequent
        assert encoder.filled == {"x": 2, "colour": 2}
        assert encoder.describe_filled() == (
            f"impute {impute}: filled 4 missing values: 2 in 'x' (with {fill:.6g}), 2 in 'colour' (with 'red')"
        )


def all_missing_rows_and_unseen_categories_are_named(tmp_path):
    encoder = TableEncoder("mean").fit({"x": np.arange(4.0), "c": np.array(list("abab"), dtype=object)})
    with pytest.warns(UserWarning, match=r"1 row\(s\) have no value in any column \(the first in data row 2\)"):
        encoder.transform({"x": np.array([1.0, np.nan]), "c": np.array(["a", None], dtype=object)})
    unseen = np.array(["a", "q", "zz", "q"], dtype=object)
    with pytest.warns(UserWarning, match=r"\('c': 3 rows: 'q', 'zz'\)"):
        encoder.transform({"x": np.arange(4.0), "c": unseen})


def evaluate_reports_what_scikit_learn_does(tmp_path):
    metrics = pytest.importorskip("sklearn.metrics")
    sk = pytest.importorskip("sklearn.datasets")
    iris = sk.load_iris()
    columns = {f"f{j}": iris.data[:, j] for j in range(4)}
    labels = np.asarray(iris.target_names)[iris.target].astype(object)
    model = small_model()
    model.fit(columns, labels, **FAST)
    result = model.evaluate(columns, labels)
    predicted = model.predict(columns)
    p, r, f, s = metrics.precision_recall_fscore_support(labels.astype(str), predicted, zero_division=0)
    for i, name in enumerate(model.classes):
        got = result["per_class"][name]
        np.testing.assert_allclose([got["precision"], got["recall"], got["f1"]], [p[i], r[i], f[i]], rtol=1e-12)
        assert got["support"] == s[i]
    diabetes = sk.load_diabetes()
    columns = {f"f{j}": diabetes.data[:, j] for j in range(10)}
    regressor = small_model()
    regressor.fit(columns, diabetes.target, epochs=3, optimizer="adam", lr=0.01, verbose=False)
    result, predicted = regressor.evaluate(columns, diabetes.target), regressor.predict(columns)
    np.testing.assert_allclose(result["mae"], metrics.mean_absolute_error(diabetes.target, predicted), rtol=1e-9)
    rmse = math.sqrt(metrics.mean_squared_error(diabetes.target, predicted))
    np.testing.assert_allclose(result["rmse"], rmse, rtol=1e-9)


def file_rows_in_the_python_api(tmp_path):
    lines = [f"{i},{'' if i == 57 else i % 3},{i % 2}" for i in range(100)]
    path = write(tmp_path / "t.csv", "a,b,y\n" + "\n".join(lines) + "\n")
    columns, y = datasets.load_table(path, "y")
    train, test, _, _ = datasets.split_table(columns, y, 0.3, seed=4)
    part = train if 57 in train["a"] else test  # row 57 of the data is line 59 of the file, wherever it went
    with pytest.raises(ValueError, match=rf"column 'b' has a missing value in line 59 of {path} \(1 in all\)"):
        small_model().fit(part, np.zeros(len(part["a"])), **FAST)


def the_command_line_tells_it(tmp_path):
    path = sklearn_csv(tmp_path, "iris")
    text = path.read_text().splitlines()
    for line in range(1, 151, 5):  # 30 missing values, on lines 2, 7, 12...
        text[line] = ",".join(["", *text[line].split(",")[1:]])
    path.write_text("\n".join(text) + "\n")
    out = cli(
        "train", "--data", path, "--target", "target", "--epochs", "2", "--impute", "median", "--save", tmp_path / "m"
    )
    assert out.returncode == 0, out.stderr
    assert "108 training, 12 validation and 30 test rows" in out.stdout
    filled = re.search(
        r"impute median: filled (\d+) missing values: (\d+) in 'sepal length \(cm\)' \(with ", out.stdout
    )
    assert filled and filled[1] == filled[2] and 0 < int(filled[1]) < 30  # those in the training rows
    out = cli("evaluate", tmp_path / "m", path)
    assert out.returncode == 0 and "precision    recall        f1   support" in out.stdout, out.stderr
    assert "   setosa " in out.stdout


def a_validation_split_that_cannot_be_made(tmp_path):
    path = write(tmp_path / "ten.csv", "x,y\n" + "".join(f"{i},{i % 10}\n" for i in range(30)))
    out = cli("train", "--data", path, "--target", "y", "--epochs", "1", "--test-size", "0.5")
    assert out.returncode == 2
    assert (
        "the validation split of the 15 training rows (validation_fraction=0.1, --validation-size 0.1): " in out.stderr
    )
    assert "has a single row" in out.stderr and "--validation-size 0 (validation_fraction=None) trains without one" in (
        out.stderr
    )
    out = cli("train", "--data", path, "--target", "y", "--epochs", "1", "--test-size", "0.5", "--validation-size", "0")
    assert out.returncode == 0, out.stderr


TOLD = [
    a_validation_split_that_cannot_be_made,
    impute_strategies_and_their_counts,
    all_missing_rows_and_unseen_categories_are_named,
    evaluate_reports_what_scikit_learn_does,
    file_rows_in_the_python_api,
    the_command_line_tells_it,
]


@pytest.mark.parametrize("case", TOLD, ids=lambda f: f.__name__)
def test_what_users_are_told(case, tmp_path):
    case(tmp_path)
