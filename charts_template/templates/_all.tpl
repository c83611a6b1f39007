{{/*
Every object of a model chart, as one multi-document template: a model chart's
templates/model.yaml is the single line {{ include "mda-template.all" . }}. Objects that are
switched off (autoscaling, serviceAccount, serviceMonitor, ingress, routes, canary) render
nothing.
*/}}
{{- define "mda-template.all" -}}
{{- range $object := list "configmap" "secret" "serviceaccount" "service" "deployment" "hpa" "ingress" "httproute" "grpcroute" "canary" "networkpolicy" "servicemonitor" "test" }}
{{- $manifest := include (printf "mda-template.%s" $object) $ | trim }}
{{- if $manifest }}
---
{{ $manifest }}
{{- end }}
{{- end }}
{{- end }}
