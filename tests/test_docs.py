"""The README documents every finding id the rules can produce, and each rule module is registered."""

import pkgutil
import re

import tbdoctor.rules
from conftest import REPO

_ID = re.compile(r'Finding\(\s*f?"([a-z0-9_.{}-]+)"')


def rule_ids() -> set[str]:
    found = set()
    for path in (REPO / "tbdoctor").rglob("*.py"):
        found |= set(_ID.findall(path.read_text()))
    return found


def test_every_finding_id_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = sorted(i for i in rule_ids()
                     if f"`{i.replace('{name}', '<name>').replace('{section}', '<section>')}`" not in readme)
    assert not missing, f"document these ids in README.md: {missing}"


def test_every_rule_module_is_registered_and_ids_are_stable_names():
    modules = {m.name for m in pkgutil.iter_modules(tbdoctor.rules.__path__) if m.name != "common"}
    registered = {rule.__module__.rsplit(".", 1)[-1] for rule in tbdoctor.rules.RULES + tbdoctor.rules.POST}
    assert modules == registered
    assert all(re.fullmatch(r"([a-z0-9]+|\{section\})(\.[a-z0-9{}-]+)+", i) for i in rule_ids())
