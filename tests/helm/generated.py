"""Files generated from the chart: helm/sidewatch/README.md's values table
(from the `# --` comments in values.yaml, helm-docs style) and the rendered
manifests in docs/kubernetes.md. check_chart.py compares them with what is
committed and rewrites them under SIDEWATCH_BLESS=1."""
import json
import re
from pathlib import Path

import yaml

BEGIN = "<!-- BEGIN GENERATED: do not edit; SIDEWATCH_BLESS=1 python3 tests/helm/check_chart.py . -->"
END = "<!-- END GENERATED -->"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):(\s|$)")


def documented_values(text):
    """[(dotted key, description)] in file order: a `# --` comment (and the
    comment lines after it) documents the key on the next line."""
    out, stack, doc = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            doc = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if doc is not None:
                doc.append(stripped[1:].strip())
            continue
        if not stripped:
            doc = None
            continue
        m = KEY.match(line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if doc is not None:
            out.append((".".join(k for _, k in stack), " ".join(doc).strip()))
        doc = None
    return out


def lookup(values, dotted):
    v = values
    for k in dotted.split("."):
        v = v[k]
    return v


def kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "list"
    return "string"


def values_table(chart):
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text)
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for key, doc in documented_values(text):
        v = lookup(values, key)
        default = json.dumps(v, ensure_ascii=False).replace("|", "\\|")
        doc = doc.replace("|", "\\|")
        rows.append(f"| {key} | {kind(v)} | `{default}` | {doc} |")
    return "\n".join(rows) + "\n"


def undocumented(chart):
    """Top-level keys with neither a doc comment nor documented children."""
    text = (chart / "values.yaml").read_text()
    keys = {k for k, _ in documented_values(text)}
    tops = yaml.safe_load(text).keys()
    return [t for t in tops if t not in keys and not any(k.startswith(t + ".") for k in keys)]


def splice(current, blocks):
    """Replaces the text between each `BEGIN … name` and END marker pair."""
    out, rest = [], current
    while BEGIN in rest:
        head, rest = rest.split(BEGIN, 1)
        name, rest = rest.split("\n", 1)
        _, rest = rest.split(END, 1)
        name = name.strip()
        out.append(f"{head}{BEGIN} {name}\n{blocks(name)}{END}")
    return "".join(out) + rest


def readme(chart):
    path = chart / "README.md"
    return path, splice(path.read_text(), lambda name: values_table(chart))


def files(root, render, render_error, lint_report, native_guard):
    import kubernetes_doc

    chart = root / "helm" / "sidewatch"
    return [readme(chart),
            kubernetes_doc.doc(root, render, render_error, lint_report, native_guard, splice)]
