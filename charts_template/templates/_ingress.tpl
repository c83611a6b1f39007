{{/*
The model's own path on any Ingress controller (a pool: each model's), a plain Prefix match,
no controller-specific annotations (the server answers under its prefix itself, MDA_ROOT_PATH
or a pool's model names, so nothing needs rewriting). ingress.annotations adds any the
controller wants.
*/}}
{{- define "mda-template.ingress" -}}
{{- if .Values.ingress.enabled }}
{{- $fullname := include "mda-template.fullname" . }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ $fullname }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "mda-template.labels" . | nindent 4 }}
  {{- with .Values.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with .Values.ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    - http:
        paths:
          {{- range include "mda-template.paths" . | fromJsonArray }}
          - path: {{ . }}
            pathType: Prefix
            backend:
              service:
                name: {{ $fullname }}
                port:
                  name: http
          {{- end }}
      {{- with .Values.ingress.host }}
      host: {{ . | quote }}
      {{- end }}
{{- end }}
{{- end }}
