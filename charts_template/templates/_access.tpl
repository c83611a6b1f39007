{{/*
Who may call the model (docs: guides/securing.md): the token Secret the chart creates when
asked (auth.create), the env and volumes the server reads tokens through, and the
NetworkPolicy. The Secrets are mounted as folders, never with subPath, so Kubernetes updates
them in place and the server picks up a new token without a restart.
*/}}
{{- define "mda-template.tokenSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-tokens" (include "mda-template.stableFullname" .)) }}
{{- end }}

{{- define "mda-template.secret" -}}
{{- if and .Values.auth.enabled .Values.auth.create }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "mda-template.tokenSecretName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "mda-template.labels" . | nindent 4 }}
type: Opaque
stringData:
  tokens: |
    {{- range .Values.auth.tokens }}
    {{ . }}
    {{- end }}
{{- end }}
{{- end }}

{{/* The server's access settings, as container env entries. */}}
{{- define "mda-template.accessEnv" -}}
{{- if .Values.auth.enabled }}
{{- if not (or .Values.auth.existingSecret .Values.auth.create) }}
{{- fail "auth.enabled needs auth.existingSecret (a Secret with a `tokens` key) or auth.create with auth.tokens" }}
{{- end }}
- name: MDA_API_TOKENS_FILE
  value: /etc/mda/tokens/tokens
{{- end }}
{{- if .Values.auth.adminExistingSecret }}
- name: MDA_ADMIN_TOKENS_FILE
  value: /etc/mda/admin-tokens/tokens
{{- end }}
{{- if .Values.auth.metrics }}
- name: MDA_METRICS_AUTH
  value: "true"
{{- end }}
{{- with .Values.rateLimit }}
- name: MDA_RATE_LIMIT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.trustedProxies }}
- name: MDA_TRUSTED_PROXIES
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}

{{- define "mda-template.accessVolumeMounts" -}}
{{- if .Values.auth.enabled }}
- name: tokens
  mountPath: /etc/mda/tokens
  readOnly: true
{{- end }}
{{- if .Values.auth.adminExistingSecret }}
- name: admin-tokens
  mountPath: /etc/mda/admin-tokens
  readOnly: true
{{- end }}
{{- end }}

{{- define "mda-template.accessVolumes" -}}
{{- if .Values.auth.enabled }}
- name: tokens
  secret:
    secretName: {{ include "mda-template.tokenSecretName" . }}
    items: [{key: tokens, path: tokens}]
{{- end }}
{{- if .Values.auth.adminExistingSecret }}
- name: admin-tokens
  secret:
    secretName: {{ .Values.auth.adminExistingSecret }}
    items: [{key: tokens, path: tokens}]
{{- end }}
{{- end }}

{{/*
The model's pods (both tracks) accept traffic on their ports only from the peers named in
networkPolicy.from (the gateway or ingress controller) and, on the HTTP port, from
networkPolicy.metricsFrom (the monitoring namespace); with neither, from nobody. Egress is
left alone unless networkPolicy.egress is given.
*/}}
{{- define "mda-template.networkpolicy" -}}
{{- if .Values.networkPolicy.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "mda-template.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "mda-template.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ include "mda-template.name" . }}
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .Release.Name | quote }}, {{ printf "%s-canary" .Release.Name | quote }}]
  policyTypes:
    - Ingress
    {{- if .Values.networkPolicy.egress }}
    - Egress
    {{- end }}
  ingress:
    {{- with .Values.networkPolicy.from }}
    - from:
        {{- toYaml . | nindent 8 }}
      ports:
        - port: http
          protocol: TCP
        {{- if $.Values.service.grpcPort }}
        - port: grpc
          protocol: TCP
        {{- end }}
    {{- end }}
    {{- with .Values.networkPolicy.metricsFrom }}
    - from:
        {{- toYaml . | nindent 8 }}
      ports:
        - port: http
          protocol: TCP
    {{- end }}
  {{- with .Values.networkPolicy.egress }}
  egress:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
