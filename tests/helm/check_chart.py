#!/usr/bin/env python3
"""Lints and renders helm/sidewatch in every mode with the Helm SDK
(helm-python-sdk), validates the manifests offline against the Kubernetes
schemas (kubernetes-validate --strict), checks the Prometheus Operator
resources' required fields, runs promtool on the PrometheusRule's groups,
and checks what the chart promises (security context, secrets by
reference, config checksum, sharding, native sidecar, dashboards, alert
overrides). Run by tests/assets.rs; exits non-zero with a message.

    python3 tests/helm/check_chart.py REPO_ROOT
"""
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
CHART = ROOT / "helm" / "sidewatch"
EXAMPLE = ROOT / "helm" / "examples" / "app-with-sidewatch"
CRDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


FULL = {
    "serviceMonitor": {"enabled": True},
    "podMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "dashboards": {"enabled": True},
    "persistence": {"enabled": True},
    "secretEnv": [{"name": "PGPASSWORD", "secretName": "app-db", "key": "password"}],
    "nightly": {"enabled": True, "checks": [
        {"name": "nightly-soak", "schedule": "0 2 * * *"},
        {"name": "weekly-breakpoint", "schedule": "0 3 * * 6", "args": ["--markdown", "/tmp/r.md"]}]},
    "sharded": {"enabled": True, "check": "big-spike", "shards": 8},
    "alerts": {
        "thresholds": {"probe_latency_p95_seconds": 0.2},
        "for": {"SidewatchProbeDown": "10m", "SidewatchContainerMemoryHigh:critical": "1m"},
        "disabled": ["SidewatchHostCPUHigh"],
        "labels": {"team": "payments", "severity": "overridden?"},
        "jobSelector": 'job="monitoring/shop-sidewatch"',
        "runbookBaseURL": "https://runbooks.example.com/sidewatch",
    },
    "config": {
        "listen": "0.0.0.0:9479",
        "store": {"dir": "/var/lib/sidewatch/store"},
        "probes": [{"name": "db", "postgres": {
            "dsn": "host=db user=app password=${PGPASSWORD} dbname=app", "query": "SELECT 1"}}],
    },
}
SIDECAR = {"mode": "sidecar", "sidecar": {"podSelector": {"app": "shop"}},
           "podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
NATIVE = {"sidewatch": {"sidecar": {"native": True}}}


def render(path, values, name="sw", namespace="monitoring"):
    chart = helm.Chart.load(str(path))
    try:
        out = chart.render(values, name=name, namespace=namespace)
    finally:
        chart.close()
    docs = []
    for template, text in out.items():
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def lint(path, values):
    result = helm.lint(str(path), values, strict=True)
    errors = result.get("errors") or []
    warnings = [m for m in result.get("messages", []) if m.get("severity", 0) > 1]
    check(not errors and not warnings, f"lint {path.name} {list(values)}: {errors} {warnings}")


def kube_validate(docs, label):
    builtin = [d for d in docs if d["kind"] not in CRDS]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(builtin, f)
    run = subprocess.run(["kubernetes-validate", "--strict", "--quiet", f.name],
                         capture_output=True, text=True)
    check(run.returncode == 0, f"kubernetes-validate {label}: {run.stdout}{run.stderr}")


def crd_fields(docs, label):
    """The fields Prometheus Operator requires (its CRDs' `required`)."""
    for d in docs:
        spec, kind = d.get("spec", {}), d["kind"]
        where = f"{label} {kind} {d['metadata'].get('name')}"
        if kind in CRDS:
            check(d["apiVersion"] == "monitoring.coreos.com/v1", f"{where}: apiVersion")
            check(bool(d["metadata"].get("name")), f"{where}: metadata.name")
        if kind == "ServiceMonitor":
            check("selector" in spec, f"{where}: spec.selector")
            eps = spec.get("endpoints", [])
            check(eps and all("port" in e for e in eps), f"{where}: endpoints with port")
        if kind == "PodMonitor":
            check("selector" in spec, f"{where}: spec.selector")
            eps = spec.get("podMetricsEndpoints", [])
            check(eps and all("port" in e for e in eps), f"{where}: podMetricsEndpoints with port")
        if kind == "PrometheusRule":
            for g in spec.get("groups", []):
                check("name" in g and "rules" in g, f"{where}: group name and rules")
                for r in g["rules"]:
                    check("expr" in r and ("alert" in r) != ("record" in r),
                          f"{where}: rule {r}")
            promtool(spec, where)


def promtool(spec, where):
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": spec["groups"]}, f)
    run = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    check(run.returncode == 0, f"{where}: promtool check rules: {run.stdout}{run.stderr}")


def containers(pod):
    return pod.get("initContainers", []) + pod.get("containers", [])


def pod_specs(docs):
    for d in docs:
        kind, spec = d["kind"], d.get("spec", {})
        if kind in ("Deployment", "Job"):
            yield d, spec["template"]["spec"], spec["template"]["metadata"]
        elif kind == "CronJob":
            t = spec["jobTemplate"]["spec"]["template"]
            yield d, t["spec"], t["metadata"]


def security(docs, label):
    for d, pod, _ in pod_specs(docs):
        where = f"{label} {d['kind']} {d['metadata']['name']}"
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
        for c in containers(pod):
            if c["name"] != "sidewatch":
                continue
            sc = c.get("securityContext", {})
            check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
            check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation")
            check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL")
            res = c.get("resources", {})
            check("requests" in res and "limits" in res, f"{where}: requests and limits")
            for e in c.get("env", []):
                check("value" not in e or "PASSWORD" not in e["name"], f"{where}: inlined secret {e}")


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def standalone_full():
    docs = render(CHART, FULL)
    kube_validate(docs, "full")
    crd_fields(docs, "full")
    security(docs, "full")
    dep = by_kind(docs, "Deployment")[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    secret = [e for e in c["env"] if e["name"] == "PGPASSWORD"]
    check(secret and secret[0]["valueFrom"]["secretKeyRef"] == {"name": "app-db", "key": "password"},
          "secretEnv comes from a secretKeyRef")
    cm = by_kind(docs, "ConfigMap")
    config = [x for x in cm if "sidewatch.yaml" in x.get("data", {})][0]
    check("${PGPASSWORD}" in config["data"]["sidewatch.yaml"], "the config keeps ${PGPASSWORD}")
    checksum = dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    changed = copy.deepcopy(FULL)
    changed["config"]["listen"] = "0.0.0.0:9480"
    other = by_kind(render(CHART, changed), "Deployment")[0]
    check(other["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != checksum,
          "a config change changes the checksum annotation")
    dashboards(cm)
    rules(by_kind(docs, "PrometheusRule")[0])
    jobs(docs)
    check(by_kind(docs, "PersistentVolumeClaim"), "persistence renders a PVC")


def dashboards(configmaps):
    boards = [c for c in configmaps if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = sorted((ROOT / "dashboards").glob("*.json"))
    check(len(boards) == len(files), f"{len(boards)} dashboard ConfigMaps for {len(files)} files")
    for c in boards:
        for name, text in c["data"].items():
            check(json.loads(text) == json.loads((ROOT / "dashboards" / name).read_text()),
                  f"dashboard {name} is the file's content")


def rules(rule):
    groups = rule["spec"]["groups"]
    source = []
    for f in sorted((ROOT / "alerts").glob("*.yml")):
        source += yaml.safe_load(f.read_text())["groups"]
    check([g["name"] for g in groups] == [g["name"] for g in source],
          "PrometheusRule has the groups of alerts/")
    flat = {(r.get("alert") or r.get("record"), r.get("labels", {}).get("severity")): r
            for g in groups for r in g["rules"]}
    check(flat[("sidewatch:threshold:probe_latency_p95_seconds", None)]["expr"] == "vector(0.2)",
          "threshold override")
    check(flat[("SidewatchProbeDown", "critical")]["for"] == "10m", "for override by name")
    check(flat[("SidewatchContainerMemoryHigh", "critical")]["for"] == "1m", "for override by severity")
    check(flat[("SidewatchContainerMemoryHigh", "warning")]["for"] == "5m", "other severity untouched")
    check(not any(k[0] == "SidewatchHostCPUHigh" for k in flat), "disabled alert left out")
    down = flat[("SidewatchDown", "critical")]
    check(down["expr"].startswith('up{job="monitoring/shop-sidewatch"}'), f"job selector: {down['expr']}")
    check(down["labels"].get("team") == "payments", "extra labels")
    check(down["labels"]["severity"] == "critical", "alerts.labels never replace a rule's severity")
    check(down["annotations"]["runbook_url"] == "https://runbooks.example.com/sidewatch#sidewatchdown",
          "runbook_url")
    n = sum(len(g["rules"]) for g in source)
    check(sum(len(g["rules"]) for g in groups) == n - 2, "every other rule is kept")


def jobs(docs):
    crons = by_kind(docs, "CronJob")
    check(len(crons) == 2, "one CronJob per nightly check")
    c = crons[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    check(c["args"][:4] == ["check", "--config", "/etc/sidewatch/sidewatch.yaml", "nightly-soak"],
          f"nightly args {c['args']}")
    check(crons[0]["spec"]["concurrencyPolicy"] == "Forbid", "nightly runs never overlap")
    job = by_kind(docs, "Job")[0]
    spec = job["spec"]
    check(spec["completionMode"] == "Indexed" and spec["completions"] == 8 and spec["parallelism"] == 8,
          "sharded job is Indexed with 8 completions")
    c = spec["template"]["spec"]["containers"][0]
    i = c["args"].index("--shard")
    check(c["args"][i + 1] == "$(SHARD_INDEX)/8", f"shard argument {c['args']}")
    env = {e["name"]: e for e in c["env"]}
    check(env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
          == "metadata.annotations['batch.kubernetes.io/job-completion-index']", "SHARD_INDEX env")
    vols = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    check("emptyDir" in vols["sidewatch-data"], "shards never share the store")


def default_and_sidecar():
    docs = render(CHART, {})
    kube_validate(docs, "default")
    security(docs, "default")
    check([d["kind"] for d in docs if d["kind"] == "Deployment"], "default mode is standalone")
    docs = render(CHART, SIDECAR)
    kube_validate(docs, "sidecar")
    crd_fields(docs, "sidecar")
    check(not by_kind(docs, "Deployment"), "sidecar mode renders no workload")
    pm = by_kind(docs, "PodMonitor")[0]
    check(pm["spec"]["selector"]["matchLabels"] == {"app": "shop"}, "PodMonitor selects the app pods")


def example(native):
    values = NATIVE if native else {}
    label = "example native" if native else "example"
    lint(EXAMPLE, values)
    docs = render(EXAMPLE, values, name="shop", namespace="prod")
    kube_validate(docs, label)
    crd_fields(docs, label)
    security(docs, label)
    dep = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    check(dep.get("shareProcessNamespace") is True, f"{label}: shareProcessNamespace")
    names = lambda cs: [c["name"] for c in cs]
    if native:
        init = dep.get("initContainers", [])
        check(names(init) == ["sidewatch"] and init[0].get("restartPolicy") == "Always",
              f"{label}: native sidecar is an initContainer with restartPolicy Always")
        check(names(dep["containers"]) == ["app"], f"{label}: containers")
    else:
        check(names(dep["containers"]) == ["app", "sidewatch"], f"{label}: containers")
        check("initContainers" not in dep, f"{label}: no initContainers")
    volumes = [v["name"] for v in dep["volumes"]]
    check("sidewatch-config" in volumes, f"{label}: config volume")
    cm = [d for d in by_kind(docs, "ConfigMap") if "sidewatch.yaml" in d.get("data", {})]
    config_name = [v for v in dep["volumes"] if v["name"] == "sidewatch-config"][0]["configMap"]["name"]
    check(cm and cm[0]["metadata"]["name"] == config_name, f"{label}: the volume names the ConfigMap")


def main():
    helm.disable_logging()
    for values in ({}, FULL, SIDECAR):
        lint(CHART, values)
    standalone_full()
    default_and_sidecar()
    example(native=False)
    example(native=True)
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("chart ok: lint, 6 renders, kubernetes-validate --strict, CRD fields, promtool")


if __name__ == "__main__":
    main()
