"""Which ``pip install`` extra provides a missing module, for one-line errors.

A command that needs an optional dependency catches the ``ModuleNotFoundError`` and
prints :func:`missing_extra` instead of a traceback (exit status 2). Library modules
that import one for Python API users re-raise it through :func:`needs_extra`, so the
message names the extra there too.
"""

from __future__ import annotations

__all__ = ["EXTRA_OF", "missing_extra", "needs_extra"]

EXTRA_OF: dict[str, str] = {
    "tensorflow": "harness",
    "keras": "analysis",
    "ai_edge_litert": "harness",
    "tflite_runtime": "harness",
    "tflite": "harness",
    "flatbuffers": "harness",
    "onnx": "harness",
    "onnxruntime": "harness",
    "h5py": "harness",
    "tomli": "harness",
    "matplotlib": "analysis",
    "scipy": "analysis",
    "ray": "fleet",
}
"""Top-level module -> the smallest extra of ``latbench`` that installs it."""


def missing_extra(exc: ModuleNotFoundError, command: str, extra: str | None = None) -> str:
    """One line naming the missing module and the install command that provides it.

    ``extra`` is the command's own extra (e.g. ``analysis`` for ``latbench-predict``,
    whose TensorFlow comes with it); otherwise the module's entry in :data:`EXTRA_OF`.
    Modules of no extra (a core dependency gone missing) get a reinstall hint.
    """
    module = (exc.name or str(exc)).split(".")[0]
    chosen = extra if module in EXTRA_OF and extra else EXTRA_OF.get(module)
    if chosen is None:
        return (
            f"{command}: error: the Python module {module!r} is missing; "
            "reinstall LatBench (pip install latbench)"
        )
    return (
        f"{command}: error: this needs the Python module {module!r}, which comes with "
        f"the {chosen!r} extra: pip install 'latbench[{chosen}]'"
    )


def needs_extra(exc: ModuleNotFoundError, what: str) -> ModuleNotFoundError:
    """``exc`` reworded to name the extra that installs its module (``raise ... from None``).

    ``what`` says what needs it (``"latbench.analysis (figures)"``). The module name is
    kept in ``.name``, so a CLI's :func:`missing_extra` still recognizes it.
    """
    module = (exc.name or str(exc)).split(".")[0]
    extra = EXTRA_OF.get(module)
    how = (
        f", which comes with the {extra!r} extra: pip install 'latbench[{extra}]'" if extra else ""
    )
    return ModuleNotFoundError(f"{what} needs the Python module {module!r}{how}", name=exc.name)
