{{/* A gateway Deployment: (dict "root" $ "batch" false) the gateways behind the Service, or
(dict "root" $ "batch" true) the batch gateways (batches.gateway): the same pods, run with
BATCH_NICE and batch lines only, no Service sends them requests; their own replicas and
placement (resources, nodeSelector, tolerations, affinity, topologySpreadConstraints; null:
the gateway's), so on a cluster batch lines take CPU of their own. */}}
{{- define "infera.gateway.deployment" -}}
{{- $r := .root -}}
{{- $batch := .batch -}}
{{- $c := dict "root" $r "component" (ternary "batch-gateway" "gateway" $batch) -}}
{{- $g := $r.Values.gateway -}}
{{- $bg := $r.Values.batches.gateway -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "infera.componentName" $c }}
  labels:
    {{- include "infera.labels" $c | nindent 4 }}
spec:
  {{- if $batch }}
  replicas: {{ $bg.replicas }}
  {{- else if not $g.autoscaling.enabled }}
  replicas: {{ $g.replicas }}
  {{- else if $r.Release.IsInstall }}
  # The HPA's minimum from the start, so `helm install --wait` ends with it (and the PDB can
  # be met); upgrades leave the count to the HPA.
  replicas: {{ $g.autoscaling.minReplicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate: { maxUnavailable: 0, maxSurge: 1 }
  selector:
    matchLabels:
      {{- include "infera.selectorLabels" $c | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "infera.selectorLabels" $c | nindent 8 }}
        {{- with $g.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/gpu-types: {{ include (print $r.Template.BasePath "/configmap-gpu-types.yaml") $r | sha256sum | trunc 16 }}
        {{- with $g.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with $r.Values.global.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $g.drain.terminationGracePeriodSeconds }}
      # It never calls the Kubernetes API.
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile: { type: RuntimeDefault }
      {{- if $r.Values.migrations.enabled }}
      initContainers:
        {{- include "infera.migrateInitContainer" $r | nindent 8 }}
      {{- end }}
      containers:
        - name: gateway
          image: {{ include "infera.platformImage" (dict "root" $r "image" $g.image) }}
          imagePullPolicy: {{ $g.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ $g.port }}
              protocol: TCP
          env:
            - name: PORT
              value: {{ $g.port | quote }}
            {{- include "infera.env.database" $r | nindent 12 }}
            {{- include "infera.env.redis" $r | nindent 12 }}
            - name: FAST_PATH
              value: {{ $r.Values.global.fastPath | quote }}
            {{- include "infera.env.tracing" $r | nindent 12 }}
            {{- include "infera.env.storage" $r | nindent 12 }}
            - name: LOG_LEVEL
              value: {{ $g.logLevel | default $r.Values.global.logLevel | quote }}
            - name: GATEWAY_ID
              valueFrom:
                fieldRef: { fieldPath: metadata.name }
            - name: SHUTDOWN_GRACE_MS
              value: {{ mul $g.drain.shutdownGraceSeconds 1000 | quote }}
            {{- if not (kindIs "invalid" $g.bodyLimitBytes) }}
            - name: BODY_LIMIT_BYTES
              value: {{ $g.bodyLimitBytes | int64 | quote }}
            {{- end }}
            {{- if not (kindIs "invalid" $g.queueWaitMs) }}
            - name: QUEUE_WAIT_MS
              value: {{ $g.queueWaitMs | int64 | quote }}
            {{- end }}
            {{- include "infera.env.batches.gateway" (dict "root" $r "batch" $batch) | nindent 12 }}
            {{- if not (kindIs "invalid" $g.responsesRetentionDays) }}
            - name: RESPONSES_RETENTION_DAYS
              value: {{ $g.responsesRetentionDays | int64 | quote }}
            {{- end }}
            {{- if and (not $batch) (include "infera.bootstrapKey.enabled" $r) }}
            - name: BOOTSTRAP_ADMIN_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ include "infera.bootstrapKey.secretName" $r }}
                  key: {{ $g.bootstrapAdminKey.key }}
            {{- end }}
            {{- include "infera.env.secretsKey" $r | nindent 12 }}
            {{- include "infera.env.agentToken" $r | nindent 12 }}
            {{- include "infera.agentTls.env" (dict "root" $r "side" "gateway") | nindent 12 }}
            - name: GPU_TYPES
              value: /etc/infera/gpu-types/gpu-types.json
            - name: DEPLOY_POLICY
              value: {{ $r.Values.deployPolicy | toJson | quote }}
            {{- with $g.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet: { path: /healthz, port: http }
            periodSeconds: 2
            failureThreshold: 60
          readinessProbe:
            httpGet: { path: /readyz, port: http }
            periodSeconds: 5
            failureThreshold: 2
          livenessProbe:
            httpGet: { path: /healthz, port: http }
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          {{- include "infera.preStopSleep" $g.drain.preStopSleepSeconds | nindent 10 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: { drop: [ALL] }
          volumeMounts:
            - { name: gpu-types, mountPath: /etc/infera/gpu-types, readOnly: true }
            - { name: tmp, mountPath: /tmp }
            {{- include "infera.storage.volumeMount" $r | nindent 12 }}
            {{- if $r.Values.agent.tls.enabled }}
            - { name: agent-tls, mountPath: /etc/infera/agent-tls, readOnly: true }
            {{- end }}
          {{- with ternary ($bg.resources | default $g.resources) $g.resources $batch }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      volumes:
        - name: gpu-types
          configMap:
            name: {{ include "infera.componentName" (dict "root" $r "component" "gpu-types") }}
        - name: tmp
          emptyDir: {}
        {{- include "infera.storage.volume" $r | nindent 8 }}
        {{- if $r.Values.agent.tls.enabled }}
        - name: agent-tls
          secret:
            secretName: {{ $r.Values.agent.tls.existingSecret }}
        {{- end }}
      {{- with ternary ($bg.nodeSelector | default $g.nodeSelector) $g.nodeSelector $batch }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ternary ($bg.tolerations | default $g.tolerations) $g.tolerations $batch }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ternary ($bg.affinity | default $g.affinity) $g.affinity $batch }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ternary ($bg.topologySpreadConstraints | default $g.topologySpreadConstraints) $g.topologySpreadConstraints $batch }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
