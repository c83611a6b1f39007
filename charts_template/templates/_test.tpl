{{/* `helm test <model>`: the Service answers ready, from inside the cluster. */}}
{{- define "mda-template.test" -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "mda-template.fullname" . }}-test-ready
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "mda-template.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    # curl_user in the curlimages/curl image.
    runAsUser: 100
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: curl
      image: "{{ .Values.test.image.repository }}:{{ .Values.test.image.tag }}"
      args:
        - --fail
        - --silent
        - --show-error
        - --retry
        - "5"
        - --retry-connrefused
        - --retry-delay
        - "2"
        - http://{{ include "mda-template.fullname" . }}:{{ .Values.service.port }}/v2/health/ready
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
      resources:
        limits:
          cpu: 100m
          memory: 32Mi
        requests:
          cpu: 10m
          memory: 16Mi
{{- end }}
