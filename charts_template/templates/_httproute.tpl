{{/*
Gateway API routes (gateway.networking.k8s.io/v1). The HTTPRoute sends the model's path (a
pool: each model's, 64 to a rule, the most a rule matches) (PathPrefix, no rewrite: the server
answers under its prefix) to the Service; with a canary,
to both tracks by weight, the canary alone for requests with canary.header, and a mirrored
share of traffic to the canary (a shadow: its answers are discarded).
*/}}
{{- define "mda-template.backendRefs" -}}
{{- $fullname := include "mda-template.fullname" .root }}
{{- $canary := .root.Values.canary }}
- name: {{ $fullname }}
  port: {{ .port }}
  {{- if $canary.enabled }}
  weight: {{ sub 100 (int $canary.weight) }}
- name: {{ $fullname }}-canary
  port: {{ .port }}
  weight: {{ int $canary.weight }}
  {{- end }}
{{- end }}

{{- define "mda-template.routeMeta" -}}
metadata:
  name: {{ include "mda-template.fullname" .root }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "mda-template.labels" .root | nindent 4 }}
  {{- with .route.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .route.parentRefs }}
  parentRefs:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .route.hostnames }}
  hostnames:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "mda-template.httproute" -}}
{{- if .Values.httpRoute.enabled }}
{{- $fullname := include "mda-template.fullname" . }}
{{- $groups := include "mda-template.paths" . | fromJsonArray | chunk 64 }}
{{- $canary := .Values.canary }}
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
{{ include "mda-template.routeMeta" (dict "root" . "route" .Values.httpRoute) }}
  rules:
    {{- if and $canary.enabled $canary.header }}
    {{- range $groups }}
    # Requests that carry the canary header reach the canary alone, whatever its weight.
    - matches:
        {{- range . }}
        - path:
            type: PathPrefix
            value: {{ . }}
          headers:
            - type: Exact
              name: {{ $canary.header.name }}
              value: {{ $canary.header.value | quote }}
        {{- end }}
      backendRefs:
        - name: {{ $fullname }}-canary
          port: {{ $.Values.service.port }}
    {{- end }}
    {{- end }}
    {{- range $groups }}
    - matches:
        {{- range . }}
        - path:
            type: PathPrefix
            value: {{ . }}
        {{- end }}
      {{- if and $canary.enabled $canary.mirrorPercent }}
      filters:
        - type: RequestMirror
          requestMirror:
            backendRef:
              name: {{ $fullname }}-canary
              port: {{ $.Values.service.port }}
            percent: {{ int $canary.mirrorPercent }}
      {{- end }}
      backendRefs:
        {{- include "mda-template.backendRefs" (dict "root" $ "port" $.Values.service.port) | nindent 8 }}
    {{- end }}
{{- end }}
{{- end }}

{{- define "mda-template.grpcroute" -}}
{{- if .Values.grpcRoute.enabled }}
{{- if not .Values.service.grpcPort }}
{{- fail "grpcRoute.enabled needs service.grpcPort: the GRPCRoute routes the V2 gRPC port, which is off (0)" }}
{{- end }}
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
{{ include "mda-template.routeMeta" (dict "root" . "route" .Values.grpcRoute) }}
  rules:
    - matches:
        - method:
            service: inference.GRPCInferenceService
      backendRefs:
        {{- include "mda-template.backendRefs" (dict "root" . "port" .Values.service.grpcPort) | nindent 8 }}
{{- end }}
{{- end }}
