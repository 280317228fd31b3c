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

{{/* Labels every object carries: commonLabels, then the chart's own (which win, except
     part-of: a key written twice made kustomize and Argo/Flux post-renderers refuse the output). */}}
{{- define "image-gateway.labels" -}}
{{- include "image-gateway.labelsOf" (dict "root" . "component" "") }}
{{- end }}

{{- define "image-gateway.labelsOf" -}}
{{- $root := .root }}
{{- $labels := merge (deepCopy ($root.Values.commonLabels | default dict)) (dict "app.kubernetes.io/part-of" "image-gateway") }}
{{- $_ := set $labels "helm.sh/chart" (printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-") }}
{{- $_ := set $labels "app.kubernetes.io/name" (include "image-gateway.name" $root) }}
{{- $_ := set $labels "app.kubernetes.io/instance" $root.Release.Name }}
{{- $_ := set $labels "app.kubernetes.io/version" ($root.Chart.AppVersion | toString) }}
{{- $_ := set $labels "app.kubernetes.io/managed-by" $root.Release.Service }}
{{- with .component }}{{ $_ := set $labels "app.kubernetes.io/component" . }}{{ end }}
{{- toYaml $labels }}
{{- end }}

{{/* Name and instance: what every workload's selector starts with. */}}
{{- define "image-gateway.instanceLabels" -}}
app.kubernetes.io/name: {{ include "image-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of one role's pods (`server` unless the context is a role's, see roleContext):
     the retention Job's pods never match it, so the Service, PodDisruptionBudget,
     HorizontalPodAutoscaler and NetworkPolicy see only gateway pods of that role. */}}
{{- define "image-gateway.selectorLabels" -}}
{{ include "image-gateway.instanceLabels" . }}
app.kubernetes.io/component: {{ .role | default "server" }}
{{- end }}

{{- define "image-gateway.serverLabels" -}}
{{- include "image-gateway.labelsOf" (dict "root" . "component" (.role | default "server")) }}
{{- end }}

{{/* A role's context, filled into the dict it is given (`root`: the chart's `.`; `role`:
     `server` or `processing`): the chart's objects with `Values` as that role's pods see them.
     With processingPods.enabled, the server role serves downloads with processing off, and the
     processing role takes processingPods' replicas, resources and autoscaling with processing on;
     otherwise the server role is the chart's values unchanged. */}}
{{- define "image-gateway.roleContext" -}}
{{- $root := .root }}
{{- $values := deepCopy $root.Values }}
{{- if eq .role "processing" }}
{{- $pods := $root.Values.processingPods }}
{{- $_ := set $values "replicaCount" $pods.replicaCount }}
{{- with $pods.resources }}{{ $_ := set $values "resources" . }}{{ end }}
{{- $_ := set $values "autoscaling" $pods.autoscaling }}
{{- $_ := set $values.processing "enabled" true }}
{{- /* Reached through the Ingress or HTTPRoute, or inside the cluster. */}}
{{- $_ := set $values.service "type" "ClusterIP" }}
{{- $_ := set $values.service "annotations" dict }}
{{- else if $root.Values.processingPods.enabled }}
{{- $_ := set $values.processing "enabled" false }}
{{- end }}
{{- $_ := set . "Values" $values }}
{{- $_ := set . "Release" $root.Release }}
{{- $_ := set . "Chart" $root.Chart }}
{{- $_ := set . "Template" $root.Template }}
{{- $_ := set . "Files" $root.Files }}
{{- $_ := set . "Capabilities" $root.Capabilities }}
{{- end }}

{{/* The path prefixes routed by role (YAML, prefix: role), empty without processingPods: the
     API's uploads and operations to the processing pods, its downloads to the serving pods. */}}
{{- define "image-gateway.roleRoutes" -}}
{{- if .Values.processingPods.enabled }}
/v1/image/: processing
/v1/image/download/: server
{{- end }}
{{- end }}

{{/* A role's Service name from the chart's `.` (`root`) and a `role`: what the Ingress and the
     HTTPRoute send that role's paths to. */}}
{{- define "image-gateway.roleServiceName" -}}
{{- include "image-gateway.roleName" (dict "role" .role "Values" .root.Values "Release" .root.Release "Chart" .root.Chart) }}
{{- end }}

{{/* A role's objects' name: the full name for the server, `<fullname>-processing` for processing. */}}
{{- define "image-gateway.roleName" -}}
{{- $name := include "image-gateway.fullname" . }}
{{- if eq (.role | default "server") "server" }}{{ $name }}{{ else }}{{ printf "%s-%s" ($name | trunc 52 | trimSuffix "-") .role }}{{ end }}
{{- end }}

{{- define "image-gateway.retentionLabels" -}}
{{- include "image-gateway.labelsOf" (dict "root" . "component" "retention") }}
{{- end }}

{{- define "image-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "image-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag, or @digest when image.digest is set (a digest wins over the tag). */}}
{{- define "image-gateway.image" -}}
{{- $repository := .Values.image.repository }}
{{- with .Values.image.registry | default (.Values.global | default dict).imageRegistry }}{{ $repository = printf "%s/%s" . $repository }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Sizes ("25MiB", "256Mi", "1G", "1048576") in bytes, as a float64. */}}
{{- define "image-gateway.bytes" -}}
{{- $s := toString . | trim }}
{{- $units := dict "" 1 "B" 1 "K" 1000 "KB" 1000 "M" 1000000 "MB" 1000000 "G" 1000000000 "GB" 1000000000 "Ki" 1024 "KiB" 1024 "Mi" 1048576 "MiB" 1048576 "Gi" 1073741824 "GiB" 1073741824 }}
{{- $number := regexFind "^[0-9.]+" $s }}
{{- $unit := trimPrefix $number $s | trim }}
{{- if or (not $number) (not (hasKey $units $unit)) }}{{ fail (printf "cannot read %q as a size (e.g. 25MiB, 256Mi, 1G)" $s) }}{{ end }}
{{- mulf (float64 $number) (get $units $unit) }}
{{- end }}

{{/* Durations ("500ms", "5s", "1m30s", "2h") in seconds, as a float64. */}}
{{- define "image-gateway.seconds" -}}
{{- $s := toString . | trim }}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 }}
{{- if not (regexMatch "^([0-9.]+(ms|s|m|h|d))+$" $s) }}{{ fail (printf "cannot read %q as a duration (e.g. 500ms, 30s, 1m)" $s) }}{{ end }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9.]+(ms|s|m|h|d)" $s -1 }}
{{- $n := regexFind "^[0-9.]+" . }}
{{- $total = addf $total (mulf (float64 $n) (get $units (trimPrefix $n .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/* The grace period Kubernetes gives a stopping pod: the gateway waits shutdown.grace, then
     drains for up to server.drainTimeout; 5 s more for the process to exit. A value set by hand
     below that would cut drains short, so the render refuses it. */}}
{{- define "image-gateway.terminationGracePeriodSeconds" -}}
{{- $needed := addf (include "image-gateway.seconds" .Values.shutdown.grace) (include "image-gateway.seconds" .Values.server.drainTimeout) 5 | ceil | int }}
{{- $set := .Values.terminationGracePeriodSeconds }}
{{- if and $set (lt (int $set) $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must cover shutdown.grace + server.drainTimeout + 5s = %d; raise it or leave it empty to compute it" (int $set) $needed) }}
{{- end }}
{{- $set | default $needed }}
{{- end }}

{{/* Uploads are held in memory while they are checked (up to twice upload.maxBytes for a
     chunked body): upload.maxConcurrent of them at once (processing inputs take the same
     slots). Each processing worker holds at most 12 bytes per input and per output pixel
     (a 16-bit RGBA decode or result, 8 bytes, plus one 8-bit RGBA working copy, 4 bytes; see
     docs/processing.md). Both, plus 96 MiB for the server itself, must fit the memory limit,
     or the kernel kills the pod and every download on it. */}}
{{- define "image-gateway.checkMemory" -}}
{{- with (.Values.resources.limits | default dict).memory }}
{{- $limit := include "image-gateway.bytes" . | float64 }}
{{- $uploads := mulf (include "image-gateway.bytes" $.Values.upload.maxBytes) 2 $.Values.upload.maxConcurrent }}
{{- $workers := ternary ($.Values.processing.workers | int) 0 $.Values.processing.enabled }}
{{- if and $.Values.processing.enabled (eq $workers 0) }}{{ fail "processing.workers must be set (not 0) when resources.limits.memory is: the chart cannot know the node's cores to size memory for them" }}{{ end }}
{{- $jobs := ternary (include "image-gateway.memoryBudget" $ | float64) 0.0 $.Values.processing.enabled }}
{{- $cache := 0.0 }}
{{- if include "image-gateway.cacheEnabled" $ }}
{{- $cache = addf (include "image-gateway.bytes" $.Values.cache.maxBytes) (mulf 16 (include "image-gateway.bytes" $.Values.cache.maxObjectBytes)) }}
{{- end }}
{{- $variants := ternary (include "image-gateway.bytes" $.Values.variants.cacheMaxBytes | float64) 0.0 $.Values.processing.enabled }}
{{- $needed := addf $uploads $jobs $cache $variants 100663296 }}
{{- if lt $limit $needed }}
{{- fail (printf "resources.limits.memory (%s) cannot hold upload.maxConcurrent (%d) uploads of upload.maxBytes (%s), twice each while checked, plus the processing jobs' memory budget (processing.memoryBudget, or processing.workers (%d) jobs of 12 bytes per pixel of processing.maxInputPixels (%d) and processing.maxOutputPixels (%d): %dMi), plus the hot-object cache (cache.maxBytes and 16 loads of cache.maxObjectBytes: %dMi), plus rendered variants (variants.cacheMaxBytes: %dMi), plus 96Mi for the server: %dMi are needed. Raise the limit or lower those values." . (int $.Values.upload.maxConcurrent) $.Values.upload.maxBytes $workers (int64 $.Values.processing.maxInputPixels) (int64 $.Values.processing.maxOutputPixels) (divf $jobs 1048576 | ceil | int) (divf $cache 1048576 | ceil | int) (divf $variants 1048576 | ceil | int) (divf $needed 1048576 | ceil | int)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The processing jobs' memory budget in bytes: processing.memoryBudget, or what the memory
     limit check reserves for processing.workers jobs at 12 bytes per input and output pixel.
     The server admits jobs within it (processing.memory_budget), so the check and the server
     count the same memory. */}}
{{- define "image-gateway.memoryBudget" -}}
{{- with .Values.processing.memoryBudget }}
{{- include "image-gateway.bytes" . | float64 | int64 }}
{{- else }}
{{- mulf (.Values.processing.workers | int) 12 (addf .Values.processing.maxInputPixels .Values.processing.maxOutputPixels) | int64 }}
{{- end }}
{{- end }}

{{/* "true" when the hot-object cache is on: cache.enabled, or with `auto` the s3 backend. */}}
{{- define "image-gateway.cacheEnabled" -}}
{{- $enabled := .Values.cache.enabled }}
{{- if or (eq (toString $enabled) "true") (and (eq (toString $enabled) "auto") (eq .Values.storage.backend "s3")) }}true{{ end }}
{{- end }}

{{/* The URL base handed out in upload answers: publicUrl, else the first Ingress host that
names one host (an empty or wildcard host names none: `http://` or `http://*.example.com`
made every pod exit). */}}
{{- define "image-gateway.publicUrl" -}}
{{- include "image-gateway.externalUrl" . | default (include "image-gateway.serviceUrl" .) }}
{{- end }}

{{/* The Service's in-cluster URL (the public_url when nothing names an external one). */}}
{{- define "image-gateway.serviceUrl" -}}
{{- printf "http://%s.%s.svc%s" (include "image-gateway.fullname" .) .Release.Namespace (ternary "" (printf ":%v" .Values.service.port) (eq (int .Values.service.port) 80)) }}
{{- end }}

{{/* publicUrl, else the first Ingress host that names one host, else the first HTTPRoute host
     name that does; empty when none. */}}
{{- define "image-gateway.externalUrl" -}}
{{- $url := .Values.publicUrl }}
{{- if and (not $url) .Values.ingress.enabled }}
{{- $host := "" }}
{{- range .Values.ingress.hosts }}{{ if and (not $host) .host (not (hasPrefix "*" .host)) }}{{ $host = .host }}{{ end }}{{ end }}
{{- if $host }}
{{- $tls := false }}
{{- range .Values.ingress.tls }}{{ if has $host (.hosts | default list) }}{{ $tls = true }}{{ end }}{{ end }}
{{- $url = printf "%s://%s" (ternary "https" "http" $tls) $host }}
{{- end }}
{{- end }}
{{- if and (not $url) .Values.httpRoute.enabled }}
{{- range .Values.httpRoute.hostnames }}{{ if and (not $url) (not (hasPrefix "*" .)) }}{{ $url = printf "%s://%s" $.Values.httpRoute.scheme . }}{{ end }}{{ end }}
{{- end }}
{{- $url }}
{{- end }}

{{/* Replicas: the fs backend on a volume that is not shared runs exactly one pod. */}}
{{- define "image-gateway.singleWriter" -}}
{{- if and (eq .Values.storage.backend "fs") (not .Values.storage.fs.sharedVolume) }}true{{ end }}
{{- end }}

{{/* The security contexts shared by the server and the retention job (values, restricted by default). */}}
{{- define "image-gateway.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "image-gateway.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* The storage Secret, when S3 keys come from a watched Secret (not the AWS default chain). */}}
{{- define "image-gateway.storageSecret" -}}
{{- if and (eq .Values.storage.backend "s3") (eq .Values.storage.s3.credentials "kubernetes") }}{{ .Values.storage.s3.existingSecret }}{{ end }}
{{- end }}

{{/* The API-key Secret, when API keys are what authenticates (auth.mode = api_key). */}}
{{- define "image-gateway.apiKeysSecret" -}}
{{- if eq .Values.auth.mode "api_key" }}{{ .Values.auth.apiKeysSecret }}{{ end }}
{{- end }}

{{/* The rate-limit Redis password's Secret, when the counters are in Redis and it has a password. */}}
{{- define "image-gateway.redisSecret" -}}
{{- if eq .Values.rateLimit.backend "redis" }}{{ .Values.rateLimit.redis.existingSecret }}{{ end }}
{{- end }}

{{/* The gateway's configuration file (TOML), rendered from values. */}}
{{- define "image-gateway.config" -}}
{{- $v := .Values }}
{{- $s3 := dict "endpoint" $v.storage.s3.endpoint "bucket" $v.storage.s3.bucket "region" $v.storage.s3.region "prefix" $v.storage.s3.prefix "force_path_style" $v.storage.s3.forcePathStyle "pool_idle_timeout" $v.storage.s3.poolIdleTimeout "credentials" $v.storage.s3.credentials }}
{{- if not $v.storage.s3.endpoint }}{{ $_ := unset $s3 "endpoint" }}{{ end }}
{{- if include "image-gateway.storageSecret" . }}
{{- $_ := set $s3 "secret" (dict "name" $v.storage.s3.existingSecret) }}
{{- if and $v.storage.s3.accessKeyIdKey $v.storage.s3.secretAccessKeyKey }}
{{- $_ := set $s3.secret "keys" (dict "access_key_id" $v.storage.s3.accessKeyIdKey "secret_access_key" $v.storage.s3.secretAccessKeyKey) }}
{{- end }}
{{- end }}
{{- $storage := dict "backend" $v.storage.backend "timeout" $v.storage.timeout }}
{{- if eq $v.storage.backend "s3" }}{{ $_ := set $storage "s3" $s3 }}{{ else }}{{ $_ := set $storage "fs" (dict "root" "/data" "inline_reads" $v.storage.fs.inlineReads) }}{{ end }}
{{- $auth := dict "mode" $v.auth.mode "signed_url_ttl" $v.auth.signedUrlTtl }}
{{- if include "image-gateway.apiKeysSecret" . }}{{ $_ := set $auth "api_keys_secret" (dict "name" $v.auth.apiKeysSecret) }}{{ end }}
{{- $config := dict
  "listen" "0.0.0.0:8080"
  "admin_listen" "0.0.0.0:9090"
  "storage" $storage
  "upload" (dict "max_bytes" $v.upload.maxBytes "max_pixels" (int64 $v.upload.maxPixels) "max_concurrent" (int64 $v.upload.maxConcurrent) "max_concurrent_per_client" (int64 $v.upload.maxConcurrentPerClient) "body_idle_timeout" $v.upload.bodyIdleTimeout "min_body_rate" $v.upload.minBodyRate)
  "server" (dict "header_read_timeout" $v.server.headerReadTimeout "drain_timeout" $v.server.drainTimeout "trusted_proxies" $v.server.trustedProxies "max_connections" (int64 $v.server.maxConnections) "max_connections_per_client" (int64 $v.server.maxConnectionsPerClient) "first_byte_timeout" $v.server.firstByteTimeout "max_header_bytes" $v.server.maxHeaderBytes "max_headers" (int64 $v.server.maxHeaders) "max_url_bytes" (int64 $v.server.maxUrlBytes) "request_timeout" $v.server.requestTimeout "idle_timeout" $v.server.idleTimeout "send_timeout" $v.server.sendTimeout "client_ipv6_prefix" (int64 $v.server.clientIpv6Prefix))
  "shutdown" (dict "grace" $v.shutdown.grace)
  "auth" $auth
  "rate_limit" (dict "requests_per_minute" (int64 $v.rateLimit.requestsPerMinute) "burst" (int64 $v.rateLimit.burst) "auth_failures_per_minute" (int64 $v.rateLimit.authFailuresPerMinute) "backend" $v.rateLimit.backend)
  "cors" (dict "allowed_origins" $v.cors.allowedOrigins)
  "log" (dict "format" $v.log.format "level" $v.log.level)
  "retention" (dict "max_age" $v.retention.maxAge)
  "processing" (dict "enabled" $v.processing.enabled "store_results" $v.processing.storeResults "workers" (int64 $v.processing.workers) "queue" (int64 $v.processing.queue) "max_input_pixels" (int64 $v.processing.maxInputPixels) "max_output_pixels" (int64 $v.processing.maxOutputPixels) "job_timeout" $v.processing.jobTimeout "jpeg_decoder" $v.processing.jpegDecoder "avif_speed" (int64 $v.processing.avifSpeed) "memory_budget" (include "image-gateway.memoryBudget" . | int64))
}}
{{- $redis := $v.rateLimit.redis }}
{{- if eq $v.rateLimit.backend "redis" }}
{{- /* The password comes from the watched Secret: never in the ConfigMap. */}}
{{- if not $redis.url }}{{ fail "rateLimit.redis.url is required with rateLimit.backend=redis" }}{{ end }}
{{- if regexMatch "^rediss?://[^/]*@" $redis.url }}{{ fail "rateLimit.redis.url must not hold credentials (it lands in a ConfigMap): put the password in rateLimit.redis.existingSecret" }}{{ end }}
{{- $_ := set $config.rate_limit "redis" (dict "url" $redis.url "timeout" $redis.timeout "connections" (int64 $redis.connections) "key_prefix" $redis.keyPrefix "fallback_divisor" (int64 $redis.fallbackDivisor)) }}
{{- with include "image-gateway.redisSecret" . }}{{ $_ := set $config.rate_limit.redis "password_secret" (dict "name" . "key" $redis.passwordKey) }}{{ end }}
{{- end }}
{{- $cache := dict "enabled" (eq (include "image-gateway.cacheEnabled" .) "true") "max_bytes" $v.cache.maxBytes "max_object_bytes" $v.cache.maxObjectBytes "ttl" $v.cache.ttl "negative_ttl" $v.cache.negativeTtl }}
{{- $_ := set $config "cache" $cache }}
{{- $_ := set $config "variants" (dict "cache_max_bytes" $v.variants.cacheMaxBytes "allow" $v.variants.allow "presets" $v.variants.presets "store" $v.variants.store) }}
{{- with $v.variants.sides }}
{{- /* Numbers from values are floats to Helm: each side goes to the TOML as an integer. */}}
{{- $sides := list }}{{ range . }}{{ $sides = append $sides (int64 .) }}{{ end }}
{{- $_ := set $config.variants "sides" $sides }}
{{- end }}
{{- with include "image-gateway.publicUrl" . }}{{ $_ := set $config "public_url" . }}{{ end }}
{{- with $v.http.cacheControl }}{{ $_ := set $config "http" (dict "cache_control" .) }}{{ end }}
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

{{/* imagePullSecrets: global.imagePullSecrets, then imagePullSecrets; each a Secret's name or
     {name: …} (a plain string rendered an invalid pod before). */}}
{{- define "image-gateway.imagePullSecrets" -}}
{{- $names := list }}
{{- range concat ((.Values.global | default dict).imagePullSecrets | default list) (.Values.imagePullSecrets | default list) }}
{{- $name := ternary . (get (kindIs "map" . | ternary . dict) "name") (kindIs "string" .) }}
{{- if and $name (not (has $name $names)) }}{{ $names = append $names $name }}{{ end }}
{{- end }}
{{- range $names }}
- name: {{ . | quote }}
{{- end }}
{{- end }}
