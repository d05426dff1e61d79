"""timm as an independent reference for the vision towers, where it is installed.

Every timm release imports torchvision when ``timm`` is imported (``timm.layers.create_norm``,
``timm.data.transforms``), and this project must not install torchvision. The ViT code paths
never call it, so :func:`import_timm` imports timm against a stand-in torchvision whose every
attribute is a dummy class, then removes the stand-in again (timm keeps its references). transformers
is imported first so it never sees the stand-in. Returns None when timm is not installed.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types


class _Dummy(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return f"{cls.__name__}.{name}"


def _module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []

    def __getattr__(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Dummy(attr, (), {})

    module.__getattr__ = __getattr__
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _module(spec.name)

    def exec_module(self, module):
        pass


def import_timm():
    """The ``timm`` module (imported against a stand-in torchvision if needed), or None if not installed."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    if importlib.util.find_spec("timm") is None:
        return None
    import transformers  # noqa: F401  (before the stand-in exists)
    from transformers import Dinov2WithRegistersModel, LlamaForCausalLM, SiglipVisionModel  # noqa: F401

    real = importlib.util.find_spec("torchvision") is not None
    finder = None if real else _Finder()
    if finder:
        sys.meta_path.insert(0, finder)
    try:
        import timm
        import timm.models.vision_transformer  # noqa: F401
    finally:
        if finder:
            sys.meta_path.remove(finder)
            for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
                del sys.modules[name]
    return timm
