{{- define "mda-template.notes" -}}
{{- $fullname := include "mda-template.fullname" . -}}
{{- $paths := include "mda-template.paths" . | fromJsonArray -}}
{{- $path := first $paths -}}
{{- $pool := include "mda-template.isPool" . -}}
{{- $first := .Values.config -}}
{{- if $pool }}
{{- $first = first .Values.config.models | default dict -}}
A pool of {{ len .Values.config.models }} models ({{ join ", " $paths }}) is being deployed as {{ $fullname }} in namespace {{ .Release.Namespace }}; each model answers under its own path.
The pods turn ready once every model has been loaded once; watch them with:
{{- else }}
{{ .Values.config.name | default "model" }} ({{ .Values.config.job }}, {{ include "mda-template.inputsSummary" .Values.config }}) is being deployed as {{ $fullname }} in namespace {{ .Release.Namespace }}.
The pods turn ready once the model is downloaded and loaded; watch them with:
{{- end }}

  kubectl -n {{ .Release.Namespace }} rollout status deployment/{{ $fullname }}
  helm test {{ .Release.Name }} -n {{ .Release.Namespace }}

{{- if .Values.httpRoute.enabled }}

The HTTPRoute {{ $fullname }} sends {{ if .Values.httpRoute.hostnames }}{{ join ", " .Values.httpRoute.hostnames }}{{ else }}every hostname of its Gateway{{ end }} at {{ join ", " $paths }} to {{ if $pool }}this pool{{ else }}this model{{ end }}.
{{- end }}
{{- if .Values.canary.enabled }}

Canary: {{ .Values.canary.weight }} % of requests go to {{ $fullname }}-canary{{ if .Values.canary.header }}, and every request with the header {{ .Values.canary.header.name }}: {{ .Values.canary.header.value }}{{ end }}{{ if .Values.canary.mirrorPercent }}; {{ .Values.canary.mirrorPercent }} % are mirrored to it{{ end }}.
Set its share with `mda canary {{ .Release.Name }} --weight N`; promote it with `make k8s-promote MODEL={{ .Release.Name }}`.
{{- end }}
{{- if .Values.ingress.enabled }}

{{ if $pool }}The URL of {{ $first.name }} (each model's is its own path){{ else }}The model's URL{{ end }}, through the ingress controller ({{ .Values.ingress.className | default "default class" }}):
{{- if .Values.ingress.host }}

  export MODEL_URL={{ if .Values.ingress.tls }}https{{ else }}http{{ end }}://{{ .Values.ingress.host }}{{ $path }}
{{- else }}

  export INGRESS_HOST=<the ingress controller's address>
  export MODEL_URL=http://$INGRESS_HOST{{ $path }}
{{- end }}
{{- else }}

No ingress: reach the model through a port-forward:

  kubectl -n {{ .Release.Namespace }} port-forward service/{{ $fullname }} 8080:{{ .Values.service.port }} &
  export MODEL_URL=http://127.0.0.1:8080{{ if $pool }}{{ $path }}{{ end }}
{{- end }}

Try it:

  curl -s $MODEL_URL/v2/health/ready
  curl -s -X POST $MODEL_URL/predict -H 'Content-Type: application/json' -d '{"instances": [{{ include "mda-template.exampleRow" $first }}]}'

Try it in a browser, on a form drawn from the model's inputs: $MODEL_URL/
Prometheus metrics: $MODEL_URL/metrics
{{- if .Values.auth.enabled }}

Calls need a token from the Secret {{ include "mda-template.tokenSecretName" . }} (key `tokens`): add -H "Authorization: Bearer $TOKEN" to the curls.
{{- else }}

Anyone who reaches the model's URL may call it: set auth.enabled (a Secret of tokens), rateLimit and networkPolicy to close it (docs: guides/securing.md).
{{- end }}
{{- end }}
