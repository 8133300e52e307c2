{{/*
Named templates. Those an app chart includes (sidecar mode) take the
sidewatch subchart's own context, which Helm hands the parent as
.Subcharts.sidewatch: its values (defaults merged), its Chart (so the image
tag follows the sidewatch chart's appVersion), Release and Capabilities.
  {{- $sw := .Subcharts.sidewatch }}
  shareProcessNamespace: {{ include "sidewatch.shareProcessNamespace" $sw }}
  initContainers: {{- include "sidewatch.initContainers" $sw | nindent 8 }}
  containers: [the app's, then {{- include "sidewatch.containers" $sw | nindent 8 }}]
  volumes: {{- include "sidewatch.volumes" $sw | nindent 8 }}
  annotations: checksum/sidewatch-config: {{ include "sidewatch.configChecksum" $sw }}
*/}}

{{- define "sidewatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
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

{{/* The namespace of every object: namespaceOverride or the release's. */}}
{{- define "sidewatch.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "sidewatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sidewatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sidewatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sidewatch.labels" -}}
helm.sh/chart: {{ include "sidewatch.chart" . }}
{{ include "sidewatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | default "Helm" }}
app.kubernetes.io/part-of: sidewatch
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of a pod template: the selector, the component, common and pod labels. */}}
{{- define "sidewatch.podLabels" -}}
{{- $top := .top -}}
{{ include "sidewatch.selectorLabels" $top }}
app.kubernetes.io/component: {{ .component }}
{{- with $top.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- with $top.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sidewatch.podAnnotations" -}}
checksum/config: {{ include "sidewatch.configChecksum" . }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* repository:tag, or repository:tag@digest; the tag defaults to appVersion. */}}
{{- define "sidewatch.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "sidewatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sidewatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sidewatch.configPath" -}}/etc/sidewatch/sidewatch.yaml{{- end -}}

{{/*
The config file: .Values.config with `listen` from `port` and `store.dir`
from `dataDir`, so neither is kept equal by hand.
*/}}
{{- define "sidewatch.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if hasKey $config "listen" -}}
{{- fail "config.listen is set from `port`: remove config.listen and set port" -}}
{{- end -}}
{{- $store := deepCopy ($config.store | default dict) -}}
{{- if hasKey $store "dir" -}}
{{- fail "config.store.dir is set from `dataDir`: remove config.store.dir and set dataDir" -}}
{{- end -}}
{{- $_ := set $store "dir" .Values.dataDir -}}
{{- $_ := set $config "store" $store -}}
{{- $_ := set $config "listen" (printf "0.0.0.0:%v" .Values.port) -}}
{{- toYaml $config -}}
{{- end -}}

{{/* A checksum of the rendered config: pods roll when it changes. */}}
{{- define "sidewatch.configChecksum" -}}
{{- include "sidewatch.config" . | sha256sum -}}
{{- end -}}

{{/*
Seconds in a duration of the config (`1h30m`, `1.5s`, `2d`): a job's
activeDeadlineSeconds follows its check's max_duration. Never 0: a
duration without a term fails.
*/}}
{{- define "sidewatch.seconds" -}}
{{- $unit := dict "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1 "m" 60 "min" 60 "h" 3600 "d" 86400 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9.]+[^0-9.]+" (toString .) -1 -}}
{{- $n := regexFind "^[0-9.]+" . -}}
{{- $u := trimPrefix $n . -}}
{{- if not (hasKey $unit $u) -}}
{{- fail (printf "max_duration %q: unknown unit %q" $ $u) -}}
{{- end -}}
{{- $total = addf $total (mulf (float64 $n) (index $unit $u)) -}}
{{- end -}}
{{- if not $total -}}
{{- fail (printf "max_duration %q is not a duration" $) -}}
{{- end -}}
{{- ceil $total | int64 -}}
{{- end -}}

{{/*
activeDeadlineSeconds of the job running check .name: its max_duration plus
jobs.deadlineMarginSeconds, or .fallback when it has none. The check must
exist in config.checks.
*/}}
{{- define "sidewatch.deadline" -}}
{{- $top := .top -}}
{{- $found := dict -}}
{{- range $top.Values.config.checks -}}
{{- if eq .name $.name }}{{ $found = . }}{{ end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "%s: check %q is not in config.checks" .what .name) -}}
{{- end -}}
{{- /* A ${VAR} is only known in the pod: the fallback then. */ -}}
{{- if and $found.max_duration (not (contains "${" (toString $found.max_duration))) -}}
{{- add (include "sidewatch.seconds" $found.max_duration) $top.Values.jobs.deadlineMarginSeconds -}}
{{- else -}}
{{- .fallback -}}
{{- end -}}
{{- end -}}

{{/* Environment: pod identity (OTLP resource attributes), the config path, secrets. */}}
{{- define "sidewatch.env" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: NODE_NAME
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
- name: SIDEWATCH_CONFIG
  value: {{ include "sidewatch.configPath" . }}
{{- range .Values.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The sidewatch container. Takes a dict: top (the chart's context) and
optionally args (replacing `run`), env (more variables), restartPolicy,
resources (default .Values.resources) and probes (a bool: the mode's
liveness and readiness probes, for the long-running container only).
*/}}
{{- define "sidewatch.container" -}}
{{- $top := .top -}}
{{- $v := $top.Values -}}
{{- $probes := ternary $v.sidecar $v.standalone (eq $v.mode "sidecar") -}}
- name: sidewatch
  image: {{ include "sidewatch.image" $top }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args:
  {{- if .args }}
  {{- toYaml .args | nindent 2 }}
  {{- else }}
  - run
  - --config
  - {{ include "sidewatch.configPath" $top }}
  {{- with $v.extraArgs }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- end }}
  {{- with .restartPolicy }}
  restartPolicy: {{ . }}
  {{- end }}
  env:
  {{- include "sidewatch.env" $top | nindent 2 }}
  {{- with .env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  ports:
  - name: {{ $v.portName }}
    containerPort: {{ $v.port }}
    protocol: TCP
  {{- if .probes }}
  {{- with $probes.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $probes.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  resources:
    {{- toYaml (.resources | default $v.resources) | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
  - name: sidewatch-config
    mountPath: /etc/sidewatch
    readOnly: true
  - name: sidewatch-data
    mountPath: {{ $v.dataDir }}
  - name: sidewatch-tmp
    mountPath: /tmp
  {{- with $v.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The pod volumes the container mounts; dict: top, claim (or "" for an emptyDir). */}}
{{- define "sidewatch.podVolumes" -}}
{{- $top := .top -}}
- name: sidewatch-config
  configMap:
    name: {{ include "sidewatch.fullname" $top }}
- name: sidewatch-data
  {{- if .claim }}
  persistentVolumeClaim:
    claimName: {{ .claim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: sidewatch-tmp
  emptyDir: {}
{{- with $top.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The claim of the long-running container (Deployment or app pods), or "". */}}
{{- define "sidewatch.dataClaim" -}}
{{- if .Values.persistence.enabled -}}
{{- default (printf "%s-data" (include "sidewatch.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}
{{- end -}}

{{/*
One claim, one writer: a ReadWriteOnce claim mounted by two pods on two
nodes fails with Multi-Attach. Every app replica mounts the sidecar's
claim, so sidecar mode needs ReadWriteMany; so do standalone replicas > 1.
*/}}
{{- define "sidewatch.checkPersistence" -}}
{{- $p := .Values.persistence -}}
{{- if and $p.enabled (not (has "ReadWriteMany" $p.accessModes)) -}}
{{- if eq .Values.mode "sidecar" -}}
{{- fail "persistence: in sidecar mode every app replica mounts the claim; set persistence.accessModes [ReadWriteMany] (a storage class that supports it) or disable persistence" -}}
{{- else if gt (int .Values.standalone.replicas) 1 -}}
{{- fail "persistence: standalone.replicas > 1 share one claim; set persistence.accessModes [ReadWriteMany] or replicas 1" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
For app charts, sidecar mode (see the top of this file). With
sidecar.native the container goes into initContainers with restartPolicy:
Always, otherwise into containers; the other is empty.
*/}}
{{- define "sidewatch.containers" -}}
{{- if not .Values.sidecar.native -}}
{{ include "sidewatch.container" (dict "top" . "probes" true) }}
{{- end -}}
{{- end -}}

{{- define "sidewatch.initContainers" -}}
{{- if .Values.sidecar.native -}}
{{- include "sidewatch.nativeSidecarSupported" . -}}
{{ include "sidewatch.container" (dict "top" . "probes" true "restartPolicy" "Always") }}
{{- end -}}
{{- end -}}

{{- define "sidewatch.nativeSidecarSupported" -}}
{{- if not (semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "sidecar.native needs Kubernetes 1.29 or later (native sidecar containers); this cluster is %s: set sidecar.native=false" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}

{{- define "sidewatch.volumes" -}}
{{- include "sidewatch.checkPersistence" . -}}
{{ include "sidewatch.podVolumes" (dict "top" . "claim" (include "sidewatch.dataClaim" .)) }}
{{- end -}}

{{- define "sidewatch.shareProcessNamespace" -}}
{{- .Values.sidecar.shareProcessNamespace -}}
{{- end -}}

{{/* Pod-level settings shared by the Deployment, the jobs and the test pod. */}}
{{- define "sidewatch.podSpecCommon" -}}
serviceAccountName: {{ include "sidewatch.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Scheduling of job pods (nightly and sharded). */}}
{{- define "sidewatch.jobScheduling" -}}
{{- with .Values.jobs.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.jobs.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.jobs.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.jobs.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
