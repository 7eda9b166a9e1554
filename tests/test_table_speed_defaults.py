"""The training-time defaults of ``anybackprop train`` on large tables (issue 19's time goal):
``batch_size="auto"`` grows the batch and ``early_stopping="auto"`` shortens the patience above
the tuning tables' sizes (where both keep the tuned 128 rows and 20 epochs), and the regression
ensemble's row budget trains one network on a 10,000-row table; each is a switch."""

import json

import numpy as np
import pytest

import anybackprop as ab
from anybackprop.tables import AUTO, TabularModel, auto_batch_size, auto_ensemble, auto_patience


def table(rng, m):
    x = rng.standard_normal((m, 3))
    y = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "yes", "no").astype(object)
    return {f"x{j}": x[:, j] for j in range(3)}, y


def test_the_auto_rules_keep_the_tuned_values_up_to_the_tuning_sizes_and_shrink_larger_tables_work():
    # the largest tuning table trains on 2,811 rows: 128-row batches and a patience of 20 there
    assert [auto_batch_size(rows) for rows in (1, 2811, 4096, 4097, 6750, 8192, 100_000)] == [
        128,
        128,
        128,
        129,
        211,
        256,
        256,
    ]
    assert [auto_patience(rows) for rows in (1, 2811, 3000, 4224, 6750, 12_000, 100_000)] == [20, 20, 20, 14, 8, 5, 5]
    assert auto_ensemble("regression", 6750) == 1 and auto_ensemble("regression", 2811) == 4


def test_auto_batch_size_is_the_rules_batch_of_the_training_rows(rng):
    columns, y = table(rng, 4600)  # 4,140 training rows after the validation split: batches of 130
    options = {"epochs": 2, "seed": 3, "validation_fraction": 0.1, "verbose": False}
    auto, fixed, default = TabularModel([8], seed=0), TabularModel([8], seed=0), TabularModel([8], seed=0)
    auto.fit(columns, y, batch_size=AUTO, **options)
    fixed.fit(columns, y, batch_size=130, **options)
    default.fit(columns, y, batch_size=128, **options)
    assert auto_batch_size(4140) == 130
    for key, value in auto.params.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(fixed.params[key]))
    assert not all(np.array_equal(np.asarray(v), np.asarray(default.params[k])) for k, v in auto.params.items())


def test_auto_patience_stops_after_the_rules_epochs_and_needs_validation_data(rng):
    columns, y = table(rng, 3600)  # 3,240 training rows: a patience of 18 epochs
    model = TabularModel([16], seed=0)
    history = model.fit(
        columns,
        y,
        epochs=300,
        lr=0.5,
        optimizer="adam",
        batch_size=AUTO,
        validation_fraction=0.1,
        early_stopping=AUTO,
        verbose=False,
    )
    assert auto_patience(3240) == 18
    assert history.epochs < 300 and history.epochs - history.best_epoch == 18
    small, y_small = table(rng, 60)
    history = TabularModel([4], seed=0).fit(small, y_small, epochs=3, early_stopping=AUTO, verbose=False)
    assert history.epochs == 3 and history.best_epoch is None  # no validation data: nothing stops


def test_cli_records_the_resolved_batch_and_patience_and_the_flags_override_them(rng, tmp_path, capsys):
    from anybackprop.cli import main

    columns, y = table(rng, 6000)  # 4,320 training rows after the test and validation splits
    path = tmp_path / "t.csv"
    lines = [f"{a},{b},{c},{t}\n" for a, b, c, t in zip(*columns.values(), y, strict=True)]
    path.write_text("x0,x1,x2,y\n" + "".join(lines))
    argv = ["train", "--data", str(path), "--target", "y", "--epochs", "1", "--json"]
    saved = str(tmp_path / "m.npz")
    assert main([*argv, "--save", saved]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"]["train"] == 4320
    training = ab.load(saved).info["training"]
    assert (training["batch_size"], training["early_stopping"]) == (auto_batch_size(4320), auto_patience(4320))
    assert (training["batch_size"], training["early_stopping"]) == (135, 13)
    assert main([*argv, "--save", saved, "--batch-size", "64", "--early-stopping", "5"]) == 0
    capsys.readouterr()
    training = ab.load(saved).info["training"]
    assert (training["batch_size"], training["early_stopping"]) == (64, 5)
    assert main([*argv, "--validation-size", "0", "--save", saved]) == 0
    capsys.readouterr()
    assert ab.load(saved).info["training"]["early_stopping"] is None


@pytest.mark.parametrize("value", ["fast", 0])
def test_a_bad_batch_size_is_still_refused(rng, value):
    columns, y = table(rng, 60)
    with pytest.raises((ValueError, TypeError), match="batch_size"):
        TabularModel([4], seed=0).fit(columns, y, epochs=1, batch_size=value, verbose=False)


@pytest.mark.parametrize("y", [None, 5.0])
def test_the_auto_rules_leave_a_targets_shape_error_to_its_check(rng, y):
    """The rules count the training rows after the target's check, so a target that is not one
    value per row still gets the message that says so (not ``len() of unsized object``)."""
    columns, _ = table(rng, 40)
    with pytest.raises(ValueError, match=r"y has shape \(\); expected \(40,\), one target value per row"):
        TabularModel([4], seed=0).fit(columns, y, epochs=1, batch_size=AUTO, early_stopping=AUTO, verbose=False)
