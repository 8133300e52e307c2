#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ from the panel lists below.

    python3 scripts/dashboards.py          # regenerate dashboards/*.json
    python3 scripts/dashboards.py --check  # exit 1 if a file is stale

The JSON files are what Grafana (and the Helm chart) load; this script keeps
their shared parts (datasource variable, template variables, units, grid
layout) identical. Edit the panels here, not in the JSON. tests/assets.rs
runs --check, checks the structure, and runs every query against a real
Prometheus scraping a real sidewatch.
"""
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "dashboards"

# Every query selects on these, so the namespace and pod pickers apply to
# all panels. Prometheus Operator adds `namespace` and `pod` target labels.
SEL = 'namespace=~"$namespace", pod=~"$pod"'
PROBE = SEL + ', probe=~"$probe"'
PROC = SEL + ', process=~"$process"'
CHECK = SEL + ', check=~"$check"'
RI = "$__rate_interval"

# The seeds' thresholds (alerts/thresholds.yml holds the same numbers).
P95 = 0.05  # K2 API p95 < 50 ms
P99 = 0.1  # K2 API p99 < 100 ms
ERR_WARN, ERR_CRIT = 0.01, 0.05  # error rate < 1%; > 5% is poor (ACIS)
GROWTH = 10e6 / 60  # memory growth < 10 MB/min (K2), bytes/s
MEM_WARN, MEM_CRIT = 0.8, 0.9  # MilkBot
CPU_WARN, CPU_CRIT = 0.8, 0.9  # K2, MilkBot
DISK_WARN, DISK_CRIT = 0.85, 0.95
FDS = 0.8
TLS_WARN, TLS_CRIT = 14 * 86400, 3 * 86400
CHECK_AGE = 26 * 3600
RECOVERY = 300  # Trading agent: recovery < 300 s after a burst


def steps(*pairs, base="green"):
    """Threshold steps: base colour, then (value, colour) upwards."""
    return {"mode": "absolute", "steps": [{"color": base, "value": None}]
            + [{"color": c, "value": v} for v, c in pairs]}


def target(expr, legend="", instant=False, ref="A"):
    t = {"datasource": {"type": "prometheus", "uid": "${datasource}"},
         "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t.update(instant=True, range=False, format="table")
    return t


def panel(kind, title, desc, unit, targets, w=12, h=8, thresholds=None,
          stack=False, mappings=None, lines=False, options=None, minv=None):
    """One panel. `lines` draws the thresholds as lines on a time series."""
    defaults = {"unit": unit, "thresholds": thresholds or steps()}
    if mappings:
        defaults["mappings"] = mappings
    if minv is not None:
        defaults["min"] = minv
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
            "showPoints": "never", "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line+area" if lines else "off"},
        }
    refs = "ABCDEFGH"
    p = {"type": kind, "title": title, "description": desc,
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "fieldConfig": {"defaults": defaults, "overrides": []},
         "targets": [dict(t, refId=refs[i]) for i, t in enumerate(targets)],
         "_w": w, "_h": h}
    p["options"] = options or default_options(kind)
    return p


def default_options(kind):
    if kind == "timeseries":
        return {"legend": {"displayMode": "table", "placement": "bottom",
                           "calcs": ["lastNotNull", "max"], "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"}}
    if kind in ("stat", "bargauge"):
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
                "orientation": "horizontal"}
    if kind == "state-timeline":
        return {"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}}
    if kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    return {}


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_w": 24, "_h": 1}


def latest(metric, sel, by, legend):
    """The highest current value of a gauge family, grouped by `by`."""
    return target(f"max by ({by}) ({metric}{{{sel}}})", legend)


def per_second(metric, sel, by, legend, how="sum"):
    """The rate of a counter family, grouped by `by`."""
    return target(f"{how} by ({by}) (rate({metric}{{{sel}}}[{RI}]))", legend)


def per_interval(metric, sel, by, legend, how="sum"):
    """The increase of a counter family over the rate interval, grouped by `by`."""
    return target(f"{how} by ({by}) (increase({metric}{{{sel}}}[{RI}]))", legend)


def hq(q, metric, sel, by):
    """histogram_quantile of a histogram family, grouped by `by`."""
    return (f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({metric}_bucket{{{sel}}}[{RI}])))")


def quantiles(metric, sel, by):
    """p50/p95/p99 targets of a histogram, grouped by `by`."""
    first = by.split(",")[0].strip()
    return [target(hq(q, metric, sel, by), "p%d {{%s}}" % (round(q * 100), first))
            for q in (0.5, 0.95, 0.99)]


UP_DOWN = [{"type": "value", "options": {
    "0": {"text": "fail", "color": "red", "index": 0},
    "1": {"text": "pass", "color": "green", "index": 1}}}]


def layout(panels):
    """Assigns gridPos left to right, top to bottom, and ids."""
    x = y = rowh = 0
    for i, p in enumerate(panels, start=1):
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > 24 or p["type"] == "row":
            x, y = 0, y + rowh
            rowh = 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        p["id"] = i
        x += w
        rowh = max(rowh, h)
        if p["type"] == "row":
            x, y, rowh = 0, y + h, 0
    return panels


def query_var(name, label, query, multi=True):
    return {"type": "query", "name": name, "label": label,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": f"{name}-var"},
            "definition": query, "refresh": 2, "sort": 1,
            "includeAll": multi, "multi": multi, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [], "hide": 0}


def variables(extra):
    ds = {"type": "datasource", "name": "datasource", "label": "Data source",
          "query": "prometheus", "current": {}, "options": [], "refresh": 1,
          "regex": "", "hide": 0}
    base = [ds,
            query_var("namespace", "Namespace", "label_values(sidewatch_build_info, namespace)"),
            query_var("pod", "Pod", 'label_values(sidewatch_build_info{namespace=~"$namespace"}, pod)')]
    return base + extra


def dashboard(uid, title, desc, panels, extra_vars, tags):
    return {
        "uid": uid, "title": title, "description": desc,
        "tags": ["sidewatch"] + tags, "editable": True, "graphTooltip": 1,
        "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "timezone": "",
        "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": ["sidewatch"], "asDropdown": True,
                   "title": "sidewatch", "includeVars": True, "keepTime": True}],
        "templating": {"list": variables(extra_vars)},
        "panels": layout(panels),
    }


def probes():
    runs = f"sidewatch_probe_runs_total{{{PROBE}"
    phase = "sidewatch_probe_phase_duration_seconds"
    panels = [
        row("Availability"),
        panel("timeseries", "Success ratio per probe",
              "Share of runs that succeeded, per probe. The line is the 99% objective of the burn-rate alerts (error rate < 1%).",
              "percentunit",
              [target(f'sum by (probe) (rate({runs}, result="success"}}[{RI}])) / sum by (probe) (rate({runs}}}[{RI}]))', "{{probe}}")],
              thresholds=steps((0.99, "green"), base="red"), lines=True),
        panel("state-timeline", "Last result",
              "sidewatch_probe_success per probe: green when the last run succeeded, red when it failed.",
              "none", [latest("sidewatch_probe_success", PROBE, "probe", "{{probe}}")],
              mappings=UP_DOWN, thresholds=steps((1, "green"), base="red")),
        panel("timeseries", "Error ratio over the SLO windows",
              "Failed runs / all runs over 5m and 1h (recording rules in alerts/recording.yml). Lines: 1% warning, 5% critical.",
              "percentunit",
              [latest("sidewatch_probe:error_ratio:rate5m", PROBE, "probe", "5m {{probe}}"),
               latest("sidewatch_probe:error_ratio:rate1h", PROBE, "probe", "1h {{probe}}")],
              thresholds=steps((ERR_WARN, "orange"), (ERR_CRIT, "red")), lines=True, minv=0),
        panel("timeseries", "Failures by reason",
              "Failed runs per second by probe and bounded reason (timeout, refused, tls, status, assertion, lost, ...). The raw error is in the sidewatch log.",
              "ops", [per_second("sidewatch_probe_failures_total", PROBE, "probe, reason", "{{probe}} {{reason}}")],
              stack=True),
        row("Latency"),
        panel("timeseries", "Latency percentiles",
              "p50, p95 and p99 of whole probe runs from the histogram. Lines: K2's p95 < 50 ms and p99 < 100 ms.",
              "s", quantiles("sidewatch_probe_duration_seconds", PROBE, "probe"),
              thresholds=steps((P95, "orange"), (P99, "red")), lines=True),
        panel("timeseries", "Phase breakdown (mean)",
              "Mean time per phase: dns, connect, tls, first_byte, transfer (HTTP), query (PostgreSQL), produce and end_to_end (Kafka). Stacked; pick one probe to read its total.",
              "s", [target(f"sum by (probe, phase) (rate({phase}_sum{{{PROBE}}}[{RI}])) / sum by (probe, phase) (rate({phase}_count{{{PROBE}}}[{RI}]))", "{{probe}} {{phase}}")],
              stack=True),
        panel("stat", "TLS certificate expiry",
              "Time until the leaf certificate each https probe was last shown expires. Orange under 14 days, red under 3 days (the alerts' thresholds).",
              "s", [target(f"min by (probe) (sidewatch_probe_tls_cert_expiry_timestamp_seconds{{{PROBE}}}) - time()", "{{probe}}")],
              thresholds=steps((TLS_CRIT, "orange"), (TLS_WARN, "green"), base="red"), w=12, h=6),
        panel("stat", "HTTP status code",
              "Status of the last HTTP response per probe (after redirects).",
              "none", [latest("sidewatch_probe_http_status_code", PROBE, "probe", "{{probe}}")],
              thresholds=steps((300, "orange"), (400, "red")), w=12, h=6),
        row("Kafka"),
        panel("timeseries", "Kafka end-to-end latency",
              "Produce call to message consumed back (end_to_end) and to broker acknowledgement (produce), p95 and p99.",
              "s",
              [target(hq(0.95, phase, PROBE + ', kind="kafka"', "probe, phase"), "p95 {{probe}} {{phase}}"),
               target(hq(0.99, phase, PROBE + ', kind="kafka"', "probe, phase"), "p99 {{probe}} {{phase}}")],
              thresholds=steps((P95, "orange"), (P99, "red")), lines=True, w=8),
        panel("timeseries", "Kafka messages lost, duplicated, out of order",
              "Probe messages the broker acknowledged but that were not consumed back in time (lost), consumed twice, or consumed out of order, per interval. Any loss fires SidewatchKafkaMessagesLost.",
              "short",
              [per_interval("sidewatch_kafka_messages_lost_total", PROBE, "probe", "lost {{probe}}"),
               per_interval("sidewatch_kafka_messages_duplicated_total", PROBE, "probe", "duplicated {{probe}}"),
               per_interval("sidewatch_kafka_messages_out_of_order_total", PROBE, "probe", "out of order {{probe}}")],
              thresholds=steps((1, "red")), lines=True, w=8, minv=0),
        panel("timeseries", "Kafka consumer lag",
              "High watermark minus the probe consumer's next offset, on the partition just probed.",
              "short", [latest("sidewatch_kafka_consumer_lag", PROBE, "probe, partition", "{{probe}} p{{partition}}")],
              w=8),
        row("PostgreSQL"),
        panel("timeseries", "PostgreSQL value queries",
              "Numeric columns returned by the PostgreSQL probes' queries (values.columns). A column named connections_used_ratio feeds the 'DB connections > 80% of pool' alert; the line is that 80%.",
              "none", [latest("sidewatch_query_value", PROBE, "probe, column, row", "{{probe}} {{column}} {{row}}")],
              thresholds=steps((0.8, "red")), lines=True),
        panel("timeseries", "PostgreSQL connect and query latency",
              "p95 of the connect phase (TCP, startup, TLS, auth) and the query phase of the PostgreSQL probes.",
              "s", [target(hq(0.95, phase, PROBE + ', kind="postgres"', "probe, phase"), "p95 {{probe}} {{phase}}")],
              thresholds=steps((P95, "orange"), (P99, "red")), lines=True),
    ]
    extra = [query_var("probe", "Probe", 'label_values(sidewatch_probe_runs_total{namespace=~"$namespace", pod=~"$pod"}, probe)')]
    return dashboard("sidewatch-probes", "sidewatch / Probes",
                     "Synthetic probes: success, latency percentiles and phases, failure reasons, TLS expiry, Kafka round trips and PostgreSQL values.",
                     panels, extra, ["probes"])


def resources():
    cpu = "sidewatch_process_cpu_seconds_total"
    panels = [
        row("Service processes"),
        panel("timeseries", "Resident memory (RSS)",
              "RSS per process group (summed over its processes). K2's targets: API < 1 GB, ingestion < 2 GB, query < 4 GB.",
              "bytes", [latest("sidewatch_process_resident_memory_bytes", PROC, "process", "{{process}}")], w=8),
        panel("timeseries", "RSS growth (lower envelope, 1h)",
              "Slope over the last hour of each group's 10-minute RSS minima (what SidewatchProcessMemoryGrowing alerts on), and the slope the last leak or soak check measured. Line: K2's 10 MB/min.",
              "Bps",
              [target(f"max by (process) (deriv(sidewatch_process:resident_memory_bytes:min10m{{{PROC}}}[1h]))", "live {{process}}"),
               latest("sidewatch_leak_rss_slope_bytes_per_second", PROC, "process", "last check {{process}}")],
              thresholds=steps((GROWTH, "red")), lines=True, w=8),
        panel("timeseries", "CPU",
              "CPU cores used per process group, user + system.",
              "short", [per_second(cpu, PROC, "process", "{{process}}")], w=8),
        panel("timeseries", "File descriptors against their limit",
              "Open fds (sum over the group) and the lowest RLIMIT_NOFILE among its processes.",
              "short",
              [latest("sidewatch_process_open_fds", PROC, "process", "open {{process}}"),
               latest("sidewatch_process_max_fds", PROC, "process", "limit {{process}}")], w=8),
        panel("timeseries", "File descriptor use",
              "Highest open-fds / limit ratio among a group's processes. Line: the 80% alert.",
              "percentunit", [latest("sidewatch_process_fd_usage_ratio", PROC, "process", "{{process}}")],
              thresholds=steps((FDS, "red")), lines=True, w=8, minv=0),
        panel("timeseries", "Threads and processes",
              "Threads and matched processes per group.",
              "short",
              [latest("sidewatch_process_threads", PROC, "process", "threads {{process}}"),
               latest("sidewatch_process_num_procs", PROC, "process", "processes {{process}}")], w=8),
        panel("timeseries", "Storage IO",
              "Bytes read from and written to storage per second (/proc/PID/io).",
              "Bps",
              [per_second("sidewatch_process_io_read_bytes_total", PROC, "process", "read {{process}}"),
               per_second("sidewatch_process_io_write_bytes_total", PROC, "process", "write {{process}}")]),
        panel("timeseries", "Context switches",
              "Voluntary (waiting) and involuntary (preempted) context switches per second; involuntary ones rise when the service is CPU-starved.",
              "ops", [per_second("sidewatch_process_context_switches_total", PROC, "process, mode", "{{process}} {{mode}}")]),
        row("Container (cgroup)"),
        panel("timeseries", "Container memory against its limit",
              "Memory charged to the cgroup and its limit (+Inf, so not drawn, when unlimited).",
              "bytes",
              [latest("sidewatch_cgroup_memory_usage_bytes", SEL, "pod", "usage {{pod}}"),
               latest("sidewatch_cgroup_memory_limit_bytes", SEL, "pod", "limit {{pod}}")], w=8),
        panel("timeseries", "Container memory use",
              "Usage / limit (0 when unlimited). Lines: MilkBot's 80% warning and 90% critical.",
              "percentunit", [target(f"max by (pod) (sidewatch_cgroup_memory_usage_bytes{{{SEL}}} / sidewatch_cgroup_memory_limit_bytes{{{SEL}}})", "{{pod}}")],
              thresholds=steps((MEM_WARN, "orange"), (MEM_CRIT, "red")), lines=True, w=8, minv=0),
        panel("timeseries", "Container CPU and throttling",
              "CPU cores used, the CPU quota in cores (+Inf, so not drawn, when unlimited), and the time spent throttled per second.",
              "short",
              [per_second("sidewatch_cgroup_cpu_usage_seconds_total", SEL, "pod", "used {{pod}}", how="max"),
               latest("sidewatch_cgroup_cpu_limit_cores", SEL, "pod", "limit {{pod}}"),
               per_second("sidewatch_cgroup_cpu_throttled_seconds_total", SEL, "pod", "throttled {{pod}}", how="max")], w=8),
        panel("timeseries", "Throttled periods and OOM kills",
              "Share of CFS periods in which the cgroup was throttled (empty without a CPU quota), and processes killed by the OOM killer per interval.",
              "short",
              [target(f"max by (pod) (rate(sidewatch_cgroup_cpu_throttled_periods_total{{{SEL}}}[{RI}]) / rate(sidewatch_cgroup_cpu_periods_total{{{SEL}}}[{RI}]))", "throttled share {{pod}}"),
               per_interval("sidewatch_cgroup_oom_kills_total", SEL, "pod", "OOM kills {{pod}}", how="max")], w=24),
        row("Host"),
        panel("timeseries", "Host CPU",
              "Share of CPU time not idle or in iowait. Lines: 80% warning, 90% critical (K2, MilkBot).",
              "percentunit", [latest("sidewatch_host_cpu_utilization_ratio", SEL, "pod", "{{pod}}")],
              thresholds=steps((CPU_WARN, "orange"), (CPU_CRIT, "red")), lines=True, w=8, minv=0),
        panel("timeseries", "Host memory",
              "Memory in use (MemTotal - MemAvailable), total, and swap in use.",
              "bytes",
              [latest("sidewatch_host_memory_used_bytes", SEL, "pod", "used {{pod}}"),
               latest("sidewatch_host_memory_total_bytes", SEL, "pod", "total {{pod}}"),
               latest("sidewatch_host_swap_used_bytes", SEL, "pod", "swap used {{pod}}")], w=8),
        panel("timeseries", "Load average",
              "1-minute load average against the number of CPUs.",
              "short",
              [latest("sidewatch_host_load1", SEL, "pod", "load1 {{pod}}"),
               latest("sidewatch_host_cpus", SEL, "pod", "cpus {{pod}}")], w=8),
        panel("timeseries", "Filesystem use",
              "1 - available / size per configured mount. Lines: 85% warning, 95% critical.",
              "percentunit", [target(f"max by (mountpoint) (1 - sidewatch_host_filesystem_avail_bytes{{{SEL}}} / sidewatch_host_filesystem_size_bytes{{{SEL}}})", "{{mountpoint}}")],
              thresholds=steps((DISK_WARN, "orange"), (DISK_CRIT, "red")), lines=True, w=8, minv=0),
        panel("timeseries", "Disk IO",
              "Bytes read and written per second per block device.",
              "Bps",
              [per_second("sidewatch_host_disk_read_bytes_total", SEL, "device", "read {{device}}"),
               per_second("sidewatch_host_disk_written_bytes_total", SEL, "device", "written {{device}}")], w=8),
        panel("timeseries", "Network",
              "Bytes received and sent per second per interface.",
              "Bps",
              [per_second("sidewatch_host_network_receive_bytes_total", SEL, "interface", "rx {{interface}}"),
               per_second("sidewatch_host_network_transmit_bytes_total", SEL, "interface", "tx {{interface}}")], w=8),
    ]
    extra = [query_var("process", "Process group", 'label_values(sidewatch_process_up{namespace=~"$namespace", pod=~"$pod"}, process)')]
    return dashboard("sidewatch-resources", "sidewatch / Service resources",
                     "The service's processes (RSS, CPU, fds, threads, IO), the container's cgroup (memory and CPU against limits, throttling), the host, and the RSS growth slope.",
                     panels, extra, ["resources"])


def checks():
    req = f"sidewatch_load_requests_total{{{CHECK}"
    lat = "sidewatch_load_latency_seconds"
    panels = [
        row("Verdicts"),
        panel("stat", "Last verdict",
              "Whether the last run of each check passed: every threshold and finding held and no metric regressed.",
              "none", [latest("sidewatch_check_last_passed", CHECK, "check", "{{check}}")],
              mappings=UP_DOWN, thresholds=steps((1, "green"), base="red"), w=8, h=6),
        panel("stat", "Since the last run",
              "Time since each check's last run ended. Red past 26 h: a nightly check missed its slot (SidewatchCheckNotRun).",
              "s", [target(f"time() - max by (check) (sidewatch_check_last_run_timestamp_seconds{{{CHECK}}})", "{{check}}")],
              thresholds=steps((CHECK_AGE, "red")), w=8, h=6),
        panel("stat", "Last run took",
              "Wall time of each check's last run.",
              "s", [latest("sidewatch_check_last_duration_seconds", CHECK, "check", "{{check}}")],
              thresholds=steps(), w=8, h=6),
        panel("state-timeline", "Verdict history",
              "Pass (green) or fail (red) of the last run over time; each change marks a run that ended differently from the one before.",
              "none", [latest("sidewatch_check_last_passed", CHECK, "check", "{{check}}")],
              mappings=UP_DOWN, thresholds=steps((1, "green"), base="red"), w=12),
        panel("timeseries", "Runs by verdict",
              "Runs that ended per interval, by verdict (pass, fail, aborted), and schedule firings skipped because another check was running.",
              "short",
              [per_interval("sidewatch_check_runs_total", CHECK, "check, verdict", "{{check}} {{verdict}}"),
               per_interval("sidewatch_check_skipped_total", CHECK, "check", "{{check}} skipped")],
              stack=True, w=12),
        panel("table", "Thresholds of the last run",
              "Each threshold and scenario finding of the last run: 1 held, 0 failed.",
              "none", [target(f"max by (check, threshold) (sidewatch_check_threshold_passed{{{CHECK}}})", "", instant=True)],
              mappings=UP_DOWN, thresholds=steps((1, "green"), base="red"), w=12,
              options={"showHeader": True, "cellHeight": "sm",
                       "sortBy": [{"displayName": "Value", "desc": False}]}),
        panel("table", "Regressions per metric",
              "1 where the last run was worse than the accepted baseline beyond tolerance and significantly (latency_p95, throughput, memory_peak, error_rate); absent until a baseline exists.",
              "none", [target(f"max by (check, metric) (sidewatch_check_regressions{{{CHECK}}})", "", instant=True)],
              mappings=[{"type": "value", "options": {
                  "0": {"text": "ok", "color": "green", "index": 0},
                  "1": {"text": "regressed", "color": "red", "index": 1}}}],
              thresholds=steps((1, "red")), w=12),
        panel("stat", "Spike and breakpoint recovery",
              "Time from the end of a spike (or the breakpoint) until p95 and errors were back to normal. Red past 300 s (the trading agent's recovery target).",
              "s", [latest("sidewatch_check_recovery_seconds", CHECK, "check", "{{check}}")],
              thresholds=steps((RECOVERY, "red")), w=12, h=6),
        panel("stat", "Max sustainable rate",
              "Breakpoint checks: the highest step rate that held its whole length without breaking.",
              "reqps", [latest("sidewatch_check_max_sustainable_requests_per_second", CHECK, "check", "{{check}}")],
              w=12, h=6),
        row("Load runs"),
        panel("timeseries", "Rate achieved vs target",
              "Completed requests per second against the scheduled arrival rate (open model) or users (closed model).",
              "reqps",
              [target(f"sum by (check) (rate({req}}}[{RI}]))", "achieved {{check}}"),
               target(f"sum by (check) (sidewatch_load_target_rate{{{CHECK}}})", "target {{check}}")]),
        panel("timeseries", "Dropped and in flight",
              "Requests that could not start on time because max_connections was reached (per second), and requests in flight. Dropped requests mean the load generator, not the service, was the limit.",
              "short",
              [per_second("sidewatch_load_dropped_total", CHECK, "check", "dropped/s {{check}}"),
               target(f"sum by (check) (sidewatch_load_in_flight{{{CHECK}}})", "in flight {{check}}")]),
        panel("timeseries", "Latency percentiles (corrected for coordinated omission)",
              "p50, p95, p99 measured from each request's intended start, so a stalled service cannot hide its queueing. Lines: p95 < 50 ms, p99 < 100 ms (K2).",
              "s", quantiles(lat, CHECK, "check"),
              thresholds=steps((P95, "orange"), (P99, "red")), lines=True),
        panel("timeseries", "Corrected vs service time p95",
              "p95 from the intended start against p95 from the actual send; a gap means requests waited to be sent.",
              "s",
              [target(hq(0.95, lat, CHECK, "check"), "corrected {{check}}"),
               target(hq(0.95, "sidewatch_load_service_time_seconds", CHECK, "check"), "service time {{check}}")],
              thresholds=steps((P95, "red")), lines=True),
        panel("timeseries", "Error ratio",
              "Failed requests / all requests. Lines: 1% (warning) and 5% (critical).",
              "percentunit",
              [target(f'sum by (check) (rate({req}, result="failure"}}[{RI}])) / sum by (check) (rate({req}}}[{RI}]))', "{{check}}")],
              thresholds=steps((ERR_WARN, "orange"), (ERR_CRIT, "red")), lines=True, minv=0),
        panel("timeseries", "Errors by reason",
              "Failed requests per second by mix entry and reason.",
              "reqps",
              [per_second("sidewatch_load_errors_total", CHECK, "check, entry, reason", "{{check}} {{entry}} {{reason}}")],
              stack=True),
    ]
    extra = [query_var("check", "Check", 'label_values({__name__=~"sidewatch_check_last_run_timestamp_seconds|sidewatch_load_active", namespace=~"$namespace", pod=~"$pod"}, check)')]
    return dashboard("sidewatch-checks", "sidewatch / Checks and load runs",
                     "Scheduled checks (verdicts, thresholds, regressions, recovery, breakpoints) and the load engine's rate, drops, corrected latency and errors.",
                     panels, extra, ["checks", "load"])


def render():
    return {
        "sidewatch-probes.json": probes(),
        "sidewatch-resources.json": resources(),
        "sidewatch-checks.json": checks(),
    }


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, board in render().items():
        text = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale dashboards (run python3 scripts/dashboards.py):", ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
