{{/* The model configuration (CONTRACT section 2): .Values.config as config.yaml, verbatim. */}}
{{- define "mda-template.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "mda-template.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "mda-template.labels" . | nindent 4 }}
data:
  config.yaml: |
    {{- toYaml .Values.config | nindent 4 }}
{{- end }}
