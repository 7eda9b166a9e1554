"""Every public function, class, method and property of the documented modules has a docstring
(the API reference, docs/api, is generated from them: a name without one is an empty entry)."""

import importlib
import inspect

import pytest

# the modules of the API reference (docs/api.md lists the same): their public names are documented
PUBLIC_MODULES = (
    "anybackprop",
    "anybackprop.activations",
    "anybackprop.losses",
    "anybackprop.updates",
    "anybackprop.layers",
    "anybackprop.heads",
    "anybackprop.network",
    "anybackprop.optim",
    "anybackprop.training",
    "anybackprop.gradcheck",
    "anybackprop.io",
    "anybackprop.backend",
    "anybackprop.datasets",
    "anybackprop.tables",
    "anybackprop.distributed",
    "anybackprop.onnx_export",
    "anybackprop.plotting",
    "anybackprop.sklearn",
)


def public_names(module):
    """The names autodoc documents for ``module``: ``__all__``, else its public functions and
    classes defined in it."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and getattr(value, "__module__", None) == module.__name__
    ]


def undocumented(module_name):
    """``module.name`` (and ``module.Class.member``) of each public callable without a docstring."""
    module = importlib.import_module(module_name)
    missing = [] if inspect.getdoc(module) else [module_name]
    for name in public_names(module):
        value = getattr(module, name)
        if inspect.ismodule(value) or not (inspect.isfunction(value) or inspect.isclass(value)):
            continue
        if not inspect.getdoc(value):
            missing.append(f"{module_name}.{name}")
        if inspect.isclass(value):
            for member, attribute in vars(value).items():
                if member.startswith("_"):
                    continue
                if isinstance(attribute, (staticmethod, classmethod)):
                    attribute = attribute.__func__
                if (inspect.isfunction(attribute) or isinstance(attribute, property)) and not inspect.getdoc(
                    getattr(value, member)
                ):
                    missing.append(f"{module_name}.{name}.{member}")
    return missing


def count(module_name):
    module = importlib.import_module(module_name)
    total = 1
    for name in public_names(module):
        value = getattr(module, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            total += 1
            if inspect.isclass(value):
                total += sum(
                    1
                    for member, attribute in vars(value).items()
                    if not member.startswith("_")
                    and (
                        inspect.isfunction(getattr(attribute, "__func__", attribute)) or isinstance(attribute, property)
                    )
                )
    return total


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_callable_has_a_docstring(module_name):
    if module_name == "anybackprop.sklearn":
        pytest.importorskip("sklearn")
    assert undocumented(module_name) == []
