package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// kubeDir holds the Kubernetes manifests (deploy/kubernetes/README.md).
const kubeDir = "../../deploy/kubernetes"

// kubeObjects decodes every document of the manifests strictly into its Kubernetes type (an unknown or
// misspelt field fails) and returns the Deployments and Services.
func kubeObjects(t *testing.T) ([]appsv1.Deployment, []corev1.Service) {
	t.Helper()
	kust, err := os.ReadFile(filepath.Join(kubeDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(kust, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	var listed []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			listed = append(listed, filepath.Base(f))
		}
	}
	slices.Sort(listed)
	slices.Sort(k.Resources)
	if !slices.Equal(listed, k.Resources) {
		t.Errorf("kustomization.yaml lists %v; the directory holds %v", k.Resources, listed)
	}
	var deps []appsv1.Deployment
	var svcs []corev1.Service
	for _, name := range k.Resources {
		b, err := os.ReadFile(filepath.Join(kubeDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---$`).Split(string(b), -1) {
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil || head.Kind == "" {
				t.Errorf("%s document %d: no kind (%v)", name, i, err)
				continue
			}
			var obj any
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 Deployment":
				deps = append(deps, appsv1.Deployment{})
				obj = &deps[len(deps)-1]
			case "v1 Service":
				svcs = append(svcs, corev1.Service{})
				obj = &svcs[len(svcs)-1]
			case "v1 ServiceAccount":
				obj = &corev1.ServiceAccount{}
			case "v1 PersistentVolumeClaim":
				obj = &corev1.PersistentVolumeClaim{}
			default:
				t.Errorf("%s document %d: %s %s is not a kind this test knows", name, i, head.APIVersion, head.Kind)
				continue
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s document %d (%s): %v", name, i, head.Kind, err)
			}
		}
	}
	return deps, svcs
}

// The Kubernetes manifests decode strictly, every container runs the crmsync image with probes, resources and
// a locked-down security context, every argument is a flag of the crmsync command it runs, the pool runs
// agents without --connector, and the Service selects the control plane's pods.
func TestKubernetesManifests(t *testing.T) {
	deps, svcs := kubeObjects(t)
	byComponent := map[string]appsv1.Deployment{}
	for _, d := range deps {
		byComponent[d.Spec.Template.Labels["app.kubernetes.io/component"]] = d
		checkPodSpec(t, d)
	}
	cp, ok := byComponent["control-plane"]
	if !ok {
		t.Fatal("no control-plane Deployment")
	}
	pool, ok := byComponent["agent"]
	if !ok {
		t.Fatal("no agent Deployment")
	}
	if args := pool.Spec.Template.Spec.Containers[0].Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--connector") }) {
		t.Errorf("the agent pool's args %v name a connector: a pool agent runs without --connector", args)
	}
	if pool.Spec.Replicas == nil || *pool.Spec.Replicas < 2 {
		t.Error("the agent pool should run at least 2 pods")
	}
	if len(svcs) != 1 {
		t.Fatalf("%d Services, want the control plane's", len(svcs))
	}
	for k, v := range svcs[0].Spec.Selector {
		if cp.Spec.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, which the control plane's pods do not carry", k, v)
		}
	}
}

func checkPodSpec(t *testing.T, d appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	if sc := ps.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: the pod does not require runAsNonRoot", d.Name)
	}
	volumes := map[string]bool{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range ps.Containers {
		where := d.Name + "/" + c.Name
		if !regexp.MustCompile(`^ghcr\.io/crmsync/crmsync:\d+\.\d+\.\d+$`).MatchString(c.Image) {
			t.Errorf("%s: image %q is not a released crmsync image (ghcr.io/crmsync/crmsync:X.Y.Z)", where, c.Image)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: readiness and liveness probes are required", where)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p != nil && (p.HTTPGet == nil || !ports[p.HTTPGet.Port.String()]) {
				t.Errorf("%s: a probe is not an HTTP GET on a named port of the container", where)
			}
		}
		r := c.Resources
		if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
			t.Errorf("%s: cpu and memory requests and a memory limit are required (got %v)", where, r)
		}
		if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: allowPrivilegeEscalation false and readOnlyRootFilesystem true are required", where)
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("%s: mounts volume %s, which the pod does not have", where, m.Name)
			}
		}
		checkArgs(t, where, c.Args)
	}
}

// checkArgs parses a container's arguments with the crmsync command itself.
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	root := newRootCommand()
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		t.Errorf("%s: %v is not a crmsync command (%v)", where, args, err)
		return
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: crmsync %s refuses its arguments: %v", where, cmd.Name(), err)
	}
	if extra := cmd.Flags().Args(); len(extra) > 0 {
		t.Errorf("%s: crmsync %s takes no positional arguments, got %v", where, cmd.Name(), extra)
	}
}
