#!/bin/sh
# Real-GPU smoke run: prepares an environment, runs the `gpu` test tier (tests/test_gpu_real.py),
# then `tbdoctor check --json` and `tbdoctor verify --json`, and saves all three outputs under
# tests/fixtures/gpu-real/ (and under $OUT when that is set).
#
#   benchmarks/gpu_smoke.sh [PYTHON]
#
# PYTHON: an interpreter whose torch is a CUDA build (default: $TBDOCTOR_GPU_PYTHON, else python3).
# It is never changed: a new venv sees its site-packages through a .pth file (that works when
# PYTHON is itself a venv, where --system-site-packages would not) and gets what is missing
# (tensorboardX, tensorboard, platformdirs, nvidia-ml-py, pytest). No torch is installed. On a machine
# without internet, put those wheels in ./.whl (or $TBDOCTOR_WHEELS) first, e.g.:
#   pip download --no-deps --only-binary=:all: -d .whl tensorboardX platformdirs
# Exit status: the test tier's (0 only when every gpu test passed or none could run).
set -u
cd "$(dirname "$0")/.." || exit 2
BASE=${1:-${TBDOCTOR_GPU_PYTHON:-python3}}
VENV=${TBDOCTOR_GPU_VENV:-${TMPDIR:-/tmp}/tbdoctor-gpu-venv}
WHEELS=${TBDOCTOR_WHEELS:-.whl}
SAVE=tests/fixtures/gpu-real
mkdir -p "$SAVE"

"$BASE" -m venv --clear "$VENV" || exit 2
PY=$VENV/bin/python
"$BASE" -c "import site; print('\n'.join(site.getsitepackages()))" \
    > "$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/tbdoctor-gpu-base.pth" || exit 2
if [ -d "$WHEELS" ]; then SOURCE="--no-index --find-links $WHEELS"; else SOURCE=""; fi
missing=""
for pair in tensorboardX:tensorboardX tensorboard:tensorboard platformdirs:platformdirs pynvml:nvidia-ml-py pytest:pytest; do
    "$PY" -c "import ${pair%%:*}" 2>/dev/null || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086  # word splitting of $SOURCE and $missing is meant
    "$PY" -m pip install -q --disable-pip-version-check $SOURCE $missing || exit 2
fi

{
    echo "# gpu smoke run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1
} > "$SAVE/machine.txt"

TBDOCTOR_GPU_PYTHON=$PY "$PY" -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_gpu_real.py \
    > "$SAVE/pytest.txt" 2>&1
status=$?
"$PY" -m tbdoctor check --json --python "$PY" > "$SAVE/check.json" 2> "$SAVE/check.stderr"
"$PY" -m tbdoctor verify --json --python "$PY" --no-browser --logdir "${TMPDIR:-/tmp}/tbdoctor-gpu-logs" \
    > "$SAVE/verify.json" 2> "$SAVE/verify.stderr"
[ -s "$SAVE/check.stderr" ] || rm -f "$SAVE/check.stderr"
[ -s "$SAVE/verify.stderr" ] || rm -f "$SAVE/verify.stderr"

if [ -n "${OUT:-}" ]; then cp "$SAVE"/* "$OUT"/; fi
tail -n 15 "$SAVE/pytest.txt"
echo "saved in $SAVE: $(ls "$SAVE" | tr '\n' ' ')"
exit "$status"
