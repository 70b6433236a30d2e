{{/* The name of every object: the release name, with the chart's unless it holds it already. */}}
{{- define "lightbus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the gateway's pods; never change them on upgrade. */}}
{{- define "lightbus.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "lightbus.labels" -}}
{{ include "lightbus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
The pod's termination grace period: the preStop sleep, then the gateway's
drain (LIGHTBUS_SHUTDOWN_TIMEOUT), then the margin for what follows it.
*/}}
{{- define "lightbus.graceSeconds" -}}
{{- add .Values.shutdown.preStopSleepSeconds .Values.shutdown.timeoutSeconds .Values.shutdown.marginSeconds -}}
{{- end -}}
