"""Sphinx configuration: Markdown pages (MyST) and an autodoc API reference.

Built strictly by ``make docs`` (``sphinx-build -W -n``): a warning or an
unresolved cross-reference fails the build. No intersphinx (the build must
work offline); references to the few external types that appear in
signatures are listed one by one in ``nitpick_ignore``.
"""

from __future__ import annotations

import importlib
import re

import vaemanifold

project = "vaemanifold"
author = "vaemanifold developers"
copyright = "vaemanifold developers"
release = vaemanifold.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "results/**/*.md"]  # generated tables, included by results.md
html_theme = "alabaster"
html_title = f"vaemanifold {release}"

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_inherit_docstrings = False  # torch's and stochman's docstrings are not ours to render
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False  # "Returns:" prose such as "(curve, success): ..." is not a type
#: The solvers document their constructor options under "Options:".
napoleon_custom_sections = [("Options", "params_style")]

nitpicky = True
#: External types that appear in signatures and bases; they have no target
#: without intersphinx (which would need the internet at build time).
_EXTERNAL = [
    "torch.Tensor",
    "torch.device",
    "torch.dtype",
    "torch._C.Generator",
    "torch.nn.modules.module.Module",
    "torch.nn.modules.container.Sequential",
    "numpy.ndarray",
    "stochman.curves.BasicCurve",
    "stochman.curves.CubicSpline",
    "stochman.manifold.EmbeddedManifold",
    "geoopt.manifolds.base.Manifold",
    "sklearn.neighbors._unsupervised.NearestNeighbors",
    "tqdm.std.tqdm",
    # the standard library (no intersphinx)
    "abc.ABC",
    "io.BufferedWriter",
    "pathlib.Path",
    "os.PathLike",
    # string annotations autodoc cannot evaluate (a TYPE_CHECKING import in the same signature)
    "Path",
    "PathLike",
]
nitpick_ignore = [("py:class", name) for name in _EXTERNAL]


def _lookup(dotted: str):
    """The object a dotted name reaches: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _documented_name(app, name: str):
    """Where ``name`` is documented when it is a re-export or an inherited member.

    ``vaemanifold.connecting_geodesic`` is ``vaemanifold.geodesic.connecting_geodesic``
    and is documented there once; ``VAE.far_points`` seen from another module
    of the package is ``vaemanifold.vae.model.VAE.far_points``; ``ODESolver.solve``
    (no docstring of its own) is documented on its base ``GeodesicSolver``. So
    every name that Python resolves resolves here too. Returns None when no
    object has that name (the reference stays broken and fails the build).
    """
    if not name.startswith("vaemanifold."):
        return None
    obj = _lookup(name)
    if obj is None:
        return None
    objects = app.env.get_domain("py").objects
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        real = f"{module}.{qualname}"
        if real in objects:
            return real
        owner_name, _, member = real.rpartition(".")
        owner = _lookup(owner_name)
        if isinstance(owner, type):  # an undocumented override: use the base class's entry
            for base in owner.__mro__[1:]:
                inherited = f"{base.__module__}.{base.__qualname__}.{member}"
                if inherited in objects:
                    return inherited
        return None
    # Data (a dict, a constant) has no __module__: find the documented entry that is the same object.
    attr = name.rpartition(".")[2]
    for candidate in objects:
        if candidate != name and candidate.rpartition(".")[2] == attr and _lookup(candidate) is obj:
            return candidate
    return None


def _resolve_reexports(app, env, node, contnode):
    """``missing-reference`` handler: follow vaemanifold's names to where they are documented."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module and not target.startswith("vaemanifold."):
        candidates.insert(0, f"{module}.{target}")
        if cls:
            candidates.insert(0, f"{module}.{cls}.{target}")
    domain = env.get_domain("py")
    for name in candidates:
        real = _documented_name(app, name)
        if real:
            return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], real, node, contnode)
    return None


def _factory_defaults(app, what, name, obj, options, signature, return_annotation):
    """Dataclass fields with ``default_factory`` show as ``= <factory>``, which Sphinx's
    signature parser cannot read (it then mangles the annotations); show ``= ...``."""
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


#: Inline literals, roles and interpreted text, in which a "|" is left as it is.
_INLINE_CODE = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]*`|`[^`]*`)")


def _escape_bars(app, what, name, obj, options, lines):
    """Docstrings write norms and absolute values as ``|x|`` and ``||v||_M``.

    In reStructuredText a ``|`` starts a substitution reference (``|x|_`` even a
    link), so the build would stop there. This escapes ``|`` in prose, leaving
    literal blocks, inline literals and roles alone; the text renders as written.
    """
    literal_indent = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not stripped or indent > literal_indent:
                continue
            literal_indent = None
        directive = stripped.startswith(".. ")
        if (stripped.endswith("::") and not directive) or stripped.startswith((".. code", ".. math", ".. doctest")):
            literal_indent = indent  # a literal block (or code) follows: leave it as it is
        if "|" in line and not directive:
            parts = _INLINE_CODE.split(line)
            lines[i] = "".join(p if k % 2 else p.replace("|", "\\|") for k, p in enumerate(parts))


def _napoleon_except_data(app, what, name, obj, options, lines):
    """Napoleon for everything but module data and attributes.

    Their docstrings are ``#:`` comments written as sentences ("Time-to-quality
    ladders: solver -> ..."), which napoleon would split at the first colon into
    a *type* and a description (Google style's inline attribute type).
    """
    from sphinx.ext.napoleon import _process_docstring

    if what not in ("data", "attribute"):
        _process_docstring(app, what, name, obj, options, lines)


def _replace_napoleon_listener(app):
    """Swap napoleon's autodoc-process-docstring listener for :func:`_napoleon_except_data`."""
    from sphinx.ext.napoleon import _process_docstring

    for listener in list(app.events.listeners.get("autodoc-process-docstring", [])):
        if listener.handler is _process_docstring:
            app.disconnect(listener.id)
            app.connect("autodoc-process-docstring", _napoleon_except_data, priority=listener.priority)


def setup(app):
    app.connect("builder-inited", _replace_napoleon_listener)
    app.connect("missing-reference", _resolve_reexports)
    app.connect("autodoc-process-signature", _factory_defaults)
    app.connect("autodoc-process-docstring", _escape_bars, priority=600)  # after napoleon
