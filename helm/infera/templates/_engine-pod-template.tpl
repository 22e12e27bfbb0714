{{/* The engine pod template (EnginePodTemplate, infera.dev/v1alpha1) that the scheduler's
     kubernetes runtime driver builds every engine Deployment from. The driver fills in
     per-deployment values: engine image/args, GPU limits, node selector + tolerations of
     the GPU type, the agent's deployment env, HF token, labels. */}}
{{- define "infera.enginePodTemplate" -}}
{{- $e := .Values.engine -}}
{{- $a := .Values.agent -}}
{{- $sim := eq $e.mode "sim" -}}
{{- $c := dict "root" $ "component" "engine" -}}
apiVersion: infera.dev/v1alpha1
kind: EnginePodTemplate
mode: {{ $e.mode }}
engines:
  {{- if $sim }}
  {{- $simImage := include "infera.platformImage" (dict "root" $ "image" $e.sim.image) }}
  vllm: { image: {{ $simImage | quote }} }
  tgi: { image: {{ $simImage | quote }} }
  tei: { image: {{ $simImage | quote }} }
  image: { image: {{ $simImage | quote }} }
  {{- else }}
  {{- range $kind := list "vllm" "tgi" "tei" "image" }}
  {{- $img := index $e.images $kind }}
  {{- if $img.repository }}
  {{ $kind }}: { image: {{ include "infera.image" (dict "root" $ "image" $img) | quote }} }
  {{- end }}
  {{- end }}
  {{- end }}
gpuResourceName: {{ $e.gpuResourceName }}
hfTokenSecretKey: {{ $e.hfTokenSecretKey }}
{{- with $e.defaultHfTokenSecret }}
defaultHfTokenSecret: {{ . }}
{{- end }}
enginePort: {{ $e.port }}
agentPort: {{ $a.port }}
{{- if $e.podDisruptionBudget.enabled }}
podDisruptionBudget:
  maxUnavailable: {{ $e.podDisruptionBudget.maxUnavailable }}
{{- end }}
ownerConfigMap: {{ include "infera.componentName" (dict "root" $ "component" "engine-owner") }}
drain:
  preStopSleepSeconds: {{ $e.drain.preStopSleepSeconds }}
  engineShutdownTimeoutSeconds: {{ $e.drain.engineShutdownTimeoutSeconds }}
  agentShutdownGraceSeconds: {{ $e.drain.agentShutdownGraceSeconds }}
template:
  metadata:
    labels:
      {{- include "infera.selectorLabels" $c | nindent 6 }}
      app.kubernetes.io/part-of: infera
      {{- with $e.podLabels }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with $e.podAnnotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    {{- if and (not $sim) $e.runtimeClassName }}
    runtimeClassName: {{ $e.runtimeClassName }}
    {{- end }}
    {{- with include "infera.engine.priorityClassName" . }}
    priorityClassName: {{ . }}
    {{- end }}
    terminationGracePeriodSeconds: {{ $e.drain.terminationGracePeriodSeconds }}
    securityContext:
      runAsNonRoot: true
      fsGroup: 1000
      seccompProfile: { type: RuntimeDefault }
    enableServiceLinks: false
    automountServiceAccountToken: false
    {{- with .Values.global.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    containers:
      - name: engine
        # Replaced per deployment (engine kind or the deployment's containerImage).
        image: {{ include "infera.enginePodTemplate.defaultImage" . | quote }}
        imagePullPolicy: {{ $e.pullPolicy }}
        # The engine listens on 127.0.0.1:{{ $e.port }} (only the agent beside it reaches it): no
        # port of its own; the probes ask the agent, which asks the engine's /health.
        env:
          - name: HF_HOME
            value: {{ $e.modelCache.mountPath | quote }}
          {{- if $sim }}
          - name: HOST
            value: "127.0.0.1"
          - name: PORT
            value: {{ $e.port | quote }}
          - name: SIM_TTFT_MS
            value: {{ $e.sim.ttftMs | quote }}
          - name: SIM_ITL_MS
            value: {{ $e.sim.itlMs | quote }}
          {{- end }}
          {{- with $e.extraEnv }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        startupProbe:
          httpGet: { path: /engine/health, port: {{ $a.metricsPort }} }
          periodSeconds: {{ $e.probes.startup.periodSeconds }}
          failureThreshold: {{ $e.probes.startup.failureThreshold }}
          timeoutSeconds: {{ $e.probes.startup.timeoutSeconds }}
        readinessProbe:
          httpGet: { path: /engine/health, port: {{ $a.metricsPort }} }
          periodSeconds: {{ $e.probes.readiness.periodSeconds }}
          failureThreshold: {{ $e.probes.readiness.failureThreshold }}
          timeoutSeconds: {{ $e.probes.readiness.timeoutSeconds }}
        livenessProbe:
          httpGet: { path: /engine/health, port: {{ $a.metricsPort }} }
          periodSeconds: {{ $e.probes.liveness.periodSeconds }}
          failureThreshold: {{ $e.probes.liveness.failureThreshold }}
          timeoutSeconds: {{ $e.probes.liveness.timeoutSeconds }}
        {{- include "infera.preStopSleep" $e.drain.preStopSleepSeconds | nindent 8 }}
        # Non-root with nothing extra (the scheduler's driver holds every engine pod to this).
        securityContext:
          runAsNonRoot: true
          runAsUser: {{ if $sim }}10001{{ else }}1000{{ end }}
          runAsGroup: {{ if $sim }}10001{{ else }}1000{{ end }}
          allowPrivilegeEscalation: false
          capabilities: { drop: [ALL] }
        {{- with $e.resources }}
        resources:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        volumeMounts:
          - { name: model-cache, mountPath: {{ $e.modelCache.mountPath | quote }} }
          - { name: dshm, mountPath: /dev/shm }
      - name: agent
        image: {{ include "infera.platformImage" (dict "root" $ "image" $a.image) | quote }}
        imagePullPolicy: {{ $a.image.pullPolicy }}
        ports:
          - { name: grpc, containerPort: {{ $a.port }}, protocol: TCP }
          - { name: metrics, containerPort: {{ $a.metricsPort }}, protocol: TCP }
        env:
          - name: AGENT_HOST
            value: "0.0.0.0"
          - name: AGENT_PORT
            value: {{ $a.port | quote }}
          - name: METRICS_PORT
            value: {{ $a.metricsPort | quote }}
          - name: ENGINE_URL
            value: {{ printf "http://127.0.0.1:%d" (int $e.port) | quote }}
          {{- include "infera.env.redis" . | nindent 10 }}
          {{- include "infera.env.tracing" . | nindent 10 }}
          {{- include "infera.env.agentToken" . | nindent 10 }}
          {{- include "infera.agentTls.env" (dict "root" $ "side" "agent") | nindent 10 }}
          - name: HEARTBEAT_MS
            value: {{ $a.heartbeatMs | quote }}
          - name: SHUTDOWN_GRACE_MS
            value: {{ mul $e.drain.agentShutdownGraceSeconds 1000 | quote }}
          - name: LOG_LEVEL
            value: {{ $a.logLevel | default .Values.global.logLevel | quote }}
          - name: POD_IP
            valueFrom:
              fieldRef: { fieldPath: status.podIP }
          - name: REPLICA_ID
            valueFrom:
              fieldRef: { fieldPath: metadata.name }
          - name: ADVERTISE_ADDRESS
            value: {{ printf "$(POD_IP):%d" (int $a.port) | quote }}
          {{- with $a.extraEnv }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        livenessProbe:
          tcpSocket: { port: grpc }
          periodSeconds: 10
          failureThreshold: 3
        {{- include "infera.preStopSleep" $e.drain.preStopSleepSeconds | nindent 8 }}
        securityContext:
          runAsNonRoot: true
          runAsUser: 10001
          runAsGroup: 10001
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: { drop: [ALL] }
        volumeMounts:
          - { name: agent-tmp, mountPath: /tmp }
          {{- if $a.tls.enabled }}
          - { name: agent-tls, mountPath: /etc/infera/agent-tls, readOnly: true }
          {{- end }}
        {{- with $a.resources }}
        resources:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    volumes:
      - name: model-cache
        {{- if eq $e.modelCache.type "pvc" }}
        persistentVolumeClaim:
          claimName: {{ $e.modelCache.pvc.existingClaim | default (include "infera.componentName" (dict "root" $ "component" "model-cache")) }}
        {{- else if eq $e.modelCache.type "hostPath" }}
        hostPath:
          path: {{ $e.modelCache.hostPath.path }}
          type: DirectoryOrCreate
        {{- else }}
        emptyDir:
          {{- with $e.modelCache.emptyDir.sizeLimit }}
          sizeLimit: {{ . }}
          {{- end }}
        {{- end }}
      - name: agent-tmp
        emptyDir: {}
      {{- if $a.tls.enabled }}
      - name: agent-tls
        secret:
          secretName: {{ $a.tls.existingSecret }}
      {{- end }}
      - name: dshm
        emptyDir:
          medium: Memory
          sizeLimit: {{ $e.shmSizeLimit }}
{{- end -}}

{{- define "infera.enginePodTemplate.defaultImage" -}}
{{- if eq .Values.engine.mode "sim" -}}
{{- include "infera.platformImage" (dict "root" $ "image" .Values.engine.sim.image) -}}
{{- else -}}
{{- include "infera.image" (dict "root" $ "image" .Values.engine.images.vllm) -}}
{{- end -}}
{{- end -}}
