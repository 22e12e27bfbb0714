{{/* Names ------------------------------------------------------------------ */}}
{{- define "infera.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "infera.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>", component passed as .component */}}
{{- define "infera.componentName" -}}
{{- printf "%s-%s" (include "infera.fullname" .root | trunc 40 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "infera.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "gateway") ------------------ */}}
{{- define "infera.selectorLabels" -}}
app.kubernetes.io/name: {{ include "infera.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "infera.labels" -}}
helm.sh/chart: {{ include "infera.chart" .root }}
{{ include "infera.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: infera
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* Third-party images: (dict "root" $ "image" .Values.postgres.image) -> repo:tag or repo@digest */}}
{{- define "infera.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (toString .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Platform image (gateway, scheduler, agent, engine-sim, migrate):
     repository = <global.imageRegistry>/<image.name> unless image.repository is set. */}}
{{- define "infera.platformImage" -}}
{{- $repo := .image.repository | default (printf "%s/%s" .root.Values.global.imageRegistry .image.name) -}}
{{- $tag := .image.tag | default .root.Values.global.imageTag | default .root.Chart.AppVersion -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (toString $tag) -}}
{{- end -}}
{{- end -}}

{{/* Database / Redis connection Secrets ----------------------------------- */}}
{{- define "infera.database.secretName" -}}
{{- if .Values.postgres.enabled -}}
{{- include "infera.componentName" (dict "root" . "component" "postgres") -}}
{{- else -}}
{{- .Values.externalDatabase.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "infera.database.secretKey" -}}
{{- if .Values.postgres.enabled -}}database-url{{- else -}}{{ .Values.externalDatabase.existingSecretKey }}{{- end -}}
{{- end -}}

{{/* Redis: the bundled one (its URL is no secret, its password is) or externalRedis's Secret. */}}
{{- define "infera.redis.authSecretName" -}}
{{- .Values.redis.auth.existingSecret | default (include "infera.componentName" (dict "root" . "component" "redis-auth")) -}}
{{- end -}}

{{- define "infera.redis.authSecretKey" -}}
{{- if .Values.redis.auth.existingSecret -}}{{ .Values.redis.auth.existingSecretKey }}{{- else -}}password{{- end -}}
{{- end -}}

{{/* Common env: DATABASE_URL, REDIS_URL (+ REDIS_PASSWORD), REDIS_PREFIX, LOG_LEVEL */}}
{{- define "infera.env.database" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "infera.database.secretName" . }}
      key: {{ include "infera.database.secretKey" . }}
{{- end -}}

{{- define "infera.env.tracing" -}}
{{- with .Values.global.tracing }}
{{- if .otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .otlpEndpoint | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "infera.env.redis" -}}
{{- if .Values.redis.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s:6379" (include "infera.componentName" (dict "root" . "component" "redis")) | quote }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "infera.redis.authSecretName" . }}
      key: {{ include "infera.redis.authSecretKey" . }}
{{- else }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalRedis.existingSecret }}
      key: {{ .Values.externalRedis.existingSecretKey }}
{{- with .Values.externalRedis.existingSecretPasswordKey }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.externalRedis.existingSecret }}
      key: {{ . }}
{{- end }}
{{- end }}
- name: REDIS_PREFIX
  value: {{ .Values.global.redisPrefix | quote }}
{{- end -}}

{{/* AGENT_AUTH_TOKEN (gateway → agent gRPC): the generated Secret or agent.auth.existingSecret. */}}
{{- define "infera.agentToken.generated" -}}
{{- if and .Values.agent.auth.create (not .Values.agent.auth.existingSecret) -}}true{{- end -}}
{{- end -}}

{{- define "infera.agentToken.secretName" -}}
{{- .Values.agent.auth.existingSecret | default (include "infera.componentName" (dict "root" . "component" "agent-token")) -}}
{{- end -}}

{{/* TLS on the agent channel: env of the gateway ("gateway") or the agent ("agent"), the Secret mounted at /etc/infera/agent-tls. */}}
{{- define "infera.agentTls.env" -}}
{{- $t := .root.Values.agent.tls -}}
{{- if $t.enabled -}}
{{- if eq .side "agent" }}
- name: AGENT_TLS_CERT_FILE
  value: /etc/infera/agent-tls/tls.crt
- name: AGENT_TLS_KEY_FILE
  value: /etc/infera/agent-tls/tls.key
{{- if $t.mutual }}
- name: AGENT_TLS_CLIENT_CA_FILE
  value: /etc/infera/agent-tls/ca.crt
{{- end }}
{{- else }}
- name: AGENT_TLS_CA_FILE
  value: /etc/infera/agent-tls/ca.crt
- name: AGENT_TLS_SERVER_NAME
  value: {{ $t.serverName | quote }}
{{- if $t.mutual }}
- name: AGENT_TLS_CLIENT_CERT_FILE
  value: /etc/infera/agent-tls/tls.crt
- name: AGENT_TLS_CLIENT_KEY_FILE
  value: /etc/infera/agent-tls/tls.key
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "infera.env.agentToken" -}}
- name: AGENT_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "infera.agentToken.secretName" . }}
      key: {{ .Values.agent.auth.key }}
{{- end -}}

{{- define "infera.bootstrapKey.secretName" -}}
{{- if .Values.gateway.bootstrapAdminKey.existingSecret -}}
{{- .Values.gateway.bootstrapAdminKey.existingSecret -}}
{{- else -}}
{{- include "infera.componentName" (dict "root" . "component" "admin-key") -}}
{{- end -}}
{{- end -}}

{{- define "infera.bootstrapKey.enabled" -}}
{{- if or .Values.gateway.bootstrapAdminKey.create .Values.gateway.bootstrapAdminKey.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* The admin key Secret is generated (by the secrets Job) unless an existing one is named. */}}
{{- define "infera.bootstrapKey.generated" -}}
{{- if and .Values.gateway.bootstrapAdminKey.create (not .Values.gateway.bootstrapAdminKey.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* SECRETS_KEY (seals Hugging Face tokens): the generated Secret or secrets.existingSecret. */}}
{{- define "infera.secretsKey.enabled" -}}
{{- if or .Values.secrets.create .Values.secrets.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "infera.secretsKey.generated" -}}
{{- if and .Values.secrets.create (not .Values.secrets.existingSecret) -}}true{{- end -}}
{{- end -}}

{{- define "infera.secretsKey.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "infera.componentName" (dict "root" . "component" "secrets-key") -}}
{{- end -}}
{{- end -}}

{{/* Whether the secrets Job has anything to generate. */}}
{{- define "infera.generatedSecrets" -}}
{{- if or (include "infera.bootstrapKey.generated" .) (include "infera.secretsKey.generated" .) .Values.postgres.enabled (include "infera.agentToken.generated" .) (and .Values.redis.enabled (not .Values.redis.auth.existingSecret)) -}}true{{- end -}}
{{- end -}}

{{/* Labels of the Secrets the secrets Job creates (not Helm's: they outlive the release). */}}
{{- define "infera.generatedSecretLabels" -}}
app.kubernetes.io/name: {{ include "infera.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: generated-secret
app.kubernetes.io/part-of: infera
{{- end -}}

{{/* The same SECRETS_KEY for the gateway (seals) and the scheduler (opens). */}}
{{- define "infera.env.secretsKey" -}}
{{- if include "infera.secretsKey.enabled" . -}}
- name: SECRETS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "infera.secretsKey.secretName" . }}
      key: {{ .Values.secrets.key }}
{{- with .Values.secrets.previousKey }}
- name: SECRETS_KEY_PREVIOUS
  valueFrom:
    secretKeyRef:
      name: {{ include "infera.secretsKey.secretName" $ }}
      key: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "infera.scheduler.serviceAccountName" -}}
{{- if .Values.scheduler.serviceAccount.create -}}
{{- .Values.scheduler.serviceAccount.name | default (include "infera.componentName" (dict "root" . "component" "scheduler")) -}}
{{- else -}}
{{- .Values.scheduler.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "infera.engineNamespace" -}}
{{- .Values.scheduler.engineNamespace | default .Release.Namespace -}}
{{- end -}}

{{/* preStop sleep hook: (int seconds) */}}
{{- define "infera.preStopSleep" -}}
lifecycle:
  preStop:
    exec:
      command: ["sleep", {{ . | toString | quote }}]
{{- end -}}

{{/* Where file bodies live (Files and Batch APIs): the gateway's and the scheduler's env. */}}
{{- define "infera.env.storage" -}}
{{- $s := .Values.storage -}}
- name: STORAGE_BACKEND
  value: {{ $s.backend | quote }}
{{- if eq $s.backend "local" }}
- name: STORAGE_DIR
  value: /var/lib/infera/files
{{- else }}
{{- $o := $s.s3 }}
- name: S3_BUCKET
  value: {{ $o.bucket | quote }}
- name: S3_REGION
  value: {{ $o.region | quote }}
{{- with $o.endpoint }}
- name: S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if not (kindIs "invalid" $o.forcePathStyle) }}
- name: S3_FORCE_PATH_STYLE
  value: {{ $o.forcePathStyle | quote }}
{{- end }}
{{- with $o.prefix }}
- name: S3_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- with $o.existingSecret }}
- name: S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $o.accessKeyIdKey }}
- name: S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $o.secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "infera.storage.volumeMount" -}}
{{- if eq .Values.storage.backend "local" }}
- { name: files, mountPath: /var/lib/infera/files }
{{- end }}
{{- end -}}

{{- define "infera.storage.volume" -}}
{{- if eq .Values.storage.backend "local" }}
- name: files
{{- with .Values.storage.local.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}
{{- end -}}

{{/* Render-time checks of impossible values. Included from every template that
     needs them (helm renders all templates, so one include point is enough). */}}
{{- define "infera.validate" -}}
{{- $v := .Values -}}
{{- if and $v.postgres.enabled $v.externalDatabase.existingSecret -}}
{{- fail "postgres.enabled (bundled Postgres) and externalDatabase.existingSecret are both set: choose one" -}}
{{- end -}}
{{- if and (not $v.postgres.enabled) (not $v.externalDatabase.existingSecret) -}}
{{- fail "no database: set postgres.enabled=true (bundled, for a trial) or externalDatabase.existingSecret (a Secret holding DATABASE_URL)" -}}
{{- end -}}
{{- if and $v.redis.enabled $v.externalRedis.existingSecret -}}
{{- fail "redis.enabled (bundled Redis) and externalRedis.existingSecret are both set: choose one" -}}
{{- end -}}
{{- if and (not $v.redis.enabled) (not $v.externalRedis.existingSecret) -}}
{{- fail "no Redis: set redis.enabled=true (bundled, for a trial) or externalRedis.existingSecret (a Secret holding REDIS_URL)" -}}
{{- end -}}
{{- if and $v.agent.tls.enabled (not $v.agent.tls.existingSecret) -}}
{{- fail "agent.tls.enabled needs agent.tls.existingSecret: a Secret with tls.crt, tls.key and ca.crt (a cert-manager Certificate makes one) whose certificate names agent.tls.serverName" -}}
{{- end -}}
{{- if and (not $v.agent.auth.create) (not $v.agent.auth.existingSecret) -}}
{{- fail "agent.auth: set create=true (the secrets Job generates the token) or existingSecret (a Secret holding it under agent.auth.key): worker agents refuse every call without a token" -}}
{{- end -}}
{{- if and $v.scheduler.engineNamespace (ne $v.scheduler.engineNamespace $.Release.Namespace) (not $v.agent.auth.existingSecret) -}}
{{- fail "scheduler.engineNamespace differs from the release namespace: the agents there need the token Secret, so set agent.auth.existingSecret to a Secret of the same name in both namespaces" -}}
{{- end -}}
{{- if and (eq $v.storage.backend "s3") (not $v.storage.s3.bucket) -}}
{{- fail "storage.backend=s3 needs storage.s3.bucket (and storage.s3.existingSecret with the access keys, unless the pods get them from IRSA or an instance profile)" -}}
{{- end -}}
{{- if and (eq $v.storage.backend "local") (not $v.storage.local.existingClaim) (or (gt (int $v.gateway.replicas) 1) $v.gateway.autoscaling.enabled (gt (int $v.scheduler.replicas) 1) $v.batches.gateway.enabled) -}}
{{- fail "storage.backend=local without storage.local.existingClaim gives each pod its own files: with several gateways (a batch gateway too) or schedulers set storage.backend=s3 (storage.s3.bucket), or a ReadWriteMany claim in storage.local.existingClaim" -}}
{{- end -}}
{{- if and (eq $v.engine.mode "gpu") (eq (len $v.gpuTypes) 0) -}}
{{- fail "engine.mode=gpu needs at least one entry in gpuTypes (name, count, nodeSelector, tolerations)" -}}
{{- end -}}
{{- $names := dict -}}
{{- range $v.gpuTypes -}}
{{- if hasKey $names .name -}}{{- fail (printf "gpuTypes: duplicate name %q" .name) -}}{{- end -}}
{{- $_ := set $names .name true -}}
{{- end -}}
{{- $ed := $v.engine.drain -}}
{{- $worst := max (int $ed.engineShutdownTimeoutSeconds) (int $ed.agentShutdownGraceSeconds) -}}
{{- if ge (add (int $ed.preStopSleepSeconds) $worst) (int $ed.terminationGracePeriodSeconds) -}}
{{- fail (printf "engine.drain: preStopSleepSeconds (%d) + max(engineShutdownTimeoutSeconds, agentShutdownGraceSeconds) (%d) must be < terminationGracePeriodSeconds (%d)" (int $ed.preStopSleepSeconds) $worst (int $ed.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- $gd := $v.gateway.drain -}}
{{- if ge (add (int $gd.preStopSleepSeconds) (int $gd.shutdownGraceSeconds)) (int $gd.terminationGracePeriodSeconds) -}}
{{- fail (printf "gateway.drain: preStopSleepSeconds (%d) + shutdownGraceSeconds (%d) must be < terminationGracePeriodSeconds (%d)" (int $gd.preStopSleepSeconds) (int $gd.shutdownGraceSeconds) (int $gd.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- if and $v.gateway.autoscaling.enabled (gt (int $v.gateway.autoscaling.minReplicas) (int $v.gateway.autoscaling.maxReplicas)) -}}
{{- fail "gateway.autoscaling.minReplicas must be <= maxReplicas" -}}
{{- end -}}
{{- if and $v.gateway.podDisruptionBudget.enabled (not $v.gateway.autoscaling.enabled) (lt (int $v.gateway.replicas) 2) -}}
{{- fail "gateway.podDisruptionBudget.enabled needs gateway.replicas >= 2 (or autoscaling): with one replica a PDB blocks every node drain" -}}
{{- end -}}
{{- if and (eq $v.engine.modelCache.type "pvc") (not $v.engine.modelCache.pvc.create) (not $v.engine.modelCache.pvc.existingClaim) -}}
{{- fail "engine.modelCache.type=pvc needs pvc.create=true or pvc.existingClaim" -}}
{{- end -}}
{{- if and (eq $v.scheduler.runtime "kubernetes") (not $v.scheduler.rbac.create) (not $v.scheduler.serviceAccount.name) -}}
{{- fail "scheduler.rbac.create=false: set scheduler.serviceAccount.name to an account that may manage apps/deployments, read pods and get/create/patch/delete secrets in the engine namespace" -}}
{{- end -}}
{{- if and $v.scheduler.engineNamespace (ne $v.scheduler.engineNamespace $.Release.Namespace) $v.redis.enabled -}}
{{- fail "scheduler.engineNamespace differs from the release namespace: engine pods need the Redis URL Secret there, so use externalRedis with a Secret of the same name in both namespaces" -}}
{{- end -}}
{{- if and $v.batches.gateway.enabled $v.batches.gateway.podDisruptionBudget.enabled (lt (int $v.batches.gateway.replicas) 2) -}}
{{- fail "batches.gateway.podDisruptionBudget.enabled needs batches.gateway.replicas >= 2: with one replica a PDB blocks every node drain" -}}
{{- end -}}
{{- if and $v.scheduler.podDisruptionBudget.enabled (lt (int $v.scheduler.replicas) 2) -}}
{{- fail "scheduler.podDisruptionBudget.enabled needs scheduler.replicas >= 2: with one replica a PDB blocks every node drain" -}}
{{- end -}}
{{- if and $v.engine.priorityClass.create $v.engine.priorityClassName -}}
{{- fail "engine.priorityClass.create and engine.priorityClassName are both set: the chart's own class, or an existing one, not both" -}}
{{- end -}}
{{- if and $v.monitoring.serviceMonitor.enabled (not ($.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) -}}
{{- fail "monitoring.serviceMonitor.enabled: this cluster has no ServiceMonitor kind (monitoring.coreos.com/v1): install the Prometheus Operator's CRDs first, or set it to false (helm template: add --api-versions monitoring.coreos.com/v1/ServiceMonitor)" -}}
{{- end -}}
{{- if and $v.monitoring.podMonitor.enabled (not ($.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PodMonitor")) -}}
{{- fail "monitoring.podMonitor.enabled: this cluster has no PodMonitor kind (monitoring.coreos.com/v1): install the Prometheus Operator's CRDs first, or set it to false (helm template: add --api-versions monitoring.coreos.com/v1/PodMonitor)" -}}
{{- end -}}
{{- if and $v.ingress.enabled (eq (len $v.ingress.hosts) 0) -}}
{{- fail "ingress.enabled needs at least one entry in ingress.hosts" -}}
{{- end -}}
{{- end -}}

{{/* The `migrate` init container of the gateway and scheduler pods: applies pending
     migrations before the service starts. Several pods may start at once: the migrator
     holds a Postgres advisory lock, so one applies and the others wait, then find nothing
     to do. No Helm hook: nothing waits on a step that runs after readiness. */}}
{{- define "infera.migrateInitContainer" -}}
{{- $m := .Values.migrations -}}
{{- if $m.enabled }}
- name: migrate
  image: {{ include "infera.platformImage" (dict "root" $ "image" $m.image) }}
  imagePullPolicy: {{ $m.image.pullPolicy }}
  env:
    {{- include "infera.env.database" . | nindent 4 }}
    - name: LOG_LEVEL
      value: {{ .Values.global.logLevel | quote }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities: { drop: [ALL] }
  volumeMounts:
    - { name: tmp, mountPath: /tmp }
  {{- with $m.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The engine pods' PriorityClass: the chart's own (engine.priorityClass.create), else engine.priorityClassName. */}}
{{- define "infera.engine.priorityClassName" -}}
{{- if .Values.engine.priorityClass.create -}}
{{- include "infera.clusterName" (dict "root" . "component" "engine") -}}
{{- else -}}
{{- .Values.engine.priorityClassName -}}
{{- end -}}
{{- end -}}

{{/* A cluster-scoped name for this release: "<namespace>-<fullname>-<component>". */}}
{{- define "infera.clusterName" -}}
{{- printf "%s-%s-%s" .root.Release.Namespace (include "infera.fullname" .root | trunc 30 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The batch and file settings each service reads (values `batches`, `files`): a variable only
for a value that is set, so null leaves the service's default. Integers as integers (values
arrive as float64), the fraction as written.
*/}}
{{- define "infera.env.optional" -}}
{{- range $name, $v := .ints }}
{{- if not (kindIs "invalid" $v) }}
- name: {{ $name }}
  value: {{ $v | int64 | quote }}
{{- end }}
{{- end }}
{{- range $name, $v := .numbers }}
{{- if not (kindIs "invalid" $v) }}
- name: {{ $name }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* (dict "root" $ "batch" bool): with batches.gateway.enabled the gateways behind the Service run
no batch lines (BATCH_WORKER_CONCURRENCY=0) and the batch gateways run them at BATCH_NICE. */}}
{{- define "infera.env.batches.gateway" -}}
{{- $b := .root.Values.batches -}}
{{- $f := .root.Values.files -}}
{{- $wc := $b.workerConcurrency -}}
{{- if and $b.gateway.enabled (not .batch) }}{{ $wc = 0 }}{{ end -}}
{{- include "infera.env.optional" (dict "ints" (dict "BATCH_MAX_INFLIGHT" $b.maxInflight "BATCH_BACKOFF_LATENESS_MS" $b.backoffLatenessMs "BATCH_BACKOFF_INTERVAL_MS" $b.backoffIntervalMs "BATCH_WORKER_CONCURRENCY" $wc "FILES_MAX_BYTES" $f.maxBytes "FILES_MAX_LINES" $f.maxLines) "numbers" (dict "BATCH_RESERVE_FRACTION" $b.reserveFraction)) }}
{{- if .batch }}
- name: BATCH_NICE
  value: {{ $b.gateway.nice | int64 | quote }}
{{- end }}
{{- end }}

{{- define "infera.env.batches.scheduler" -}}
{{- $b := .Values.batches -}}
{{- include "infera.env.optional" (dict "ints" (dict "BATCH_CHUNK_LINES" $b.chunkLines "BATCH_RECONCILE_MS" $b.reconcileMs "RESPONSES_PURGE_MS" $b.responsesPurgeMs) "numbers" (dict)) }}
{{- end }}
