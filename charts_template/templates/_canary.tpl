{{/*
The canary track: a second ConfigMap, Deployment and Service (<fullname>-canary) rendered by
the same templates with canary.config merged over config, its own replicas and image tag,
and the track label `canary`. Only an HTTPRoute can weight traffic between the two tracks.
*/}}
{{- define "mda-template.canary" -}}
{{- if .Values.canary.enabled }}
{{- if not .Values.httpRoute.enabled }}
{{- fail (printf "canary.enabled needs httpRoute.enabled: the canary of %s gets its traffic from the HTTPRoute (an Ingress cannot weight traffic)" (include "mda-template.fullname" .)) }}
{{- end }}
{{- $values := deepCopy .Values }}
{{- $_ := set $values "config" (mergeOverwrite (deepCopy .Values.config) (deepCopy (.Values.canary.config | default dict))) }}
{{- $_ := set $values "replicaCount" .Values.canary.replicaCount }}
{{- $_ := set $values "track" "canary" }}
{{- $_ := set $values "autoscaling" (dict "enabled" false) }}
{{- with .Values.canary.image.tag }}
{{- $_ := set $values.image "tag" . }}
{{- end }}
{{- $context := dict "Values" $values "Chart" .Chart "Release" .Release "Capabilities" .Capabilities "Template" .Template "Files" .Files }}
---
{{ include "mda-template.configmap" $context }}
---
{{ include "mda-template.deployment" $context }}
---
{{ include "mda-template.service" $context }}
{{- end }}
{{- end }}
