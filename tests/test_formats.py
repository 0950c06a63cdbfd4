"""Output formats of `check`: JUnit (read back with a real JUnit parser), GitHub
annotations and step summary, Markdown, --output; the real CLI on a real venv."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import junitparser
import pytest

from conftest import check_json, clean_env, make_venv, tbdoctor
from tbdoctor.findings import Finding, Report
from tbdoctor.render import github, markdown


ONLY = ("--only", "python", "pip", "gpu", "cuda")


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """An error (a missing requirement) and a warning (no pip) in one venv, and its saved facts."""
    root = tmp_path_factory.mktemp("formats")
    env = make_venv(root)
    env.add_dist("alpha", "1.0", requires=["beta>=2"], module_source="")
    facts = root / "facts.json"
    # Bare metadata, no frameworks: probe only the sections that don't import them.
    report, proc = check_json("--python", str(env.python), *ONLY, "--save-facts", str(facts))
    assert proc.returncode == 1
    return env, facts, report


def test_junit_has_one_case_per_check_and_failures_for_errors(broken, tmp_path):
    env, _, report = broken
    out = tmp_path / "ci" / "junit.xml"  # the parent folder is created
    proc = tbdoctor("check", "--python", str(env.python), *ONLY, "--quick",  # no beta on the index: keep its command
                    "--format", "junit", "--output", str(out))
    assert proc.returncode == 1
    assert "pip.missing-requirement" not in proc.stdout and "alpha 1.0 requires beta>=2" in proc.stdout  # console
    xml = junitparser.JUnitXml.fromfile(str(out))
    cases = [case for suite in xml for case in suite]
    assert sorted(c.name for c in cases) == sorted(c["id"] for c in report["checks"])
    by_name = {c.name: c for c in cases}
    [failure] = by_name["pip.missing-requirement"].result
    assert isinstance(failure, junitparser.Failure)
    assert failure.type == "error" and "alpha 1.0 requires beta>=2" in failure.text
    assert "pip install 'beta>=2'" in failure.text
    assert by_name["pip.installed"].is_passed  # a warning passes without --strict
    assert by_name["python.interpreter"].classname == "tbdoctor.python"
    assert xml.tests == len(report["checks"]) and xml.failures == 1 and xml.errors == 0


def test_junit_strict_turns_warnings_into_failures_and_ignored_into_skipped(broken):
    _, facts, report = broken
    proc = tbdoctor("check", "--facts", str(facts), "--format", "junit", "--strict", "--ignore", "python.eol")
    assert proc.returncode == 1
    root = ET.fromstring(proc.stdout.encode())
    # The shape Jenkins and GitLab read: testsuites > testsuite(tests, failures, errors, skipped) > testcase.
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert {s.get("name") for s in suites} == {f"tbdoctor.{c['section']}" for c in report["checks"]}
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(suite.get("skipped")) == sum(1 for c in cases if c.find("skipped") is not None)
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["pip.installed"].find("failure").get("type") == "warning"
    assert cases["python.eol"].find("skipped") is not None
    assert int(root.get("failures")) == 2


def test_junit_survives_control_characters_and_markup():
    nasty = Finding("probe.python", "error", "crashed <&> \"quoted\"", detail="stderr: \x1b[31mred\x00 \x07 done")
    report = Report(target={"python": "/x/python", "chosen_by": "PATH"}, findings=[nasty], facts={})
    from tbdoctor.render import junit
    xml = junitparser.JUnitXml.fromstring(junit.render(report))
    [case] = [c for s in xml for c in s]
    assert case.result[0].message == 'crashed <&> "quoted"' and "red" in case.result[0].text


def test_github_annotations_and_step_summary(broken, tmp_path):
    _, facts, _ = broken
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    proc = tbdoctor("check", "--facts", str(facts), "--format", "github", env=env)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    [error] = [line for line in lines if line.startswith("::error ")]
    assert error.startswith("::error title=tbdoctor pip.missing-requirement::")
    assert "%0A" in error and "\n" not in error  # multi-line message, one workflow command
    assert any(line.startswith("::warning title=tbdoctor pip.installed::") for line in lines)
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, not overwritten
    assert "tbdoctor check: 1 error, 1 warning" in text and "`pip.missing-requirement`" in text

    # On GitHub Actions every format appends the summary; elsewhere nothing is written.
    tbdoctor("check", "--facts", str(facts), "--format", "json", env=env)
    assert summary.read_text().count("## ❌ tbdoctor check") == 2
    elsewhere = tmp_path / "other.md"
    tbdoctor("check", "--facts", str(facts), env=clean_env(GITHUB_STEP_SUMMARY=str(elsewhere)))
    assert not elsewhere.exists()


def test_github_escaping_follows_the_toolkit():
    assert github.escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert github.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    injected = Finding("pip.config", "warning", "line one\n::set-env name=X::y")
    out = github.render(Report(target={}, findings=[injected], facts={}))
    assert out.splitlines()[0] == "::warning title=tbdoctor pip.config::line one%0A::set-env name=X::y"


def test_markdown_escapes_table_cells(broken):
    _, facts, _ = broken
    proc = tbdoctor("check", "--facts", str(facts), "--format", "markdown")
    assert proc.returncode == 1
    assert proc.stdout.startswith("## ❌ tbdoctor check: 1 error, 1 warning")
    assert "```bash\n" in proc.stdout and "pip install 'beta>=2'" in proc.stdout
    cell = markdown.cell("a | b `c` *d*")
    assert cell == "a \\| b \\`c\\` \\*d\\*"
    assert markdown.code("x|y") == "`x\\|y`" and markdown.block("```inner```").startswith("````\n")


def test_json_alias_output_file_and_bad_combinations(broken, tmp_path):
    _, facts, _ = broken
    out = tmp_path / "report.json"
    proc = tbdoctor("check", "--facts", str(facts), "--json", "--output", str(out))
    assert proc.returncode == 1
    assert json.loads(out.read_text())["schema"] == "tbdoctor.report/1"
    assert "alpha 1.0 requires beta>=2" in proc.stdout  # the console report for the log
    text = tmp_path / "report.txt"
    plain = tbdoctor("check", "--facts", str(facts), "--output", str(text))
    assert plain.returncode == 1 and plain.stdout == "" and "alpha 1.0 requires beta>=2" in text.read_text()
    both = tbdoctor("check", "--facts", str(facts), "--json", "--format", "junit")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    bad = tbdoctor("check", "--facts", str(facts), "--format", "xml")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    blocked = tmp_path / "file"
    blocked.write_text("")
    unwritable = tbdoctor("check", "--facts", str(facts), "--format", "junit", "--output", str(blocked / "x.xml"))
    assert unwritable.returncode == 2 and unwritable.stderr.startswith("tbdoctor: error: --output ")
