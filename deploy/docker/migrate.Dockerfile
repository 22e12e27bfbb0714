# syntax=docker/dockerfile:1.7
# infera migrate: applies database migrations to DATABASE_URL and exits (Helm hook Job, compose service).
# Build from the repository root:  docker buildx build -f deploy/docker/migrate.Dockerfile .
# (deploy/images.sh builds every image). Services run from TypeScript source with tsx, in
# the monorepo layout (workspace packages are consumed from source), production deps only.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

FROM ${NODE_IMAGE} AS deps
ENV CI=true PNPM_HOME=/pnpm
RUN npm install -g pnpm@12.4.2 && npm cache clean --force
WORKDIR /app
# Every workspace manifest: the lockfile names them all.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
COPY packages/contracts/package.json packages/contracts/
COPY packages/core/package.json packages/core/
COPY packages/policy/package.json packages/policy/
COPY packages/registry/package.json packages/registry/
COPY packages/testkit/package.json packages/testkit/
COPY services/gateway/package.json services/gateway/
COPY services/scheduler/package.json services/scheduler/
COPY services/worker-agent/package.json services/worker-agent/
COPY services/engine-sim/package.json services/engine-sim/
COPY test/package.json test/
COPY deploy/local/package.json deploy/local/
RUN --mount=type=cache,id=infera-pnpm-store,target=/pnpm/store \
    pnpm install --frozen-lockfile --prod --filter "@infera/registry..."
# tsx is a root devDependency (not in --prod): install the pinned version beside the app
# and link it where `node --import tsx` (resolved from /app) finds it.
RUN npm install --prefix /opt/tsx --no-save --no-audit --no-fund tsx@4.23.15 \
    && ln -s /opt/tsx/node_modules/tsx /app/node_modules/tsx \
    && npm cache clean --force

FROM ${NODE_IMAGE}
RUN groupadd --gid 10001 infera && useradd --uid 10001 --gid infera --no-create-home --shell /usr/sbin/nologin infera
WORKDIR /app
COPY --from=deps /opt/tsx /opt/tsx
COPY --from=deps /app /app
COPY tsconfig.base.json ./
COPY packages/contracts/src packages/contracts/src
COPY packages/core/src packages/core/src
COPY packages/policy/src packages/policy/src
COPY packages/registry/src packages/registry/src

ENV NODE_ENV=production
USER 10001:10001

# A one-shot job: no health to check.
HEALTHCHECK NONE
ENTRYPOINT ["node", "--import", "tsx", "packages/registry/src/cli.ts"]
