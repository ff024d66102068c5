# GPU training node: TensorFlow 2.18.1 (built for CUDA 12.5 and cuDNN 9.3), Horovod 0.28.1 with NCCL for
# GPU collectives, Gloo and Open MPI for control. Pins match pyproject.toml (tests/test_dockerfile.py checks).
FROM nvidia/cuda:12.5.1-cudnn-devel-ubuntu22.04

ARG PYTHON_VERSION=3.11
ARG TF_VERSION=2.18.1
ARG HOROVOD_VERSION=0.28.1

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    VIRTUAL_ENV=/opt/sgan \
    PATH=/opt/sgan/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python 3.11 from the deadsnakes PPA; g++ and cmake build Horovod; Open MPI and ssh serve multi-node launches.
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        python${PYTHON_VERSION} python${PYTHON_VERSION}-venv python${PYTHON_VERSION}-dev \
        g++ cmake make git openmpi-bin libopenmpi-dev openssh-client openssh-server \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./

# The lock pins the CPU build of TensorFlow; GPU nodes take the same version with its CUDA wheels.
RUN python${PYTHON_VERSION} -m venv "$VIRTUAL_ENV" \
    && pip install --upgrade pip==26.3 setuptools==84.2.1 wheel==0.48.0 \
    && grep -v '^tensorflow_cpu==' requirements.lock > /tmp/requirements.gpu.txt \
    && pip install "tensorflow[and-cuda]==${TF_VERSION}" -r /tmp/requirements.gpu.txt

RUN HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 \
    HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
    pip install --no-build-isolation "horovod==${HOROVOD_VERSION}" \
    && horovodrun --check-build | grep -q '\[X\] TensorFlow'

COPY sgan ./sgan
COPY pipeline ./pipeline
COPY deploy ./deploy
COPY cli ./cli
RUN pip install --no-deps --no-build-isolation . \
    && useradd --create-home --uid 1000 --shell /bin/bash sgan \
    && mkdir -p /data /runs \
    && chown sgan:sgan /data /runs
# Multi-node jobs (a Kubernetes MPIJob: k8s/mpijob.yaml): workers run sshd as `sgan` on port 2222.
COPY --chown=sgan:sgan k8s/image/sshd_config /home/sgan/.sshd_config
COPY k8s/image/ssh_config /etc/ssh/ssh_config.d/sgan.conf

USER 1000:1000
WORKDIR /runs
# The main job; override the arguments for other runs (or start horovodrun directly, see docs/distributed.md).
CMD ["sgan", "pipeline", "--data", "/data", "--output-root", "/runs", "--workers", "1"]
