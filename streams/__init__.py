"""Streaming payment reconciliation: Faust worker, pure matching engine, contracts."""

import os as _os
import sys as _sys

__version__ = "0.1.0"


def _stale_extensions(root: str) -> list[str]:
    """Compiled modules (streams/native.py) older than their source: built before an edit."""
    stale = []
    for directory, subdirs, files in _os.walk(root):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".so"):
                source = _os.path.join(directory, name.split(".", 1)[0] + ".py")
                built = _os.path.getmtime(_os.path.join(directory, name))
                if _os.path.exists(source) and _os.path.getmtime(source) > built:
                    stale.append(source)
    return stale


def _use_sources(root: str) -> None:
    """Import every module from its source even where a compiled one sits beside it."""
    from importlib import machinery

    loader = (machinery.SourceFileLoader, machinery.SOURCE_SUFFIXES)
    for directory, subdirs, _files in _os.walk(root):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        _sys.path_importer_cache[directory] = machinery.FileFinder(directory, loader)


# The compiled core's modules live in this package and in the sink's (connectors).
_roots = [_os.path.dirname(__file__)]
_sibling = _os.path.join(_os.path.dirname(_roots[0]), "connectors")
if _os.path.isdir(_sibling):
    _roots.append(_sibling)
if _os.environ.get("RECON_PURE_PYTHON"):
    for _root in _roots:
        _use_sources(_root)  # the reference the compiled core is tested against
else:
    _stale = [s for _root in _roots for s in _stale_extensions(_root)]
    if _stale:
        # The compiled core calls itself natively, so it is used whole or not at all.
        print(
            f"recon: {_stale[0]} changed since the compiled core was built; using the Python "
            "sources (rebuild: python -m streams.native build)",
            file=_sys.stderr,
        )
        for _root in _roots:
            _use_sources(_root)
