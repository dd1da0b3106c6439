"""Writes tests/config_corpus.yaml (run once; the YAML is the reviewed artefact)."""

import sys
from pathlib import Path
from typing import Any

import yaml

H64 = "a" * 64
cases: list[dict[str, Any]] = []


def bad(name, cls, key, fragment, config=None, text=None):
    c = {"name": name, "class": cls}
    if text is not None:
        c["text"] = text
    else:
        c["config"] = config
    c.update(key=key, fragment=fragment)
    cases.append(c)


def good(name, cls, config=None, text=None):
    c = {"name": name, "class": cls, "valid": True}
    if text is not None:
        c["text"] = text
    else:
        c["config"] = config
    cases.append(c)


G = {"preset": "rtx-3060"}
K = "homelab"
# ---------------- file level
F = "Pulumi.corpus.yaml"
bad(
    "tab-indentation",
    "file",
    f"{F}:3:1",
    "found character '\\t'",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n\tcatwatcher:gpu: {preset: rtx-3060}\n",
)
bad(
    "nul-byte",
    "file",
    f"{F}:2:",
    "character #x0000 is not allowed",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\x00\n",
)
bad(
    "python-apply-tag",
    "file",
    F,
    "!!python/object/apply:os.system is not allowed",
    text="config:\n  catwatcher:gpu: !!python/object/apply:os.system [ls]\n",
)
bad(
    "python-name-tag",
    "file",
    F,
    "!!python/name:os.system is not allowed",
    text="config:\n  catwatcher:gpu:\n    preset: !!python/name:os.system ''\n",
)
bad("set-tag", "file", F, "!!set is not allowed", text="config:\n  catwatcher:app: !!set {a: null}\n")
bad(
    "binary-tag",
    "file",
    F,
    "!!binary is not allowed",
    text="config:\n  catwatcher:app:\n    image: !!binary aGVsbG8=\n",
)
bad("custom-tag", "file", F, "!include is not allowed", text="config:\n  catwatcher:gpu: !include gpu.yaml\n")
bad(
    "timestamp-tag",
    "file",
    F,
    "!!timestamp is not allowed",
    text="config:\n  catwatcher:cluster:\n    kubernetesVersion: !!timestamp 2024-01-01\n",
)
bad(
    "recursive-alias",
    "file",
    F,
    "alias refers to the node that contains it",
    text="config:\n  catwatcher:app: &a\n    name: *a\n",
)
bad(
    "recursive-alias-in-list",
    "file",
    F,
    "alias refers to the node that contains it",
    text="config:\n  catwatcher:nodeGroups: &g\n    - *g\n",
)
bad("config-is-a-list", "file", F, "`config:` must be a mapping", text="config:\n  - catwatcher:gpu\n")
bad("config-is-a-scalar", "file", F, "`config:` must be a mapping", text="config: rtx-3060\n")
bad("document-is-a-list", "file", F, "a stack file is a mapping", text="- config: {}\n")
bad("document-is-a-scalar", "file", F, "a stack file is a mapping", text="just some text\n")
bad(
    "integer-key",
    "file",
    F,
    "mapping key '1' is not a string",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu:\n    preset: rtx-3060\n    1: x\n",
)
bad("boolean-key", "file", F, "mapping key 'true' is not a string", text="config:\n  catwatcher:gpu:\n    true: x\n")
bad("null-key", "file", F, "mapping key '~' is not a string", text="config:\n  catwatcher:gpu:\n    ~: x\n")
bad("list-key", "file", F, "is not a string", text="config:\n  ? [a, b]\n  : x\n")
bad(
    "duplicate-config-key",
    "file",
    F,
    'mapping key "catwatcher:gpu" already defined at line 3',
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n  catwatcher:gpu: {preset: rtx-3090}\n",
)
bad(
    "duplicate-nested-key",
    "file",
    F,
    'mapping key "replicas" already defined at line 5',
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu:\n"
    "    preset: rtx-3060\n    replicas: 2\n    replicas: 4\n",
)
bad(
    "duplicate-namespaced-and-bare-key",
    "file",
    F,
    "is set twice",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n  gpu: {preset: rtx-3090}\n",
)
bad("two-documents", "file", F, "expected a single document", text="config: {}\n---\nconfig: {}\n")
bad("unclosed-flow-mapping", "file", F, F + ":", text="config: {catwatcher:gpu: {preset: rtx-3060}\n")
bad("unbalanced-quote", "file", F, F + ":", text='config:\n  catwatcher:cluster:\n    kubeContext: "homelab\n')
bad("bad-config-key", "file", "a:b:c:d", "configuration keys should be of the form", text="config:\n  a:b:c:d: x\n")
bad(
    "date-as-kubernetes-version",
    "file",
    "catwatcher:cluster.kubernetesVersion",
    "1.31 or newer",
    text="config:\n  catwatcher:cluster:\n    kubeContext: a\n"
    "    kubernetesVersion: 2024-01-01\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
bad(
    "date-as-replicas",
    "file",
    "catwatcher:gpu.replicas",
    "valid integer",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060, replicas: 2024-01-01}\n",
)
bad(
    "integer-300-digits",
    "file",
    "catwatcher:gpu.replicas",
    "valid integer",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060, replicas: 1"
    + "0" * 300
    + "}\n",
)
bad(
    "integer-25-digits",
    "file",
    "catwatcher:gpu.count",
    "valid integer",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060, count: 1"
    + "0" * 24
    + "}\n",
)
bad(
    "integer-uint64-max",
    "file",
    "catwatcher:gpu.count",
    "must be <= 16",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060, count: 18446744073709551615}\n",
)
bad(
    "infinity-in-an-object",
    "file",
    "json: unsupported value",
    "inf",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060, count: .inf}\n",
)
bad("empty-file", "file", "'cluster'", "Stack 'corpus' is missing configuration value 'cluster'", text="")
bad("comments-only", "file", "'cluster'", "kubectl config get-contexts", text="# nothing here yet\n")
good(
    "byte-order-mark",
    "file",
    text="\ufeffconfig:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
good(
    "keys-without-namespace-belong-to-the-project",
    "file",
    text="config:\n  cluster: {kubeContext: a}\n  gpu: {preset: rtx-3060}\n",
)
good(
    "anchors-and-merge-keys",
    "file",
    text="config:\n  catwatcher:cluster: &c {kubeContext: a}\n"
    "  catwatcher:gpu:\n    <<: {preset: rtx-3060}\n    replicas: 4\n",
)
good(
    "whole-float-reaches-the-program-as-an-integer",
    "file",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060, count: 2.0, memoryPerPodMb: 2304.0}\n",
)
# ---------------- types
bad("count-true", "types", "catwatcher:gpu.count", "valid integer", {"gpu": {**G, "count": True}})
bad(
    "replicas-on",
    "types",
    "catwatcher:gpu.replicas",
    "valid integer",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060, replicas: on}\n",
)
bad(
    "app-replicas-yes",
    "types",
    "catwatcher:app.replicas",
    "valid integer",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n  catwatcher:app: {replicas: yes}\n",
)
bad(
    "count-1e20",
    "types",
    "catwatcher:gpu.count",
    "must be <= 16",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060, count: 1e20}\n",
)
bad(
    "count-1e21",
    "types",
    "catwatcher:gpu.count",
    "valid integer",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060, count: 1e21}\n",
)
bad("replicas-fraction", "types", "catwatcher:gpu.replicas", "valid integer", {"gpu": {**G, "replicas": 2.5}})
bad("replicas-fullwidth-digit", "types", "catwatcher:gpu.replicas", "valid integer", {"gpu": {**G, "replicas": "２"}})
bad("replicas-numeric-string", "types", "catwatcher:gpu.replicas", "valid integer", {"gpu": {**G, "replicas": "4"}})
bad(
    "compute-capability-arabic-indic-digit",
    "types",
    "catwatcher:gpu.computeCapability",
    "compute capability such as",
    {"gpu": {**G, "computeCapability": "1.4٣"}},
)
bad(
    "compute-capability-float",
    "types",
    "catwatcher:gpu.computeCapability",
    "valid string",
    {"gpu": {**G, "computeCapability": 8.6}},
)
bad(
    "kubernetes-version-arabic-indic-digit",
    "types",
    "catwatcher:cluster.kubernetesVersion",
    "1.31 or newer",
    {"cluster": {"kubeContext": K, "kubernetesVersion": "1.3٣"}},
)
bad(
    "kubernetes-version-float",
    "types",
    "catwatcher:cluster.kubernetesVersion",
    "valid string",
    text="config:\n  catwatcher:cluster: {kubeContext: a, kubernetesVersion: 1.33}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n",
)
bad(
    "mig-profile-fullwidth-digit",
    "types",
    "catwatcher:nodeGroups[0].gpu.mig.layout.１g.5gb",
    "MIG profile such as",
    {
        "nodeGroups": [
            {
                "name": "a100",
                "nodes": ["n1"],
                "gpu": {"preset": "a100-40gb", "sharing": "mig", "mig": {"layout": {"１g.5gb": 7}}},
            }
        ]
    },
)
bad(
    "monitoring-enabled-quoted-off",
    "types",
    "catwatcher:monitoring.enabled",
    "valid boolean",
    {"monitoring": {"enabled": "off"}},
)
bad(
    "monitoring-enabled-plain-off",
    "types",
    "catwatcher:monitoring.enabled",
    "valid boolean",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n  catwatcher:monitoring: {enabled: off}\n",
)
bad(
    "install-driver-zero",
    "types",
    "catwatcher:operator.installDriver",
    "valid boolean",
    {"operator": {"installDriver": 0}},
)
bad(
    "timeout-string",
    "types",
    "catwatcher:operator.timeoutSeconds",
    "valid integer",
    {"operator": {"timeoutSeconds": "900"}},
)
bad(
    "timeout-1e9",
    "types",
    "catwatcher:operator.timeoutSeconds",
    "must be <= 86400",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n  catwatcher:operator: {timeoutSeconds: 1e9}\n",
)
bad(
    "port-fraction",
    "types",
    "catwatcher:credentials.mqtt.port",
    "valid integer",
    {"credentials": {"mqtt": {"host": "mqtt.home.arpa", "port": 1883.5}}},
)
bad(
    "port-too-large",
    "types",
    "catwatcher:credentials.mqtt.port",
    "must be < 65536",
    {"credentials": {"mqtt": {"host": "mqtt.home.arpa", "port": 70000}}},
)
bad("gpu-a-list", "types", "'gpu'", "must be of type 'object'", {"gpu": ["rtx-3060"]})
bad("gpu-a-string", "types", "'gpu'", "must be of type 'object'", {"gpu": "rtx-3060"})
bad("node-groups-a-mapping", "types", "'nodeGroups'", "must be of type 'array<object>'", {"nodeGroups": {"name": "a"}})
bad("node-groups-of-strings", "types", "'nodeGroups'", "must be of type 'array<object>'", {"nodeGroups": ["rtx-3060"]})
bad("cluster-a-string", "types", "'cluster'", "must be of type 'object'", {"cluster": "homelab"})
bad(
    "prometheus-label-integer",
    "types",
    "catwatcher:monitoring.prometheusLabels.release",
    "valid string",
    {"monitoring": {"prometheusLabels": {"release": 1}}},
)
bad(
    "rename-shared-string",
    "types",
    "catwatcher:gpu.renameShared",
    "valid boolean",
    {"gpu": {**G, "renameShared": "true"}},
)
bad(
    "layout-count-string",
    "types",
    "catwatcher:nodeGroups[0].gpu.mig.layout.1g.5gb",
    "valid integer",
    {
        "nodeGroups": [
            {
                "name": "a100",
                "nodes": ["n1"],
                "gpu": {"preset": "a100-40gb", "sharing": "mig", "mig": {"layout": {"1g.5gb": "7"}}},
            }
        ]
    },
)
bad(
    "node-name-integer",
    "types",
    "catwatcher:nodeGroups[0].nodes[0]",
    "valid string",
    {"nodeGroups": [{"name": "a", "nodes": [1234], "gpu": G}]},
)
bad("sharing-boolean", "types", "catwatcher:gpu.sharing", "time-slicing", {"gpu": {**G, "sharing": True}})
good("reserve-null-means-the-presets", "types", {"gpu": {**G, "reserveMb": None}})
good(
    "mig-layout-null-means-the-presets",
    "types",
    {
        "nodeGroups": [
            {
                "name": "a100",
                "nodes": ["dgx-1"],
                "gpu": {"preset": "a100-40gb", "sharing": "mig", "mig": {"layout": None}},
            }
        ]
    },
)
# ---------------- empty / meaningless / absurd lengths
bad(
    "kube-context-empty",
    "empty",
    "catwatcher:cluster.kubeContext",
    "kubectl config get-contexts",
    {"cluster": {"kubeContext": ""}},
)
bad(
    "kube-context-blank",
    "empty",
    "catwatcher:cluster.kubeContext",
    "kubectl config get-contexts",
    {"cluster": {"kubeContext": "   "}},
)
bad(
    "kube-context-300-chars",
    "empty",
    "catwatcher:cluster.kubeContext",
    "kubectl config get-contexts",
    {"cluster": {"kubeContext": "c" * 300}},
)
bad("kube-context-null", "empty", "catwatcher:cluster.kubeContext", "valid string", {"cluster": {"kubeContext": None}})
bad(
    "cluster-without-kube-context",
    "empty",
    "catwatcher:cluster.kubeContext",
    "kubectl config get-contexts",
    text="config:\n  catwatcher:cluster: {distribution: k3s}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
bad(
    "mqtt-host-empty",
    "empty",
    "catwatcher:credentials.mqtt.host",
    "at least 1 character",
    {"credentials": {"mqtt": {"host": ""}}},
)
bad(
    "mqtt-host-1000-chars",
    "empty",
    "catwatcher:credentials.mqtt.host",
    "at most 253",
    {"credentials": {"mqtt": {"host": "a" * 1000}}},
)
bad(
    "frigate-url-without-host",
    "empty",
    "catwatcher:credentials.frigate.url",
    "URL with a host",
    {"credentials": {"frigate": {"url": "http://"}}},
)
bad(
    "frigate-url-triple-slash",
    "empty",
    "catwatcher:credentials.frigate.url",
    "URL with a host",
    {"credentials": {"frigate": {"url": "https:///frigate"}}},
)
bad(
    "frigate-url-ftp",
    "empty",
    "catwatcher:credentials.frigate.url",
    "URL with a host",
    {"credentials": {"frigate": {"url": "ftp://frigate"}}},
)
bad(
    "frigate-url-without-scheme",
    "empty",
    "catwatcher:credentials.frigate.url",
    "URL with a host",
    {"credentials": {"frigate": {"url": "frigate:5000"}}},
)
bad(
    "frigate-url-with-space",
    "empty",
    "catwatcher:credentials.frigate.url",
    "URL with a host",
    {"credentials": {"frigate": {"url": "http://fri gate:5000"}}},
)
bad(
    "frigate-url-bad-port",
    "empty",
    "catwatcher:credentials.frigate.url",
    "URL with a host",
    {"credentials": {"frigate": {"url": "http://frigate:99999"}}},
)
bad("repository-empty", "empty", "catwatcher:operator.repository", "URL with a host", {"operator": {"repository": ""}})
bad(
    "repository-without-scheme",
    "empty",
    "catwatcher:operator.repository",
    "URL with a host",
    {"operator": {"repository": "helm.ngc.nvidia.com/nvidia"}},
)
bad("preset-empty", "empty", "catwatcher:gpu.preset", "at least 1 character", {"gpu": {"preset": ""}})
bad("preset-absurdly-long", "empty", "catwatcher:gpu.preset", "at most 64", {"gpu": {"preset": "rtx-" * 50}})
bad("app-name-empty", "empty", "catwatcher:app.name", "DNS-1035", {"app": {"name": ""}})
bad(
    "username-empty",
    "empty",
    "catwatcher:credentials.mqtt.username",
    "at least 1 character",
    {"credentials": {"mqtt": {"host": "mqtt.home.arpa", "username": ""}}},
)
bad(
    "nodes-empty-list",
    "empty",
    "catwatcher:nodeGroups[0].nodes",
    "at least 1 item",
    {"nodeGroups": [{"name": "a", "nodes": [], "gpu": G}]},
)
bad(
    "node-name-empty",
    "empty",
    "catwatcher:nodeGroups[0].nodes[0]",
    "DNS-1123 subdomain",
    {"nodeGroups": [{"name": "a", "nodes": [""], "gpu": G}]},
)
bad(
    "client-namespace-empty",
    "empty",
    "catwatcher:app.networkPolicy.clientNamespaces[0]",
    "DNS-1123 label",
    {"app": {"networkPolicy": {"clientNamespaces": [""]}}},
)
bad("image-empty", "empty", "catwatcher:app.image", "not an image reference", {"app": {"image": ""}})
bad("preset-missing", "empty", "catwatcher:gpu.preset", "Field required", {"gpu": {"sharing": "mps"}})
# ---------------- Kubernetes names
bad("service-name-starts-with-digit", "names", "catwatcher:app.name", "DNS-1035", {"app": {"name": "1watcher"}})
bad("service-name-64-chars", "names", "catwatcher:app.name", "DNS-1035", {"app": {"name": "c" * 64}})
bad("service-name-uppercase", "names", "catwatcher:app.name", "DNS-1035", {"app": {"name": "Cat-Watcher"}})
good("node-name-fqdn", "names", {"nodeGroups": [{"name": "ampere", "nodes": ["gpu-1.home.arpa"], "gpu": G}]})
good("node-name-digits-first", "names", {"nodeGroups": [{"name": "ampere", "nodes": ["1-gpu.lan", "node2"], "gpu": G}]})
bad(
    "node-name-uppercase",
    "names",
    "catwatcher:nodeGroups[0].nodes[0]",
    "DNS-1123 subdomain",
    {"nodeGroups": [{"name": "a", "nodes": ["GPU-1"], "gpu": G}]},
)
bad(
    "node-name-underscore",
    "names",
    "catwatcher:nodeGroups[0].nodes[0]",
    "DNS-1123 subdomain",
    {"nodeGroups": [{"name": "a", "nodes": ["gpu_1"], "gpu": G}]},
)
bad(
    "node-name-leading-dash",
    "names",
    "catwatcher:nodeGroups[0].nodes[0]",
    "DNS-1123 subdomain",
    {"nodeGroups": [{"name": "a", "nodes": ["-gpu"], "gpu": G}]},
)
bad(
    "node-name-empty-label",
    "names",
    "catwatcher:nodeGroups[0].nodes[0]",
    "DNS-1123 subdomain",
    {"nodeGroups": [{"name": "a", "nodes": ["gpu..home"], "gpu": G}]},
)
bad(
    "node-name-254-chars",
    "names",
    "catwatcher:nodeGroups[0].nodes[0]",
    "at most 253",
    {"nodeGroups": [{"name": "a", "nodes": [("a" * 50 + ".") * 5 + "abcd"], "gpu": G}]},
)
bad("app-namespace-kube-system", "names", "catwatcher:app.namespace", "reserved", {"app": {"namespace": "kube-system"}})
bad("app-namespace-default", "names", "catwatcher:app.namespace", "reserved", {"app": {"namespace": "default"}})
bad("app-namespace-kube-public", "names", "catwatcher:app.namespace", "reserved", {"app": {"namespace": "kube-public"}})
bad(
    "app-namespace-kube-node-lease",
    "names",
    "catwatcher:app.namespace",
    "reserved",
    {"app": {"namespace": "kube-node-lease"}},
)
bad(
    "operator-namespace-default",
    "names",
    "catwatcher:operator.namespace",
    "reserved",
    {"operator": {"namespace": "default"}},
)
bad(
    "app-in-the-operators-namespace",
    "names",
    "catwatcher:app.namespace",
    "operator's namespace",
    {"app": {"namespace": "gpu-operator"}},
)
bad("app-namespace-64-chars", "names", "catwatcher:app.namespace", "DNS-1123 label", {"app": {"namespace": "n" * 64}})
bad(
    "node-group-name-uppercase",
    "names",
    "catwatcher:nodeGroups[0].name",
    "DNS-1123 label",
    {"nodeGroups": [{"name": "A100", "nodes": ["n1"], "gpu": G}]},
)
bad(
    "label-key-with-space",
    "names",
    'catwatcher:monitoring.prometheusLabels["my label"]',
    "label key",
    {"monitoring": {"prometheusLabels": {"my label": "x"}}},
)
bad(
    "label-key-leading-dash",
    "names",
    "catwatcher:monitoring.prometheusLabels.-release",
    "label key",
    {"monitoring": {"prometheusLabels": {"-release": "x"}}},
)
bad(
    "label-value-64-chars",
    "names",
    "catwatcher:monitoring.prometheusLabels.release",
    "label value",
    {"monitoring": {"prometheusLabels": {"release": "v" * 64}}},
)
bad(
    "label-value-with-slash",
    "names",
    "catwatcher:monitoring.prometheusLabels.release",
    "label value",
    {"monitoring": {"prometheusLabels": {"release": "kube/prometheus"}}},
)
good(
    "label-key-with-prefix",
    "names",
    {"monitoring": {"prometheusLabels": {"app.kubernetes.io/part-of": "kube-prometheus-stack"}}},
)
good("label-value-empty", "names", {"monitoring": {"prometheusLabels": {"release": ""}}})
bad(
    "dashboard-namespace-uppercase",
    "names",
    "catwatcher:monitoring.dashboardNamespace",
    "DNS-1123 label",
    {"monitoring": {"dashboardNamespace": "Monitoring"}},
)
# ---------------- quantities
bad(
    "memory-limit-2048m",
    "quantity",
    "catwatcher:app.resources.memoryLimit",
    "thousandths",
    {"app": {"resources": {"memoryLimit": "2048m"}}},
)
bad(
    "memory-request-one-byte",
    "quantity",
    "catwatcher:app.resources.memoryRequest",
    "less than 64Mi",
    {"app": {"resources": {"memoryRequest": "1"}}},
)
bad(
    "memory-limit-negative",
    "quantity",
    "catwatcher:app.resources.memoryLimit",
    "less than 64Mi",
    {"app": {"resources": {"memoryLimit": "-1Gi"}}},
)
bad(
    "memory-limit-with-space",
    "quantity",
    "catwatcher:app.resources.memoryLimit",
    "not a Kubernetes quantity",
    {"app": {"resources": {"memoryLimit": "2 Gi"}}},
)
bad(
    "memory-limit-gb",
    "quantity",
    "catwatcher:app.resources.memoryLimit",
    "not a Kubernetes quantity",
    {"app": {"resources": {"memoryLimit": "2GB"}}},
)
bad(
    "cpu-limit-zero",
    "quantity",
    "catwatcher:app.resources.cpuLimit",
    "less than 0.01 CPU",
    {"app": {"resources": {"cpuLimit": "0"}}},
)
bad(
    "cpu-request-one-millicore",
    "quantity",
    "catwatcher:app.resources.cpuRequest",
    "less than 0.01 CPU",
    {"app": {"resources": {"cpuRequest": "1m"}}},
)
bad(
    "cpu-limit-words",
    "quantity",
    "catwatcher:app.resources.cpuLimit",
    "not a Kubernetes quantity",
    {"app": {"resources": {"cpuLimit": "2 cores"}}},
)
bad(
    "cpu-limit-fullwidth",
    "quantity",
    "catwatcher:app.resources.cpuLimit",
    "not a Kubernetes quantity",
    {"app": {"resources": {"cpuLimit": "２"}}},
)
bad(
    "cpu-limit-number",
    "quantity",
    "catwatcher:app.resources.cpuLimit",
    "valid string",
    {"app": {"resources": {"cpuLimit": 2}}},
)
bad(
    "cpu-limit-huge-exponent",
    "quantity",
    "catwatcher:app.resources.cpuLimit",
    "out of range",
    {"app": {"resources": {"cpuLimit": "1e400"}}},
)
bad(
    "memory-request-above-limit",
    "quantity",
    "catwatcher:app.resources.memoryRequest",
    "more than memoryLimit",
    {"app": {"resources": {"memoryRequest": "3Gi", "memoryLimit": "2Gi"}}},
)
bad(
    "cpu-request-above-limit",
    "quantity",
    "catwatcher:app.resources.cpuRequest",
    "more than cpuLimit",
    {"app": {"resources": {"cpuRequest": "4", "cpuLimit": "2"}}},
)
good("memory-decimal-suffix", "quantity", {"app": {"resources": {"memoryRequest": "1G", "memoryLimit": "2G"}}})
good("memory-exponent", "quantity", {"app": {"resources": {"memoryRequest": "1e9", "memoryLimit": "2e9"}}})
good("memory-fraction", "quantity", {"app": {"resources": {"memoryLimit": "1.5Gi"}}})
good("cpu-fraction", "quantity", {"app": {"resources": {"cpuRequest": "0.25", "cpuLimit": "1.5"}}})
# ---------------- Helm
bad(
    "release-name-54-chars",
    "helm",
    "catwatcher:operator.releaseName",
    "at most 53",
    {"operator": {"releaseName": "r" * 54}},
)
bad(
    "release-name-uppercase",
    "helm",
    "catwatcher:operator.releaseName",
    "DNS-1123 subdomain",
    {"operator": {"releaseName": "GPU-Operator"}},
)
bad(
    "release-name-clashes-with-the-standalone-exporter",
    "helm",
    "catwatcher:operator.releaseName",
    "standalone DCGM exporter's release",
    {"operator": {"releaseName": "dcgm-exporter"}, "monitoring": {"exporter": "standalone"}},
)
good("release-name-dcgm-exporter-without-the-standalone-chart", "helm", {"operator": {"releaseName": "dcgm-exporter"}})
good("release-name-with-dots", "helm", {"operator": {"releaseName": "gpu.operator"}})
good("release-name-53-chars", "helm", {"operator": {"releaseName": "r" * 53}})
bad(
    "chart-version-below-the-floor",
    "helm",
    "catwatcher:operator.chartVersion",
    "no data for",
    {"operator": {"chartVersion": "v25.10.0"}},
)
bad(
    "chart-version-two-parts",
    "helm",
    "catwatcher:operator.chartVersion",
    "not a chart version",
    {"operator": {"chartVersion": "v26.7"}},
)
bad(
    "chart-version-arabic-indic",
    "helm",
    "catwatcher:operator.chartVersion",
    "not a chart version",
    {"operator": {"chartVersion": "v26.٧.0"}},
)
bad(
    "chart-version-without-data",
    "helm",
    "catwatcher:operator.chartVersion",
    "no data for",
    {"operator": {"chartVersion": "v26.10.1"}},
)
bad(
    "standalone-chart-below-the-floor",
    "helm",
    "catwatcher:monitoring.standaloneChartVersion",
    "older than 4.8.2",
    {"monitoring": {"exporter": "standalone", "standaloneChartVersion": "4.1.0"}},
)
bad(
    "standalone-chart-with-v",
    "helm",
    "catwatcher:monitoring.standaloneChartVersion",
    "not a chart version",
    {"monitoring": {"exporter": "standalone", "standaloneChartVersion": "v4.8.2"}},
)
good("standalone-exporter", "helm", {"monitoring": {"exporter": "standalone", "standaloneChartVersion": "4.8.2"}})
# ---------------- images
bad(
    "image-double-slash",
    "image",
    "catwatcher:app.image",
    "no '//'",
    {"app": {"image": "docker.io//jeefy/cat-watcher:0.1.0"}},
)
bad(
    "image-two-tags",
    "image",
    "catwatcher:app.image",
    "one tag",
    {"app": {"image": "docker.io/jeefy/cat-watcher:0.1.0:extra"}},
)
bad(
    "image-with-scheme",
    "image",
    "catwatcher:app.image",
    "not an image reference",
    {"app": {"image": "https://docker.io/jeefy/cat-watcher:0.1.0"}},
)
bad(
    "image-empty-tag",
    "image",
    "catwatcher:app.image",
    "not an image reference",
    {"app": {"image": "jeefy/cat-watcher:"}},
)
bad(
    "image-tag-leading-dash",
    "image",
    "catwatcher:app.image",
    "not an image reference",
    {"app": {"image": "jeefy/cat-watcher:-rc1"}},
)
bad(
    "image-tag-129-chars",
    "image",
    "catwatcher:app.image",
    "not an image reference",
    {"app": {"image": "jeefy/cat-watcher:" + "t" * 129}},
)
bad(
    "image-digest-uppercase",
    "image",
    "catwatcher:app.image",
    "not an image reference",
    {"app": {"image": "jeefy/cat-watcher@sha256:" + "A" * 64}},
)
bad(
    "image-port-not-a-number",
    "image",
    "catwatcher:app.image",
    "not an image reference",
    {"app": {"image": "registry.local:port/cw:1.0"}},
)
bad("image-latest", "image", "catwatcher:app.image", "not pinned", {"app": {"image": "jeefy/cat-watcher:latest"}})
bad("image-no-tag", "image", "catwatcher:app.imageCuda12", "not pinned", {"app": {"imageCuda12": "jeefy/cat-watcher"}})
bad(
    "image-with-space",
    "image",
    "catwatcher:app.image",
    "not an image reference",
    {"app": {"image": "jeefy/cat watcher:0.1.0"}},
)
good("image-tag-and-digest", "image", {"app": {"image": "jeefy/cat-watcher:0.1.0@sha256:" + H64}})
good("image-registry-with-port", "image", {"app": {"image": "registry.local:5000/cw:1.0"}})
good("image-localhost", "image", {"app": {"imageCuda12": "localhost/cw:0.1.0-cuda12"}})
good("image-digest-only", "image", {"app": {"image": "ghcr.io/me/cat-watcher@sha256:" + H64}})
# ---------------- kubectl
bad(
    "kubectl-1-30",
    "kubectl",
    "catwatcher:operator.restartImage",
    "1.31 or newer",
    {"operator": {"restartImage": "registry.k8s.io/kubectl:v1.30.6"}},
)
bad(
    "kubectl-digest-without-tag",
    "kubectl",
    "catwatcher:operator.restartImage",
    "must name its kubectl version",
    {"operator": {"restartImage": "registry.k8s.io/kubectl@sha256:" + H64}},
)
bad(
    "kubectl-tag-stable",
    "kubectl",
    "catwatcher:operator.restartImage",
    "must name its kubectl version",
    {"operator": {"restartImage": "registry.k8s.io/kubectl:stable"}},
)
bad(
    "kubectl-bitnami-1-29",
    "kubectl",
    "catwatcher:operator.restartImage",
    "1.31 or newer",
    {"operator": {"restartImage": "bitnami/kubectl:1.29.3"}},
)
good("kubectl-bitnami-1-31", "kubectl", {"operator": {"restartImage": "bitnami/kubectl:1.31.0"}})
good("kubectl-bitnami-debian-tag", "kubectl", {"operator": {"restartImage": "bitnami/kubectl:1.33.4-debian-12-r0"}})
good(
    "kubectl-tag-and-digest", "kubectl", {"operator": {"restartImage": "registry.k8s.io/kubectl:v1.33.4@sha256:" + H64}}
)
bad(
    "kubernetes-1-30",
    "kubectl",
    "catwatcher:cluster.kubernetesVersion",
    "1.31 or newer",
    {"cluster": {"kubeContext": K, "kubernetesVersion": "1.30"}},
)
# ---------------- MIG and cluster-wide
A100 = {"preset": "a100-40gb", "sharing": "mig"}
bad(
    "mig-empty-layout",
    "mig",
    "catwatcher:nodeGroups[0].gpu.mig.layout",
    "at least 1 item",
    {"nodeGroups": [{"name": "a100", "nodes": ["dgx-1"], "gpu": {**A100, "mig": {"layout": {}}}}]},
)
bad(
    "mig-layout-zero",
    "mig",
    "catwatcher:nodeGroups[0].gpu.mig.layout.1g.5gb",
    "must be > 0",
    {"nodeGroups": [{"name": "a100", "nodes": ["dgx-1"], "gpu": {**A100, "mig": {"layout": {"1g.5gb": 0}}}}]},
)
bad(
    "mig-mixed-and-mps-in-one-cluster",
    "mig",
    "catwatcher:nodeGroups[1].gpu.sharing",
    "mixed",
    {
        "nodeGroups": [
            {
                "name": "h100",
                "nodes": ["hgx-1"],
                "gpu": {
                    "preset": "h100-80gb",
                    "sharing": "mig",
                    "mig": {"strategy": "mixed", "layout": {"1g.10gb": 2, "3g.40gb": 1}},
                },
            },
            {"name": "ampere", "nodes": ["gpu-1"], "gpu": {"preset": "rtx-3090", "sharing": "mps"}},
        ]
    },
)
bad(
    "mig-mixed-and-preset-mps-in-one-cluster",
    "mig",
    "catwatcher:nodeGroups[1].gpu.preset",
    "mixed",
    {
        "nodeGroups": [
            {
                "name": "h100",
                "nodes": ["hgx-1"],
                "gpu": {
                    "preset": "h100-80gb",
                    "sharing": "mig",
                    "mig": {"strategy": "mixed", "layout": {"1g.10gb": 2, "3g.40gb": 1}},
                },
            },
            {"name": "ada", "nodes": ["gpu-1"], "gpu": {"preset": "rtx-4090"}},
        ]
    },
)
good(
    "mig-single-and-mps-in-one-cluster",
    "mig",
    {
        "nodeGroups": [
            {
                "name": "a100",
                "nodes": ["dgx-1"],
                "gpu": {**A100, "mig": {"strategy": "single", "layout": {"1g.5gb": 7}}},
            },
            {"name": "ada", "nodes": ["gpu-1"], "gpu": {"preset": "rtx-4090", "sharing": "mps"}},
        ]
    },
)
bad(
    "mig-with-mps-sharing",
    "mig",
    "catwatcher:nodeGroups[0].gpu.mig",
    "MPS runs on full GPUs only",
    {
        "nodeGroups": [
            {
                "name": "a100",
                "nodes": ["dgx-1"],
                "gpu": {"preset": "a100-40gb", "sharing": "mps", "mig": {"layout": {"1g.5gb": 7}}},
            }
        ]
    },
)
bad(
    "mig-single-two-profiles",
    "mig",
    "catwatcher:nodeGroups[0].gpu.mig.strategy",
    "use mixed",
    {
        "nodeGroups": [
            {"name": "a100", "nodes": ["dgx-1"], "gpu": {**A100, "mig": {"layout": {"1g.5gb": 2, "2g.10gb": 1}}}}
        ]
    },
)
bad(
    "mig-time-slicing-one",
    "mig",
    "catwatcher:nodeGroups[0].gpu.mig.timeSlicingReplicas",
    ">= 2",
    {
        "nodeGroups": [
            {
                "name": "a100",
                "nodes": ["dgx-1"],
                "gpu": {**A100, "mig": {"layout": {"1g.5gb": 7}, "timeSlicingReplicas": 1}},
            }
        ]
    },
)
bad(
    "mig-workload-profile-not-in-layout",
    "mig",
    "catwatcher:nodeGroups[0].gpu.mig.workloadProfile",
    "not in the layout",
    {
        "nodeGroups": [
            {
                "name": "a100",
                "nodes": ["dgx-1"],
                "gpu": {**A100, "mig": {"strategy": "mixed", "layout": {"1g.5gb": 7}, "workloadProfile": "3g.20gb"}},
            }
        ]
    },
)
bad(
    "mig-two-strategies",
    "mig",
    "catwatcher:nodeGroups[1].gpu.mig.strategy",
    "one MIG strategy per cluster",
    {
        "nodeGroups": [
            {"name": "a", "nodes": ["dgx-1"], "gpu": {**A100, "mig": {"strategy": "single", "layout": {"1g.5gb": 7}}}},
            {"name": "b", "nodes": ["dgx-2"], "gpu": {**A100, "mig": {"strategy": "mixed", "layout": {"1g.5gb": 7}}}},
        ]
    },
)
good(
    "mig-a100-single",
    "mig",
    {
        "nodeGroups": [
            {"name": "a100", "nodes": ["dgx-a100-1.lab.example"], "gpu": {**A100, "mig": {"layout": {"1g.5gb": 7}}}}
        ]
    },
)
# ---------------- contradictions
bad(
    "monitoring-off-but-exporter-set",
    "contradiction",
    "catwatcher:monitoring.exporter",
    "monitoring.enabled is false",
    {"monitoring": {"enabled": False, "exporter": "standalone"}},
)
bad(
    "monitoring-off-but-labels-set",
    "contradiction",
    "catwatcher:monitoring.prometheusLabels",
    "monitoring.enabled is false",
    {"monitoring": {"enabled": False, "prometheusLabels": {"release": "x"}}},
)
bad(
    "operator-exporter-with-standalone-version",
    "contradiction",
    "catwatcher:monitoring.standaloneChartVersion",
    "exporter is operator",
    {"monitoring": {"standaloneChartVersion": "4.8.2"}},
)
bad(
    "no-service-monitor-but-labels",
    "contradiction",
    "catwatcher:monitoring.prometheusLabels",
    "serviceMonitor is false",
    {"monitoring": {"serviceMonitor": False, "prometheusLabels": {"release": "x"}}},
)
bad(
    "no-dashboards-but-namespace",
    "contradiction",
    "catwatcher:monitoring.dashboardNamespace",
    "dashboards is false",
    {"monitoring": {"dashboards": False, "dashboardNamespace": "grafana"}},
)
bad(
    "network-policy-off-but-clients",
    "contradiction",
    "catwatcher:app.networkPolicy.clientNamespaces",
    "networkPolicy.enabled is false",
    {"app": {"networkPolicy": {"enabled": False, "clientNamespaces": ["frigate"]}}},
)
bad(
    "sharing-none-with-replicas",
    "contradiction",
    "catwatcher:gpu.replicas",
    "sharing: none",
    {"gpu": {**G, "sharing": "none", "replicas": 4}},
)
bad(
    "mig-block-with-time-slicing",
    "contradiction",
    "catwatcher:gpu.mig",
    "only valid with sharing: mig",
    {"gpu": {**G, "sharing": "time-slicing", "mig": {"layout": {"1g.5gb": 7}}}},
)
bad(
    "gpu-and-node-groups",
    "contradiction",
    "catwatcher:nodeGroups",
    "not both",
    {"gpu": G, "nodeGroups": [{"name": "a", "nodes": ["n1"], "gpu": G}]},
)
good("monitoring-off", "contradiction", {"monitoring": {"enabled": False}})
good("network-policy-off", "contradiction", {"app": {"networkPolicy": {"enabled": False}}})
# ---------------- stack-file level
bad(
    "top-level-typo",
    "stack-file",
    f"{F}: confg",
    "did you mean 'config'",
    text="confg:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
bad(
    "top-level-camel-case",
    "stack-file",
    f"{F}: secretsProvider",
    "did you mean 'secretsprovider'",
    text="secretsProvider: passphrase\nconfig:\n"
    "  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
bad(
    "top-level-unknown",
    "stack-file",
    f"{F}: outputs",
    "not a stack file key",
    text="outputs: {}\nconfig:\n  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
good(
    "top-level-encryption-salt",
    "stack-file",
    text="encryptionsalt: v1:abc:def\nconfig:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n",
)
good(
    "top-level-secrets-provider",
    "stack-file",
    text="secretsprovider: passphrase\nconfig:\n"
    "  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
good(
    "top-level-environment",
    "stack-file",
    text="environment:\n  - homelab/cat-watcher\nconfig:\n"
    "  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
bad(
    "namespace-near-miss",
    "stack-file",
    "catwatchr:app",
    "did you mean catwatcher:app",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n  catwatchr:app: {replicas: 2}\n",
)
bad(
    "namespace-capitalised",
    "stack-file",
    "Catwatcher:gpu",
    "did you mean catwatcher:gpu",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n  Catwatcher:gpu: {preset: rtx-3060}\n",
)
bad(
    "namespace-hyphenated",
    "stack-file",
    "cat-watcher:monitoring",
    "did you mean catwatcher:monitoring",
    text="config:\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n  cat-watcher:monitoring: {enabled: false}\n",
)
bad(
    "kubernetes-context-in-the-stack",
    "stack-file",
    "kubernetes:context",
    "catwatcher:cluster.kubeContext",
    text="config:\n  kubernetes:context: homelab\n"
    "  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
bad(
    "kubernetes-namespace-in-the-stack",
    "stack-file",
    "kubernetes:namespace",
    "ignored",
    text="config:\n  kubernetes:namespace: cats\n"
    "  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
bad("unknown-project-key", "stack-file", "catwatcher:monitorng", "valid keys here", {"monitorng": {"enabled": False}})
good(
    "other-project-namespace",
    "stack-file",
    text="config:\n  aws:region: eu-west-1\n  catwatcher:cluster: {kubeContext: a}\n"
    "  catwatcher:gpu: {preset: rtx-3060}\n",
)
good(
    "pulumi-namespace",
    "stack-file",
    text="config:\n  pulumi:disable-default-providers: [kubernetes]\n"
    "  catwatcher:cluster: {kubeContext: a}\n  catwatcher:gpu: {preset: rtx-3060}\n",
)
# ---------------- credentials
bad(
    "mqtt-password-clear-text",
    "credentials",
    "catwatcher:credentials.mqtt.password",
    "pulumi config set --secret",
    {"credentials": {"mqtt": {"host": "mqtt.home.arpa", "password": "hunter2"}}},
)
bad(
    "frigate-password-clear-text",
    "credentials",
    "catwatcher:credentials.frigate.password",
    "pulumi config set --secret",
    {"credentials": {"frigate": {"url": "http://frigate:5000", "password": "hunter2"}}},
)
bad(
    "one-password-encrypted-one-not",
    "credentials",
    "catwatcher:credentials.frigate.password",
    "in clear text",
    {
        "credentials": {
            "mqtt": {"host": "mqtt.home.arpa", "password": {"secure": "v1:abc"}},
            "frigate": {"url": "http://frigate:5000", "password": "hunter2"},
        }
    },
)
bad(
    "mqtt-host-url",
    "credentials",
    "catwatcher:credentials.mqtt.host",
    "is a URL",
    {"credentials": {"mqtt": {"host": "mqtt://broker.home.arpa:1883"}}},
)
bad(
    "mqtt-host-with-port",
    "credentials",
    "catwatcher:credentials.mqtt.host",
    "not a host name",
    {"credentials": {"mqtt": {"host": "broker.home.arpa:1883"}}},
)
bad(
    "mqtt-host-with-path",
    "credentials",
    "catwatcher:credentials.mqtt.host",
    "is a URL",
    {"credentials": {"mqtt": {"host": "broker/mqtt"}}},
)
good(
    "passwords-encrypted",
    "credentials",
    {
        "credentials": {
            "mqtt": {"host": "mqtt.home.arpa", "username": "cw", "password": {"secure": "v1:abc"}},
            "frigate": {"url": "https://frigate.home.arpa", "password": {"secure": "v1:def"}},
        }
    },
)
good("mqtt-host-ipv4", "credentials", {"credentials": {"mqtt": {"host": "192.168.1.10"}}})
good("mqtt-host-ipv6", "credentials", {"credentials": {"mqtt": {"host": "fd00::10"}}})
good(
    "frigate-url-with-port-and-path",
    "credentials",
    {"credentials": {"frigate": {"url": "http://frigate.frigate.svc:5000/api"}}},
)
# ---------------- derived values
bad("replicas-100000", "derived", "catwatcher:gpu.replicas", "must be <= 1024", {"gpu": {**G, "replicas": 100000}})
bad("replicas-1000-do-not-fit", "derived", "catwatcher:gpu.replicas", "at most", {"gpu": {**G, "replicas": 1000}})
bad(
    "reserve-takes-the-whole-card", "derived", "catwatcher:gpu.reserveMb", "at most", {"gpu": {**G, "reserveMb": 12288}}
)
bad(
    "vram-too-small-for-the-presets-pods",
    "derived",
    "catwatcher:gpu.vramMb",
    "at most",
    {"gpu": {**G, "vramMb": 1024, "memoryPerPodMb": 512, "replicas": 4}},
)
bad(
    "memory-per-pod-set-too-large",
    "derived",
    "catwatcher:gpu.memoryPerPodMb",
    "at most 2396 MiB arena per pod",
    {"gpu": {**G, "memoryPerPodMb": 4000}},
)
bad(
    "app-replicas-more-than-slices",
    "derived",
    "catwatcher:app.replicas",
    "at most 4",
    {"gpu": G, "app": {"replicas": 100}},
)
bad(
    "inference-replicas-more-than-slices",
    "derived",
    "catwatcher:nodeGroups[0].inferenceReplicas",
    "at most 4",
    {"nodeGroups": [{"name": "a", "nodes": ["n1"], "gpu": G, "inferenceReplicas": 9}]},
)
bad(
    "mps-replicas-above-the-cap",
    "derived",
    "catwatcher:gpu.replicas",
    "at most 48",
    {"gpu": {"preset": "rtx-3090", "sharing": "mps", "replicas": 64}},
)
bad(
    "mps-on-pascal",
    "derived",
    "catwatcher:gpu.sharing",
    "compute capability >= 7.0",
    {"gpu": {"preset": "gtx-1070", "sharing": "mps"}},
)
# ---------------- valid, unusual
for preset in ["gtx-1070", "gtx-1660", "rtx-2080-ti", "tesla-t4", "rtx-3080", "rtx-a4000", "l4", "rtx-5090"]:
    good(f"preset-{preset}", "valid", {"gpu": {"preset": preset}, "operator": {"installDriver": False}})
good("gpu-sharing-none", "valid", {"gpu": {**G, "sharing": "none"}})
good("two-gpus-per-node", "valid", {"gpu": {**G, "count": 2}})
good("k3s", "valid", {"cluster": {"kubeContext": "default", "distribution": "k3s"}})
good(
    "context-with-at-sign-and-colon",
    "valid",
    {"cluster": {"kubeContext": "arn:aws:eks:eu-west-1:123456789012:cluster/gpu"}},
)
good("kubernetes-1-40", "valid", {"cluster": {"kubeContext": K, "kubernetesVersion": "1.40"}})
good("rename-shared", "valid", {"gpu": {**G, "renameShared": True}})
good(
    "everything-spelled-out",
    "valid",
    {
        "cluster": {"kubeContext": K, "distribution": "kubeadm", "kubernetesVersion": "1.33", "useNriPlugin": False},
        "gpu": {**G, "sharing": "time-slicing", "replicas": 4, "memoryPerPodMb": 2304, "count": 1},
        "operator": {
            "namespace": "gpu-operator",
            "releaseName": "gpu-operator",
            "chartVersion": "v26.7.0",
            "installDriver": False,
            "timeoutSeconds": 900,
        },
        "app": {
            "namespace": "cat-watcher",
            "name": "cat-watcher",
            "replicas": 4,
            "resources": {"cpuRequest": "500m", "cpuLimit": "2", "memoryRequest": "1Gi", "memoryLimit": "2Gi"},
            "networkPolicy": {"enabled": True, "clientNamespaces": ["frigate"], "monitoringNamespace": "monitoring"},
        },
        "monitoring": {
            "enabled": True,
            "serviceMonitor": True,
            "prometheusLabels": {"release": "kube-prometheus-stack"},
            "dashboards": True,
            "dashboardNamespace": "monitoring",
        },
    },
)
good("empty-sections-are-unset", "valid", {"operator": {}, "app": {}, "monitoring": {}, "credentials": {}})

out = (
    "# Stack files for `catwatcher-infra render`, generated from tests/make_config_corpus.py.\n"
    "# `text`: the whole stack file; `config`: catwatcher:* keys (a cluster.kubeContext and a gpu preset are\n"
    "# added when absent). Invalid cases name the `key` the error must name and a `fragment` of the message.\n"
)
open(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("config_corpus.yaml"), "w").write(
    out + yaml.safe_dump(cases, sort_keys=False, allow_unicode=True, width=120)
)
print(len(cases), sum(1 for c in cases if c.get("valid")))
