#!/usr/bin/env bash
# Grading on a GPU host, per Keras backend, in one go (issue 17): the fixture evaluated on
# the CIFAR-10 test images through the real sandbox (GPU device nodes bound, the CUDA
# address-space limit), the same with --trust, and bare Keras model.predict in a fresh
# process as the baseline. Prints accuracy, import/load/predict times and peak GPU memory.
#
# Written for a host with JAX (CUDA) and PyTorch (CUDA) and no TensorFlow, and no
# network. Run as root from the repository root:
#
#   bench/gpu_check.sh DATA.npz [GPU] [BACKENDS] [IMAGES]
#     DATA.npz  the CIFAR-10 test set (x uint8 NHWC, y), e.g. shared/data/cifar10/test.npz
#     GPU       GPU index (default 0; "cpu" runs everything on the CPU)
#     BACKENDS  default "jax,torch"
#     IMAGES    default 10000
#
# What it needs that such a host may lack, brought along in the working tree:
#   .whl/  Keras and the grader's small dependencies as wheels for that host's Python
#          (bench/gpu_wheels.sh downloads them on a machine with PyPI); installed with
#          --no-deps into /tmp/site, so the host's numpy, jax and torch stay as they are.
#   .deb/  bubblewrap as a Debian package (`apt-get download bubblewrap`) when the host
#          has no bwrap: unpacked into /tmp/bwrap, never over /. setpriv, prlimit and
#          timeout (util-linux, coreutils) and libseccomp.so.2 must be on the host.
# Without a usable sandbox the script still measures --trust and the baseline, and says
# why the sandbox did not run.
set -uo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: bench/gpu_check.sh DATA.npz [GPU] [BACKENDS] [IMAGES]}
gpu=${2:-0}
backends=${3:-jax,torch}
images=${4:-10000}
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! command -v bwrap >/dev/null && compgen -G ".deb/*.deb" >/dev/null; then
    for f in .deb/*.deb; do dpkg -x "$f" /tmp/bwrap; done
    export PATH=/tmp/bwrap/usr/bin:$PATH
fi

echo "== host"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null ||
    echo "no nvidia-smi: no NVIDIA GPU visible"
"$python" - <<'EOF'
import importlib.util, platform, shutil
print("python", platform.python_version())
for name in ("keras", "jax", "torch", "tensorflow", "pyseccomp"):
    spec = importlib.util.find_spec(name)
    version = ""
    if spec is not None:
        try:
            version = __import__(name).__version__
        except Exception as exc:  # a broken install is a finding
            version = f"import failed: {exc}"
    print(f"{name:<11}", version if spec is not None else "not installed")
for tool in ("bwrap", "setpriv", "prlimit", "timeout"):
    print(f"{tool:<11}", shutil.which(tool) or "MISSING")
EOF

echo "== grading per backend (sandbox, --trust, bare Keras)"
gpu_arg=(--gpu "$gpu")
[ "$gpu" = cpu ] && gpu_arg=()
"$python" bench/backend_check.py --data "$data" --backends "$backends" --images "$images" \
    "${gpu_arg[@]}" --out "${OUT:-/tmp}/backend_check.json"
