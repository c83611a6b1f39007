{{/*
Names and labels, after the prometheus-community charts. Every template here is called with
the model chart's context, so .Chart and .Values are the model chart's own.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "mda-template.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: fullnameOverride, else the release name when it already contains
the chart name (release = model name, the usual case), else release-chart. Cut to 63
characters because some Kubernetes name fields are limited to that (DNS labels).
*/}}
{{- define "mda-template.fullname" -}}
{{- if eq (include "mda-template.track" .) "canary" }}
{{- printf "%s-canary" (include "mda-template.stableFullname" .) }}
{{- else }}
{{- include "mda-template.stableFullname" . }}
{{- end }}
{{- end }}

{{/* The track these objects serve: stable, or canary (see _canary.tpl). */}}
{{- define "mda-template.track" -}}
{{- .Values.track | default "stable" }}
{{- end }}

{{/* The stable track's name, cut so that "-canary" still fits in 63 characters. */}}
{{- define "mda-template.stableFullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 56 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* name-version, for the helm.sh/chart label. */}}
{{- define "mda-template.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "mda-template.labels" -}}
helm.sh/chart: {{ include "mda-template.chart" . }}
{{ include "mda-template.selectorLabels" . }}
app.kubernetes.io/version: {{ include "mda-template.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: model-server
app.kubernetes.io/part-of: model-deployment-app
app.kubernetes.io/managed-by: {{ .Release.Service }}
track: {{ include "mda-template.track" . }}
{{- end }}

{{/* Selector labels: never the chart or app version, since selectors are immutable. The
canary is an instance of its own (<release>-canary), so neither track's selector matches the
other's pods, and the stable selector is what it always was. */}}
{{- define "mda-template.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mda-template.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}{{ if eq (include "mda-template.track" .) "canary" }}-canary{{ end }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "mda-template.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mda-template.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag, or the chart's appVersion (the base image it was made for)
with the image's variant (appVersion-transformers). */}}
{{- define "mda-template.imageTag" -}}
{{- if .Values.image.tag }}{{ .Values.image.tag }}
{{- else }}{{ .Chart.AppVersion }}{{ with .Values.image.variant }}-{{ . }}{{ end }}
{{- end }}
{{- end }}

{{/* The ingress path prefix without a trailing slash: ingress.path, default /<name>. */}}
{{- define "mda-template.ingressPath" -}}
{{- $path := default (printf "/%s" (include "mda-template.name" .)) .Values.ingress.path }}
{{- trimSuffix "/" $path }}
{{- end }}

{{/* "true" for a pool's chart (config.models: many models, each under /<name>), else "". */}}
{{- define "mda-template.isPool" -}}
{{- if hasKey .Values.config "models" }}true{{ end }}
{{- end }}

{{/* The path prefixes the chart routes, as a JSON list: /<name> of each model of a pool (the
server takes the prefix off itself), else the model's ingress path. */}}
{{- define "mda-template.paths" -}}
{{- if include "mda-template.isPool" . }}
{{- $paths := list }}
{{- range .Values.config.models }}
{{- $paths = append $paths (printf "/%s" .name) }}
{{- end }}
{{- toJson $paths }}
{{- else }}
{{- list (include "mda-template.ingressPath" .) | toJson }}
{{- end }}
{{- end }}

{{/* One example row of a model's config (the argument) for the curl in NOTES.txt: inputSize
zeros, or a record of the named inputs (0, false or "" by datatype). */}}
{{- define "mda-template.exampleRow" -}}
{{- if and (eq .modelType "transformers") (not .inputs) }}
{{- toJson "a short text" }}
{{- else if .inputs }}
{{- $record := dict }}
{{- range .inputs }}
{{- $value := 0 }}
{{- if eq .datatype "BYTES" }}{{ $value = "" }}{{ else if eq .datatype "BOOL" }}{{ $value = false }}{{ end }}
{{- $_ := set $record .name $value }}
{{- end }}
{{- toJson $record }}
{{- else }}
{{- $row := list }}
{{- range until (int .inputSize) }}
{{- $row = append $row 0 }}
{{- end }}
{{- toJson $row }}
{{- end }}
{{- end }}

{{/* What a model (its config, the argument) takes, in words, for NOTES.txt. */}}
{{- define "mda-template.inputsSummary" -}}
{{- if and (eq .modelType "transformers") (not .inputs) }}
{{- print "text" }}
{{- else if .inputs }}
{{- len .inputs }} named inputs
{{- else }}
{{- .inputSize }} features
{{- end }}
{{- end }}
