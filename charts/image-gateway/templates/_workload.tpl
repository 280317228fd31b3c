{{/* The objects of one role's pods (server, and processing with processingPods.enabled): each
     define takes the role's context, filled by image-gateway.roleContext. */}}

{{/* A role's Deployment; `.` is the role's context (image-gateway.roleContext). */}}
{{- define "image-gateway.deployment" -}}
{{- include "image-gateway.checkMemory" . }}
{{- $single := include "image-gateway.singleWriter" . }}
{{- if and $single .Values.autoscaling.enabled }}
{{- fail "autoscaling with the fs backend needs a volume every pod can write (ReadWriteMany): set storage.fs.sharedVolume=true, or turn autoscaling off" }}
{{- end }}
{{- if and $single .Values.processingPods.enabled }}
{{- fail "processingPods with the fs backend needs a volume every pod can write (ReadWriteMany): set storage.fs.sharedVolume=true, or turn processingPods off" }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "image-gateway.roleName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "image-gateway.serverLabels" . | nindent 4 }}
  annotations:
    {{- include "image-gateway.checkovSkips" . | nindent 4 }}
spec:
  {{- if $single }}
  # One pod owns a volume that is not shared (ReadWriteOnce): one replica, and the old pod
  # goes before the new one mounts it.
  replicas: 1
  {{- else if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ .Values.revisionHistoryLimit }}
  {{- with .Values.minReadySeconds }}
  minReadySeconds: {{ . }}
  {{- end }}
  {{- if $single }}
  strategy:
    type: Recreate
  {{- else if .Values.strategy }}
  strategy:
    {{- toYaml .Values.strategy | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "image-gateway.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        # A configuration change rolls the pods.
        checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "image-gateway.serverLabels" . | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "image-gateway.serviceAccountName" . }}
      automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
      enableServiceLinks: {{ .Values.enableServiceLinks }}
      {{- with include "image-gateway.imagePullSecrets" . }}
      imagePullSecrets:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- include "image-gateway.podSecurityContext" . | nindent 8 }}
      # The gateway waits shutdown.grace itself after SIGTERM, then drains for server.drainTimeout.
      terminationGracePeriodSeconds: {{ include "image-gateway.terminationGracePeriodSeconds" . }}
      {{- with .Values.initContainers }}
      initContainers:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: gateway
          image: {{ include "image-gateway.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args: ["serve"]
          env:
            - name: IMAGE_GATEWAY_CONFIG
              value: /etc/image-gateway/gateway.toml
            {{- if .Values.processingPods.enabled }}
            # The role's pods: processing on in the processing pods only (one ConfigMap for both).
            - name: IMAGE_GATEWAY_PROCESSING__ENABLED
              value: {{ .Values.processing.enabled | quote }}
            {{- end }}
            {{- if .Values.auth.urlSigningSecret }}
            - name: IMAGE_GATEWAY_AUTH__URL_SIGNING_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.auth.urlSigningSecret }}
                  key: url-signing-key
            {{- end }}
            {{- with .Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with .Values.extraEnvFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
            - name: metrics
              containerPort: 9090
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /livez
              port: metrics
            {{- toYaml .Values.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: metrics
            {{- toYaml .Values.readinessProbe | nindent 12 }}
          startupProbe:
            httpGet:
              path: /livez
              port: metrics
            {{- toYaml .Values.startupProbe | nindent 12 }}
          {{- with .Values.lifecycle }}
          lifecycle:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            {{- include "image-gateway.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/image-gateway
              readOnly: true
            {{- if eq .Values.storage.backend "fs" }}
            - name: data
              mountPath: /data
            {{- end }}
            {{- with .Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
        {{- with .Values.extraContainers }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "image-gateway.fullname" . }}
        {{- if eq .Values.storage.backend "fs" }}
        - name: data
          persistentVolumeClaim:
            claimName: {{ required "storage.fs.existingClaim is required with the fs backend" .Values.storage.fs.existingClaim }}
        {{- end }}
        {{- with .Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      topologySpreadConstraints:
        {{- if .Values.topologySpreadConstraints }}
        {{- toYaml .Values.topologySpreadConstraints | nindent 8 }}
        {{- else }}
        {{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
        - maxSkew: 1
          topologyKey: {{ . }}
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "image-gateway.selectorLabels" $ | nindent 14 }}
        {{- end }}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* A role's PodDisruptionBudget (none for one pod or one writer). */}}
{{- define "image-gateway.podDisruptionBudget" -}}
{{- /* None for a release that runs one pod: a budget then only blocks node drains. */}}
{{- $pods := ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled | int }}
{{- if and .Values.podDisruptionBudget.enabled (gt $pods 1) (not (include "image-gateway.singleWriter" .)) }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "image-gateway.roleName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "image-gateway.serverLabels" . | nindent 4 }}
spec:
  {{- if .Values.podDisruptionBudget.minAvailable }}
  minAvailable: {{ .Values.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  # A pod that is not ready protects nothing: let a drain evict it (e.g. one stuck on a bad node).
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "image-gateway.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* A role's HorizontalPodAutoscaler, with autoscaling.enabled; with autoscaling.queueDepth,
     a KEDA ScaledObject instead (KEDA makes and owns the HorizontalPodAutoscaler, on the same
     CPU and memory targets plus the processing queue read from Prometheus). */}}
{{- define "image-gateway.horizontalPodAutoscaler" -}}
{{- $scaling := .Values.autoscaling }}
{{- if and $scaling.enabled $scaling.queueDepth.enabled }}
{{- $name := include "image-gateway.roleName" . }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "image-gateway.serverLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ $name }}
  minReplicaCount: {{ $scaling.minReplicas }}
  maxReplicaCount: {{ $scaling.maxReplicas }}
  advanced:
    horizontalPodAutoscalerConfig:
      name: {{ $name }}
      {{- with $scaling.behavior }}
      behavior:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  triggers:
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ $scaling.targetCPUUtilizationPercentage | quote }}
    {{- if $scaling.targetMemoryUtilizationPercentage }}
    - type: memory
      metricType: Utilization
      metadata:
        value: {{ $scaling.targetMemoryUtilizationPercentage | quote }}
    {{- end }}
    # Jobs running or waiting for a worker, summed over the role's pods (the metrics Service's
    # targets, as the ServiceMonitor names them): KEDA adds a pod per `target` of them.
    - type: prometheus
      metadata:
        serverAddress: {{ required "autoscaling.queueDepth.prometheusUrl: the Prometheus KEDA queries" $scaling.queueDepth.prometheusUrl | quote }}
        query: {{ printf "sum(image_processing_queue_depth{namespace=%q,job=%q})" .Release.Namespace (printf "%s-metrics" $name) | quote }}
        threshold: {{ $scaling.queueDepth.target | quote }}
{{- else if $scaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "image-gateway.roleName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "image-gateway.serverLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "image-gateway.roleName" . }}
  minReplicas: {{ .Values.autoscaling.minReplicas }}
  maxReplicas: {{ .Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .Values.autoscaling.targetCPUUtilizationPercentage }}
    {{- if .Values.autoscaling.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ .Values.autoscaling.targetMemoryUtilizationPercentage }}
    {{- end }}
  {{- with .Values.autoscaling.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* A role's Service and its metrics Service. */}}
{{- define "image-gateway.services" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "image-gateway.roleName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "image-gateway.serverLabels" . | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "image-gateway.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.service.port }}
      targetPort: http
      protocol: TCP
---
# The admin listener (metrics, the detailed /readyz) on a Service of its own, always ClusterIP:
# on the API's Service, `service.type: LoadBalancer` published it to the world.
apiVersion: v1
kind: Service
metadata:
  name: {{ include "image-gateway.roleName" . }}-metrics
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "image-gateway.labelsOf" (dict "root" . "component" "metrics") | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "image-gateway.selectorLabels" . | nindent 4 }}
  ports:
    - name: metrics
      port: {{ .Values.service.metricsPort }}
      targetPort: metrics
      protocol: TCP
{{- end }}
