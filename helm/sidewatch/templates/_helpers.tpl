{{/*
Named templates. Those an app chart includes take a dict:
  (dict "Values" .Values.sidewatch "Release" .Release "Chart" (dict "Name" "sidewatch" "AppVersion" "0.1.0"))
or simply the sidewatch chart's own context.
*/}}

{{- define "sidewatch.name" -}}
{{- default "sidewatch" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sidewatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "sidewatch.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sidewatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sidewatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sidewatch.labels" -}}
{{ include "sidewatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | default "Helm" }}
{{- end -}}

{{- define "sidewatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "sidewatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sidewatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A checksum of the rendered config: pods roll when it changes. */}}
{{- define "sidewatch.configChecksum" -}}
{{- toYaml .Values.config | sha256sum -}}
{{- end -}}

{{/* Environment: pod identity (for OTLP resource attributes) and secrets. */}}
{{- define "sidewatch.env" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: NODE_NAME
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
{{- range .Values.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The sidewatch container; `args` in the dict replaces `run`. */}}
{{- define "sidewatch.container" -}}
- name: sidewatch
  image: {{ include "sidewatch.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
  {{- if .args }}
  {{- toYaml .args | nindent 2 }}
  {{- else }}
  - run
  - --config
  - /etc/sidewatch/sidewatch.yaml
  {{- end }}
  {{- with .restartPolicy }}
  restartPolicy: {{ . }}
  {{- end }}
  env:
  {{- include "sidewatch.env" . | nindent 2 }}
  {{- with .extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  ports:
  - name: metrics
    containerPort: {{ .Values.port }}
    protocol: TCP
  {{- if not .args }}
  readinessProbe:
    httpGet: {path: /readyz, port: metrics}
    periodSeconds: 10
  livenessProbe:
    httpGet: {path: /healthz, port: metrics}
    periodSeconds: 20
    failureThreshold: 3
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
  - name: sidewatch-config
    mountPath: /etc/sidewatch
    readOnly: true
  - name: sidewatch-data
    mountPath: {{ .Values.dataDir }}
  - name: sidewatch-tmp
    mountPath: /tmp
{{- end -}}

{{/* The pod volumes the container mounts. */}}
{{- define "sidewatch.volumes" -}}
- name: sidewatch-config
  configMap:
    name: {{ include "sidewatch.fullname" . }}
- name: sidewatch-data
  {{- if and .Values.persistence.enabled (not .noPersistence) }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-data" (include "sidewatch.fullname" .)) .Values.persistence.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: sidewatch-tmp
  emptyDir: {}
{{- end -}}

{{/*
For app charts, sidecar mode. Include all three in the app's pod spec:
  shareProcessNamespace: {{ include "sidewatch.shareProcessNamespace" $ctx }}
  initContainers: {{- include "sidewatch.initContainers" $ctx | nindent 8 }}
  containers: [app..., then {{- include "sidewatch.containers" $ctx | nindent 8 }}]
  volumes: {{- include "sidewatch.volumes" $ctx | nindent 8 }}
With sidecar.native the container goes into initContainers with
restartPolicy: Always, otherwise into containers; the other is empty.
*/}}
{{- define "sidewatch.containers" -}}
{{- if not .Values.sidecar.native -}}
{{ include "sidewatch.container" . }}
{{- end -}}
{{- end -}}

{{- define "sidewatch.initContainers" -}}
{{- if .Values.sidecar.native -}}
{{ include "sidewatch.container" (merge (dict "restartPolicy" "Always") .) }}
{{- end -}}
{{- end -}}

{{- define "sidewatch.shareProcessNamespace" -}}
{{- .Values.sidecar.shareProcessNamespace -}}
{{- end -}}

{{/* Pod-level settings shared by the Deployment and the jobs. */}}
{{- define "sidewatch.podSpecCommon" -}}
serviceAccountName: {{ include "sidewatch.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
