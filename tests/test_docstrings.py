"""Every public function, class, method and property of the documented modules has a docstring
(the API reference, docs/api, is generated from them: a name without one is an empty entry)."""

import importlib
import inspect
import pkgutil

import pytest

import anybackprop


def documented_modules():
    """Every module of the package without a leading underscore in its name: the API reference
    has a page for each (docs/conf.py walks the package the same way), so a new module is checked."""
    found = [info.name for info in pkgutil.walk_packages(anybackprop.__path__, "anybackprop.")]
    return sorted(["anybackprop", *(name for name in found if not any(p.startswith("_") for p in name.split(".")))])


PUBLIC_MODULES = documented_modules()


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


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_callable_has_a_docstring(module_name):
    if module_name == "anybackprop.sklearn":
        pytest.importorskip("sklearn")
    assert undocumented(module_name) == []
