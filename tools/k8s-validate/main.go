// k8s-validate reads a multi-document YAML stream (typically `helm template` output) and
// decodes every object into its typed Kubernetes Go struct with strict decoding: unknown
// fields, duplicate fields, wrong types and case-mismatched field names are errors, as they
// are for a strict API server (kubectl --validate=strict). It also validates documents
// embedded in ConfigMaps that carry the annotation
//
//	k8s-validate.infera.dev/embedded: "<data key>=<apiVersion>/<Kind>[,...]"
//
// (the chart's engine pod template and GPU types). A few semantic checks ride along:
// names are DNS-1123, label values are valid, every container has a name and an image,
// container and env names are unique.
//
// Usage: helm template ... | k8s-validate [-q] [file ...]   (exit 1 on any error)
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const embeddedAnnotation = "k8s-validate.infera.dev/embedded"

// kinds maps "apiVersion/Kind" to a constructor of its typed struct.
var kinds = map[string]func() any{
	"v1/ConfigMap":                      func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                         func() any { return &corev1.Secret{} },
	"v1/Service":                        func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                 func() any { return &corev1.ServiceAccount{} },
	"v1/Pod":                            func() any { return &corev1.Pod{} },
	"v1/PodTemplate":                    func() any { return &corev1.PodTemplate{} },
	"v1/PersistentVolumeClaim":          func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":               func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                      func() any { return &batchv1.Job{} },
	"rbac.authorization.k8s.io/v1/Role": func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() any { return &rbacv1.RoleBinding{} },
	"networking.k8s.io/v1/Ingress":             func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":       func() any { return &networkingv1.NetworkPolicy{} },
	"autoscaling/v2/HorizontalPodAutoscaler":   func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":            func() any { return &policyv1.PodDisruptionBudget{} },
	"monitoring.coreos.com/v1/ServiceMonitor":  func() any { return &ServiceMonitor{} },
	"monitoring.coreos.com/v1/PodMonitor":      func() any { return &PodMonitor{} },
	"infera.dev/v1alpha1/EnginePodTemplate":    func() any { return &EnginePodTemplate{} },
	"infera.dev/v1alpha1/GPUTypeList":          func() any { return &[]GPUType{} },
}

// Kinds that are cluster-scoped are refused: the chart must not create any.
var clusterScoped = regexp.MustCompile(`^(ClusterRole|ClusterRoleBinding|Namespace|CustomResourceDefinition|PersistentVolume|StorageClass|PriorityClass|RuntimeClass|.*WebhookConfiguration)$`)

type docRef struct {
	source string // "# Source:" line of helm template output, or file:index
	index  int
}

func (d docRef) String() string {
	if d.source != "" {
		return d.source
	}
	return fmt.Sprintf("document %d", d.index)
}

type result struct {
	docs    []json.RawMessage // top-level objects as JSON, for -json
	objects int
	byKind  map[string]int
	errs    []string
}

func main() {
	quiet := flag.Bool("q", false, "print only errors")
	asJSON := flag.Bool("json", false, "after validating, print the objects as one JSON array on stdout (summary goes to stderr)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: k8s-validate [-q] [file ...]  (reads stdin when no file is given)")
		flag.PrintDefaults()
	}
	flag.Parse()
	res := &result{byKind: map[string]int{}}
	if flag.NArg() == 0 {
		validateStream(os.Stdin, "stdin", res)
	}
	for _, f := range flag.Args() {
		fh, err := os.Open(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "k8s-validate:", err)
			os.Exit(2)
		}
		validateStream(fh, f, res)
		fh.Close()
	}
	for _, e := range res.errs {
		fmt.Fprintln(os.Stderr, "ERROR", e)
	}
	summary := io.Writer(os.Stdout)
	if *asJSON {
		summary = os.Stderr
		if len(res.errs) == 0 {
			out, err := json.Marshal(res.docs)
			if err != nil {
				fmt.Fprintln(os.Stderr, "k8s-validate:", err)
				os.Exit(2)
			}
			fmt.Println(string(out))
		}
	}
	if !*quiet || len(res.errs) > 0 {
		keys := make([]string, 0, len(res.byKind))
		for k := range res.byKind {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%d", k, res.byKind[k]))
		}
		fmt.Fprintf(summary, "k8s-validate: %d objects (%s), %d errors\n", res.objects, strings.Join(parts, " "), len(res.errs))
		if res.byKind["ServiceMonitor"]+res.byKind["PodMonitor"] > 0 {
			fmt.Fprintln(summary, "k8s-validate: note: ServiceMonitor/PodMonitor are checked against a typed subset of the prometheus-operator CRD (selector, namespaceSelector, endpoints: port/path/interval/scrapeTimeout/scheme/honorLabels/relabelings)")
		}
	}
	if len(res.errs) > 0 {
		os.Exit(1)
	}
	if res.objects == 0 {
		fmt.Fprintln(os.Stderr, "k8s-validate: no objects in input")
		os.Exit(1)
	}
}

func validateStream(r io.Reader, name string, res *result) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for i := 0; ; i++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			res.errs = append(res.errs, fmt.Sprintf("%s: reading YAML stream: %v", name, err))
			return
		}
		ref := docRef{index: i, source: sourceLine(raw)}
		if ref.source == "" {
			ref.source = fmt.Sprintf("%s#%d", name, i)
		}
		if isEmptyDoc(raw) {
			continue
		}
		validateDoc(raw, ref, "", res)
	}
}

func sourceLine(raw []byte) string {
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "# Source: ") {
			return strings.TrimPrefix(line, "# Source: ")
		}
	}
	return ""
}

func isEmptyDoc(raw []byte) bool {
	for _, line := range strings.Split(string(raw), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return false
		}
	}
	return true
}

// validateDoc decodes one document. forceType, when set, names the expected apiVersion/Kind
// (for embedded documents whose data has no apiVersion/kind, e.g. a JSON array).
func validateDoc(raw []byte, ref docRef, forceType string, res *result) {
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		res.errs = append(res.errs, fmt.Sprintf("%s: invalid YAML: %v", ref, err))
		return
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return
	}
	typeKey := forceType
	label := forceType
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(js), []byte("{")) {
		_ = kjson.UnmarshalCaseSensitivePreserveInts(js, &tm)
	}
	if tm.Kind != "" {
		gvk := tm.APIVersion + "/" + tm.Kind
		if forceType != "" && forceType != gvk {
			res.errs = append(res.errs, fmt.Sprintf("%s: embedded document is %s, expected %s", ref, gvk, forceType))
			return
		}
		typeKey = gvk
		label = fmt.Sprintf("%s %q", tm.Kind, tm.Metadata.Name)
	}
	if typeKey == "" {
		res.errs = append(res.errs, fmt.Sprintf("%s: document has no apiVersion/kind", ref))
		return
	}
	where := fmt.Sprintf("%s (%s)", label, ref)
	kind := typeKey[strings.LastIndex(typeKey, "/")+1:]
	if clusterScoped.MatchString(kind) {
		res.errs = append(res.errs, fmt.Sprintf("%s: cluster-scoped kind %s is not allowed in this chart", where, kind))
		return
	}
	ctor, ok := kinds[typeKey]
	if !ok {
		res.errs = append(res.errs, fmt.Sprintf("%s: unsupported apiVersion/kind %s (add it to tools/k8s-validate)", where, typeKey))
		return
	}
	obj := ctor()
	strictErrs, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		res.errs = append(res.errs, fmt.Sprintf("%s: %v", where, err))
		return
	}
	for _, se := range strictErrs {
		res.errs = append(res.errs, fmt.Sprintf("%s: %v", where, se))
	}
	res.objects++
	res.byKind[kind]++
	if forceType == "" {
		res.docs = append(res.docs, json.RawMessage(js))
	}
	for _, e := range semanticChecks(obj) {
		res.errs = append(res.errs, fmt.Sprintf("%s: %s", where, e))
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		validateEmbedded(cm, ref, res)
	}
}

func validateEmbedded(cm *corev1.ConfigMap, ref docRef, res *result) {
	spec, ok := cm.Annotations[embeddedAnnotation]
	if !ok {
		return
	}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		key, typ, found := strings.Cut(item, "=")
		if !found || key == "" || typ == "" {
			res.errs = append(res.errs, fmt.Sprintf("ConfigMap %q (%s): bad %s annotation entry %q (want key=apiVersion/Kind)", cm.Name, ref, embeddedAnnotation, item))
			continue
		}
		data, ok := cm.Data[key]
		if !ok {
			res.errs = append(res.errs, fmt.Sprintf("ConfigMap %q (%s): annotated embedded key %q is missing from data", cm.Name, ref, key))
			continue
		}
		sub := docRef{source: fmt.Sprintf("%s > ConfigMap %q data[%q]", ref, cm.Name, key)}
		validateDoc([]byte(data), sub, typ, res)
	}
}

func semanticChecks(obj any) []string {
	var errs []string
	var meta *metav1.ObjectMeta
	var pods []*corev1.PodSpec
	var podMetas []*metav1.ObjectMeta
	switch o := obj.(type) {
	case *appsv1.Deployment:
		meta = &o.ObjectMeta
		pods = append(pods, &o.Spec.Template.Spec)
		podMetas = append(podMetas, &o.Spec.Template.ObjectMeta)
		errs = append(errs, selectorMatches("spec.selector", o.Spec.Selector, o.Spec.Template.Labels)...)
	case *appsv1.StatefulSet:
		meta = &o.ObjectMeta
		// volumeClaimTemplates are volumes of the pod too.
		spec := o.Spec.Template.Spec.DeepCopy()
		for _, pvc := range o.Spec.VolumeClaimTemplates {
			spec.Volumes = append(spec.Volumes, corev1.Volume{Name: pvc.Name})
		}
		pods = append(pods, spec)
		podMetas = append(podMetas, &o.Spec.Template.ObjectMeta)
		errs = append(errs, selectorMatches("spec.selector", o.Spec.Selector, o.Spec.Template.Labels)...)
	case *batchv1.Job:
		meta = &o.ObjectMeta
		pods = append(pods, &o.Spec.Template.Spec)
		podMetas = append(podMetas, &o.Spec.Template.ObjectMeta)
	case *corev1.Pod:
		meta = &o.ObjectMeta
		pods = append(pods, &o.Spec)
	case *corev1.PodTemplate:
		meta = &o.ObjectMeta
		pods = append(pods, &o.Template.Spec)
		podMetas = append(podMetas, &o.Template.ObjectMeta)
	case *EnginePodTemplate:
		pods = append(pods, &o.Template.Spec)
		podMetas = append(podMetas, &o.Template.ObjectMeta)
		errs = append(errs, o.check()...)
	case *[]GPUType:
		for i, g := range *o {
			if g.Name == "" {
				errs = append(errs, fmt.Sprintf("[%d].name: required", i))
			}
		}
	}
	if meta == nil {
		if m, ok := obj.(metav1.Object); ok {
			meta = &metav1.ObjectMeta{Name: m.GetName(), Labels: m.GetLabels()}
		}
	}
	if meta != nil {
		if meta.Name == "" {
			errs = append(errs, "metadata.name: required")
		} else {
			for _, msg := range validation.IsDNS1123Subdomain(meta.Name) {
				errs = append(errs, "metadata.name: "+msg)
			}
		}
		errs = append(errs, checkLabels("metadata.labels", meta.Labels)...)
	}
	for _, pm := range podMetas {
		errs = append(errs, checkLabels("pod template metadata.labels", pm.Labels)...)
	}
	for _, ps := range pods {
		errs = append(errs, checkPodSpec(ps)...)
	}
	return errs
}

func selectorMatches(field string, sel *metav1.LabelSelector, labels map[string]string) []string {
	if sel == nil {
		return []string{field + ": required"}
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			return []string{fmt.Sprintf("%s: matchLabels %s=%s does not match the pod template labels", field, k, v)}
		}
	}
	return nil
}

func checkLabels(field string, labels map[string]string) []string {
	var errs []string
	for k, v := range labels {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Sprintf("%s key %q: %s", field, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Sprintf("%s[%q] value %q: %s", field, k, v, msg))
		}
	}
	return errs
}

func checkPodSpec(ps *corev1.PodSpec) []string {
	var errs []string
	if len(ps.Containers) == 0 {
		errs = append(errs, "spec.containers: at least one container is required")
	}
	names := map[string]bool{}
	volumes := map[string]bool{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = true
	}
	check := func(field string, c corev1.Container) {
		if c.Name == "" {
			errs = append(errs, field+".name: required")
		}
		if names[c.Name] {
			errs = append(errs, fmt.Sprintf("%s.name: duplicate container name %q", field, c.Name))
		}
		names[c.Name] = true
		if strings.TrimSpace(c.Image) == "" {
			errs = append(errs, fmt.Sprintf("%s[%s].image: required", field, c.Name))
		}
		envs := map[string]bool{}
		for _, e := range c.Env {
			if envs[e.Name] {
				errs = append(errs, fmt.Sprintf("%s[%s].env: duplicate variable %q", field, c.Name, e.Name))
			}
			envs[e.Name] = true
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				errs = append(errs, fmt.Sprintf("%s[%s].volumeMounts: volume %q is not defined in spec.volumes", field, c.Name, m.Name))
			}
		}
	}
	for _, c := range ps.InitContainers {
		check("spec.initContainers", c)
	}
	for _, c := range ps.Containers {
		check("spec.containers", c)
	}
	return errs
}
