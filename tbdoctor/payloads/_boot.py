# The start of every script tbdoctor sends to a target interpreter. The script is
# this file, then ``run(sources, main)`` with the payload modules it needs as text:
# they are imported from memory as the package _tbdoctor_payloads (a name no user
# module takes), so a payload imports ``from ._common import emit`` like ordinary
# Python, and nothing of tbdoctor's own code is importable. Stdlib only, 3.8+.
# (importlib.abc is not imported: it costs 30 ms of start-up, more than all the rest.)
import sys
from importlib.machinery import ModuleSpec

PACKAGE = "_tbdoctor_payloads"


class _Sources:
    """Finds and loads the modules of PACKAGE from their source text (a meta path
    finder and loader, by the protocol importlib.abc describes)."""

    def __init__(self, sources):
        self.sources = sources

    def find_spec(self, fullname, path=None, target=None):
        parent, _, name = fullname.rpartition(".")
        if fullname == PACKAGE:
            return ModuleSpec(fullname, self, is_package=True)
        if parent == PACKAGE and name in self.sources:
            return ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__.rpartition(".")[2]
        if module.__name__ != PACKAGE:
            exec(_compiled(self.sources[name], name), module.__dict__)


def _compiled(source, name):
    # A name in <>: tbdoctor's stack reading skips frames of its own payloads.
    return compile(source, "<%s/%s.py>" % (PACKAGE, name), "exec", dont_inherit=True)


def run(sources, main):
    """Run payload ``main`` as this script (__main__), its sibling modules importable."""
    sys.meta_path.insert(0, _Sources(sources))
    scope = sys.modules["__main__"].__dict__
    scope["__package__"] = PACKAGE
    exec(_compiled(sources[main], main), scope)
