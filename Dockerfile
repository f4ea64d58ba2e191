# popsync in a container, for `sync --every` as one long-running process:
#
#   docker build -t popsync .
#   docker run -d --name popsync-alice --restart unless-stopped --stop-timeout 120 \
#     -v popsync-state:/state --env-file ~/.config/popsync/alice.env \
#     popsync sync --every 5m --pop pop3s://alice@pop.example.net --imap imaps://alice@imap.example.net \
#       --pop-password-env POP_PW --imap-password-env IMAP_PW
#
# The build stage runs the same npm commands as test/e2e/package.test.ts (npm ci, npm pack,
# npm install -g of the tarball), so the image holds exactly what the packaging test installs.

FROM node:20-slim AS build
# better-sqlite3 compiles its binding when no prebuilt one can be downloaded.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json README.md LICENSE ./
COPY bin ./bin
COPY src ./src
# prepack bundles the program with lab/bundle.ts and generates the man page with lab/manpage.ts
# (tooling, not shipped).
COPY lab ./lab
RUN npm pack --pack-destination /tmp/pkg
RUN npm install -g --prefix /opt/popsync --no-audit --no-fund --allow-scripts=better-sqlite3 /tmp/pkg/popsync-*.tgz

FROM node:20-slim
COPY --from=build /opt/popsync /opt/popsync
# Journals go to $XDG_STATE_HOME/popsync/: keep /state on a volume, or every new container
# starts with an empty journal and has to examine the whole mailbox again.
ENV PATH=/opt/popsync/bin:$PATH \
    XDG_STATE_HOME=/state \
    NODE_ENV=production
RUN groupadd --system --gid 10001 popsync \
 && useradd --system --uid 10001 --gid popsync --home-dir /state --shell /usr/sbin/nologin popsync \
 && mkdir -p /state \
 && chown popsync:popsync /state \
 && chmod 700 /state
USER popsync
VOLUME /state
WORKDIR /state
ENTRYPOINT ["popsync"]
CMD ["--help"]
