# voice-agent image: built with the project's own package list, run with only the
# runtime half of it. `docker compose up` uses it (docker-compose.yml); `make image`
# builds and probes it with podman. README.md, "Run with Docker".
#
# BASE: any Debian 12 root file system; `make image` passes one it made with
# debootstrap where no image registry is reachable.
ARG BASE=debian:bookworm-slim

# --- build: compilers and headers from scripts/install-deps.sh build (what `make run` uses)
FROM ${BASE} AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY . .
# the build `make run` makes (RelWithDebInfo), without the DWARF: symbols stay for backtraces
RUN cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVA_TESTS=OFF \
 && cmake --build build/release -j"$(nproc)" --target voice-agent \
 && objcopy --strip-debug build/release/voice-agent /voice-agent \
 && /voice-agent --version

# --- runtime: the shared libraries, the lws libuv plugin (dlopen'd, so ldd misses it),
# CA certificates; nothing else
FROM ${BASE}
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && groupadd --system --gid 10001 voice-agent \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/voice-agent \
      --no-create-home --shell /usr/sbin/nologin voice-agent \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/voice-agent \
      /var/lib/voice-agent/recordings /var/lib/voice-agent/spool
COPY --from=build /voice-agent /usr/local/bin/voice-agent

# Listen on the container's interface; .env (env_file) or -e may override the rest.
# CALL_EVENTS_SPOOL_DIR: call events wait here until the Edge Function took them, so
# it lives on a volume. RECORDINGS_DIR stays off unless set, e.g. to
# /var/lib/voice-agent/recordings (the other volume).
ENV HOST=0.0.0.0 \
    PORT=8787 \
    CALL_EVENTS_SPOOL_DIR=/var/lib/voice-agent/spool
VOLUME ["/var/lib/voice-agent/recordings", "/var/lib/voice-agent/spool"]
WORKDIR /var/lib/voice-agent
# numeric, so that Kubernetes' runAsNonRoot can check it
USER 10001:10001

# 8787: Twilio webhooks, the media WebSocket, /health, /ready (what the tunnel reaches).
# 9797 (MCP) is not exposed: it binds to MCP_HOST, 127.0.0.1 by default; for other
# containers on the same network set MCP_HOST=0.0.0.0 and MCP_AUTH_TOKEN, and never
# publish it on the host.
EXPOSE 8787

# /health answers 200 while the process serves, draining included.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["voice-agent", "--healthcheck"]

# SIGTERM drains: new calls get the apology, calls in progress get DRAIN_TIMEOUT_S
# (default 30 s), then exit 0. Give the container longer than that before SIGKILL:
# docker-compose.yml sets stop_grace_period, `docker stop -t 40`, Kubernetes
# terminationGracePeriodSeconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["voice-agent"]
