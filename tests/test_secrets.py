"""Secrets never leave, whatever the input (redact.py at the output boundary).

Pure properties of the redactor over many generated secrets (every shape,
with @, quotes, %-encoding, unicode and newlines, seeded or not), then the
real CLI: secrets planted at once in variables, pip's configuration, ~/.netrc,
a crashing import's stderr, a hanging import's stack, PYTHONPATH and the
logdir path must not survive, in part, in any output format or written file.
"""

from __future__ import annotations

import ast
import html
import json
import re
import shlex
import string
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import clean_env, make_venv, tbdoctor
from tbdoctor import redact
from tbdoctor.redact import REDACTED, Secrets

WINDOW = 6  # no run of this many characters of a secret may survive
ALNUM = string.ascii_letters + string.digits
SPECIALS = ["@", "'", '"', "%", "%40", "é", "€", "漢", "\n", " ", ":", "\\", "&", "!", "$", "#"]


def windows(secret: str) -> set[str]:
    """Every run of WINDOW characters of ``secret`` inside one of its whitespace-free parts."""
    found = set()
    for part in re.split(r"\s+", secret):
        found |= {part[i:i + WINDOW] for i in range(len(part) - WINDOW + 1)}
    return found


def views(text: str) -> list[str]:
    """``text`` and its decodings: JSON string literals, %-encoding, XML entities, backslash escapes."""
    out = [text, unquote(text), html.unescape(text), text.replace("\\\\", "\\")]
    strings = []
    for literal in re.findall(r'"(?:[^"\\\n]|\\.)*"', text):
        try:
            strings.append(json.loads(literal))
        except ValueError:
            pass
    return out + ["\n".join(strings)]


def leaked(secrets: list[str], texts: dict[str, str], innocent: str = "") -> list[tuple[str, str]]:
    """(where, window) for every window of a secret found in an output (not in ``innocent`` text)."""
    found = []
    for where, text in texts.items():
        seen = views(text)
        for secret in secrets:
            for w in windows(secret):
                if w not in innocent and w not in REDACTED and any(w in v for v in seen):
                    found.append((where, w))
    return found


_core = st.text(ALNUM, min_size=16, max_size=40)
# For the CLI: secrets with some variety, so that no window of one is in ordinary output ("000000").
def _wordless(s: str) -> str:
    """``s`` with a digit after every fifth letter in a row: a word ("tensor", "libcuda", "TensorFlow")
    is in any report, so a secret holding one would "leak" through text that never was the secret."""
    out, run = [], 0
    for c in s:
        out.append(c)
        run = run + 1 if c.isalpha() else 0
        if run == WINDOW - 1:
            out.append("7")
            run = 0
    return "".join(out)


_varied = _core.map(_wordless).filter(lambda s: len(set(s)) >= 8)
_chunks = st.lists(st.text(ALNUM, min_size=4, max_size=12), min_size=2, max_size=5)
_special = st.sampled_from(SPECIALS)


@st.composite
def wild(draw, specials=tuple(SPECIALS)) -> str:
    """A secret of alphanumeric chunks joined by quotes, @, %, unicode, newlines, backslashes."""
    chunks = draw(_chunks)
    joined = chunks[0]
    for chunk in chunks[1:]:
        joined += draw(st.sampled_from(specials)) + chunk
    return joined


# --- the redactor alone --------------------------------------------------------

def _shaped(kind: str, core: str) -> str:
    return {
        "hf": "hf_" + core, "ghp": "ghp_" + core, "gho": "gho_" + core, "ghs": "ghs_" + core,
        "github_pat": "github_pat_11A" + core, "glpat": "glpat-" + core, "sk": "sk-" + core,
        "sk-proj": "sk-proj-" + core, "aws": "AKIA" + core.upper()[:16].ljust(16, "Q"),
        "asia": "ASIA" + core.upper()[:16].ljust(16, "Z"), "slack": "xoxb-1234567890-" + core,
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJ" + core + ".sig" + core[::-1],
        "pypi": "pypi-AgEIcHlwaS5vcmc" + core,
    }[kind]


_KINDS = ["hf", "ghp", "gho", "ghs", "github_pat", "glpat", "sk", "sk-proj", "aws", "asia", "slack", "jwt", "pypi"]
_BEFORE = ["", " ", "\n", "\\n", '"', "'", "(", "=", "x=", "token ", "%0A", ": ", "MY_VAR=", "[", "`", "\x1b[2m"]
_AFTER = ["", " ", "\n", '"', "'", ")", ",", ".", "\\n", "`", "]"]


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(_KINDS), core=_core, before=st.sampled_from(_BEFORE), after=st.sampled_from(_AFTER))
def test_token_shapes_are_redacted_in_any_context(kind, core, before, after):
    token = _shaped(kind, core)
    context = f"cannot reach the hub with {before}{{}}{after} (retrying)"
    out = Secrets().text(context.format(token))
    assert not leaked([core], {"out": out}, innocent=context), out
    assert out.startswith("cannot reach the hub with") and out.endswith(" (retrying)")


@settings(max_examples=150, deadline=None)
@given(user=st.text(ALNUM, min_size=1, max_size=8),
       password=wild(specials=("@", "'", '"', "%", "%40", "é", "€", "漢", ":", "&", "!", "$")),
       wrap=st.sampled_from(["{}", "'{}'", '"{}"', "--index-url={}", "index-url = {}", "[{}]"]))
def test_url_user_info_goes_up_to_the_last_at_before_the_host(user, password, wrap):
    url = f"https://{user}:{password}@pypi.corp.example/simple"
    out = Secrets().text(wrap.format(url))
    assert not leaked([password], {"out": out}, innocent=wrap), out
    assert "@pypi.corp.example/simple" in out


_ASSIGNMENTS = ["HF_TOKEN='{}'", 'HF_TOKEN="{}"', '"api_key": "{}"', "'api_key': '{}'", "--password={}",
                "export AWS_SECRET_ACCESS_KEY={}", "password: {}", '{{"token": "{}"}}', "Authorization: Bearer {}",
                "aws_secret_access_key = {}", "--token {}", "os.environ['HF_TOKEN'] = '{}'", "login(token=\"{}\")"]


@settings(max_examples=150, deadline=None)
@given(form=st.sampled_from(_ASSIGNMENTS), value=st.text(ALNUM + "@%é€:/+=!$.-", min_size=8, max_size=40)
       .filter(lambda v: any(c.isdigit() for c in v)))
def test_assignments_to_credential_names_are_redacted(form, value):
    out = Secrets().text(f"crashed: {form.format(value)} (see above)")
    assert not leaked([value], {"out": out}, innocent=form), out
    assert out.startswith("crashed: ") and out.endswith(" (see above)")


def _encodings(secret: str) -> dict[str, tuple[str, object]]:
    """How outputs may show ``secret``, each with the decoder that gives it back."""
    ident = lambda s: s  # noqa: E731
    return {
        "raw": (f"value {secret} here", ident),
        "json": (json.dumps({"stderr": f"x {secret} y"}), lambda s: json.loads(s)["stderr"]),
        "json-unicode": (json.dumps({"e": secret}, ensure_ascii=False), lambda s: json.loads(s)["e"]),
        "url": (quote(secret, safe=""), unquote), "url-plus": (quote_plus(secret), unquote),
        "url-lower": (re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), quote(secret, safe="")), unquote),
        "repr": (repr(secret), ast.literal_eval), "xml": (html.escape(secret), html.unescape),
        "shell": (shlex.quote(secret), lambda s: " ".join(shlex.split(s))),
        "github": (secret.replace("%", "%25").replace("\n", "%0A"), unquote),
        "lines": ("\n      ".join(secret.split("\n")), ident),
    }


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=wild(), name=st.sampled_from(["HF_TOKEN", "WANDB_API_KEY", "MY_PASSWORD", "AWS_SECRET_ACCESS_KEY",
                                            "UV_INDEX_CORP_PASSWORD", "GH_TOKEN"]))
def test_a_seeded_secret_never_survives_in_any_encoding(secret, name):
    seeded = redact.from_environment({name: secret})
    for encoding, (text, decode) in _encodings(secret).items():
        out = seeded.text(text)
        try:
            decoded = decode(out)
        except Exception:  # redaction may break the encoding: then the raw text is what is shown
            decoded = out
        assert not leaked([secret], {encoding: out, encoding + "-decoded": str(decoded)},
                          innocent='value here {"stderr": "x y"} {"e": ""}'), (encoding, out)


@settings(max_examples=40, deadline=None)
@given(password=wild(specials=("@", "%", "'", "é", "!", "$", "&")), user=st.text(ALNUM, min_size=3, max_size=8))
def test_passwords_in_config_files_and_netrc_are_seeded(tmp_path_factory, password, user):
    folder = tmp_path_factory.mktemp("cfg")
    (folder / "pip.conf").write_text(f"[global]\nindex-url = https://{user}:{quote(password)}@corp.example/simple\n")
    (folder / "uv.toml").write_text(f'[[index]]\nurl = "https://{user}:{password}@uv.example/simple"\n'
                                    f'password = "{password}x9"\n')
    (folder / "netrc").write_text(f"machine hub.example login {user} password {password.replace(' ', '')}Z7\n")
    seeded = redact.from_environment({"PIP_CONFIG_FILE": str(folder / "pip.conf"),
                                      "UV_CONFIG_FILE": str(folder / "uv.toml"), "NETRC": str(folder / "netrc")})
    for secret in (password, password + "x9", password.replace(" ", "") + "Z7"):
        text = f"a library printed {secret} and {quote(secret, safe='')} and {json.dumps(secret)}"
        assert not leaked([secret], {"out": seeded.text(text)}, innocent="a library printed and"), secret


INNOCENT = [
    "torch 2.13.0+cpu in /usr/lib/python3.11/site-packages (tokenizers 0.19.1, keyring 24.3.0)",
    "sha256=3f2a9c0d8e7b6a5f4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b",
    "pip install --index-url https://download.pytorch.org/whl/cu126 torch==2.13.0",
    "KeyError: 'cuda' at key error, the token expired, password prompt skipped",
    "author=Jane Doe, keywords=[ml, tensorboard], SSH_AUTH_SOCK=/run/user/1000/agent.1",
    "GPU-<redacted> ~/venvs/train/bin/python -m pip install 'tensorboard>=2.18'",
    "https://pypi.org/simple/ and git+https://github.com/lanpa/tensorboardX@v2.6.2",
    "pip install google-auth==2.35.0 tokenizers==0.19.1 'secretstorage>=3.3' oauthlib~=3.2",
    '{"tokenizers": "0.19.1", "google-auth": {"version": "2.35.0"}, "session": 3, "auth": null, "keys": [1, 2]}',
]


def test_short_values_of_credential_flags_and_keys_go_too():
    text = "run --password hunter2 --api-key=abc -u me; env['HF_TOKEN'] = 'xy1'; PGPASSWORD=pw1 psql"
    assert Secrets().text(text) == ("run --password <redacted> --api-key=<redacted> -u me; "
                                    "env['HF_TOKEN'] = '<redacted>'; PGPASSWORD=<redacted> psql")


@pytest.mark.parametrize("text, secret", [
    (json.dumps({"private_key": "x", "key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n"
                 "-----END PRIVATE KEY-----\n"}), "MIIEvQIBADANBgkqhkiG9w0B"),
    ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==;", "Zm9vYmFy"),
    ("https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=AbC123dEf456GhI789%3D", "AbC123dEf456"),
    ("https://user%40corp:pa%24%24w0rd@[::1]:8080/simple", "pa%24%24w0rd"),
    ("curl -H 'Authorization: token 0123456789abcdef0123456789abcdef01234567' ...", "0123456789abcdef"),
    ("webhook https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/cCcCcCcCcCcCcCcCcCcCcCcC", "cCcCcCcCcCcC"),
    ("token: ghp_abcdefghijklmnopqrstu\n    vwxyz0123456789\nRetrying", "vwxyz012345"),  # wrapped by a logger
    (json.dumps({"e": "hf_abcdefghijklmnopq\nrstuvw987654"}), "rstuvw987654"),
])
def test_more_credentials_in_the_wild(text, secret):
    out = Secrets().text(text)
    assert secret not in out and REDACTED in out, out


def test_the_line_after_a_wrapped_token_keeps_its_words():
    assert Secrets().text("ghp_abcdefghijklmnopqrstu\nRetrying in 5 s") == f"{REDACTED}\nRetrying in 5 s"


def test_ordinary_text_is_left_alone():
    assert [Secrets().text(t) for t in INNOCENT] == INNOCENT


def test_redacting_twice_changes_nothing_more():
    seeded = Secrets(["p@ss@word99 é"])
    text = "HF_TOKEN='abc123456789' https://u:p@ss@word99 é@host/ token hf_0123456789abcdefghij"
    once = seeded.text(text)
    assert seeded.text(once) == once and "p@ss" not in once and "word99" not in once


def test_the_terminal_stream_redacts_whole_lines(capsys):
    import io
    inner = io.StringIO()
    stream = redact.RedactingStream(inner)
    stream.write("token hf_0123456")  # a secret split across two writes
    stream.write("789abcdefghij\nnext")
    assert inner.getvalue() == f"token {REDACTED}\n"
    stream.flush()
    assert inner.getvalue().endswith("next")


# --- the real CLI ----------------------------------------------------------------

CRASHING_TORCH = '''import os, sys
with open(os.environ["PIP_CONFIG_FILE"], encoding="utf-8") as fh:
    sys.stderr.write(fh.read())
with open(os.environ["NETRC"], encoding="utf-8") as fh:
    sys.stderr.write(fh.read())
sys.stderr.write("env: " + repr({k: v for k, v in os.environ.items() if k.startswith(("HF_", "MY_", "UV_"))}) + "\\n")
sys.stderr.flush()
raise RuntimeError("cannot reach the hub with token " + os.environ["MY_SETTING"] + " via " + os.environ["UV_INDEX_URL"])
'''
HANGING_TF = '''import os, time, traceback
def {name}():  # the probe captures sys.stderr during imports: the stack goes to the real one
    stack = "".join(traceback.format_stack()) + "waiting for " + os.environ["HF_TOKEN"] + "\\n"
    os.write(2, stack.encode())
    time.sleep(120)
if os.environ.get("TEST_HANG"):
    {name}()
raise ImportError("tensorflow is broken here")
'''


@pytest.fixture(scope="module")
def planted_env(tmp_path_factory):
    """A venv whose torch import quotes the environment's secrets and fails, and whose
    tensorflow import prints one with its stack and hangs (both hand-written dists)."""
    env = make_venv(tmp_path_factory.mktemp("secrets"))
    env.add_dist("pip", "24.0")  # metadata only: the python probe then reads pip's configuration
    env.add_dist("torch", "2.4.0", module_source=CRASHING_TORCH)
    env.add_dist("tensorflow", "2.17.0", module_source=HANGING_TF.format(name="placeholder"))
    return env


def run_everything(env, tmp: Path, planted: dict[str, str], hang_name: str | None) -> dict[str, str]:
    """Every command and format over ``env`` with ``planted`` secrets; returns what each
    printed and every file it wrote. With ``hang_name`` the first check's tensorflow
    import prints its stack and hangs in the function of that name."""
    (env.site / "tensorflow" / "__init__.py").write_text(HANGING_TF.format(name=hang_name or "hang"))
    pip_conf = tmp / "pip.conf"
    pip_conf.write_text(f"[global]\nindex-url = {planted['pip_url']}\n", encoding="utf-8")
    netrc = tmp / "netrc"
    netrc.write_text(f"machine hub.example login me password {planted['netrc']}\n", encoding="utf-8")
    pythonpath = tmp / planted["path_dir"] / "src"
    pythonpath.mkdir(parents=True)
    temp, state, out = tmp / "systemp", tmp / "state", tmp / "out"
    for folder in (temp, state, out):
        folder.mkdir()
    summary = out / "step-summary.md"
    vars_ = clean_env(HF_TOKEN=planted["hf_token"], MY_SETTING=planted["innocent"],
                      WANDB_API_KEY=planted["wandb"], PIP_CONFIG_FILE=str(pip_conf), NETRC=str(netrc),
                      PIP_EXTRA_INDEX_URL=planted["extra_url"], UV_INDEX_URL=planted["uv_url"],
                      PYTHONPATH=str(pythonpath), TMPDIR=str(temp), TBDOCTOR_STATE_DIR=str(state),
                      TBDOCTOR_CACHE_DIR=str(state / "cache"), GITHUB_ACTIONS="true",
                      GITHUB_STEP_SUMMARY=str(summary))
    vars_.pop("TBDOCTOR_NO_CACHE")
    py = ["--python", str(env.python)]
    logdir = tmp / planted["logdir_dir"] / "logs"
    timeout = ["--timeout", "8" if hang_name else "60"]
    runs = {  # probing three times; the other formats render the saved facts
        "check-json": ["check", "--json", "-v", *timeout, "--save-facts", str(out / "facts.json"), *py],
        "check-console+junit": ["check", "-v", *timeout, "--format", "junit", "--output", str(out / "junit.xml"), *py],
        "report": ["report", "--output", str(out / "report.md"), *py],
        "check-github": ["check", "-v", "--facts", str(out / "facts.json"), "--format", "github",
                         "--output", str(out / "gh.txt")],
        "report-json": ["report", "--json", "--facts", str(out / "facts.json")],
        "markdown": ["check", "--facts", str(out / "facts.json"), "--format", "markdown"],
        "fleet": ["fleet", str(out / "check.json")],
        "verify-json": ["verify", "--json", "--no-server", "--logdir", str(logdir), *py],
        "verify": ["verify", "-v", "--no-server", *py],
    }
    texts = {}
    for name, argv in runs.items():
        hang = {"TEST_HANG": "1"} if hang_name and name == "check-json" else {}
        proc = tbdoctor(*argv, env=dict(vars_, **hang), timeout=240)
        assert proc.returncode in (0, 1), (name, proc.stderr[-2000:])
        texts[name] = proc.stdout + proc.stderr
        if name == "check-json":
            (out / "check.json").write_text(proc.stdout)
    for path in [*out.rglob("*"), *state.rglob("*"), *tmp.joinpath(planted["logdir_dir"]).rglob("*")]:
        if path.is_file():
            texts[str(path.relative_to(tmp))] = path.read_bytes().decode("utf-8", "replace")
    assert not any(temp.iterdir()), list(temp.iterdir())  # and nothing left in the temp folder
    return texts


def _assert_seen(texts: dict[str, str], hang: bool) -> None:
    """The planted failures did reach the outputs, with the secrets cut out."""
    assert f"cannot reach the hub with token {REDACTED}" in texts["check-json"]
    assert f"cannot reach the hub with token {REDACTED}" in texts["check-console+junit"]
    assert not hang or "timed out after" in texts["check-json"]  # the hanging import, and its stack:
    assert not hang or f"line 3, in {REDACTED}" in texts["check-json"]
    assert "RuntimeError" in texts["verify-json"] and "RuntimeError" in texts["out/junit.xml"]


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(hf=wild().map(_wordless).filter(lambda s: len(set(s)) >= 8), innocent_core=_varied,
       wandb=st.text("0123456789abcdef", min_size=40, max_size=40).map(_wordless).filter(
           lambda s: len(set(s)) >= 8),
       pip_password=wild(specials=("@", "%", "'", "é", "!", "$")).map(_wordless).filter(lambda s: len(set(s)) >= 8),
       extra=_varied, uv=_varied, netrc=st.text(ALNUM + "!$%&*", min_size=12, max_size=30).map(_wordless).filter(
           lambda s: len(set(s)) >= 8), path_core=_varied, logdir_core=_varied,
       hang_core=st.text(ALNUM, min_size=30, max_size=36).map(_wordless).filter(lambda s: len(set(s)) >= 8))
def test_no_part_of_any_planted_secret_leaves_through_the_cli(planted_env, tmp_path_factory, hf, innocent_core, wandb,
                                                              pip_password, extra, uv, netrc, path_core, logdir_core,
                                                              hang_core):
    planted = {"hf_token": hf, "innocent": "glpat-" + innocent_core, "wandb": wandb,
               "pip_url": f"https://corp:{pip_password}@pypi.corp.example/simple",
               "extra_url": f"https://ci:{quote(extra + '@x', safe='')}@mirror.example/simple",
               "uv_url": f"https://{uv}@uv.example/simple", "netrc": netrc,
               "path_dir": "sk-proj-" + path_core, "logdir_dir": "xoxb-1234567890-" + logdir_core}
    texts = run_everything(planted_env, tmp_path_factory.mktemp("run"), planted, "ghp_" + hang_core)
    _assert_seen(texts, hang=True)
    secrets = [hf, innocent_core, wandb, pip_password, extra, uv, netrc, path_core, logdir_core, hang_core]
    assert not leaked(secrets, texts)


def test_a_crashing_import_that_quotes_a_token_is_redacted_in_every_format(planted_env, tmp_path):
    token = "hf_Qx7Lm2Vb9Tz4Kp1RsT8uW3yZ6aB"
    planted = {"hf_token": "my'se\"cret\nsecond-line-4242", "innocent": token, "wandb": "0123456789abcdef" * 2 + "01234567",
               "pip_url": "https://user:p@ss@word99@pypi.corp.example/simple",
               "extra_url": "https://ci:t%40ken%2Fabc123@mirror.example/simple",
               "uv_url": "https://uvtoken12345@uv.example/simple", "netrc": "netrcPass!123",
               "path_dir": "sk-proj-abcdefghijklmnop1234", "logdir_dir": "xoxb-1234567890-abcdefghijkl"}
    texts = run_everything(planted_env, tmp_path, planted, None)
    _assert_seen(texts, hang=False)
    assert "https://<redacted>@pypi.corp.example/simple" in texts["check-json"]  # not <redacted>@word99@...
    for secret in (token, "word99", "p@ss", "t%40ken", "second-line", "my'se", "netrcPass", "uvtoken"):
        assert not [name for name, text in texts.items() if secret in text], secret
