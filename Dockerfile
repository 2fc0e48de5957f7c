# syntax=docker/dockerfile:1.7
# hotchat images, from one cached multi-stage build:
#   docker build --target chat-server .      the chat-server (API; embedded mode when run alone)
#   docker build --target publish-server .   the publish-server (SSE fan-out and projector)
#   docker build --target proxy .            nginx with the web app, routing to both
# docker-compose.yml builds all three.

FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci
COPY web/ ./
RUN npm run build

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Registry and target folders are cache mounts: a rebuild after a source change recompiles only the
# workspace crates, not librdkafka and the dependency tree.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chat-server -p publish-server \
 && mkdir -p /out && cp target/release/chat-server target/release/publish-server /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /app hotchat && mkdir -p /app/data && chown hotchat /app/data
WORKDIR /app
USER hotchat

FROM runtime AS chat-server
COPY --from=build /out/chat-server /usr/local/bin/chat-server
COPY --from=web /web/dist /app/web/dist
ENV CHAT_ADDR=0.0.0.0:8080 WEB_DIR=/app/web/dist
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["chat-server"]

FROM runtime AS publish-server
COPY --from=build /out/publish-server /usr/local/bin/publish-server
ENV PUBLISH_ADDR=0.0.0.0:8081
EXPOSE 8081
HEALTHCHECK --interval=5s --timeout=3s CMD curl -fsS http://127.0.0.1:8081/healthz || exit 1
CMD ["publish-server"]

FROM nginx:1.27-alpine AS proxy
COPY deploy/nginx.conf /etc/nginx/conf.d/default.conf
COPY --from=web /web/dist /usr/share/nginx/html
