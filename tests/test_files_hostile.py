"""Issue 9, class 2: a model file (or checkpoint) is untrusted input. Every hostile or broken file
is a ValueError "<path> is not a valid anybackprop model file: <reason>" found before its data is
read; never a pickle hint, AttributeError, TypeError, RecursionError, MemoryError or KeyError; a
small hostile file cannot make a load take memory."""

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

import anybackprop as ab
from anybackprop.files import zip_entries_listed

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W1, B1 = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([0.5, -1, 2], np.float32)


def npy(array, allow_pickle=True):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=allow_pickle)
    return buffer.getvalue()


def meta(**changes):
    base = {
        "format": "anybackprop",
        "version": 1,
        "layer_sizes": [2, 3],
        "activation": [],
        "output": "softmax",
        "loss": "cross_entropy",
        "dtype": "float32",
    }
    base.update(changes)
    return npy(np.array(json.dumps(base)))


def members(**changes):
    """The members of a valid file of MLP([2, 3]), with ``changes`` (None drops a member)."""
    found = {"__anybackprop__.npy": meta(), "W1.npy": npy(W1), "b1.npy": npy(B1)}
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


def archive(path, items, compression=zipfile.ZIP_STORED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of duplicate names
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in items.items() if isinstance(items, dict) else items:
                zf.writestr(name, data)


def good(path):
    archive(path, members())


def zip_bomb(path, megabytes=100):
    """W1.npy deflated: a valid .npy header, then ``megabytes`` of zeros (a ~100 kB file)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__anybackprop__.npy", meta(), compress_type=zipfile.ZIP_STORED)
        zf.writestr("b1.npy", npy(B1), compress_type=zipfile.ZIP_STORED)
        with zf.open("W1.npy", "w", force_zip64=True) as f:
            f.write(npy(np.zeros((2, 3), np.float32))[:128])
            chunk = bytes(1 << 20)
            for _ in range(megabytes):
                f.write(chunk)


def declared_huge(path):
    """W1's header declares shape (100000, 100000) over 24 bytes of data."""
    header = npy(np.zeros((2, 3), np.float32))[:128].replace(b"(2, 3)", b"(100000, 100000)")
    archive(path, members(**{"W1.npy": header[:10] + header[10:].replace(b" " * 10, b"", 1) + W1.tobytes()}))


def truncated(cut):
    def make(path):
        good(path)
        data = path.read_bytes()
        path.write_bytes(data[:cut])

    return make


def deep_json(path):
    archive(
        path,
        members(
            **{
                "__anybackprop__.npy": npy(
                    np.array('{"format": "anybackprop", "x": ' + "[" * 100000 + "]" * 100000 + "}")
                )
            }
        ),
    )


def huge_json(path):
    archive(
        path,
        members(
            **{"__anybackprop__.npy": npy(np.array(json.dumps({"format": "anybackprop", "pad": "x" * (1 << 21)})))}
        ),
    )


def zip64_many_members(path, listed=70000):
    """A good archive whose end records are rewritten as zip64 ones declaring ``listed`` members
    (zipfile would build one object per declared member before anything else is checked)."""
    good(path)
    data = path.read_bytes()
    eocd = data[-22:]
    assert eocd[:4] == b"PK\x05\x06"
    cd_size, cd_offset = struct.unpack("<2L", eocd[12:20])
    at = len(data) - 22
    zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, listed, listed, cd_size, cd_offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(data[:at] + zip64 + locator + end)


def hostile_metadata(**changes):
    return lambda path: archive(path, members(**{"__anybackprop__.npy": meta(**changes)}))


CASES = [
    # (id, how the file is made, expected: an exception's reason pattern, or "loads")
    # np.save(path) would add ".npy" to the name: the array goes into the open .npz-named file
    ("npy-not-npz", lambda p: np.save(open(p, "wb"), W1), r"it is a single .npy array, not an .npz archive"),  # noqa: SIM115
    ("not-a-zip", lambda p: p.write_bytes(b"not a zip at all" * 10), r"cannot read it as an .npz archive \(BadZipFile"),
    ("empty", lambda p: p.write_bytes(b""), r"cannot read it as an .npz archive"),
    ("truncated-end", truncated(-40), r"cannot read it as an .npz archive"),
    ("truncated-200", truncated(200), r"cannot read it as an .npz archive"),
    ("raw-member-name", lambda p: archive(p, members(W1=W1.tobytes())), r"member 'W1' is not a .npy array"),
    (
        "raw-member-data",
        lambda p: archive(p, members(**{"W1.npy": W1.tobytes() + bytes(64)})),
        r"member 'W1' is not a .npy array",
    ),
    (
        "big-endian",
        lambda p: archive(p, members(**{"W1.npy": npy(W1.astype(">f4")), "b1.npy": npy(B1.astype(">f4"))})),
        "loads",
    ),
    ("fortran-order", lambda p: archive(p, members(**{"W1.npy": npy(np.asfortranarray(W1))})), "loads"),
    (
        "nan-weight",
        lambda p: archive(p, members(**{"W1.npy": npy(np.where(W1 == 4, np.nan, W1).astype(np.float32))})),
        r"W1 contains NaN or infinity",
    ),
    (
        "inf-bias",
        lambda p: archive(p, members(**{"b1.npy": npy(np.array([0, np.inf, 1], np.float32))})),
        r"b1 contains NaN or infinity",
    ),
    (
        "object-dtype",
        lambda p: archive(p, members(**{"W1.npy": npy(W1.astype(object))})),
        r"W1 has shape \(2, 3\) dtype object, expected \(2, 3\) float32",
    ),
    (
        "float64-in-float32",
        lambda p: archive(p, members(**{"W1.npy": npy(W1.astype(np.float64))})),
        r"W1 has shape \(2, 3\) dtype float64, expected \(2, 3\) float32",
    ),
    (
        "int32-same-size",
        lambda p: archive(p, members(**{"W1.npy": npy(W1.astype(np.int32))})),
        r"W1 has shape \(2, 3\) dtype int32, expected \(2, 3\) float32",
    ),
    (
        "structured",
        lambda p: archive(p, members(**{"W1.npy": npy(np.zeros(6, [("a", "<f4")]).reshape(2, 3))})),
        r"W1 has shape \(2, 3\) dtype \[\('a', '<f4'\)\]",
    ),
    (
        "wrong-shape",
        lambda p: archive(p, members(**{"W1.npy": npy(W1.reshape(3, 2))})),
        r"W1 has shape \(3, 2\) dtype float32, expected \(2, 3\) float32",
    ),
    ("declared-huge-shape", declared_huge, r"W1 has shape \(100000, 100000\) dtype float32, expected \(2, 3\)"),
    ("extra-member", lambda p: archive(p, members(**{"evil.npy": npy(np.zeros(10))})), r"\(unexpected \['evil'\]\)"),
    ("missing-member", lambda p: archive(p, members(**{"b1.npy": None})), r"\(missing \['b1'\]\)"),
    ("no-metadata", lambda p: archive(p, members(**{"__anybackprop__.npy": None})), r"it has no anybackprop metadata"),
    (
        "duplicate-member",
        lambda p: archive(p, [*members().items(), ("W1.npy", npy(W1 + 1))]),
        r"it holds member 'W1.npy' twice",
    ),
    ("zip-bomb", zip_bomb, r"member 'W1.npy' is compressed"),
    (
        "compressed-valid",
        lambda p: archive(p, members(), zipfile.ZIP_DEFLATED),
        r"is compressed \(anybackprop writes uncompressed members",
    ),
    ("deep-json", deep_json, r"its metadata nests deeper than 32 levels"),
    (
        "json-33-deep",
        lambda p: archive(
            p,
            members(
                **{
                    "__anybackprop__.npy": meta(
                        info={"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
                    )
                }
            ),
        ),
        r"nests deeper than 32 levels",
    ),
    (
        "json-quotes",
        lambda p: archive(p, members(**{"__anybackprop__.npy": npy(np.array('{"a": "' + '\\"' * 200000))})),
        r"its metadata is not JSON",
    ),
    ("huge-json", huge_json, r"its metadata is \d+ bytes, more than the 1048576 characters allowed"),
    (
        "metadata-not-string",
        lambda p: archive(p, members(**{"__anybackprop__.npy": npy(np.zeros(3))})),
        r"its metadata is not a unicode string",
    ),
    (
        "metadata-not-json",
        lambda p: archive(p, members(**{"__anybackprop__.npy": npy(np.array("{nope"))})),
        r"its metadata is not JSON",
    ),
    (
        "metadata-a-list",
        lambda p: archive(p, members(**{"__anybackprop__.npy": npy(np.array("[1, 2]"))})),
        r"its metadata is not a JSON object",
    ),
    (
        "huge-model-small-file",
        hostile_metadata(layer_sizes=[100000, 100000]),
        r"describes a model of at least 10000100000 float32 values, more than its \d+ bytes can hold",
    ),
    (
        "layer-sizes-bools",
        hostile_metadata(layer_sizes=[True, 3]),
        r"layer_sizes \[true, 3\]|layer_sizes \[True, 3\] is not a list of positive ints",
    ),
    ("layer-sizes-strings", hostile_metadata(layer_sizes=["2", "3"]), r"is not a list of positive ints"),
    (
        "head-of-wrong-types",
        hostile_metadata(
            version=3, layers=[{"kind": "dense", "config": {"n_in": 2, "n_out": 3}}], head={"output": 5, "loss": None}
        ),
        r"unknown activation 5; accepted values",
    ),
    (
        "layer-spec-junk",
        hostile_metadata(
            version=3,
            layers=[{"kind": "dense", "config": {"n_in": "x", "bogus": 1}}],
            head={"output": "softmax", "loss": "cross_entropy"},
        ),
        r"its layers are not valid \(.*unexpected keyword argument 'bogus'",
    ),
    (
        "layers-not-a-list",
        hostile_metadata(version=3, layers={"a": 1}, head={"output": "softmax", "loss": "cross_entropy"}),
        r"no valid 'layers' list",
    ),
    (
        "table-junk",
        hostile_metadata(
            version=3,
            layers=[{"kind": "dense", "config": {"n_in": 2, "n_out": 3}}],
            head={"output": "softmax", "loss": "cross_entropy"},
            table=5,
        ),
        r"its table section is not valid",
    ),
    (
        "feature-scale-overflowing-float32",
        hostile_metadata(feature_scale=1e39),
        r"feature_scale must be a number from 0\.001 to 1000, got 1e\+39",
    ),
    ("version-99", hostile_metadata(version=99), r"format version 99 is not supported"),
    ("dtype-int8", hostile_metadata(dtype="int8"), r"dtype 'int8' is not float32 or float64"),
    ("format-keras", hostile_metadata(format="keras"), r"does not name the anybackprop format"),
    ("zip64-many-members", zip64_many_members, r"its zip directory lists 70000 members \(at most 65536\)"),
]


@pytest.mark.parametrize("make,expected", [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_hostile_and_broken_model_files(tmp_path, make, expected):
    path = tmp_path / "bad.npz"
    make(path)
    assert path.stat().st_size < 1 << 24
    if expected == "loads":
        model = ab.load(path)
        np.testing.assert_array_equal(ab.to_numpy(model.params["W1"]), W1)
        np.testing.assert_array_equal(ab.to_numpy(model.params["b1"]), B1)
        assert ab.to_numpy(model.params["W1"]).dtype == np.float32
        return
    with pytest.raises(ValueError, match=rf"^{path} is not a valid anybackprop model file: .*{expected}") as info:
        ab.load(path)
    assert "allow_pickle" not in str(info.value)


def test_a_file_object_loads_and_names_itself_in_errors(tmp_path):
    path = tmp_path / "m.npz"
    good(path)
    model = ab.load(io.BytesIO(path.read_bytes()))
    np.testing.assert_array_equal(ab.to_numpy(model.params["W1"]), W1)
    with open(path, "rb") as f:
        assert ab.load(f).config() == model.config()
    with pytest.raises(
        ValueError, match=r"^<BytesIO> is not a valid anybackprop model file: cannot read it as an .npz archive"
    ):
        ab.load(io.BytesIO(b"junk" * 20))
    with pytest.raises(TypeError, match="expected a path or a binary file object, got int"):
        ab.load(3)
    with pytest.raises(ValueError, match=rf"^{tmp_path} is not a valid anybackprop model file: it is a directory"):
        ab.load(tmp_path)


class Unseekable(io.RawIOBase):
    def __init__(self, data):
        self.inner = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        return self.inner.readinto(buffer)


def test_a_stream_that_cannot_seek_loads(tmp_path):
    good(tmp_path / "m.npz")
    model = ab.load(Unseekable((tmp_path / "m.npz").read_bytes()))
    np.testing.assert_array_equal(ab.to_numpy(model.params["b1"]), B1)


def test_a_saved_model_loads_from_a_file_object_bitwise(tmp_path):
    model = ab.MLP([3, 5, 2], output="sigmoid" if False else "softmax", norm="batch", seed=3)
    buffer = io.BytesIO()
    ab.save(model, tmp_path / "m.npz")
    buffer.write((tmp_path / "m.npz").read_bytes())
    buffer.seek(0)
    loaded = ab.load(buffer)
    for key in model.params:
        np.testing.assert_array_equal(ab.to_numpy(loaded.params[key]), ab.to_numpy(model.params[key]))


def checkpoint_file(tmp_path, optimizer="adam"):
    X = np.random.default_rng(0).standard_normal((20, 2))
    y = (X[:, 0] > 0).astype(int)
    path = tmp_path / "c.ckpt"
    ab.MLP([2, 3, 2]).fit(X, y, epochs=2, optimizer=optimizer, checkpoint=path, early_stopping=5, verbose=False)
    with zipfile.ZipFile(path) as zf:
        items = {name: zf.read(name) for name in zf.namelist()}
    return path, items, (X, y)


def rewrite_meta(items, change):
    meta_dict = json.loads(str(np.load(io.BytesIO(items["__meta__.npy"]))))
    change(meta_dict)
    return {**items, "__meta__.npy": npy(np.array(json.dumps(meta_dict)))}


CHECKPOINT_CASES = [
    (
        "nan-optimizer-state",
        lambda items: {**items, "optimizer.m.W1.npy": npy(np.full((2, 3), np.nan, np.float32))},
        r"optimizer.m.W1 contains NaN or infinity",
    ),
    ("extra-member", lambda items: {**items, "junk.npy": npy(np.zeros(3))}, r"\(unexpected \['junk'\]\)"),
    (
        "no-optimizer-section",
        lambda items: rewrite_meta(items, lambda m: m.pop("optimizer")),
        r"its metadata has no optimizer section",
    ),
    (
        "callbacks-junk",
        lambda items: rewrite_meta(items, lambda m: m.update(callbacks=[1, 2])),
        r"no valid callbacks list",
    ),
    (
        "callback-array-huge",
        lambda items: rewrite_meta(
            items,
            lambda m: m["callbacks"][0]["arrays"].update({"params.W1": {"shape": [10**6, 10**6], "dtype": "float32"}}),
        ),
        r"its metadata implies 4000000000\d+ bytes of arrays but the file has \d+ bytes",
    ),
    (
        "callback-array-object",
        lambda items: rewrite_meta(
            items, lambda m: m["callbacks"][0].update(arrays={"x": {"shape": [2], "dtype": "object"}})
        ),
        r"has no valid shape and dtype",
    ),
    (
        "counter-a-string",
        lambda items: rewrite_meta(items, lambda m: m["optimizer"]["counters"].update(t="x")),
        r"its metadata has no optimizer section",
    ),
    (
        "callback-values-missing",
        lambda items: rewrite_meta(items, lambda m: m["callbacks"][0].pop("values")),
        r"no valid callbacks list",
    ),
    (
        "callback-values-junk",
        lambda items: rewrite_meta(items, lambda m: m["callbacks"][0].update(values={"best": [1]})),
        r"the state of callback EarlyStopping is not valid",
    ),
    (
        "history-junk",
        lambda items: rewrite_meta(items, lambda m: m.update(history={"loss": 1})),
        r"its history or generator state is not valid",
    ),
    (
        "rng-junk",
        lambda items: rewrite_meta(items, lambda m: m.update(rng={"bit_generator": "MT19937"})),
        r"its history or generator state is not valid",
    ),
    ("epoch-a-string", lambda items: rewrite_meta(items, lambda m: m.update(epoch="2")), r"no valid epoch"),
]


@pytest.mark.parametrize("change,pattern", [pytest.param(c, p, id=i) for i, c, p in CHECKPOINT_CASES])
def test_hostile_checkpoints(tmp_path, change, pattern):
    path, items, (X, y) = checkpoint_file(tmp_path)
    archive(path, change(items))
    with pytest.raises(ValueError, match=rf"^{path} is not a valid anybackprop checkpoint file: .*{pattern}"):
        ab.MLP([2, 3, 2]).fit(X, y, epochs=3, optimizer="adam", resume=path, early_stopping=5, verbose=False)


def test_a_checkpoint_still_resumes_and_names_another_optimizer(tmp_path):
    path, _items, (X, y) = checkpoint_file(tmp_path)
    history = ab.MLP([2, 3, 2]).fit(X, y, epochs=3, optimizer="adam", resume=path, early_stopping=5, verbose=False)
    assert history.epochs == 3
    with pytest.raises(ValueError, match=rf"^resume: {path} was written with optimizer Adam, this fit uses SGD"):
        ab.MLP([2, 3, 2]).fit(X, y, epochs=3, optimizer="sgd", resume=path, verbose=False)


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys, tracemalloc
    import anybackprop as ab
    ab.load(sys.argv[1])  # warm up: imports and first allocations
    results = {}
    for path in sys.argv[2:]:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        try:
            ab.load(path)
            outcome = "loaded"
        except ValueError as exc:
            outcome = str(exc)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results[path] = {"outcome": outcome, "rss_kb": after - before, "traced": peak}
    print(json.dumps(results))
""")


def test_a_small_hostile_file_cannot_take_memory(tmp_path):
    good(tmp_path / "good.npz")
    hostile = {
        "bomb.npz": zip_bomb,
        "huge-model.npz": hostile_metadata(layer_sizes=[20000, 20000, 20000]),
        "huge-shape.npz": declared_huge,
        "deep.npz": deep_json,
        "huge-layers.npz": hostile_metadata(
            version=3,
            layers=[{"kind": "dense", "config": {"n_in": 50000, "n_out": 50000}}],
            head={"output": "softmax", "loss": "cross_entropy"},
        ),
    }
    paths = []
    for name, make in hostile.items():
        make(tmp_path / name)
        assert (tmp_path / name).stat().st_size < 1 << 20
        paths.append(str(tmp_path / name))
    env = {**os.environ, "PYTHONPATH": HERE}
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "good.npz"), *paths],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for path, found in json.loads(result.stdout).items():
        assert "is not a valid anybackprop model file" in found["outcome"], (path, found)
        assert found["rss_kb"] < 4096 and found["traced"] < 4 << 20, (path, found)


def test_random_corruptions_load_or_are_a_clear_value_error(tmp_path):
    """Flipped bytes and truncations of a real file (the zip's CRC catches flipped data)."""
    path = tmp_path / "m.npz"
    ab.save(ab.MLP([3, 4, 2], norm="batch"), path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    for _ in range(1000):
        corrupt = bytearray(data)
        for j in rng.integers(0, len(data), rng.integers(1, 5)):
            corrupt[j] = rng.integers(0, 256)
        if rng.random() < 0.2:
            corrupt = corrupt[: rng.integers(0, len(corrupt))]
        try:
            ab.load(io.BytesIO(bytes(corrupt)))
        except ValueError as exc:
            assert str(exc).startswith(
                "<BytesIO> is not a valid anybackprop model file: "
            ) and "allow_pickle" not in str(exc)


@pytest.mark.parametrize("comment", [b"", b"a comment", b"PK\x05\x06" + bytes(30)])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_the_zip_directory_count_is_read_from_the_public_format(tmp_path, count, comment):
    """files.zip_entries_listed reads the end records as APPNOTE lays them out (no zipfile
    internals): it agrees with zipfile's own listing, behind a comment and a prefix."""
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            zf.writestr(f"m{i}.npy", npy(np.zeros(i)))
        zf.comment = comment
    prefix = b"x" * 7
    data = prefix + path.read_bytes()
    if b"PK" not in comment:  # zipfile itself is fooled by a record-like comment
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
            assert len(zf.infolist()) == count
    assert zip_entries_listed(io.BytesIO(data), len(prefix), len(data) - len(prefix)) == count
    zip64_many_members(path, listed=123)
    data = path.read_bytes()
    assert zip_entries_listed(io.BytesIO(data), 0, len(data)) == 123
    assert zip_entries_listed(io.BytesIO(b"no zip here" * 5), 0, 55) is None
