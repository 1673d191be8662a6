# doppel on one NVIDIA GPU: the bot, a local Ray instance and the trainer in one container.
#   docker build -t doppel .
#   docker run --gpus all --shm-size=8g --restart on-failure:10 --stop-timeout 70 \
#     --env-file .env -v doppel-data:/data -v doppel-models:/models doppel
# (--stop-timeout: a stop lets running training write its checkpoint, within STOP_GRACE_S + 10 s, 55 s by
# default, README "Operations"; Docker's default 10 s would kill it mid-checkpoint.)
# (--shm-size: Ray keeps its object store in /dev/shm, which Docker otherwise caps at 64 MB.)
# (--restart on-failure:10: exits 2, 3 and 4 need a person, and Docker cannot leave codes out; README "Operations".)
# The playground in the container, opened from the host at http://127.0.0.1:8765/ (it has no login: the port is
# published on the host's loopback only):
#   docker run --gpus all --shm-size=8g -p 127.0.0.1:8765:8765 doppel python -m bot playground --host 0.0.0.0
# The NVIDIA driver on the host: 580 or newer (torch 2.13.0's wheel brings the CUDA 13 libraries itself; the
# base image has none, and needs none: --gpus gives the container the driver).
FROM ubuntu:24.04

# What the NVIDIA container toolkit gives the container (the nvidia/cuda images set them; this image has none).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv libgl1 libglib2.0-0 tini \
 && rm -rf /var/lib/apt/lists/*

RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
# Dependencies first, so a code change does not reinstall torch (PyPI's Linux wheel is the CUDA 13 build, with
# its CUDA and cuDNN libraries).
COPY pyproject.toml README.md ./
RUN mkdir bot trainer contract faces fake_discord \
 && touch bot/__init__.py trainer/__init__.py contract/__init__.py faces/__init__.py fake_discord/__init__.py \
 && pip install "torch==2.13.0" \
 && pip install ".[gpu]" \
 && rm -rf bot trainer contract faces fake_discord
COPY bot ./bot
COPY trainer ./trainer
COPY contract ./contract
COPY faces ./faces
# The Discord stand-in and the playground: `python -m bot playground` in the container too.
COPY fake_discord ./fake_discord
COPY playground ./playground
RUN pip install --no-deps .

RUN useradd --create-home --uid 10001 doppel \
 && mkdir -p /data /models \
 && chown doppel:doppel /data /models
USER doppel

ENV DATA_DIR=/data \
    MODEL_CACHE_DIR=/models/doppel \
    HF_HOME=/models/huggingface \
    RAY_DISABLE_USAGE_STATS=1
VOLUME ["/data", "/models"]

HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-m", "bot", "healthcheck"]

ENTRYPOINT ["/usr/bin/tini", "--"]
# SIGTERM (docker stop) and SIGINT stop the bot gracefully (bot/serve.py); tini passes them on.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
