{{/* Names, labels and the environment shared by the API and the workers. */}}

{{- define "wheelwright.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wheelwright.fullname" -}}
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

{{- define "wheelwright.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wheelwright.labels" -}}
helm.sh/chart: {{ include "wheelwright.chart" . }}
{{ include "wheelwright.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "wheelwright.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wheelwright.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "wheelwright.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wheelwright.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image: pass (dict "image" .Values.image.api "root" $) */}}
{{- define "wheelwright.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{- define "wheelwright.redisName" -}}
{{- printf "%s-redis" (include "wheelwright.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The broker URL when it is a plain value (in-chart Redis or redis.url). */}}
{{- define "wheelwright.brokerUrl" -}}
{{- if .Values.redis.inChart.enabled }}
{{- printf "redis://%s:6379/0" (include "wheelwright.redisName" .) }}
{{- else }}
{{- required "redis.url (or redis.existingSecret, or redis.inChart.enabled) is required" .Values.redis.url }}
{{- end }}
{{- end }}

{{- define "wheelwright.configChecksum" -}}
{{- include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/* A secretKeyRef env entry: (dict "name" ENV "secret" NAME "key" KEY) */}}
{{- define "wheelwright.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .key | quote }}
{{- end }}

{{/* Environment of every Wheelwright container: config file, broker, store, deadline, CA. */}}
{{- define "wheelwright.commonEnv" -}}
- name: WHEELWRIGHT_CONFIG
  value: /etc/wheelwright/config.toml
{{- if and .Values.redis.existingSecret (not .Values.redis.inChart.enabled) }}
{{ include "wheelwright.secretEnv" (dict "name" "WHEELWRIGHT_BROKER_URL" "secret" .Values.redis.existingSecret "key" .Values.redis.existingSecretKey) }}
{{- else }}
- name: WHEELWRIGHT_BROKER_URL
  value: {{ include "wheelwright.brokerUrl" . | quote }}
{{- end }}
{{- if .Values.database.existingSecret }}
{{ include "wheelwright.secretEnv" (dict "name" "WHEELWRIGHT_DATABASE__URL" "secret" .Values.database.existingSecret "key" .Values.database.existingSecretKey) }}
{{- else }}
- name: WHEELWRIGHT_DATABASE__URL
  value: {{ required "database.url (or database.existingSecret) is required" .Values.database.url | quote }}
{{- end }}
- name: WHEELWRIGHT_BUILD_TIMEOUT_S
  value: {{ .Values.build.timeoutSeconds | quote }}
- name: WHEELWRIGHT_EXECUTOR
  value: {{ .Values.executor | quote }}
{{- with include "wheelwright.publicUrl" . }}
- name: WHEELWRIGHT_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
- name: WHEELWRIGHT_STORE__BACKEND
  value: {{ .Values.store.backend | quote }}
{{- with .Values.store.s3 }}
- name: WHEELWRIGHT_STORE__S3_BUCKET
  value: {{ required "store.s3.bucket is required" .bucket | quote }}
- name: WHEELWRIGHT_STORE__S3_PREFIX
  value: {{ .prefix | quote }}
{{- if .endpointUrl }}
- name: WHEELWRIGHT_STORE__S3_ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
{{- end }}
{{- if .region }}
- name: WHEELWRIGHT_STORE__S3_REGION
  value: {{ .region | quote }}
{{- end }}
- name: WHEELWRIGHT_STORE__PRESIGN
  value: {{ .presign | quote }}
{{- if .existingSecret }}
{{ include "wheelwright.secretEnv" (dict "name" "WHEELWRIGHT_STORE__S3_ACCESS_KEY_ID" "secret" .existingSecret "key" .accessKeyIdKey) }}
{{ include "wheelwright.secretEnv" (dict "name" "WHEELWRIGHT_STORE__S3_SECRET_ACCESS_KEY" "secret" .existingSecret "key" .secretAccessKeyKey) }}
{{- end }}
{{- end }}
{{- if .Values.caBundle.configMap }}
{{- $ca := printf "/etc/wheelwright/ca/%s" .Values.caBundle.key }}
- name: SSL_CERT_FILE
  value: {{ $ca | quote }}
- name: REQUESTS_CA_BUNDLE
  value: {{ $ca | quote }}
- name: AWS_CA_BUNDLE
  value: {{ $ca | quote }}
{{- end }}
{{- end }}

{{/* Volumes and mounts every Wheelwright pod has: the config file, /tmp, the CA bundle. */}}
{{- define "wheelwright.commonVolumes" -}}
- name: config
  configMap:
    name: {{ include "wheelwright.fullname" . }}-config
- name: tmp
  emptyDir: {}
{{- if .Values.caBundle.configMap }}
- name: ca-bundle
  configMap:
    name: {{ .Values.caBundle.configMap | quote }}
{{- end }}
{{- end }}

{{- define "wheelwright.commonMounts" -}}
- name: config
  mountPath: /etc/wheelwright/config.toml
  subPath: config.toml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.caBundle.configMap }}
- name: ca-bundle
  mountPath: /etc/wheelwright/ca
  readOnly: true
{{- end }}
{{- end }}

{{/* KEDA's redis scaler address (host:port), database and TLS, from the values. */}}
{{- define "wheelwright.kedaRedis" -}}
{{- $address := .Values.keda.redisAddress }}
{{- $db := "0" }}
{{- $tls := false }}
{{- if .Values.redis.inChart.enabled }}
{{- $address = default (printf "%s:6379" (include "wheelwright.redisName" .)) $address }}
{{- else if not .Values.redis.existingSecret }}
{{- $url := urlParse .Values.redis.url }}
{{- $host := $url.host }}
{{- if and $host (not (contains ":" $host)) }}{{ $host = printf "%s:6379" $host }}{{ end }}
{{- $address = default $host $address }}
{{- $path := trimPrefix "/" $url.path }}
{{- if $path }}{{ $db = $path }}{{ end }}
{{- $tls = eq $url.scheme "rediss" }}
{{- end }}
{{- if not (kindIs "invalid" .Values.keda.databaseIndex) }}{{ $db = toString .Values.keda.databaseIndex }}{{ end }}
{{- if not (kindIs "invalid" .Values.keda.enableTLS) }}{{ $tls = .Values.keda.enableTLS }}{{ end }}
address: {{ required "keda.redisAddress (host:port) is required when the broker URL comes from a Secret" $address | quote }}
databaseIndex: {{ $db | quote }}
enableTLS: {{ $tls | toString | quote }}
{{- end }}

{{/* Where users reach the API: api.publicUrl, else the first ingress host, else nothing. */}}
{{- define "wheelwright.publicUrl" -}}
{{- if .Values.api.publicUrl -}}
{{ .Values.api.publicUrl }}
{{- else if and .Values.api.ingress.enabled .Values.api.ingress.hosts -}}
{{- $host := (first .Values.api.ingress.hosts).host -}}
{{- $tls := false -}}
{{- range .Values.api.ingress.tls }}{{ if has $host .hosts }}{{ $tls = true }}{{ end }}{{ end -}}
{{ ternary "https" "http" $tls }}://{{ $host }}
{{- end -}}
{{- end }}
