package main

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ServiceMonitor is the subset of monitoring.coreos.com/v1 ServiceMonitor the chart uses.
// Anything outside the subset is reported as an unknown field: extend the struct then.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ServiceMonitorSpec `json:"spec"`
}

type ServiceMonitorSpec struct {
	JobLabel          string               `json:"jobLabel,omitempty"`
	Endpoints         []MonitorEndpoint    `json:"endpoints"`
	Selector          metav1.LabelSelector `json:"selector"`
	NamespaceSelector *NamespaceSelector   `json:"namespaceSelector,omitempty"`
}

// PodMonitor is the subset of monitoring.coreos.com/v1 PodMonitor the chart uses.
type PodMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PodMonitorSpec `json:"spec"`
}

type PodMonitorSpec struct {
	JobLabel            string               `json:"jobLabel,omitempty"`
	PodMetricsEndpoints []MonitorEndpoint    `json:"podMetricsEndpoints"`
	Selector            metav1.LabelSelector `json:"selector"`
	NamespaceSelector   *NamespaceSelector   `json:"namespaceSelector,omitempty"`
}

type NamespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

type MonitorEndpoint struct {
	Port              string              `json:"port,omitempty"`
	TargetPort        *intstr.IntOrString `json:"targetPort,omitempty"`
	Path              string              `json:"path,omitempty"`
	Scheme            string              `json:"scheme,omitempty"`
	Interval          string              `json:"interval,omitempty"`
	ScrapeTimeout     string              `json:"scrapeTimeout,omitempty"`
	HonorLabels       bool                `json:"honorLabels,omitempty"`
	Relabelings       []RelabelConfig     `json:"relabelings,omitempty"`
	MetricRelabelings []RelabelConfig     `json:"metricRelabelings,omitempty"`
}

type RelabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    string   `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Replacement  string   `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// EnginePodTemplate is the file the chart mounts into the scheduler (ENGINE_POD_TEMPLATE):
// the pod template the kubernetes runtime driver starts engine replicas from. Keep in sync
// with services/scheduler/src/runtime/kubernetes-template.ts.
type EnginePodTemplate struct {
	metav1.TypeMeta      `json:",inline"`
	Mode                 string                 `json:"mode"`
	Engines              map[string]EngineImage `json:"engines"`
	GPUResourceName      string                 `json:"gpuResourceName"`
	HFTokenSecretKey     string                 `json:"hfTokenSecretKey"`
	DefaultHFTokenSecret string                 `json:"defaultHfTokenSecret,omitempty"`
	EnginePort           int32                  `json:"enginePort"`
	AgentPort            int32                  `json:"agentPort"`
	Drain                EngineDrain            `json:"drain"`
	Template             corev1.PodTemplateSpec `json:"template"`
}

type EngineImage struct {
	Image string `json:"image"`
}

type EngineDrain struct {
	PreStopSleepSeconds          int64 `json:"preStopSleepSeconds"`
	EngineShutdownTimeoutSeconds int64 `json:"engineShutdownTimeoutSeconds"`
	AgentShutdownGraceSeconds    int64 `json:"agentShutdownGraceSeconds"`
}

func (t *EnginePodTemplate) check() []string {
	var errs []string
	if t.Mode != "gpu" && t.Mode != "sim" {
		errs = append(errs, fmt.Sprintf("mode: must be gpu or sim, got %q", t.Mode))
	}
	found := map[string]bool{}
	for _, c := range t.Template.Spec.Containers {
		found[c.Name] = true
	}
	for _, want := range []string{"engine", "agent"} {
		if !found[want] {
			errs = append(errs, fmt.Sprintf("template.spec.containers: a container named %q is required", want))
		}
	}
	grace := int64(30)
	if t.Template.Spec.TerminationGracePeriodSeconds != nil {
		grace = *t.Template.Spec.TerminationGracePeriodSeconds
	}
	d := t.Drain
	worst := d.EngineShutdownTimeoutSeconds
	if d.AgentShutdownGraceSeconds > worst {
		worst = d.AgentShutdownGraceSeconds
	}
	if d.PreStopSleepSeconds+worst >= grace {
		errs = append(errs, fmt.Sprintf("drain: preStop %ds + shutdown %ds must be < terminationGracePeriodSeconds %d", d.PreStopSleepSeconds, worst, grace))
	}
	return errs
}

// GPUType is one entry of the GPU_TYPES file.
type GPUType struct {
	Name         string              `json:"name"`
	Count        int32               `json:"count"`
	NodeSelector map[string]string   `json:"nodeSelector,omitempty"`
	Tolerations  []corev1.Toleration `json:"tolerations,omitempty"`
}
