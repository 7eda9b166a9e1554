"""Sphinx configuration of the anybackprop documentation (build: ``sphinx-build -W -b html docs docs/_build/html``).

Sphinx rather than MkDocs: the API reference is generated from the docstrings by autodoc and
autosummary (every module, every public name), the formulas in the docstrings are reStructuredText
``.. math::`` blocks that Sphinx renders with MathJax (served from the site itself, no network),
and the user guide is Markdown (MyST) that includes the README's sections, so the two never differ.
"""

import inspect
import os
import pkgutil
import re
import sys
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import anybackprop  # noqa: E402

project = "anybackprop"
author = "the anybackprop authors"
copyright = "the anybackprop authors"
release = version = anybackprop.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax 3 copied into the site: the maths renders offline
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]
html_theme = "alabaster"
html_theme_options = {"description": "hand-derived backpropagation on any array library", "fixed_sidebar": True}
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # scikit-learn's metadata-routing setters, generated on every estimator
    "exclude-members": "set_fit_request, set_partial_fit_request, set_predict_request, set_score_request",
}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_mock_imports = ["cupy", "cupyx", "mpi4py", "torch", "onnx", "onnxruntime", "matplotlib", "tqdm"]
napoleon_numpy_docstring = True
napoleon_google_docstring = False
nitpicky = False
suppress_warnings = ["autosummary.import_cycle"]

# README sections included in the guide: links to files of the repository (not pages of this
# site) become their path in code, and the README's image paths become this folder's
_REPO_LINK = re.compile(r"(!?)\[([^\]]*)\]\((?!https?://|#|mailto:)([^)\s]+)\)")


def _repo_links(app, relative_path, parent_docname, content):
    def replace(match):
        image, text, target = match.groups()
        if image:
            return f"![{text}]({os.path.relpath(os.path.join(ROOT, target), os.path.join(ROOT, 'docs', 'guide'))})"
        return f"`{target}`" if text.strip("`") == target else f"{text} (`{target}` in the repository)"

    content[0] = _REPO_LINK.sub(replace, content[0])


def documented_modules():
    """Every module of the package whose name has no leading underscore: each gets a page."""
    found = [info.name for info in pkgutil.walk_packages(anybackprop.__path__, "anybackprop.")]
    return sorted(["anybackprop", *(name for name in found if not any(p.startswith("_") for p in name.split(".")))])


def _write_api_pages(app):
    """docs/api/<module>.rst for each documented module (regenerated at every build, so a new
    module is documented without a change here); the package's own page lists the names it
    re-exports, each linked to the module that defines it."""
    folder = os.path.join(app.srcdir, "api")
    os.makedirs(folder, exist_ok=True)
    for name in documented_modules():
        title = f"``{name}``"
        lines = [title, "=" * len(title), "", f".. automodule:: {name}"]
        if name == "anybackprop":
            lines += ["   :no-members:", "", "Re-exported here (``ab.<name>``), each documented in its module:", ""]
            for public in anybackprop.__all__:
                value = getattr(anybackprop, public)
                home = getattr(value, "__module__", None)  # modules have their own pages
                if home and (inspect.isclass(value) or inspect.isfunction(value)):
                    lines.append(f"* :py:obj:`{public} <{home}.{public}>`")
        text = "\n".join(lines) + "\n"
        path = os.path.join(folder, f"{name}.rst")
        if not os.path.exists(path) or Path(path).read_text() != text:  # unchanged pages stay unchanged
            Path(path).write_text(text)


def setup(app):
    app.connect("builder-inited", _write_api_pages)
    app.connect("include-read", _repo_links)
