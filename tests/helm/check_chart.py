#!/usr/bin/env python3
"""Lints and renders helm/sidewatch in every mode with the Helm SDK
(helm-python-sdk), validates the manifests offline against the Kubernetes
schemas (kubernetes-validate --strict), checks the Prometheus Operator
resources' required fields, runs promtool on the PrometheusRule's groups,
and checks what the chart promises: a good guest in someone else's pod
(no sidecar probes by default, a unique port name, the native-sidecar
version guard), config validated by values.schema.json (a typo fails
lint), one value for port/listen and dataDir/store.dir, storage that
cannot Multi-Attach, job resources and deadlines, the subchart contract,
README.md's values table and docs/kubernetes.md's rendered manifests.
Run by tests/assets.rs; exits non-zero with a message.

    python3 tests/helm/check_chart.py REPO_ROOT
    SIDEWATCH_BLESS=1 python3 tests/helm/check_chart.py REPO_ROOT   # rewrite README.md, docs/kubernetes.md
"""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import generated  # noqa: E402
import kubernetes_doc  # noqa: E402

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
CHART = ROOT / "helm" / "sidewatch"
EXAMPLE = ROOT / "helm" / "examples" / "app-with-sidewatch"
CRDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
CLUSTER_SCOPED = set()
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


MIX = [{"weight": 1, "http": {"url": "http://shop.prod.svc:8080/"}}]
CHECKS = [
    {"name": "nightly-soak", "max_duration": "24h30m",
     "load": {"rate": "50/s", "mix": MIX}, "soak": {"duration": "24h", "window": "10m"}},
    {"name": "weekly-breakpoint", "load": {"rate": "10/s", "mix": MIX},
     "breakpoint": {"factor": 2, "max": "3200/s", "step": "5m", "break": ["p95 > 500ms"]}},
    {"name": "big-spike", "max_duration": "1.5h", "load": {"rate": "100/s", "mix": MIX},
     "spike": {"factor": 10}},
]
FULL = {
    "serviceMonitor": {"enabled": True, "metricRelabelings": [
        {"sourceLabels": ["__name__"], "regex": "sidewatch_process_.*", "action": "drop"}]},
    "podMonitor": {"enabled": True, "metricRelabelings": [
        {"sourceLabels": ["__name__"], "regex": "sidewatch_host_.*", "action": "drop"}]},
    "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
    "dashboards": {"enabled": True},
    "persistence": {"enabled": True},
    "commonLabels": {"team": "payments"},
    "podAnnotations": {"example.com/owner": "payments"},
    "priorityClassName": "monitoring",
    "image": {"digest": "sha256:" + "ab" * 32},
    "secretEnv": [{"name": "PGPASSWORD", "secretName": "app-db", "key": "password"}],
    "extraEnv": [{"name": "RUST_LOG", "value": "info"}],
    "extraArgs": ["--log-format", "json"],
    "extraVolumes": [{"name": "db-ca", "secret": {"secretName": "db-ca"}}],
    "extraVolumeMounts": [{"name": "db-ca", "mountPath": "/etc/db-ca", "readOnly": True}],
    "jobs": {"nodeSelector": {"pool": "load"}, "tolerations": [
        {"key": "load", "operator": "Exists", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "sharded-load"}}}]},
    "nightly": {"enabled": True, "persistence": {"enabled": True}, "checks": [
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
        "probes": [{"name": "db", "postgres": {
            "dsn": "host=db user=app password=${PGPASSWORD} dbname=app", "query": "SELECT 1",
            "tls": {"mode": "verify-full", "ca_file": "/etc/db-ca/ca.crt"}}}],
        "checks": CHECKS,
        "limits": {"allow_hosts": ["shop.prod.svc"]},
    },
}
SIDECAR = {"mode": "sidecar", "sidecar": {"podSelector": {"app": "shop"}},
           "podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
NATIVE = {"sidewatch": {"sidecar": {"native": True}}}


def render(path, values, name="sw", namespace="monitoring", notes=False):
    chart = helm.Chart.load(str(path))
    try:
        out = chart.render(values, name=name, namespace=namespace)
    finally:
        chart.close()
    if notes:
        return "".join(t for k, t in out.items() if k.endswith("NOTES.txt"))
    docs = []
    for template, text in sorted(out.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def render_error(path, values, name="sw", namespace="monitoring"):
    """The message of a render that must fail, or None if it rendered."""
    try:
        render(path, values, name, namespace)
    except helm.HelmError as e:
        return str(e)
    return None


def lint_report(path, values, kube_version=None):
    result = helm.lint(str(path), values, strict=True, kube_version=kube_version)
    errors = [m.get("error", "") for m in result.get("messages", []) if m.get("severity", 0) > 1]
    return errors + [str(e) for e in result.get("errors") or [] if str(e) not in errors]


def lint(path, values):
    errors = lint_report(path, values)
    check(not errors, f"lint {path.name} {list(values)}: {errors}")


def kube_validate(docs, label):
    builtin = [d for d in docs if d["kind"] not in CRDS]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(builtin, f)
    run = subprocess.run(["kubernetes-validate", "--strict", "--quiet", f.name],
                         capture_output=True, text=True)
    os.unlink(f.name)
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
    os.unlink(f.name)
    check(run.returncode == 0, f"{where}: promtool check rules: {run.stdout}{run.stderr}")


def containers(pod):
    return pod.get("initContainers", []) + pod.get("containers", [])


def sidewatch_container(pod):
    return [c for c in containers(pod) if c["name"] == "sidewatch"][0]


def pod_specs(docs):
    """(object, pod spec, pod metadata, replicas that may run at once)."""
    for d in docs:
        kind, spec = d["kind"], d.get("spec", {})
        if kind == "Deployment":
            yield d, spec["template"]["spec"], spec["template"]["metadata"], spec.get("replicas", 1)
        elif kind == "Job":
            yield d, spec["template"]["spec"], spec["template"]["metadata"], spec.get("parallelism", 1)
        elif kind == "CronJob":
            t = spec["jobTemplate"]["spec"]["template"]
            yield d, t["spec"], t["metadata"], spec["jobTemplate"]["spec"].get("parallelism", 1)
        elif kind == "Pod":
            yield d, spec, d["metadata"], 1


def security(docs, label):
    for d, pod, _, _ in pod_specs(docs):
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
            check("requests" in res, f"{where}: requests")
            for e in c.get("env", []):
                check("value" not in e or "PASSWORD" not in e["name"], f"{where}: inlined secret {e}")


def guest(docs, label):
    """In any pod: a port name of its own, unique in the pod."""
    for d, pod, _, _ in pod_specs(docs):
        where = f"{label} {d['kind']} {d['metadata']['name']}"
        names = [p["name"] for c in containers(pod) for p in c.get("ports", [])]
        check(len(names) == len(set(names)), f"{where}: port names unique {names}")
        for c in containers(pod):
            if c["name"] == "sidewatch":
                for p in c.get("ports", []):
                    check(p["name"] != "metrics" and len(p["name"]) <= 15, f"{where}: port name {p}")


def storage(docs, label):
    """One claim, one writer: a ReadWriteOnce claim is mounted by one pod
    template that runs one pod at a time (a Deployment of 1 replica that
    is replaced, not rolled, or a CronJob whose runs never overlap)."""
    modes = {d["metadata"]["name"]: d["spec"]["accessModes"]
             for d in docs if d["kind"] == "PersistentVolumeClaim"}
    users = {}
    for d, pod, _, parallel in pod_specs(docs):
        for v in pod.get("volumes", []):
            claim = v.get("persistentVolumeClaim", {}).get("claimName")
            if claim:
                users.setdefault(claim, []).append((d, parallel))
    for claim, pods in users.items():
        where = f"{label} claim {claim}"
        if "ReadWriteMany" in modes.get(claim, []):
            continue
        check(len(pods) == 1, f"{where}: mounted by {[p[0]['metadata']['name'] for p in pods]}")
        d, parallel = pods[0]
        check(parallel == 1, f"{where}: {parallel} pods at once")
        if d["kind"] == "Deployment":
            check(d["spec"].get("strategy", {}).get("type") == "Recreate", f"{where}: Recreate")
        elif d["kind"] == "CronJob":
            check(d["spec"]["concurrencyPolicy"] == "Forbid", f"{where}: Forbid")
        else:
            check(False, f"{where}: a {d['kind']} mounts a ReadWriteOnce claim")
    return users


def every_object(docs, label, namespace, chart_version):
    for d in docs:
        where = f"{label} {d['kind']} {d['metadata']['name']}"
        labels = d["metadata"].get("labels", {})
        check(labels.get("helm.sh/chart") == f"sidewatch-{chart_version}", f"{where}: helm.sh/chart")
        check(labels.get("team") == "payments", f"{where}: commonLabels")
        if d["kind"] not in CLUSTER_SCOPED:
            check(d["metadata"].get("namespace") == namespace, f"{where}: namespace")


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def chart_meta(path):
    return yaml.safe_load((path / "Chart.yaml").read_text())


def rendered_config(docs):
    cm = [x for x in by_kind(docs, "ConfigMap") if "sidewatch.yaml" in x.get("data", {})][0]
    return yaml.safe_load(cm["data"]["sidewatch.yaml"])


def sidewatch_accepts(docs, label):
    """`sidewatch check-config` accepts the rendered config (SIDEWATCH_BIN,
    set by tests/chart.rs; skipped when run by hand without it)."""
    binary = os.environ.get("SIDEWATCH_BIN")
    if not binary:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sidewatch.yaml"
        path.write_text(yaml.safe_dump(rendered_config(docs)))
        run = subprocess.run([binary, "check-config", str(path)], capture_output=True, text=True,
                             env={**os.environ, "PGPASSWORD": "not-a-secret"}, timeout=60)
        # The CA file is mounted in the pod (extraVolumes), not here.
        errors = [e for e in run.stderr.splitlines() if "cannot read /etc/db-ca/" not in e]
        check(run.returncode == 0 or not errors, f"{label}: sidewatch check-config: {errors}")


def standalone_full():
    docs = render(CHART, FULL)
    sidewatch_accepts(docs, "full")
    kube_validate(docs, "full")
    crd_fields(docs, "full")
    security(docs, "full")
    guest(docs, "full")
    every_object(docs, "full", "monitoring", chart_meta(CHART)["version"])
    dep = by_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    check(env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "app-db", "key": "password"},
          "secretEnv comes from a secretKeyRef")
    check(env["SIDEWATCH_CONFIG"]["value"] == c["args"][2], "SIDEWATCH_CONFIG names the config file")
    check(env["RUST_LOG"]["value"] == "info", "extraEnv")
    check(c["args"][-2:] == ["--log-format", "json"], f"extraArgs {c['args']}")
    check({"name": "db-ca", "mountPath": "/etc/db-ca", "readOnly": True} in c["volumeMounts"],
          "extraVolumeMounts")
    check({"name": "db-ca", "secret": {"secretName": "db-ca"}} in pod["volumes"], "extraVolumes")
    check(pod["priorityClassName"] == "monitoring", "priorityClassName")
    meta = dep["spec"]["template"]["metadata"]
    check(meta["annotations"]["example.com/owner"] == "payments", "podAnnotations")
    check(meta["labels"]["team"] == "payments", "commonLabels on pods")
    app = chart_meta(CHART)["appVersion"]
    check(c["image"] == f"ghcr.io/sidewatch/sidewatch:{app}@sha256:{'ab' * 32}", f"image {c['image']}")
    check("readinessProbe" in c and "livenessProbe" in c, "standalone has its probes")
    config = rendered_config(docs)
    check("${PGPASSWORD}" in config["probes"][0]["postgres"]["dsn"], "the config keeps ${PGPASSWORD}")
    checksum = meta["annotations"]["checksum/config"]
    changed = copy.deepcopy(FULL)
    changed["config"]["resources"] = {"interval": "10s"}
    other = by_kind(render(CHART, changed), "Deployment")[0]
    check(other["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != checksum,
          "a config change changes the checksum annotation")
    for kind in ("ServiceMonitor", "PodMonitor"):
        m = by_kind(docs, kind)[0]["spec"]
        ep = (m.get("endpoints") or m.get("podMetricsEndpoints"))[0]
        check(ep["metricRelabelings"] == FULL[kind[0].lower() + kind[1:]]["metricRelabelings"],
              f"{kind} metricRelabelings")
    check(by_kind(docs, "PrometheusRule")[0]["metadata"]["labels"]["release"] == "kps",
          "PrometheusRule labels (the operator's ruleSelector)")
    dashboards(by_kind(docs, "ConfigMap"))
    rules(by_kind(docs, "PrometheusRule")[0])


def full_jobs_storage_and_test_hook():
    docs = render(CHART, FULL)
    jobs(docs)
    users = storage(docs, "full")
    check(len(users) == 3, f"the Deployment's claim and one per nightly check: {sorted(users)}")
    hook_test(docs)


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
    soak = crons[0]["spec"]
    pod = soak["jobTemplate"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check(c["args"][:4] == ["check", "--config", "/etc/sidewatch/sidewatch.yaml", "nightly-soak"],
          f"nightly args {c['args']}")
    check(soak["concurrencyPolicy"] == "Forbid", "nightly runs never overlap")
    # 24h30m of max_duration plus the 900 s margin: a 24 h soak is not killed at 4 h.
    check(soak["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 88200 + 900,
          f"deadline from max_duration: {soak['jobTemplate']['spec']['activeDeadlineSeconds']}")
    other = crons[1]["spec"]["jobTemplate"]["spec"]
    check(other["activeDeadlineSeconds"] == 14400, "a check without max_duration: the fallback")
    job = by_kind(docs, "Job")[0]
    spec = job["spec"]
    check(spec["activeDeadlineSeconds"] == 5400 + 900, f"sharded deadline {spec['activeDeadlineSeconds']}")
    check(spec["completionMode"] == "Indexed" and spec["completions"] == 8 and spec["parallelism"] == 8,
          "sharded job is Indexed with 8 completions")
    for where, p in (("nightly", pod), ("sharded", spec["template"]["spec"])):
        sc = sidewatch_container(p)
        check("cpu" not in sc["resources"].get("limits", {}), f"{where}: no CPU limit on a load generator")
        check(sc["resources"]["requests"]["cpu"] == "500m", f"{where}: jobs.resources")
        check("readinessProbe" not in sc and "livenessProbe" not in sc, f"{where}: no probes on a job")
        check(p["nodeSelector"] == {"pool": "load"} and p["tolerations"][0]["key"] == "load",
              f"{where}: jobs scheduling")
        check(p["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname",
              f"{where}: topologySpreadConstraints")
    c = spec["template"]["spec"]["containers"][0]
    i = c["args"].index("--shard")
    check(c["args"][i + 1] == "$(SHARD_INDEX)/8", f"shard argument {c['args']}")
    env = {e["name"]: e for e in c["env"]}
    check(env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
          == "metadata.annotations['batch.kubernetes.io/job-completion-index']", "SHARD_INDEX env")
    vols = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    check("emptyDir" in vols["sidewatch-data"], "shards never share the store")
    later = copy.deepcopy(FULL)
    later["config"]["checks"][2]["max_duration"] = "${SPIKE_MAX}"
    spec = by_kind(render(CHART, later), "Job")[0]["spec"]
    check(spec["activeDeadlineSeconds"] == 7200, f"a ${{VAR}} max_duration: the fallback, not 0+margin: {spec}")
    err = render_error(CHART, {**FULL, "nightly": {"enabled": True, "checks": [{"name": "nope"}]}})
    check(err and 'check "nope" is not in config.checks' in err, f"unknown nightly check: {err}")


def hook_test(docs):
    pods = by_kind(docs, "Pod")
    check(len(pods) == 1, "one helm test pod")
    pod = pods[0]
    check(pod["metadata"]["annotations"]["helm.sh/hook"] == "test", "the test pod is a test hook")
    config = [c for c in by_kind(docs, "ConfigMap") if "test.yaml" in c.get("data", {})][0]
    check(config["metadata"]["annotations"]["helm.sh/hook"] == "test", "its config is a test hook")
    probe = yaml.safe_load(config["data"]["test.yaml"])["probes"][0]["http"]
    check(probe["url"] == "http://sw-sidewatch.monitoring.svc:9479/metrics", f"test scrapes {probe['url']}")
    check(pod["spec"]["containers"][0]["args"][0] == "probe", "the test runs sidewatch probe")


def one_value_each():
    """port → config.listen and the container port; dataDir → store.dir."""
    docs = render(CHART, {"port": 9555, "dataDir": "/data"})
    config = rendered_config(docs)
    check(config["listen"] == "0.0.0.0:9555", f"listen from port: {config['listen']}")
    check(config["store"]["dir"] == "/data", f"store.dir from dataDir: {config['store']}")
    c = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    check(c["ports"][0]["containerPort"] == 9555, "containerPort from port")
    check({"name": "sidewatch-data", "mountPath": "/data"} in c["volumeMounts"], "data mount from dataDir")
    svc = by_kind(docs, "Service")[0]["spec"]["ports"][0]
    check(svc["port"] == 9555 and svc["targetPort"] == c["ports"][0]["name"], f"Service port {svc}")
    errors = lint_report(CHART, {"config": {"listen": "0.0.0.0:1"}})
    check(any("listen" in e for e in errors), f"config.listen is refused: {errors}")
    errors = lint_report(CHART, {"config": {"store": {"dir": "/x"}}})
    check(any("dir" in e for e in errors), f"config.store.dir is refused: {errors}")


def schema_rejects_typos():
    """values.schema.json (from the config structs) fails lint on a typo."""
    for values, word in (
        ({"config": {"probes": [{"name": "a", "intervall": "10s", "http": {"url": "http://a/"}}]}},
         "intervall"),
        ({"config": {"probes": [{"name": "a", "http": {"url": "http://a/", "expect": {"staus": ["200"]}}}]}},
         "staus"),
        ({"config": {"resourcs": {}}}, "resourcs"),
        ({"serviceMonitr": {"enabled": True}}, "serviceMonitr"),
        ({"portName": "sidewatch-metrics"}, "portName"),
    ):
        errors = lint_report(CHART, values)
        check(any(word in e for e in errors), f"lint must name the typo {word!r}: {errors}")
    chart = helm.Chart.load(str(CHART))
    try:
        for f in sorted((ROOT / "config" / "examples").glob("*.yaml")):
            config = yaml.safe_load(f.read_text()) or {}
            config.pop("listen", None)
            (config.get("store") or {}).pop("dir", None)
            try:
                chart.validate_schema({"config": config})
            except helm.HelmError as e:
                check(False, f"the schema refuses {f.name}: {e}")
    finally:
        chart.close()


def default_and_sidecar():
    docs = render(CHART, {})
    sidewatch_accepts(docs, "default")
    kube_validate(docs, "default")
    security(docs, "default")
    check([d["kind"] for d in docs if d["kind"] == "Deployment"], "default mode is standalone")
    check(not by_kind(docs, "PersistentVolumeClaim"), "no claim by default")
    docs = render(CHART, SIDECAR)
    kube_validate(docs, "sidecar")
    crd_fields(docs, "sidecar")
    check(not by_kind(docs, "Deployment"), "sidecar mode renders no workload")
    pm = by_kind(docs, "PodMonitor")[0]
    check(pm["spec"]["selector"]["matchLabels"] == {"app": "shop"}, "PodMonitor selects the app pods")
    check(pm["spec"]["podMetricsEndpoints"][0]["port"] == "sidewatch", "PodMonitor port name")
    err = render_error(CHART, {**SIDECAR, "persistence": {"enabled": True}})
    check(err and "ReadWriteMany" in err, f"sidecar mode refuses a ReadWriteOnce claim: {err}")
    err = render_error(CHART, {"standalone": {"replicas": 2}, "persistence": {"enabled": True}})
    check(err and "ReadWriteMany" in err, f"2 replicas refuse a ReadWriteOnce claim: {err}")
    docs = render(CHART, {"namespaceOverride": "observability", "commonLabels": {"team": "payments"},
                          **{k: FULL[k] for k in ("serviceMonitor", "podMonitor", "prometheusRule",
                                                  "dashboards", "nightly", "sharded", "config")}})
    every_object(docs, "namespaceOverride", "observability", chart_meta(CHART)["version"])
    sm = by_kind(docs, "ServiceMonitor")[0]
    check(sm["spec"]["namespaceSelector"]["matchNames"] == ["observability"], "monitor namespaceSelector")
    notes = render(CHART, FULL, notes=True)
    for needle in ("port-forward svc/sw-sidewatch 9479", "helm test sw", "release: <its release name>",
                   "grafana_dashboard=1", "PrometheusRule sw-sidewatch"):
        check(needle in notes, f"NOTES.txt says {needle!r}")


def kube_prometheus_stack_values():
    """helm/examples/values-kube-prometheus-stack.yaml, shown in docs/kubernetes.md."""
    values = yaml.safe_load((ROOT / kubernetes_doc.KPS_VALUES).read_text())
    lint(CHART, values)
    docs = render(CHART, values)
    sidewatch_accepts(docs, "kps")
    kube_validate(docs, "kps")
    crd_fields(docs, "kps")
    for kind in CRDS - {"PodMonitor"}:
        d = by_kind(docs, kind)[0]
        check(d["metadata"]["labels"].get("release") == "kps", f"kps: {kind} has release: kps")


def example_pod(docs):
    return by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]


def example(native):
    values = NATIVE if native else {}
    label = "example native" if native else "example"
    lint(EXAMPLE, values)
    docs = render(EXAMPLE, values, name="shop", namespace="prod")
    sidewatch_accepts(docs, label)
    kube_validate(docs, label)
    crd_fields(docs, label)
    security(docs, label)
    guest(docs, label)
    storage(docs, label)
    dep = example_pod(docs)
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
    sw = sidewatch_container(dep)
    check("readinessProbe" not in sw and "livenessProbe" not in sw,
          f"{label}: no probes on the sidecar by default")
    app = dep["containers"][0]
    check(app["image"].startswith("nginxinc/nginx-unprivileged:"), f"{label}: an app that runs unprivileged")
    check(app["ports"][0]["containerPort"] == 8080, f"{label}: app on 8080")
    tmp = [m for m in app["volumeMounts"] if m["mountPath"] == "/tmp"]
    vols = {v["name"]: v for v in dep["volumes"]}
    check(tmp and "emptyDir" in vols[tmp[0]["name"]], f"{label}: the app's /tmp is an emptyDir")
    check(sw["image"].endswith(":" + chart_meta(CHART)["appVersion"]), f"{label}: image {sw['image']}")
    volumes = [v["name"] for v in dep["volumes"]]
    check("sidewatch-config" in volumes, f"{label}: config volume")
    cm = [d for d in by_kind(docs, "ConfigMap") if "sidewatch.yaml" in d.get("data", {})]
    config_name = [v for v in dep["volumes"] if v["name"] == "sidewatch-config"][0]["configMap"]["name"]
    check(cm and cm[0]["metadata"]["name"] == config_name, f"{label}: the volume names the ConfigMap")


def native_guard(version):
    """Renders the example with .Capabilities.KubeVersion.Version forced
    to `version` (the SDK renders as the newest Kubernetes, and lint
    treats `fail` as a log line), returning the error or None."""
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app"
        shutil.copytree(EXAMPLE, app, symlinks=False)
        (app / "templates" / "guard.yaml").write_text(
            "{{- $sw := .Subcharts.sidewatch }}\n"
            "{{- $caps := dict \"KubeVersion\" (dict \"Version\" \"" + version + "\") }}\n"
            "{{- $ctx := dict \"Values\" $sw.Values \"Chart\" $sw.Chart \"Release\" $sw.Release "
            "\"Capabilities\" $caps }}\n"
            "{{- $_ := include \"sidewatch.initContainers\" $ctx }}\n")
        return render_error(app, NATIVE)


def example_guards():
    """Native sidecars need 1.29; the probes are there when asked for."""
    old = native_guard("v1.28.9")
    check(old and "sidecar.native needs Kubernetes 1.29 or later" in old, f"native on 1.28 fails: {old}")
    check(native_guard("v1.29.0") is None, "native on 1.29 renders")
    probe = {"httpGet": {"path": "/readyz", "port": "sidewatch"}}
    docs = render(EXAMPLE, {"sidewatch": {"sidecar": {"readinessProbe": probe}}})
    sw = sidewatch_container(example_pod(docs))
    check(sw.get("readinessProbe") == probe and "livenessProbe" not in sw, "a sidecar readinessProbe when asked")


def subchart_follows_the_sidewatch_chart():
    """The app chart gets the image tag of the sidewatch chart it depends
    on: bump the sidewatch chart's appVersion in a copy, the tag follows."""
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app"
        shutil.copytree(EXAMPLE, app, symlinks=False, ignore=shutil.ignore_patterns("charts"))
        sub = app / "charts" / "sidewatch"
        shutil.copytree(CHART, sub, symlinks=False)
        meta = chart_meta(sub)
        meta["appVersion"] = "9.8.7"
        (sub / "Chart.yaml").write_text(yaml.safe_dump(meta))
        sw = sidewatch_container(example_pod(render(app, {})))
        check(sw["image"] == "ghcr.io/sidewatch/sidewatch:9.8.7", f"subchart image {sw['image']}")


def generated_files():
    bless = bool(os.environ.get("SIDEWATCH_BLESS"))
    for path, fresh in generated.files(ROOT, render, render_error, lint_report, native_guard):
        current = path.read_text()
        if bless and current != fresh:
            path.write_text(fresh)
        check(current == fresh, f"{path.relative_to(ROOT)} is stale: run "
              "SIDEWATCH_BLESS=1 python3 tests/helm/check_chart.py .")


def lint_modes():
    for values in ({}, FULL, SIDECAR):
        lint(CHART, values)


STEPS = [lint_modes, standalone_full, full_jobs_storage_and_test_hook, default_and_sidecar, one_value_each, schema_rejects_typos,
         lambda: example(native=False), lambda: example(native=True), example_guards,
         subchart_follows_the_sidewatch_chart, kube_prometheus_stack_values, generated_files]


def main():
    helm.disable_logging()
    # A step that breaks (a missing key in an old chart) is one failure;
    # the other steps still run.
    for step in STEPS:
        try:
            step()
        except Exception as e:  # noqa: BLE001
            failures.append(f"{step.__name__}: {type(e).__name__}: {e}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("chart ok: lint, renders in every mode, kubernetes-validate --strict, CRD fields, promtool, "
          "schema, storage, README.md and docs/kubernetes.md current")


if __name__ == "__main__":
    main()
