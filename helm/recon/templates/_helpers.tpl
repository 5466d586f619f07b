{{/*
Names and labels.
*/}}
{{- define "recon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the release name, suffixed with the chart's name unless it holds it.
Kept to 40 characters so every object name built on it (…-worker-headless) stays within 63.
*/}}
{{- define "recon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "recon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "recon.labels" -}}
helm.sh/chart: {{ include "recon.chart" . }}
{{ include "recon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: recon
{{- end }}

{{/*
A component's labels and selector labels: (dict "ctx" $ "component" "worker").
*/}}
{{- define "recon.componentSelectorLabels" -}}
{{ include "recon.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "recon.componentLabels" -}}
{{ include "recon.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "recon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "recon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "recon.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
Object names.
*/}}
{{- define "recon.configName" -}}{{ include "recon.fullname" . }}-config{{- end }}
{{- define "recon.workerConfigName" -}}{{ include "recon.fullname" . }}-worker-config{{- end }}
{{- define "recon.sinkConfigName" -}}{{ include "recon.fullname" . }}-sink-config{{- end }}
{{- define "recon.workerName" -}}{{ include "recon.fullname" . }}-worker{{- end }}
{{- define "recon.sinkName" -}}{{ include "recon.fullname" . }}-sink{{- end }}
{{- define "recon.hookSecretName" -}}{{ include "recon.fullname" . }}-hook{{- end }}

{{/*
The Secret every process reads its secret settings from: existingSecret, or the chart's.
*/}}
{{- define "recon.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "recon.fullname" . }}
{{- end }}
{{- end }}

{{/*
Fails the render on values no deployment can work with.
*/}}
{{- define "recon.validate" -}}
{{- if gt (int .Values.worker.replicas) (int .Values.recon.partitions) }}
{{- fail (printf "worker.replicas (%d) exceeds recon.partitions (%d): at most one worker per partition is useful. Lower worker.replicas, or move to more partitions with `recon scale --partitions N` (docs/scaling.md)." (int .Values.worker.replicas) (int .Values.recon.partitions)) }}
{{- end }}
{{- if and .Values.sink.autoscaling.enabled (gt (int .Values.sink.autoscaling.minReplicas) (int .Values.sink.autoscaling.maxReplicas)) }}
{{- fail "sink.autoscaling.minReplicas exceeds sink.autoscaling.maxReplicas" }}
{{- end }}
{{- if and (not .Values.existingSecret) (not .Values.database.url) }}
{{- fail "set database.url (a libpq URL with its password) or existingSecret (a Secret holding DATABASE_URL)" }}
{{- end }}
{{- end }}

{{/*
Non-secret settings, as a map of environment variables (rendered into the ConfigMaps, and
inline into the hook Jobs, which run before the ConfigMaps exist).
*/}}
{{- define "recon.sharedEnv" -}}
KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
{{- with .Values.kafka.saslMechanism }}
KAFKA_SASL_MECHANISM: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.saslUsername }}
KAFKA_SASL_USERNAME: {{ . | quote }}
{{- end }}
{{- if .Values.kafka.caCert.secretName }}
KAFKA_SSL_CAFILE: {{ printf "/etc/recon/kafka-ca/%s" .Values.kafka.caCert.key | quote }}
{{- end }}
{{- with .Values.schemaRegistry.url }}
SCHEMA_REGISTRY_URL: {{ . | quote }}
{{- end }}
RECON_PARTITIONS: {{ .Values.recon.partitions | toString | quote }}
RECON_GENERATION: {{ .Values.recon.generation | toString | quote }}
RECON_TOPIC_PAYMENTS: {{ .Values.recon.topics.payments | quote }}
RECON_TOPIC_LEDGER: {{ .Values.recon.topics.ledger | quote }}
RECON_TOPIC_MATCHED: {{ .Values.recon.topics.matched | quote }}
RECON_TOPIC_EXCEPTIONS: {{ .Values.recon.topics.exceptions | quote }}
RECON_TOPIC_DLQ: {{ .Values.recon.topics.dlq | quote }}
RECON_INPUT_RETENTION: {{ .Values.recon.inputRetention | toString | quote }}
RECON_OUTPUT_RETENTION: {{ .Values.recon.outputRetention | toString | quote }}
RECON_LOG_LEVEL: {{ .Values.recon.logLevel | quote }}
RECON_LOG_FORMAT: {{ .Values.recon.logFormat | quote }}
RECON_APP_ID: {{ .Values.worker.appId | quote }}
RECON_PG_SCHEMA: {{ .Values.database.schema | quote }}
RECON_SINK_GROUP_ID: {{ .Values.sink.groupId | quote }}
{{- range $name, $value := .Values.recon.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "recon.workerEnv" -}}
RECON_DATA_DIR: {{ .Values.worker.persistence.mountPath | quote }}
RECON_WEB_HOST: "0.0.0.0"
RECON_WEB_PORT: {{ .Values.worker.port | toString | quote }}
RECON_MATCH_WINDOW: {{ .Values.worker.matchWindow | toString | quote }}
RECON_ALLOWED_LATENESS: {{ .Values.worker.allowedLateness | toString | quote }}
RECON_IDLE_TIMEOUT: {{ .Values.worker.idleTimeout | toString | quote }}
RECON_PROCESSING_GUARANTEE: {{ .Values.worker.processingGuarantee | quote }}
{{- range $name, $value := .Values.worker.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "recon.sinkEnv" -}}
RECON_SINK_HTTP_HOST: "0.0.0.0"
RECON_SINK_HTTP_PORT: {{ .Values.sink.port | toString | quote }}
RECON_SINK_BATCH_SIZE: {{ .Values.sink.batchSize | toString | quote }}
RECON_SINK_MAX_RETRIES: {{ .Values.sink.maxRetries | toString | quote }}
{{- range $name, $value := .Values.sink.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Secret settings, as a map of environment variables (only those that are set).
*/}}
{{- define "recon.secretEnv" -}}
DATABASE_URL: {{ .Values.database.url | b64enc | quote }}
{{- with .Values.kafka.saslPassword }}
KAFKA_SASL_PASSWORD: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.schemaRegistry.basicAuthUserInfo }}
SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: {{ . | b64enc | quote }}
{{- end }}
{{- end }}

{{/*
envFrom of a long-running process: the shared ConfigMap, its own, and the Secret.
(dict "ctx" $ "own" "recon.workerConfigName")
*/}}
{{- define "recon.envFrom" -}}
- configMapRef:
    name: {{ include "recon.configName" .ctx }}
{{- range .own }}
- configMapRef:
    name: {{ include . $.ctx }}
{{- end }}
- secretRef:
    name: {{ include "recon.secretName" .ctx }}
{{- end }}

{{/*
A hook Job's environment: the non-secret settings inline (the chart's ConfigMaps do not exist yet
on first install), the secret ones from existingSecret or the hook Secret.
*/}}
{{- define "recon.hookEnv" -}}
env:
{{- range $name, $value := (include "recon.sharedEnv" . | fromYaml) }}
  - name: {{ $name }}
    value: {{ $value | toString | quote }}
{{- end }}
{{- range $name, $value := (include "recon.sinkEnv" . | fromYaml) }}
  - name: {{ $name }}
    value: {{ $value | toString | quote }}
{{- end }}
envFrom:
  - secretRef:
      name: {{ if .Values.existingSecret }}{{ .Values.existingSecret }}{{ else }}{{ include "recon.hookSecretName" . }}{{ end }}
{{- end }}

{{/*
Volumes every pod has: /tmp (the root filesystem is read-only) and the Kafka CA when set.
*/}}
{{- define "recon.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.kafka.caCert.secretName }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.caCert.secretName }}
    items:
      - key: {{ .Values.kafka.caCert.key }}
        path: {{ .Values.kafka.caCert.key }}
{{- end }}
{{- end }}

{{- define "recon.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.caCert.secretName }}
- name: kafka-ca
  mountPath: /etc/recon/kafka-ca
  readOnly: true
{{- end }}
{{- end }}

{{/*
What every pod spec of the chart shares.
*/}}
{{- define "recon.podCommon" -}}
serviceAccountName: {{ include "recon.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
The pod spec of a hook Job: like the others, but the chart's ServiceAccount does not exist yet on
a first install, so hooks run as the namespace's default one (no token mounted) unless
serviceAccount names an existing account.
*/}}
{{- define "recon.hookPodCommon" -}}
automountServiceAccountToken: false
{{- if and (not .Values.serviceAccount.create) .Values.serviceAccount.name }}
serviceAccountName: {{ .Values.serviceAccount.name }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
Checksums of the configuration, so a changed ConfigMap or Secret rolls the pods.
*/}}
{{- define "recon.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}
