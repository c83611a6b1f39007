{{- define "mda-template.notes" -}}
{{- $fullname := include "mda-template.fullname" . -}}
{{- $path := include "mda-template.ingressPath" . -}}
{{ .Values.config.name | default "model" }} ({{ .Values.config.job }}, {{ include "mda-template.inputsSummary" . }}) is being deployed as {{ $fullname }} in namespace {{ .Release.Namespace }}.
The pods turn ready once the model is downloaded and loaded; watch them with:

  kubectl -n {{ .Release.Namespace }} rollout status deployment/{{ $fullname }}
  helm test {{ .Release.Name }} -n {{ .Release.Namespace }}

{{- if .Values.ingress.enabled }}

The model's URL, through the ingress controller ({{ .Values.ingress.className | default "default class" }}):
{{- if .Values.ingress.host }}

  export MODEL_URL={{ if .Values.ingress.tls }}https{{ else }}http{{ end }}://{{ .Values.ingress.host }}{{ $path }}
{{- else }}

  export INGRESS_HOST=<the ingress controller's address>
  export MODEL_URL=http://$INGRESS_HOST{{ $path }}
{{- end }}
{{- else }}

No ingress: reach the model through a port-forward:

  kubectl -n {{ .Release.Namespace }} port-forward service/{{ $fullname }} 8080:{{ .Values.service.port }} &
  export MODEL_URL=http://127.0.0.1:8080
{{- end }}

Try it:

  curl -s $MODEL_URL/v2/health/ready
  curl -s -X POST $MODEL_URL/predict -H 'Content-Type: application/json' -d '{"instances": [{{ include "mda-template.exampleRow" . }}]}'

Prometheus metrics: $MODEL_URL/metrics
{{- end }}
