{{/* Optional: a prometheus-operator ServiceMonitor scraping /metrics (needs its CRDs). */}}
{{- define "mda-template.servicemonitor" -}}
{{- if .Values.serviceMonitor.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "mda-template.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "mda-template.labels" . | nindent 4 }}
    {{- with .Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  # Both tracks' Services (the stable one and <release>-canary); each series keeps its
  # pod's track label, so the dashboard compares them.
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ include "mda-template.name" . }}
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .Release.Name | quote }}, {{ printf "%s-canary" .Release.Name | quote }}]
  podTargetLabels: [track]
  namespaceSelector:
    matchNames:
      - {{ .Release.Namespace }}
  endpoints:
    - port: http
      path: /metrics
      interval: {{ .Values.serviceMonitor.interval }}
      {{- with .Values.serviceMonitor.scrapeTimeout }}
      scrapeTimeout: {{ . }}
      {{- end }}
{{- end }}
{{- end }}
