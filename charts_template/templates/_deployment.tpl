{{- define "mda-template.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "mda-template.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "mda-template.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ .Values.revisionHistoryLimit }}
  selector:
    matchLabels:
      {{- include "mda-template.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        # A config change alone changes the pod template, so the pods roll.
        checksum/config: {{ include "mda-template.configmap" . | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "mda-template.labels" . | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      serviceAccountName: {{ include "mda-template.serviceAccountName" . }}
      automountServiceAccountToken: {{ .Values.serviceAccount.automount }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      containers:
        - name: server
          image: "{{ .Values.image.repository }}:{{ include "mda-template.imageTag" . }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
            {{- if .Values.service.grpcPort }}
            - name: grpc
              containerPort: 8081
              protocol: TCP
            {{- end }}
          env:
            - name: PORT
              value: "8080"
            # V2 over gRPC on 8081, or off when the Service exposes no gRPC port.
            - name: MDA_GRPC_PORT
              value: {{ if .Values.service.grpcPort }}"8081"{{ else }}"0"{{ end }}
            - name: MDA_CONFIG_PATH
              value: /etc/config/config.yaml
            # The root filesystem is read-only: GCS downloads go to the /tmp emptyDir.
            - name: MDA_DOWNLOAD_DIR
              value: /tmp/models
            - name: MDA_WORKERS
              value: {{ .Values.workers | quote }}
            # scikit-learn models answered by ONNX Runtime once verified (exact, approx, off).
            - name: MDA_COMPILE
              value: {{ .Values.compile | default "exact" | quote }}
            {{- if include "mda-template.isPool" . }}
            {{- with .Values.memoryBudget }}
            # The memory the pool's loaded models may hold (unset: half the memory limit).
            - name: MDA_MEMORY_BUDGET
              value: {{ . | quote }}
            {{- end }}
            {{- else }}
            # The model's path: the server answers under it (Ingress, HTTPRoute) and without it
            # (in-cluster callers of the Service), so no router rewrites anything.
            - name: MDA_ROOT_PATH
              value: {{ include "mda-template.ingressPath" . | quote }}
            {{- end }}
            # Which track answers (stable or canary): in a header and in mda_model_info.
            - name: MDA_TRACK
              value: {{ include "mda-template.track" . | quote }}
            # Give up loading (one log line, exit 1) before the startup probe would kill the pod.
            - name: MDA_LOAD_TIMEOUT_SECONDS
              {{- $probe := .Values.startupProbe | default dict }}
              {{- $window := mul ($probe.periodSeconds | default 10) ($probe.failureThreshold | default 3) }}
              value: {{ max 10 (sub $window 30) | quote }}
            # Drain within the grace period, after the preStop pause.
            - name: MDA_GRACEFUL_SHUTDOWN_SECONDS
              value: {{ max 1 (sub (sub (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds)) 3) | quote }}
            {{- include "mda-template.accessEnv" . | nindent 12 }}
            {{- with .Values.redisUrl }}
            - name: MDA_REDIS_URL
              value: {{ . | quote }}
            {{- end }}
            {{- range $name, $value := .Values.env }}
            - name: {{ $name }}
              value: {{ $value | toString | quote }}
            {{- end }}
            {{- with .Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if .Values.preStopSleepSeconds }}
          # Keep serving while the endpoints controller removes the pod from the Service.
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "{{ .Values.preStopSleepSeconds }}"]
          {{- end }}
          startupProbe:
            httpGet:
              path: /v2/health/live
              port: http
            {{- toYaml .Values.startupProbe | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /v2/health/live
              port: http
            {{- toYaml .Values.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /v2/health/ready
              port: http
            {{- toYaml .Values.readinessProbe | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/config
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- include "mda-template.accessVolumeMounts" . | nindent 12 }}
      volumes:
        - name: config
          configMap:
            name: {{ include "mda-template.fullname" . }}
        - name: tmp
          emptyDir:
            {{- with .Values.tmpSizeLimit }}
            sizeLimit: {{ . }}
            {{- end }}
        {{- include "mda-template.accessVolumes" . | nindent 8 }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
