{{/* The chart name. */}}
{{- define "image-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "image-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Standard labels. */}}
{{- define "image-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "image-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: name and instance only. */}}
{{- define "image-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "image-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "image-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "image-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "image-gateway.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The restricted security context shared by the server and the retention job. */}}
{{- define "image-gateway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "image-gateway.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* The gateway's configuration file (TOML), rendered from values. */}}
{{- define "image-gateway.config" -}}
{{- $v := .Values }}
{{- $s3 := dict "endpoint" $v.storage.s3.endpoint "bucket" $v.storage.s3.bucket "region" $v.storage.s3.region "prefix" $v.storage.s3.prefix "force_path_style" $v.storage.s3.forcePathStyle "pool_idle_timeout" $v.storage.s3.poolIdleTimeout "credentials" "kubernetes" "secret" (dict "name" $v.storage.s3.existingSecret) }}
{{- if not $v.storage.s3.endpoint }}{{ $_ := unset $s3 "endpoint" }}{{ end }}
{{- if and $v.storage.s3.accessKeyIdKey $v.storage.s3.secretAccessKeyKey }}
{{- $_ := set $s3.secret "keys" (dict "access_key_id" $v.storage.s3.accessKeyIdKey "secret_access_key" $v.storage.s3.secretAccessKeyKey) }}
{{- end }}
{{- $storage := dict "backend" $v.storage.backend "timeout" $v.storage.timeout }}
{{- if eq $v.storage.backend "s3" }}{{ $_ := set $storage "s3" $s3 }}{{ else }}{{ $_ := set $storage "fs" (dict "root" "/data") }}{{ end }}
{{- $auth := dict "mode" $v.auth.mode "signed_url_ttl" $v.auth.signedUrlTtl }}
{{- if $v.auth.apiKeysSecret }}{{ $_ := set $auth "api_keys_secret" (dict "name" $v.auth.apiKeysSecret) }}{{ end }}
{{- $config := dict
  "listen" "0.0.0.0:8080"
  "admin_listen" "0.0.0.0:9090"
  "storage" $storage
  "upload" (dict "max_bytes" $v.upload.maxBytes "max_pixels" (int64 $v.upload.maxPixels) "max_concurrent" (int64 $v.upload.maxConcurrent))
  "server" (dict "header_read_timeout" $v.server.headerReadTimeout "drain_timeout" $v.server.drainTimeout "trusted_proxies" $v.server.trustedProxies "max_connections" (int64 $v.server.maxConnections) "max_header_bytes" $v.server.maxHeaderBytes "max_headers" (int64 $v.server.maxHeaders) "max_url_bytes" (int64 $v.server.maxUrlBytes) "request_timeout" $v.server.requestTimeout)
  "shutdown" (dict "grace" $v.shutdown.grace)
  "auth" $auth
  "rate_limit" (dict "requests_per_minute" (int64 $v.rateLimit.requestsPerMinute) "burst" (int64 $v.rateLimit.burst))
  "cors" (dict "allowed_origins" $v.cors.allowedOrigins)
  "log" (dict "format" $v.log.format "level" $v.log.level)
  "retention" (dict "max_age" $v.retention.maxAge)
}}
{{- if $v.publicUrl }}{{ $_ := set $config "public_url" $v.publicUrl }}{{ end }}
{{- toToml $config }}
{{- end }}

{{/* checkov findings that do not apply, each with its reason (as pod-controller annotations). */}}
{{- define "image-gateway.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_11=No CPU limit on purpose - limits throttle a latency-sensitive proxy; requests drive scheduling and the HPA
checkov.io/skip2: CKV_K8S_43=Pin by digest with image.tag set to a digest-addressed tag in production; the chart cannot know the digest
checkov.io/skip3: CKV_K8S_38=The token is needed - the gateway watches its Secrets through the Kubernetes API
checkov.io/skip4: CKV_K8S_35=The URL-signing key is passed as an environment variable because the gateway reads it from its config or env only
checkov.io/skip5: CKV_K8S_15=IfNotPresent is right for immutable version tags
{{- end }}
