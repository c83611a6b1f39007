{{/*
The model's own path on any Ingress controller: a plain Prefix match, no controller-specific
annotations (the server answers under its prefix itself, MDA_ROOT_PATH, so nothing needs
rewriting). ingress.annotations adds any the controller wants.
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
          - path: {{ include "mda-template.ingressPath" . }}
            pathType: Prefix
            backend:
              service:
                name: {{ $fullname }}
                port:
                  name: http
      {{- with .Values.ingress.host }}
      host: {{ . | quote }}
      {{- end }}
{{- end }}
{{- end }}
