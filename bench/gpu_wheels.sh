#!/usr/bin/env bash
# Wheels that bench/gpu_check.sh installs on a GPU host without network: Keras and the
# grader's small dependencies (the versions tested here), for that host's Python (default 3.12, x86_64), into .whl/
# (ignored by git). numpy, jax and torch are the host's own and are not brought.
# Run on a machine with PyPI, from the repository root: bench/gpu_wheels.sh [3.12]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-3.12}
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
    --implementation cp "${platforms[@]}" -d .whl \
    keras==3.15.1 absl-py==2.5.1 namex==0.1.0 rich==15.0.0 markdown-it-py==4.3.0 \
    mdurl==0.1.2 pygments==2.20.0 h5py==3.14.0 optree==0.20.0 ml-dtypes==0.7.0 \
    packaging==26.3 pydantic==2.13.4 pydantic-core==2.46.4 pydantic-settings==2.14.1 \
    annotated-types==0.7.0 typing-extensions==4.16.0 typing-inspection==0.4.2 \
    python-dotenv==1.2.2 pyseccomp==0.1.2
ls -l .whl
