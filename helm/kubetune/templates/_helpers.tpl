{{/* Chart name, 63 characters at most. */}}
{{- define "kubetune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource-name prefix: the release name, with the chart name unless it already holds it. */}}
{{- define "kubetune.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "chart-version", the value of the helm.sh/chart label. */}}
{{- define "kubetune.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of every object. Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "kubetune.labels" -}}
{{- $ctx := .ctx -}}
helm.sh/chart: {{ include "kubetune.chart" $ctx }}
{{ include "kubetune.selectorLabels" . }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubetune
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
{{- end -}}

{{/* The labels that select the operator's pod (immutable once deployed). */}}
{{- define "kubetune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetune.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "kubetune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubetune.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator image reference: repository, then @digest or :tag (default appVersion). */}}
{{- define "kubetune.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The trainer image reference. */}}
{{- define "kubetune.trainerImage" -}}
{{- printf "%s:%s" .Values.trainer.image.repository (default .Chart.AppVersion .Values.trainer.image.tag) -}}
{{- end -}}

{{/* The operator's command-line arguments, one YAML list item per line. */}}
{{- define "kubetune.operatorArgs" -}}
- operator
- --metrics-port={{ .Values.metrics.port }}
- --health-port={{ .Values.operator.healthPort }}
- --finished-jobs={{ .Values.operator.finishedJobs }}
- --gpu-type-label={{ .Values.operator.gpuTypeLabel }}
{{- if not (kindIs "invalid" .Values.operator.defaultPrice) }}
- --default-price={{ .Values.operator.defaultPrice }}
{{- end }}
{{- with .Values.operator.gpuPrices }}
{{- $prices := list }}
{{- range $type, $price := . }}
{{- $prices = append $prices (printf "%s=%v" $type $price) }}
{{- end }}
- --gpu-prices={{ join "," $prices }}
{{- end }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- if .Values.operator.verbose }}
- --verbose
{{- end }}
{{- end -}}

{{/*
The operator's RBAC rules inside the namespaces it handles: exactly the calls
kubetune.controller.kube and Kopf make, nothing else.
*/}}
{{- define "kubetune.namespacedRules" -}}
# TuningExperiments: Kopf lists and watches them, and patches their metadata
# (its progress annotations and finalizer); the reconciler reads one by name.
- apiGroups: [kubetune.io]
  resources: [tuningexperiments]
  verbs: [get, list, watch, patch]
# The reconciler writes the status subresource (merge patch with resourceVersion).
- apiGroups: [kubetune.io]
  resources: [tuningexperiments/status]
  verbs: [patch]
# Trial Jobs carry an ownerReference with blockOwnerDeletion: where the
# OwnerReferencesPermissionEnforcement admission plugin is on, creating them needs this.
- apiGroups: [kubetune.io]
  resources: [tuningexperiments/finalizers]
  verbs: [update]
# Trial Jobs: created, read back by name (adoption after a 409), listed by label,
# watched (Kopf wakes the experiment), deleted (timeouts, finished-jobs: delete).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Trial Pods: listed by label and watched; their logs are read for failure reasons.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# Events on experiments (kubectl describe tex), from kubetune and from Kopf.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
