"""The generated blocks of docs/kubernetes.md: example files as they are
and manifests rendered from the chart, so the guide shows what the chart
really produces (check_chart.py renders, validates and compares them)."""
from pathlib import Path

import yaml

KPS_VALUES = "helm/examples/values-kube-prometheus-stack.yaml"


def fence(text, lang="yaml"):
    return f"```{lang}\n{text.rstrip()}\n```\n"


def dump(obj):
    return yaml.safe_dump(obj, sort_keys=False, width=100)


def first(docs, kind, pred=lambda d: True):
    return [d for d in docs if d["kind"] == kind and pred(d)][0]


def helm_lint_output(chart, values):
    """The report as the helm CLI prints it."""
    import helm_python as helm

    report = helm.lint(str(chart), values, strict=True)
    level = {1: "INFO", 2: "WARNING", 3: "ERROR"}
    lines = ["==> Linting helm/sidewatch"]
    for m in report["messages"]:
        lines.append(f"[{level.get(m['severity'], 'UNKNOWN')}] {m['path']}: {m['error'].rstrip()}")
    return "\n".join(lines)


def blocks(root, render, render_error, lint_report, native_guard):
    chart = root / "helm" / "sidewatch"
    example = root / "helm" / "examples" / "app-with-sidewatch"
    kps = yaml.safe_load((root / KPS_VALUES).read_text())
    docs = render(chart, kps, name="sw", namespace="monitoring")
    rule = first(docs, "PrometheusRule")
    groups = rule["spec"]["groups"]
    rule_head = {**rule, "spec": {"groups": [
        {"name": groups[0]["name"], "rules": groups[0]["rules"][:1]}]}}
    board = first(docs, "ConfigMap", lambda d: "grafana_dashboard" in d["metadata"]["labels"])
    board = {**board, "data": {k: "{…the dashboard JSON…}" for k in board["data"]}}
    app = render(example, {}, name="shop", namespace="prod")
    pod = first(app, "Deployment")["spec"]["template"]
    typo = {"config": {"probes": [{"name": "home", "intervall": "10s",
                                   "http": {"url": "http://shop:8080/"}}]}}
    lint_output = helm_lint_output(chart, typo)
    out = {
        "kps-values": fence((root / KPS_VALUES).read_text()),
        "servicemonitor": fence(dump(first(docs, "ServiceMonitor"))),
        "prometheusrule": fence(dump(rule_head)) +
        f"\n({len(groups)} groups, {sum(len(g['rules']) for g in groups)} rules in all.)\n",
        "dashboard": fence(dump(board)),
        "app-values": fence((example / "values.yaml").read_text()),
        "app-template": fence((example / "templates" / "deployment.yaml").read_text()),
        "app-pod": fence(dump(pod)),
        "typo": fence("$ helm lint helm/sidewatch -f typo.yaml\n" + lint_output, "text"),
        "native": fence(native_guard("v1.28.9").split("): ", 1)[-1], "text"),
        "notes": fence(render(chart, kps, name="sw", namespace="monitoring", notes=True), "text"),
    }
    return out


def doc(root, render, render_error, lint_report, native_guard, splice):
    path = root / "docs" / "kubernetes.md"
    generated = blocks(root, render, render_error, lint_report, native_guard)
    return path, splice(path.read_text(), lambda name: generated[name])
