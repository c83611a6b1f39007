{{/* Optional: its own ServiceAccount, e.g. for GKE workload identity to read the bucket. */}}
{{- define "mda-template.serviceaccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "mda-template.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "mda-template.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .Values.serviceAccount.automount }}
{{- end }}
{{- end }}
