# The controller image: `cc-controller run` (ARI/AMI owner + API), `cc-controller worker`
# (Celery) and `cc-controller migrate` all run from it; compose.yaml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# uid/gid 1000 is the asterisk user of the andrius/asterisk image, so the controller can read
# the recordings Asterisk writes into the shared volume.
ARG APP_UID=1000
ARG APP_GID=1000
RUN groupadd --gid "${APP_GID}" ccc \
    && useradd --uid "${APP_UID}" --gid ccc --create-home --shell /usr/sbin/nologin ccc \
    && mkdir -p /var/spool/asterisk/recording \
    && chown ccc:ccc /var/spool/asterisk/recording

# .dockerignore keeps the context to pyproject.toml, README.md and controller/.
# psycopg[binary] ships wheels, so no compiler is needed.
COPY . /src
RUN pip install /src && rm -rf /src

USER ${APP_UID}:${APP_GID}
WORKDIR /home/ccc
EXPOSE 8080
CMD ["cc-controller", "run"]
