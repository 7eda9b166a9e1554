"""The layers of issue 8 (dropout, batch norm, layer norm) with every head, on every backend:
central differences in float64, PyTorch autograd for the normalisations, dropout's masks, saving
and loading the layers' state, and every registered optimizer through them."""

import json

import numpy as np
import pytest
from conftest import HEAD_IDS, HEAD_PAIRS, N_OUT, assert_gradients_match, targets

import anybackprop as ab
from anybackprop.layers.dropout import DropoutCache
from anybackprop.network import HIDDEN_ACTIVATIONS

# every head: each output with its paired loss, and with every loss that has a chain rule
LAYER_OPTIONS = {
    "dropout": {"dropout": 0.3},
    "batch": {"norm": "batch"},
    "layer": {"norm": "layer"},
    "batch+dropout": {"norm": "batch", "dropout": 0.3},
    "layer+dropout": {"norm": "layer", "dropout": [0.3, 0.5, 0.2]},
}


def per_hidden(options, depth):
    """The options with a per-layer dropout list cut to ``depth`` hidden layers."""
    out = dict(options)
    if isinstance(out.get("dropout"), list):
        out["dropout"] = out["dropout"][:depth]
    return out


# --- 1. central differences -----------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("options", list(LAYER_OPTIONS), ids=list(LAYER_OPTIONS))
@pytest.mark.parametrize("output,loss", HEAD_PAIRS, ids=HEAD_IDS)
def test_layers_and_heads_match_central_differences(backend, output, loss, options, depth, rng):
    n_out = N_OUT[output]
    model = ab.MLP(
        [3] + [4] * depth + [n_out],
        activation="tanh",
        output=output,
        loss=loss,
        seed=5,
        dtype="float64",
        **per_hidden(LAYER_OPTIONS[options], depth),
    )
    kinds = {layer.kind for layer in model.layers}
    assert ("dropout" in kinds) == ("dropout" in LAYER_OPTIONS[options])
    if "norm" in LAYER_OPTIONS[options]:
        assert f"{LAYER_OPTIONS[options]['norm']}_norm" in kinds and f"gamma{depth}" in model.params
    X = rng.standard_normal((6, 3))
    assert_gradients_match(model, X, targets(output, n_out, 6, rng))


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("norm", list(ab.layers.NORMS))
def test_every_hidden_activation_behind_a_norm_matches_central_differences(backend, activation, norm, rng):
    model = ab.MLP(
        [3, 4, 4, 2], activation=activation, output="identity", seed=3, dtype="float64", norm=norm, dropout=0.25
    )
    # random biases, scales and shifts: with the initial b = 0, beta = 0 a row that relu and dropout
    # zero entirely sits exactly on the relu's kink after the next norm, where no derivative exists
    r = np.random.default_rng(3)
    model.set_params(
        {
            k: ab.to_numpy(v) + (0.3 * r.standard_normal(v.shape) if not k.startswith("W") else 0)
            for k, v in model.params.items()
        }
    )
    X = rng.standard_normal((7, 3))
    assert_gradients_match(model, X, rng.standard_normal((7, 2)))


def test_every_layer_kind_is_exercised():
    """The tests above build every registered layer kind through MLP (a new kind needs a test)."""
    built = set()
    for options in LAYER_OPTIONS.values():
        built |= {layer.kind for layer in ab.MLP([3, 4, 2], **per_hidden(options, 1)).layers}
    builtin = {"dense", "activation", "dropout", "batch_norm", "layer_norm"}
    assert builtin <= set(ab.layers.LAYERS)
    assert built == builtin


# --- 2. PyTorch autograd ----------------------------------------------------------------------


def torch_twin(model, torch, norm):
    """The same network in PyTorch (float64): Linear -> norm -> activation [-> Linear ...]."""
    mods = []
    params = {k: ab.to_numpy(v) for k, v in model.params.items()}
    n_hidden = len(model.layer_sizes) - 2
    for i in range(1, n_hidden + 2):
        W = params[f"W{i}"]
        lin = torch.nn.Linear(W.shape[0], W.shape[1]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(params[f"b{i}"]))
        mods.append(lin)
        if i <= n_hidden:
            n = W.shape[1]
            nrm = (
                torch.nn.BatchNorm1d(n, eps=1e-5, momentum=0.1) if norm == "batch" else torch.nn.LayerNorm(n, eps=1e-5)
            ).double()
            with torch.no_grad():  # anybackprop starts at 1 and 0; perturb so gamma, beta matter
                nrm.weight.copy_(torch.from_numpy(params[f"gamma{i}"]))
                nrm.bias.copy_(torch.from_numpy(params[f"beta{i}"]))
            mods += [nrm, torch.nn.Tanh()]
    return torch.nn.Sequential(*mods)


def torch_tensors(net, torch, pick):
    """``pick(parameter)`` of every torch parameter under anybackprop's names (W as (n_in, n_out))."""
    out, i = {}, 0
    for mod in net:
        if isinstance(mod, torch.nn.Linear):
            i += 1
            out[f"W{i}"], out[f"b{i}"] = pick(mod.weight).numpy().T, pick(mod.bias).numpy()
        elif isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.LayerNorm)):
            out[f"gamma{i}"], out[f"beta{i}"] = pick(mod.weight).numpy(), pick(mod.bias).numpy()
    return out


def perturbed_norm_model(norm, seed=4, **kwargs):
    model = ab.MLP([4, 5, 6, 3], activation="tanh", output="softmax", seed=seed, dtype="float64", norm=norm, **kwargs)
    r = np.random.default_rng(seed)
    params = {k: ab.to_numpy(v) for k, v in model.params.items()}
    for k in params:
        if k.startswith("gamma"):
            params[k] = 1.0 + 0.3 * r.standard_normal(params[k].shape)
        elif k.startswith(("beta", "b")):
            params[k] = 0.2 * r.standard_normal(params[k].shape)
    model.set_params(params)
    return model


@pytest.mark.parametrize("norm", list(ab.layers.NORMS))
def test_norm_gradients_equal_torch_autograd(backend, norm, rng):
    torch = pytest.importorskip("torch")
    model = perturbed_norm_model(norm)
    X, y = rng.standard_normal((8, 4)) * 2 + 0.5, rng.integers(0, 3, 8)
    state_before = {k: ab.to_numpy(v).copy() for k, v in model.state.items()}
    loss, grads = model.loss_and_grads(X, y)
    net = torch_twin(model, torch, norm).train()
    t_loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12, abs=1e-12)
    expected = torch_tensors(net, torch, lambda t: t.grad)
    assert set(expected) == set(grads)
    for key, value in expected.items():
        np.testing.assert_allclose(ab.to_numpy(grads[key]), value, rtol=1e-9, atol=1e-10, err_msg=key)
    # loss_and_grads computes training-mode gradients but leaves the running averages alone
    for key, value in state_before.items():
        np.testing.assert_array_equal(ab.to_numpy(model.state[key]), value)


def test_batch_norm_running_averages_and_inference_equal_torch(backend, rng):
    torch = pytest.importorskip("torch")
    model = perturbed_norm_model("batch")
    X, y = rng.standard_normal((10, 4)) * 2 + 0.5, rng.integers(0, 3, 10)
    net = torch_twin(model, torch, "batch").train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y)).backward()
    opt.step()
    model.fit(X, y, epochs=1, batch_size=10, optimizer="sgd", lr=0.1, shuffle=False, verbose=False)
    bns = [mod for mod in net if isinstance(mod, torch.nn.BatchNorm1d)]
    assert sorted(model.state) == ["running_mean1", "running_mean2", "running_var1", "running_var2"]
    for i, bn in enumerate(bns, start=1):
        np.testing.assert_allclose(
            ab.to_numpy(model.state[f"running_mean{i}"]), bn.running_mean.numpy(), rtol=1e-12, atol=1e-14
        )
        np.testing.assert_allclose(
            ab.to_numpy(model.state[f"running_var{i}"]), bn.running_var.numpy(), rtol=1e-12, atol=1e-14
        )
    # the SGD step itself agrees with torch's
    after = torch_tensors(net, torch, lambda t: t.detach())
    assert set(after) == set(model.params)
    for key, value in after.items():
        np.testing.assert_allclose(ab.to_numpy(model.params[key]), value, rtol=1e-10, atol=1e-12, err_msg=key)
    # inference uses the running averages, as torch's eval mode
    X_new = rng.standard_normal((5, 4))
    net.eval()
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(X_new)), dim=1).numpy()
    np.testing.assert_allclose(ab.to_numpy(model.forward(X_new)), expected, rtol=1e-10, atol=1e-12)


def test_layer_norm_is_the_same_in_training_and_inference(backend, rng):
    model = perturbed_norm_model("layer")
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    assert model.state == {}
    assert model.loss(X, y) == pytest.approx(model.loss(X, y, training=True), rel=1e-14)


def test_batch_norm_needs_two_rows_per_training_batch(backend, rng):
    model = ab.MLP([3, 4, 2], norm="batch", dtype="float64")
    X, y = rng.standard_normal((9, 3)), rng.integers(0, 2, 9)
    with pytest.raises(ValueError, match="needs at least 2 rows per training batch"):
        model.fit(X, y, batch_size=4, epochs=1, verbose=False)  # 9 = 4 + 4 + 1
    assert model.predict(X[:1]).shape == (1,)  # inference on one row is fine


# --- 3. dropout -------------------------------------------------------------------------------


def test_dropout_inference_is_deterministic_and_equals_the_network_without_it(backend, rng):
    X = rng.standard_normal((7, 4))
    with_dropout = ab.MLP([4, 6, 5, 3], activation="relu", seed=11, dropout=0.4, dtype="float64")
    without = ab.MLP([4, 6, 5, 3], activation="relu", seed=11, dtype="float64")
    assert sorted(with_dropout.params) == sorted(without.params)
    for key in without.params:
        np.testing.assert_array_equal(ab.to_numpy(with_dropout.params[key]), ab.to_numpy(without.params[key]))
    first = ab.to_numpy(with_dropout.forward(X))
    np.testing.assert_array_equal(first, ab.to_numpy(with_dropout.forward(X)))
    np.testing.assert_array_equal(first, ab.to_numpy(without.forward(X)))


def test_dropout_training_is_reproducible_from_the_seed():
    X = np.random.default_rng(0).standard_normal((40, 4))
    y = (X[:, 0] > 0).astype(int)

    def trained(seed):
        with ab.use_backend("numpy"):
            model = ab.MLP([4, 8, 8, 2], seed=1, dropout=0.5, dtype="float64")
            model.fit(X, y, epochs=3, batch_size=10, seed=seed, verbose=False)
            return {k: ab.to_numpy(v) for k, v in model.params.items()}

    a, b, c = trained(0), trained(0), trained(1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a[key], c[key]) for key in a)


def test_dropout_masks_are_reproducible_in_loss_and_grads(backend, rng):
    model = ab.MLP([4, 8, 3], seed=1, dropout=0.5, dtype="float64")
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    l0, g0 = model.loss_and_grads(X, y, seed=3)
    l1, g1 = model.loss_and_grads(X, y, seed=3)
    l2, _ = model.loss_and_grads(X, y, seed=4)
    assert l0 == l1 and l0 != l2
    for key in g0:
        np.testing.assert_array_equal(ab.to_numpy(g0[key]), ab.to_numpy(g1[key]))


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_zeroes_about_p_of_the_units_and_scales_by_1_over_1_minus_p(backend, p):
    model = ab.MLP([5, 100, 2], activation="sigmoid", seed=0, dropout=p, dtype="float64")
    X = np.random.default_rng(1).standard_normal((100, 5))
    with model.backend.activate():  # the trainer's interface runs on the model's device
        x = model.check_data(X, np.zeros(100, int))[0]
        fwd = model.forward_pass(x, training=True, rng=np.random.default_rng(0))
        inf = model.forward_pass(x)
    i = next(i for i, c in enumerate(fwd.caches) if isinstance(c, DropoutCache))
    mask = ab.to_numpy(fwd.caches[i].mask)
    assert mask.shape == (100, 100)
    zero = mask == 0
    assert abs(zero.mean() - p) < 0.02  # binomial sd sqrt(p(1-p)/1e4) < 0.005
    np.testing.assert_allclose(mask[~zero], 1.0 / (1.0 - p), rtol=1e-15)
    # the layer's output is its input times the mask: the next dense layer reads exactly that
    before = ab.to_numpy(fwd.caches[i - 1].a)  # the sigmoid output (strictly positive)
    after = ab.to_numpy(fwd.caches[i + 1].a_prev)
    np.testing.assert_allclose(after, before * mask, rtol=1e-15)
    # inference: no mask, identity
    assert inf.caches[i].mask is None


@pytest.mark.parametrize("norm", [None, *ab.layers.NORMS])
def test_dropout_keeps_a_float32_model_in_float32(backend, rng, norm):
    model = ab.MLP([4, 6, 5, 3], seed=0, dropout=0.3, norm=norm)
    X, y = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    with model.backend.activate():  # the trainer's interface runs on the model's device
        x = model.check_data(X, y)[0]
        fwd = model.forward_pass(x, training=True, rng=np.random.default_rng(0))
    assert fwd.logits.dtype == model.dtype
    assert all(c.mask.dtype == model.dtype for c in fwd.caches if isinstance(c, DropoutCache))
    model.fit(X, y, epochs=1, batch_size=6, verbose=False)
    for name, arrays in (("params", model.params), ("state", model.state)):
        for key, value in arrays.items():
            assert value.dtype == model.dtype, f"{name}[{key}] is {value.dtype}"


def test_dropout_rejects_bad_probabilities():
    for bad in (1.0, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match="dropout must be a probability in"):
            ab.MLP([3, 4, 2], dropout=bad)
    with pytest.raises(ValueError, match="dropout lists 1 values but the model has 2 hidden layers"):
        ab.MLP([3, 4, 4, 2], dropout=[0.1])


# --- 6. save/load ----------------------------------------------------------------------------


@pytest.mark.parametrize("norm", list(ab.layers.NORMS))
def test_save_load_keeps_layers_and_running_averages_bitwise(backend, tmp_path, rng, norm):
    X, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    model = ab.MLP([4, 6, 5, 3], seed=2, dropout=[0.2, 0.4], norm=norm)
    model.fit(X, y, epochs=2, batch_size=10, verbose=False)
    if norm == "batch":  # training moved the running averages away from 0 and 1
        assert not np.array_equal(ab.to_numpy(model.state["running_mean1"]), np.zeros(6, np.float32))
    ab.save(model, tmp_path / "m.npz")
    loaded = ab.load(tmp_path / "m.npz")
    assert type(loaded) is ab.MLP and loaded.config() == model.config()
    assert loaded.dropout == [0.2, 0.4] and loaded.norm == norm
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    for mine, theirs in ((model.params, loaded.params), (model.state, loaded.state)):
        assert sorted(mine) == sorted(theirs)
        for key in mine:
            np.testing.assert_array_equal(ab.to_numpy(theirs[key]), ab.to_numpy(mine[key]))
    np.testing.assert_array_equal(ab.to_numpy(loaded.forward(X)), ab.to_numpy(model.forward(X)))
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        meta = json.loads(str(archive["__anybackprop__"]))
        if norm == "batch":
            assert {"state.running_mean1", "state.running_var2"} <= set(archive.files)
    assert meta["version"] == 3 and meta["mlp"]["norm"] == norm


def test_a_sequential_with_norm_layers_round_trips(backend, tmp_path, rng):
    model = ab.Sequential(
        [
            ab.Dense(3, 5),
            ab.BatchNorm(5),
            ab.ActivationLayer(5, "tanh"),
            ab.Dropout(5, 0.3),
            ab.Dense(5, 4),
            ab.LayerNorm(4),
            ab.ActivationLayer(4, {"name": "leaky_relu", "slope": 0.1}),
            ab.Dense(4, 1),
        ],
        head="identity",
        seed=3,
    )
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    model.fit(X, y, epochs=2, batch_size=10, verbose=False)
    ab.save(model, tmp_path / "s.npz")
    loaded = ab.load(tmp_path / "s.npz")
    assert type(loaded) is ab.Sequential and loaded.config() == model.config()
    for key in model.state:
        np.testing.assert_array_equal(ab.to_numpy(loaded.state[key]), ab.to_numpy(model.state[key]))
    np.testing.assert_array_equal(ab.to_numpy(loaded.predict(X)), ab.to_numpy(model.predict(X)))


def test_a_version_1_file_still_loads(backend, tmp_path, rng):
    W1, b1 = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    W2, b2 = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    meta = {
        "format": "anybackprop",
        "version": 1,
        "layer_sizes": [2, 3, 2],
        "activation": ["tanh"],
        "output": "softmax",
        "loss": "cross_entropy",
        "dtype": "float32",
    }
    with open(tmp_path / "v1.npz", "wb") as f:
        np.savez(f, __anybackprop__=np.array(json.dumps(meta)), W1=W1, b1=b1, W2=W2, b2=b2)
    model = ab.load(tmp_path / "v1.npz")
    assert isinstance(model, ab.MLP) and model.layer_sizes == [2, 3, 2] and model.state == {}
    X = rng.standard_normal((4, 2))
    z = np.tanh(X @ W1.astype(np.float64) + b1) @ W2.astype(np.float64) + b2
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(ab.to_numpy(model.forward(X)), expected, rtol=1e-5, atol=1e-6)


# --- 7. every optimizer trains through dropout and batch norm -------------------------------


@pytest.mark.parametrize("optimizer", list(ab.OPTIMIZERS))
def test_every_optimizer_trains_with_batch_norm_and_dropout(backend, optimizer):
    r = np.random.default_rng(0)
    X = r.standard_normal((64, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    model = ab.MLP([4, 16, 3], seed=0, norm="batch", dropout=0.1)
    history = model.fit(X, y, epochs=12, batch_size=16, optimizer=optimizer, verbose=False)
    assert history.loss[-1] < 0.8 * history.loss[0]
    assert model.score(X, y) > 0.7
