package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

const (
	chartDir      = "helm/lightbus-gateway"
	examplesDir   = "examples"
	readmePath    = "../README.md"
	configGoPath  = "../cmd/gateway/config.go"
	releaseName   = "bus"
	namespace     = "lightbus"
	kubeVersion   = "v1.30.0"
	postDrainSecs = 10 // what the gateway may still do after the drain: cancel deliveries (5 s), flush spans (5 s)
)

// manifests is one rendering of the chart, each object decoded strictly
// into its Kubernetes type.
type manifests struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	configMap  *corev1.ConfigMap
	pdb        *policyv1.PodDisruptionBudget
	hpa        *autoscalingv2.HorizontalPodAutoscaler
}

// render renders the chart with the values of the named files (relative to
// this directory) and then the YAML of extra, over the chart's defaults, as
// helm install would.
func render(t *testing.T, extra string, valueFiles ...string) (map[string]string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals := map[string]any{}
	for _, f := range valueFiles {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		vals = chartutil.MergeTables(v.AsMap(), vals)
	}
	if extra != "" {
		v, err := chartutil.ReadValues([]byte(extra))
		if err != nil {
			t.Fatalf("read values %q: %v", extra, err)
		}
		vals = chartutil.MergeTables(v.AsMap(), vals)
	}
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	rv, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{
		Name: releaseName, Namespace: namespace, IsInstall: true, Revision: 1,
	}, caps)
	if err != nil {
		return nil, err
	}
	return engine.Engine{Strict: true}.Render(chrt, rv)
}

// mustRender renders the chart and decodes what it made (see decode).
func mustRender(t *testing.T, extra string, valueFiles ...string) manifests {
	t.Helper()
	files, err := render(t, extra, valueFiles...)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return decodeFiles(t, files)
}

// decodeFiles splits the rendered templates into YAML documents and decodes
// each strictly, refusing a kind the chart should not make or two of one.
func decodeFiles(t *testing.T, files map[string]string) manifests {
	t.Helper()
	var m manifests
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for i, doc := range splitDocuments(files[name]) {
			where := fmt.Sprintf("%s#%d", name, i)
			obj, err := decode([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v\n%s", where, err, doc)
			}
			var dup bool
			switch o := obj.(type) {
			case *appsv1.Deployment:
				dup, m.deployment = m.deployment != nil, o
			case *corev1.Service:
				dup, m.service = m.service != nil, o
			case *corev1.ConfigMap:
				dup, m.configMap = m.configMap != nil, o
			case *policyv1.PodDisruptionBudget:
				dup, m.pdb = m.pdb != nil, o
			case *autoscalingv2.HorizontalPodAutoscaler:
				dup, m.hpa = m.hpa != nil, o
			default:
				t.Fatalf("%s: the chart makes an unexpected %T", where, obj)
			}
			if dup {
				t.Fatalf("%s: a second %T", where, obj)
			}
		}
	}
	for what, missing := range map[string]bool{
		"Deployment": m.deployment == nil, "Service": m.service == nil, "ConfigMap": m.configMap == nil,
	} {
		if missing {
			t.Fatalf("the chart made no %s", what)
		}
	}
	return m
}

// splitDocuments splits a multi-document YAML stream, dropping empty ones.
func splitDocuments(s string) []string {
	var docs []string
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(s, -1) {
		if strings.TrimSpace(stripComments(doc)) != "" {
			docs = append(docs, doc)
		}
	}
	return docs
}

func stripComments(s string) string {
	return regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(s, "")
}

// decode decodes one manifest into the Kubernetes type of its apiVersion
// and kind, strictly: an unknown or duplicated field is an error, as is a
// kind this test does not know.
func decode(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1 Secret":
		obj = &corev1.Secret{}
	case "policy/v1 PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		obj = &autoscalingv2.HorizontalPodAutoscaler{}
	default:
		return nil, fmt.Errorf("unknown apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("strict decode of %s: %w", tm.Kind, err)
	}
	return obj, nil
}

// gatewayContainer returns the Deployment's one container.
func gatewayContainer(t *testing.T, m manifests) corev1.Container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("want one container, got %d", len(cs))
	}
	return cs[0]
}

// checkManifests holds what every rendering must satisfy.
func checkManifests(t *testing.T, m manifests) {
	t.Helper()
	d := m.deployment
	pod := d.Spec.Template
	podLabels := labels.Set(pod.Labels)
	c := gatewayContainer(t, m)

	for _, meta := range []metav1.ObjectMeta{d.ObjectMeta, m.service.ObjectMeta, m.configMap.ObjectMeta} {
		for _, msg := range validation.IsDNS1123Subdomain(meta.Name) {
			t.Errorf("name %q: %s", meta.Name, msg)
		}
	}
	for k, v := range podLabels {
		for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
			t.Errorf("pod label %s=%s: %s", k, v, msg)
		}
	}

	// The selectors select the pods.
	matches := func(what string, sel *metav1.LabelSelector) {
		t.Helper()
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatalf("%s selector: %v", what, err)
		}
		if s.Empty() || !s.Matches(podLabels) {
			t.Errorf("%s selector %v does not select the pods (labels %v)", what, s, podLabels)
		}
	}
	matches("Deployment", d.Spec.Selector)
	svcSel := labels.SelectorFromSet(m.service.Spec.Selector)
	if svcSel.Empty() || !svcSel.Matches(podLabels) {
		t.Errorf("Service selector %v does not select the pods (labels %v)", svcSel, podLabels)
	}
	for i, tsc := range pod.Spec.TopologySpreadConstraints {
		matches(fmt.Sprintf("topologySpreadConstraints[%d]", i), tsc.LabelSelector)
	}
	if len(pod.Spec.TopologySpreadConstraints) == 0 && pod.Spec.Affinity == nil {
		t.Error("the pods are not spread: no topologySpreadConstraints nor affinity")
	}

	// The ports: the Service's target, the probes' and LIGHTBUS_ADDR's are
	// the container's port.
	if len(c.Ports) != 1 {
		t.Fatalf("want one container port, got %v", c.Ports)
	}
	port := c.Ports[0]
	if got, want := m.configMap.Data["LIGHTBUS_ADDR"], fmt.Sprintf(":%d", port.ContainerPort); got != want {
		t.Errorf("LIGHTBUS_ADDR = %q, want %q (the container port)", got, want)
	}
	if len(m.service.Spec.Ports) != 1 || m.service.Spec.Ports[0].TargetPort.String() != port.Name {
		t.Errorf("Service ports %v: want one targeting %q", m.service.Spec.Ports, port.Name)
	}
	probe := func(what string, p *corev1.Probe, path string) {
		t.Helper()
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: want an HTTP GET probe, got %v", what, p)
			return
		}
		if p.HTTPGet.Path != path {
			t.Errorf("%s path %q, want %q", what, p.HTTPGet.Path, path)
		}
		if p.HTTPGet.Port.String() != port.Name && p.HTTPGet.Port.IntValue() != int(port.ContainerPort) {
			t.Errorf("%s port %s is not the container's %s/%d", what, p.HTTPGet.Port.String(), port.Name, port.ContainerPort)
		}
	}
	probe("livenessProbe", c.LivenessProbe, "/healthz")
	probe("readinessProbe", c.ReadinessProbe, "/readyz")
	probe("startupProbe", c.StartupProbe, "/healthz")
	// Start-up tries the database for a minute, then migrates.
	if sp := c.StartupProbe; sp != nil && sp.PeriodSeconds*sp.FailureThreshold < 120 {
		t.Errorf("startupProbe allows %ds, want at least 120s (a minute to reach the database, then the migrations)", sp.PeriodSeconds*sp.FailureThreshold)
	}

	// Graceful termination: the preStop sleep, then the drain, then what
	// follows it, all within the grace period.
	shutdown, err := time.ParseDuration(m.configMap.Data["LIGHTBUS_SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("LIGHTBUS_SHUTDOWN_TIMEOUT: %v", err)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatalf("want a preStop sleep, got %+v", c.Lifecycle)
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if preStop <= 0 {
		t.Errorf("preStop sleep %v: the endpoint would still get requests while the gateway drains", preStop)
	}
	grace := pod.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	if need := preStop + shutdown + postDrainSecs*time.Second; time.Duration(*grace)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %d < preStop %v + LIGHTBUS_SHUTDOWN_TIMEOUT %v + %ds", *grace, preStop, shutdown, postDrainSecs)
	}

	// The settings come from the ConfigMap and the Secrets.
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != m.configMap.Name {
		t.Errorf("envFrom %+v: want the ConfigMap %s", c.EnvFrom, m.configMap.Name)
	}
	for _, e := range c.Env {
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("env %s: want it from a Secret, got %+v", e.Name, e)
		}
	}
	if ref := secretRef(c, "DATABASE_URL"); ref == nil || (ref.Optional != nil && *ref.Optional) {
		t.Errorf("DATABASE_URL: want it from a Secret, required; got %+v", ref)
	}
	for name := range m.configMap.Data {
		if name == "DATABASE_URL" || name == "LIGHTBUS_BOOTSTRAP_TOKEN" {
			t.Errorf("%s is in the ConfigMap: it belongs in a Secret", name)
		}
	}

	// Locked down.
	psc, csc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("the pod may run as root")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("the pod has no RuntimeDefault seccomp profile")
	}
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Error("the container's root filesystem is writable")
	}
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("the container allows privilege escalation")
	}
	if csc == nil || csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Error("the container does not drop ALL capabilities")
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it does not need")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
	}

	// The budget and the autoscaler are about this Deployment.
	if m.pdb != nil {
		matches("PodDisruptionBudget", m.pdb.Spec.Selector)
		if (m.pdb.Spec.MinAvailable == nil) == (m.pdb.Spec.MaxUnavailable == nil) {
			t.Errorf("PodDisruptionBudget: want one of minAvailable and maxUnavailable, got %+v", m.pdb.Spec)
		}
	}
	if h := m.hpa; h != nil {
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
			t.Errorf("HorizontalPodAutoscaler targets %+v, want Deployment %s", ref, d.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HorizontalPodAutoscaler replicas %v..%d", h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
			t.Errorf("HorizontalPodAutoscaler metrics %+v: want CPU", h.Spec.Metrics)
		}
		if d.Spec.Replicas != nil {
			t.Error("the Deployment sets replicas under an autoscaler: each upgrade would reset them")
		}
	} else if d.Spec.Replicas == nil {
		t.Error("the Deployment sets no replicas and no autoscaler does")
	}
}

// secretRef returns the Secret the container's variable name comes from.
func secretRef(c corev1.Container, name string) *corev1.SecretKeySelector {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

// TestChartReadDatabase: DATABASE_READ_URL comes from the database's
// Secret when database.readSecretKey names its key, and is not set
// otherwise.
func TestChartReadDatabase(t *testing.T) {
	t.Parallel()
	if ref := secretRef(gatewayContainer(t, mustRender(t, "")), "DATABASE_READ_URL"); ref != nil {
		t.Errorf("DATABASE_READ_URL set by default, from %+v", ref)
	}
	m := mustRender(t, "database: {readSecretKey: database-read-url}")
	checkManifests(t, m)
	ref := secretRef(gatewayContainer(t, m), "DATABASE_READ_URL")
	if ref == nil || ref.Name != "lightbus-gateway" || ref.Key != "database-read-url" {
		t.Errorf("DATABASE_READ_URL from %+v, want the Secret lightbus-gateway's key database-read-url", ref)
	}
}

func TestChartDefaults(t *testing.T) {
	t.Parallel()
	m := mustRender(t, "")
	checkManifests(t, m)
	if m.pdb == nil || m.hpa == nil {
		t.Fatalf("want a PodDisruptionBudget and an autoscaler by default, got %v and %v", m.pdb, m.hpa)
	}
	if *m.hpa.Spec.MinReplicas != 3 {
		t.Errorf("at least %d replicas, want 3", *m.hpa.Spec.MinReplicas)
	}
	if m.pdb.Spec.MaxUnavailable == nil || m.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", m.pdb.Spec.MaxUnavailable)
	}
	if got := m.configMap.Data["LIGHTBUS_SHUTDOWN_TIMEOUT"]; got != "30s" {
		t.Errorf("LIGHTBUS_SHUTDOWN_TIMEOUT %q, want the gateway's default 30s", got)
	}
	if got := *m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; got != 55 {
		t.Errorf("terminationGracePeriodSeconds %d, want 10 + 30 + 15", got)
	}
	if got := gatewayContainer(t, m).Image; got != "lightbus-gateway:0.1.0" {
		t.Errorf("image %q", got)
	}
}

// TestChartProductionExample renders the chart with the example override:
// five replicas and a 45 s drain move the autoscaler and the grace period.
func TestChartProductionExample(t *testing.T) {
	t.Parallel()
	m := mustRender(t, "", filepath.Join(examplesDir, "values-production.yaml"))
	checkManifests(t, m)
	if *m.hpa.Spec.MinReplicas != 5 || m.hpa.Spec.MaxReplicas != 12 {
		t.Errorf("autoscaler %d..%d, want 5..12", *m.hpa.Spec.MinReplicas, m.hpa.Spec.MaxReplicas)
	}
	if got := m.configMap.Data["LIGHTBUS_SHUTDOWN_TIMEOUT"]; got != "45s" {
		t.Errorf("LIGHTBUS_SHUTDOWN_TIMEOUT %q, want 45s", got)
	}
	if got := *m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; got != 70 {
		t.Errorf("terminationGracePeriodSeconds %d, want 10 + 45 + 15", got)
	}
	if got := m.configMap.Data["LIGHTBUS_DELIVERY_WORKERS"]; got != "50" {
		t.Errorf("LIGHTBUS_DELIVERY_WORKERS %q, want 50 from config", got)
	}
	if got := gatewayContainer(t, m).Image; got != "registry.example.com/lightbus-gateway:0.1.0" {
		t.Errorf("image %q", got)
	}
}

// TestChartFixedReplicas: without the autoscaler the Deployment holds the
// replica count itself.
func TestChartFixedReplicas(t *testing.T) {
	t.Parallel()
	m := mustRender(t, "replicaCount: 4\nautoscaling: {enabled: false}\npodDisruptionBudget: {enabled: false}\nbootstrapToken: {secretName: \"\"}\n")
	checkManifests(t, m)
	if m.hpa != nil || m.pdb != nil {
		t.Errorf("disabled, yet rendered: autoscaler %v, budget %v", m.hpa != nil, m.pdb != nil)
	}
	if r := m.deployment.Spec.Replicas; r == nil || *r != 4 {
		t.Errorf("replicas %v, want 4", r)
	}
	if ref := secretRef(gatewayContainer(t, m), "LIGHTBUS_BOOTSTRAP_TOKEN"); ref != nil {
		t.Errorf("no bootstrap Secret named, yet LIGHTBUS_BOOTSTRAP_TOKEN comes from %+v", ref)
	}
}

// TestChartRefusesValues: values that would make a broken deployment stop
// the rendering with a message naming them.
func TestChartRefusesValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ values, want string }{
		{"replicaCount: 0", "replicaCount"},
		{"replicaCont: 5", "replicaCont"},
		{"shutdown: {timeoutSecs: 45}", "timeoutSecs"},
		{"config: {DATABASE_URL: postgres://x}", "config.DATABASE_URL: set it in a Secret"},
		{"config: {LIGHTBUS_BOOTSTRAP_TOKEN: lb_x}", "config.LIGHTBUS_BOOTSTRAP_TOKEN: set it in a Secret"},
		{"config: {DATABASE_READ_URL: postgres://replica}", "config.DATABASE_READ_URL: set it in a Secret"},
		{"config: {LIGHTBUS_SHUTDOWN_TIMEOUT: 45s}", "config.LIGHTBUS_SHUTDOWN_TIMEOUT: the chart sets it"},
		{"config: {LIGHTBUS_ADDR: \":9090\"}", "config.LIGHTBUS_ADDR: the chart sets it"},
		{"config: {log_level: debug}", "log_level"},
		{"database: {secretName: \"\"}", "secretName"},
		{"autoscaling: {maxReplicas: 2}", "autoscaling.maxReplicas: must be at least replicaCount"},
	} {
		_, err := render(t, tc.values)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %q: got error %v, want one containing %q", tc.values, err, tc.want)
		}
	}
}

// TestChartKubeVersion: the preStop sleep action needs Kubernetes 1.30,
// which the chart declares.
func TestChartKubeVersion(t *testing.T) {
	t.Parallel()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{"v1.29.9": false, "v1.30.0": true, "v1.33.1": true} {
		if got := chartutil.IsCompatibleRange(chrt.Metadata.KubeVersion, v); got != want {
			t.Errorf("kubeVersion %q accepts %s: %v, want %v", chrt.Metadata.KubeVersion, v, got, want)
		}
	}
}

// TestDecodeIsStrict: the decoder the tests rely on refuses a misspelt
// field, a duplicated one and an unknown kind.
func TestDecodeIsStrict(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 3\n",
		"apiVersion: v1\nkind: Service\nspec:\n  type: ClusterIP\n  type: NodePort\n",
		"apiVersion: v1\nkind: Pod\n",
		"apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\n",
	} {
		if _, err := decode([]byte(doc)); err == nil {
			t.Errorf("decoded %q", doc)
		}
	}
	if _, err := decode([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 3\n")); err != nil {
		t.Errorf("a correct Deployment: %v", err)
	}
}

// TestChartSecretsMatchExample: every Secret the chart reads is the example
// Secret's name, with the key there.
func TestChartSecretsMatchExample(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(examplesDir, "secret.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		t.Fatalf("examples/secret.yaml holds a %T", obj)
	}
	m := mustRender(t, "")
	c := gatewayContainer(t, m)
	for _, name := range []string{"DATABASE_URL", "LIGHTBUS_BOOTSTRAP_TOKEN"} {
		ref := secretRef(c, name)
		if ref == nil {
			t.Errorf("%s does not come from a Secret", name)
			continue
		}
		if ref.Name != secret.Name {
			t.Errorf("%s comes from Secret %q, the example is %q", name, ref.Name, secret.Name)
		}
		if _, ok := secret.StringData[ref.Key]; !ok {
			t.Errorf("%s comes from key %q, missing in the example Secret", name, ref.Key)
		}
	}
}

// TestChartSettingsExist: every variable the chart sets is one the gateway
// reads, by the README's configuration table and by cmd/gateway/config.go,
// so that a renamed setting breaks this test.
func TestChartSettingsExist(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := bytes.Cut(readme, []byte("\n## Configuration\n"))
	if !ok {
		t.Fatalf("%s has no Configuration section", readmePath)
	}
	table, _, _ = bytes.Cut(table, []byte("\n## "))
	documented := map[string]bool{}
	for _, row := range regexp.MustCompile("(?m)^\\| ([^|]*)\\|").FindAllSubmatch(table, -1) {
		for _, name := range regexp.MustCompile("`([A-Z][A-Z0-9_]*)`").FindAllSubmatch(row[1], -1) {
			documented[string(name[1])] = true
		}
	}
	configGo, err := os.ReadFile(configGoPath)
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, tag := range regexp.MustCompile(`envconfig:"([A-Z][A-Z0-9_]*)"`).FindAllSubmatch(configGo, -1) {
		read[string(tag[1])] = true
	}
	if len(documented) < 20 || len(read) < 20 {
		t.Fatalf("found %d documented and %d read variables: the patterns no longer match", len(documented), len(read))
	}

	for _, values := range []string{"", "examples/values-production.yaml"} {
		var m manifests
		if values == "" {
			m = mustRender(t, "")
		} else {
			m = mustRender(t, "", values)
		}
		var names []string
		for name := range m.configMap.Data {
			names = append(names, name)
		}
		for _, e := range gatewayContainer(t, m).Env {
			names = append(names, e.Name)
		}
		for _, name := range names {
			if !documented[name] {
				t.Errorf("%s (values %q) is not in the README's configuration table", name, values)
			}
			if !read[name] && !strings.HasPrefix(name, "OTEL_") {
				t.Errorf("%s (values %q) is not read by cmd/gateway/config.go", name, values)
			}
		}
	}
}
