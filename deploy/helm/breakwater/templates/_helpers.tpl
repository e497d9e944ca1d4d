{{/* The name of every object of a release. */}}
{{- define "breakwater.fullname" -}}
{{ .Release.Name }}-breakwater
{{- end -}}

{{/* Labels on every object. */}}
{{- define "breakwater.labels" -}}
app.kubernetes.io/name: breakwater
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels that select a release's pods. */}}
{{- define "breakwater.selector" -}}
app.kubernetes.io/name: breakwater
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
