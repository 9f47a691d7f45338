#!/usr/bin/env bash
# Wheels the device machine's image (Python 3.12, torch, no network) lacks for benchmarks/gpu_checks.sh:
# run here, where pip reaches PyPI; the folder .whl/ (git-ignored via .git/info/exclude) then travels
# with the device call (carry: [".whl"]) and is installed there with
#   python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl
# followed by `python3 -m pip install -q --no-index --no-deps --no-build-isolation .` (about 28 MB).
set -euo pipefail
PIP="${PIP:-.venv/bin/python -m pip}"
mkdir -p .whl
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 -d .whl \
  accelerate==1.16.0 annotated-types==0.8.0 cffi==2.1.1 cryptography==50.0.2 datasets==5.2.0 dill==0.4.1 \
  distro==1.9.0 evaluate==0.4.6 filelock==4.3.2 fsspec==2026.9.0 google-auth==2.63.0 google-genai==3.6.1 \
  httpcore2==2.16.2 httpx2==2.16.2 huggingface-hub==2.4.0 hypothesis==6.170.27 jiter==0.19.0 libcst==1.9.0 \
  mdit-py-plugins==0.7.0 multiprocess==0.70.19 mutmut==3.8.1 openai==3.60.0 platformdirs==4.14.9 pyasn1==0.6.5 \
  pyasn1-modules==0.4.2 pycparser==3.12 pydantic==2.14.4 pydantic-core==2.50.5 setproctitle==1.3.8 sniffio==1.3.1 \
  spandrel==0.4.2 spandrel-extra-arches==0.2.0 tenacity==9.1.4 textual==8.2.8 truststore==0.10.5 \
  typing-inspection==0.4.5 tzdata==2026.6 websockets==17.4 diffusers==0.42.1 addict==2.4.0 future==1.0.0 \
  lmdb==3.0.0 yapf==0.43.0
# BasicSR (the training benchmark's reference) is an sdist: build its pure-Python wheel here.
$PIP wheel -q --no-deps --no-build-isolation basicsr-fixed==1.4.2 -w .whl
du -sh .whl
