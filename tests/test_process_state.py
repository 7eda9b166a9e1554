"""Class table: process-wide state is left as it was found. Overlapping ``fit`` and ``predict``
calls in several threads restore the BLAS thread limits (checked in a child process, whose BLAS
pool nothing else touches), and a model keeps its backend whatever backend is in force."""

import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import anybackprop as ab

ROOT = pathlib.Path(__file__).resolve().parent.parent

OVERLAP = textwrap.dedent("""
    import threading
    import numpy as np
    import anybackprop as ab
    from anybackprop import threads

    controller = threads._controller()
    if controller is None or threads.blas_threads() is None:
        print("no BLAS"); raise SystemExit(0)
    before = threads.blas_threads()
    X = np.random.default_rng(0).standard_normal((64, 160))  # products above tiny_product(), below SMALL
    y = (X[:, 0] > 0).astype(int)
    both_inside, first_done = threading.Barrier(2, timeout=60), threading.Event()
    inside = []

    def first():  # enters first, leaves first
        def hook(epoch, history, model):
            inside.append(threads.blas_threads())
            both_inside.wait()
        ab.MLP([160, 32, 2], backend="numpy").fit(X, y, batch_size=64, epochs=1, verbose=False, callbacks=[hook])
        first_done.set()

    def second():  # enters second, leaves last
        def hook(epoch, history, model):
            if epoch == 1:
                both_inside.wait()
            else:
                first_done.wait(60)
            inside.append(threads.blas_threads())
        ab.MLP([160, 32, 2], backend="numpy").fit(X, y, batch_size=64, epochs=2, verbose=False, callbacks=[hook])

    def predicting():
        model = ab.MLP([8, 4, 2], backend="numpy")
        for _ in range(200):
            model.predict(X)

    workers = [threading.Thread(target=f) for f in (first, second, predicting, predicting)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(before, threads.blas_threads(), sorted(set(inside)))
""")


def test_overlapping_fits_in_threads_leave_the_blas_limits_as_they_were():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    env["PYTHONPATH"] = str(ROOT)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(variable, None)
    env.pop("OPENBLAS_NUM_THREADS", None)  # BLAS starts with a thread per core
    done = subprocess.run(
        [sys.executable, "-c", OVERLAP], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    if done.stdout.strip() == "no BLAS":
        pytest.skip("threadpoolctl sees no BLAS library in this NumPy")
    before, after, inside = done.stdout.split(" ", 2)
    if int(before) < 2:
        pytest.skip("one BLAS thread to begin with: a limit of 1 left behind would not show")
    assert int(after) == int(before), done.stdout  # it was 1: the last fit restored the first one's limit
    assert inside.strip() == "[1]", done.stdout  # small products: 1 thread while inside fit


def test_nested_limits_apply_the_inner_one_and_restore_the_outer_one():
    from anybackprop import threads

    if threads._controller() is None or threads.blas_threads() is None:
        pytest.skip("threadpoolctl sees no BLAS library in this NumPy")
    backend = ab.backend.create_backend("numpy")
    before = threads.blas_threads()
    with threads.limited(backend, 10, num_threads=1):
        assert threads.blas_threads() == 1
        with threads.limited(backend, 10, num_threads=2):
            assert threads.blas_threads() == 2
        assert threads.blas_threads() == 1
    assert threads.blas_threads() == before


X = np.random.default_rng(0).standard_normal((20, 3))
Y = (X[:, 0] > 0).astype(int)

# (id, what a model does) while another backend is in force: its results stay on its own backend
USES = [
    ("predict", lambda m: m.predict(X)),
    ("predict_proba", lambda m: m.predict_proba(X)),
    ("forward", lambda m: m.forward(X)),
    ("grads", lambda m: m.loss_and_grads(X, Y)[1]["W1"]),
    ("fit", lambda m: (m.fit(X, Y, epochs=1, verbose=False), m.params["W1"])[1]),
    ("copy", lambda m: m.copy().params["W1"]),
    ("copy-float64", lambda m: m.copy(dtype="float64").predict(X)),
]


@pytest.mark.parametrize("use", [pytest.param(c[1], id=c[0]) for c in USES])
@pytest.mark.parametrize("own,other", [("numpy", "array_api_strict"), ("array_api_strict", "numpy")])
def test_a_model_keeps_its_backend_whatever_is_in_force(use, own, other):
    pytest.importorskip("array_api_strict")
    model = ab.MLP([3, 4, 2], backend=own)
    with ab.use_backend(other):
        result = use(model)
    assert ab.backend.create_backend(own).owns(result) and model.backend.name == own
