{{/*
The model's own path on a shared host, ingress-nginx style: /<model>(/|$)(.*) is rewritten
to /$2, so /iris-classifier/predict reaches the server as /predict.
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
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/rewrite-target: /$2
    {{- with .Values.ingress.annotations }}
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
          - path: {{ include "mda-template.ingressPath" . }}(/|$)(.*)
            pathType: ImplementationSpecific
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
