"""The chart as Helm renders it: one test per defect a real install would hit (each failed on
the chart before its fix), and the conventions Helm users expect."""

import json
import os
import re
import subprocess
import tomllib

import pytest
import yaml
from cluster import ALL_ON, HELMS, REPO, gateway_bin, run
from conftest import kind, template

MIB = 1 << 20
SIZE_UNITS = {"": 1, "B": 1, "KiB": 1 << 10, "Ki": 1 << 10, "MiB": MIB, "Mi": MIB, "GiB": 1 << 30, "Gi": 1 << 30,
              "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9}


def size(text):
    number, unit = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]*)", str(text)).groups()
    return float(number) * SIZE_UNITS[unit]


def config_of(docs):
    return tomllib.loads(kind(docs, "ConfigMap", "image-gateway")["data"]["gateway.toml"])


def pod_spec(workload):
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def selects(selector, labels):
    """A label selector (matchLabels and matchExpressions with In) against a pod's labels."""
    return matches(selector.get("matchLabels", {}), labels) and all(
        labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def failed_render(helm_env, *args):
    done = template(helm_env, *args, check=False)
    assert done.returncode != 0, f"the render should have failed: {args}"
    return done.stderr


# -- Memory: uploads and processing jobs held in memory must fit the limit ----------------------

def test_the_default_memory_limit_holds_every_concurrent_upload_and_job(helm_env):
    docs = template(helm_env)
    config = config_of(docs)
    limit = size(kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"])
    uploads = config["upload"]["max_concurrent"] * 2 * size(config["upload"]["max_bytes"])
    processing = config["processing"]
    assert processing["workers"] >= 1, "the chart sizes memory for a known number of workers"
    jobs = processing["workers"] * 12 * (processing["max_input_pixels"] + processing["max_output_pixels"])
    assert processing["memory_budget"] == jobs, "the server admits jobs within what the check reserved"
    assert processing["avif_speed"] == 9, "imgproxy's AVIF_SPEED default"
    cache = config["cache"]
    assert cache["enabled"] is True, "on by default with the s3 backend"
    cached = size(cache["max_bytes"]) + 16 * size(cache["max_object_bytes"])
    needed = uploads + jobs + cached + 96 * MIB
    assert limit >= needed, (f"limit {limit / MIB} MiB < {uploads / MIB} (uploads) + {jobs / MIB} (jobs) "
                             f"+ {cached / MIB} (cache) + 96 MiB")


def test_a_memory_limit_that_cannot_hold_the_uploads_fails_the_render(helm_env):
    err = failed_render(helm_env, "--set", "upload.maxConcurrent=16", "--set", "resources.limits.memory=256Mi")
    # 16 × 2 × 25 MiB + 1 × 12 × 24 MP + (64 + 16 × 1) MiB of cache + 64 MiB of variants + 96 MiB
    # = 1315 MiB.
    assert "resources.limits.memory (256Mi) cannot hold upload.maxConcurrent (16)" in err and "1315Mi" in err, err
    # Raising the limit, or lowering the concurrency, the pixel limits and the caches, makes it render.
    template(helm_env, "--set", "upload.maxConcurrent=16", "--set", "resources.limits.memory=1320Mi")
    template(helm_env, "--set", "upload.maxConcurrent=2", "--set", "processing.maxInputPixels=4000000",
             "--set", "processing.maxOutputPixels=1000000", "--set", "cache.enabled=false",
             "--set-string", "variants.cacheMaxBytes=0", "--set", "resources.limits.memory=256Mi")


def test_a_memory_budget_replaces_the_per_worker_reservation_in_the_check(helm_env):
    # Eight workers at 12 bytes per pixel of 16 + 8 MP would need 2.1 GiB more than one.
    err = failed_render(helm_env, "--set", "processing.workers=8")
    assert "processing.workers (8) jobs of 12 bytes per pixel" in err and "2198Mi)" in err, err
    # Sharing a budget that fits, they render, and the server gets the budget.
    docs = template(helm_env, "--set", "processing.workers=8", "--set", "processing.memoryBudget=256MiB")
    assert config_of(docs)["processing"]["memory_budget"] == 256 * MIB
    err = failed_render(helm_env, "--set", "processing.memoryBudget=1GiB")
    assert "plus the processing jobs' memory budget" in err and "1024Mi)" in err, err
    err = failed_render(helm_env, "--set", "processing.memoryBudget=lots")
    assert "memoryBudget" in err, err


def test_the_hot_object_cache_counts_in_the_memory_limit(helm_env):
    err = failed_render(helm_env, "--set", "cache.maxBytes=512MiB")
    assert "plus the hot-object cache (cache.maxBytes and 16 loads of cache.maxObjectBytes: 528Mi)" in err, err
    # Off (or `auto` on the fs backend), it neither counts nor appears enabled in the config.
    template(helm_env, "--set", "cache.maxBytes=512MiB", "--set", "cache.enabled=false")
    docs = template(helm_env, "--set", "storage.backend=fs", "--set", "storage.fs.existingClaim=images",
                    "--set", "cache.maxBytes=512MiB")
    assert config_of(docs)["cache"]["enabled"] is False


def test_rendered_variants_count_in_the_memory_limit_of_pods_that_process(helm_env):
    err = failed_render(helm_env, "--set", "variants.cacheMaxBytes=512MiB")
    assert "plus rendered variants (variants.cacheMaxBytes: 512Mi)" in err, err
    docs = template(helm_env, "--set", "variants.cacheMaxBytes=512MiB", "--set", "processing.enabled=false")
    assert config_of(docs)["variants"]["cache_max_bytes"] == "512MiB"


def test_variant_settings_reach_the_configuration_and_presets_only_needs_one(helm_env):
    assert config_of(template(helm_env))["variants"]["allow"] == "any"
    docs = template(helm_env, "--set-string", "variants.presets.card=w=400&h=300&fit=cover&format=auto",
                    "--set", "variants.allow=presets")
    variants = config_of(docs)["variants"]
    assert variants["presets"] == {"card": "w=400&h=300&fit=cover&format=auto"}
    assert variants["allow"] == "presets"
    err = failed_render(helm_env, "--set", "variants.allow=presets")
    assert "presets" in err, err
    err = failed_render(helm_env, "--set-string", "variants.presets.a b=w=1")
    assert "a b" in err or "propertyNames" in err or "pattern" in err, err
    assert "sides" not in config_of(template(helm_env))["variants"], "the server's default"
    docs = template(helm_env, "--set", "variants.sides={100,300,600}")
    assert config_of(docs)["variants"]["sides"] == [100, 300, 600]
    assert config_of(template(helm_env))["variants"]["store"] is False
    assert config_of(template(helm_env, "--set", "variants.store=true"))["variants"]["store"] is True


def test_download_only_replicas_leave_processing_out_of_the_memory_check(helm_env):
    tight = ("--set", "resources.limits.memory=256Mi", "--set", "upload.maxConcurrent=1")
    assert "processing.workers (1) jobs" in failed_render(helm_env, *tight)
    docs = template(helm_env, *tight, "--set", "processing.enabled=false")
    assert config_of(docs)["processing"]["enabled"] is False


def test_processing_workers_count_in_the_memory_limit(helm_env):
    err = failed_render(helm_env, "--set", "processing.workers=4")
    assert "processing.workers (4) jobs of 12 bytes per pixel" in err, err
    err = failed_render(helm_env, "--set", "processing.workers=0")
    assert "processing.workers must be set" in err, err
    template(helm_env, "--set", "processing.workers=0", "--set", "resources.limits.memory=null")


# -- Labels: each workload selects only its own pods ----------------------------------------------

@pytest.mark.parametrize("values", [[], ["-f", ALL_ON]])
def test_retention_pods_are_never_counted_as_gateway_pods(helm_env, values):
    docs = template(helm_env, *values)
    retention_pod = pod_spec(kind(docs, "CronJob"))["metadata"]["labels"]
    server_pod = pod_spec(kind(docs, "Deployment", "image-gateway"))["metadata"]["labels"]
    assert retention_pod["app.kubernetes.io/component"] == "retention"
    assert server_pod["app.kubernetes.io/component"] == "server"
    selectors = {
        "Deployment": kind(docs, "Deployment", "image-gateway")["spec"]["selector"],
        "Service": {"matchLabels": kind(docs, "Service", "image-gateway")["spec"]["selector"]},
        "metrics Service": {"matchLabels": kind(docs, "Service", "image-gateway-metrics")["spec"]["selector"]},
        "PodDisruptionBudget": kind(docs, "PodDisruptionBudget", "image-gateway")["spec"]["selector"],
        "NetworkPolicy": kind(docs, "NetworkPolicy")["spec"]["podSelector"],
    }
    if values:
        # The ServiceMonitor selects a Service (the metrics one), whose selector picks the pods.
        monitor = kind(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
        assert matches(monitor, kind(docs, "Service", "image-gateway-metrics")["metadata"]["labels"])
        assert kind(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    for owner, selector in selectors.items():
        assert selects(selector, server_pod), f"{owner} must select the gateway's pods"
        assert not selects(selector, retention_pod), f"{owner} selects the retention Job's pods: {selector}"
    cronjob = kind(docs, "CronJob")["metadata"]
    assert "app.kubernetes.io/component" not in cronjob.get("annotations", {}), "a label, not an annotation"
    assert cronjob["labels"]["app.kubernetes.io/component"] == "retention"


def test_the_pdb_lets_unhealthy_pods_be_evicted(helm_env):
    pdb = kind(template(helm_env), "PodDisruptionBudget")["spec"]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    pdb = kind(template(helm_env, "--set", "podDisruptionBudget.minAvailable=1"), "PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 1 and "maxUnavailable" not in pdb


def test_a_release_of_one_pod_has_no_budget_to_block_drains(helm_env):
    """minAvailable: 1 over one pod (replicaCount 1, or the fs backend) refused every eviction:
    `kubectl drain` of its node hung."""
    one_pod = [("--set", "replicaCount=1"),
               ("--set", "storage.backend=fs", "--set", "storage.fs.existingClaim=images"),
               ("--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=1",
                "--set", "autoscaling.maxReplicas=1")]
    for args in one_pod:
        docs = template(helm_env, *args)
        assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"], args
    scaled = template(helm_env, "--set", "replicaCount=1", "--set", "autoscaling.enabled=true",
                      "--set", "autoscaling.minReplicas=1", "--set", "autoscaling.maxReplicas=4")
    assert kind(scaled, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_the_retention_job_ends_and_outlives_its_alert(helm_env):
    """A run could hang forever (Forbid, no deadline) and keep every later run from starting; the
    server's podAnnotations (a mesh's sidecar injection) reached the Job, whose sidecar never
    exits; the Job was deleted after 24 h, before its 48 h alert could send anyone to its logs."""
    docs = template(helm_env, "-f", ALL_ON, "--set-json", 'podAnnotations={"sidecar.istio.io/inject":"true"}',
                    "--set-json", 'retention.podAnnotations={"team":"images"}')
    job = kind(docs, "CronJob")["spec"]["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] == 3600
    assert job["template"]["metadata"]["annotations"] == {"team": "images"}
    assert kind(docs, "Deployment", "image-gateway")["spec"]["template"]["metadata"]["annotations"][
        "sidecar.istio.io/inject"] == "true"
    stale_after = 48 * 3600  # metrics.prometheusRule.retentionStaleAfter's default
    assert job["ttlSecondsAfterFinished"] > stale_after


# -- Alerts: this release only, guarded, with runbooks ---------------------------------------------

GATEWAY_METRICS = ("http_requests_total", "http_request_duration_seconds_bucket", "storage_errors_total",
                   "storage_reachable", "k8s_secret_events_total", "up")


def rules_of(docs):
    return {r["alert"]: r for g in kind(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}


def test_every_alert_is_scoped_to_this_release(helm_env):
    # Release "ig" in namespace "images"; with processingPods, see the processing pods' test.
    docs = template(helm_env, "-f", ALL_ON, "--set", "processingPods.enabled=false")
    rules = rules_of(docs)
    for name, rule in rules.items():
        expr = rule["expr"]
        for metric in GATEWAY_METRICS:
            for selector in re.findall(rf"\b{metric}\{{([^}}]*)\}}", expr):
                assert 'namespace="images"' in selector and 'job="ig-image-gateway-metrics"' in selector, \
                    f"{name}: {metric}{{{selector}}} would match other applications"
            assert not re.search(rf"\b{metric}\b(?!\{{)", expr), f"{name}: bare {metric} matches everything"
    assert 'deployment="ig-image-gateway"' in rules["ImageGatewayNoReadyReplicas"]["expr"]
    assert 'namespace="images",cronjob="ig-image-gateway-retention"' in rules["ImageGatewayRetentionFailed"]["expr"]
    # A selector of one's own (e.g. a plain scrape config) replaces namespace and job.
    custom = rules_of(template(helm_env, "-f", ALL_ON, "--set", "processingPods.enabled=false", "--set-string",
                               'metrics.prometheusRule.selector=service="gw"'))
    assert 'http_requests_total{service="gw",status=~"5..",status!="503"}' in custom["ImageGatewayHigh5xxRatio"]["expr"]


def test_no_alert_fires_for_ever_or_for_deliberate_503s(helm_env):
    """With the rules on and the ServiceMonitor off, no target has the rules' job: TargetAbsent
    fired for ever. High5xxRatio counted the 503s of backpressure and storage outages, which
    have their own alerts (promtool's test has a half-503 job that must not fire)."""
    without_monitor = rules_of(template(helm_env, "--set", "metrics.prometheusRule.enabled=true"))
    assert "ImageGatewayTargetAbsent" not in without_monitor
    assert "ImageGatewayTargetDown" in without_monitor
    assert "ImageGatewayTargetAbsent" in rules_of(template(helm_env, "-f", ALL_ON))
    own_selector = rules_of(template(helm_env, "--set", "metrics.prometheusRule.enabled=true",
                                     "--set-string", 'metrics.prometheusRule.selector=service="gw"'))
    assert "ImageGatewayTargetAbsent" in own_selector, "a selector says how the targets are found"
    assert 'status!="503"' in without_monitor["ImageGatewayHigh5xxRatio"]["expr"]


def test_alerts_have_guards_targets_and_runbooks(helm_env):
    rules = rules_of(template(helm_env, "-f", ALL_ON))
    ratio = rules["ImageGatewayHigh5xxRatio"]["expr"]
    assert re.search(r"and sum by \(namespace, job\) \(rate\(http_requests_total\{[^}]*\}\[5m\]\)\) > 0\.1", ratio), \
        "the 5xx ratio needs a minimum-traffic guard"
    assert rules["ImageGatewayTargetDown"]["expr"].startswith("up{")
    assert rules["ImageGatewayTargetAbsent"]["expr"].startswith("absent(up{")
    assert "kube_deployment_status_replicas_available" in rules["ImageGatewayNoReadyReplicas"]["expr"]
    retention = rules["ImageGatewayRetentionFailed"]["expr"]
    assert "kube_cronjob_status_last_successful_time" in retention and "> 172800" in retention
    assert "kube_job_status_failed" not in retention
    runbook = (REPO / "docs" / "runbook.md").read_text()
    for name, rule in rules.items():
        url = rule["annotations"]["runbook_url"]
        assert url == f"https://github.com/image-gateway/image-gateway/blob/main/docs/runbook.md#{name.lower()}"
        assert f"\n## {name}\n" in runbook, f"docs/runbook.md has no section for {name}"
        assert re.search(rf"## {name}\n\n\*\*Meaning\.\*\*.*?\*\*Checks\.\*\*.*?\*\*Fixes\.\*\*", runbook, re.S), name
    stale = rules_of(template(helm_env, "-f", ALL_ON, "--set", "metrics.prometheusRule.retentionStaleAfter=3d"))
    assert "> 259200" in stale["ImageGatewayRetentionFailed"]["expr"]


def test_the_rendered_rules_pass_promtool(helm_env, tmp_path):
    rule = kind(template(helm_env, "-f", ALL_ON), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    run("promtool", "check", "rules", tmp_path / "rules.yaml")


# -- Probes --------------------------------------------------------------------------------------

def test_readiness_is_not_flipped_by_one_failed_probe(helm_env):
    container = kind(template(helm_env), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["failureThreshold"] >= 2
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    tuned = kind(template(helm_env, "--set", "readinessProbe.periodSeconds=10", "--set",
                          "livenessProbe.failureThreshold=6"), "Deployment")
    container = tuned["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["periodSeconds"] == 10
    assert container["livenessProbe"]["failureThreshold"] == 6


# -- Values users expect -------------------------------------------------------------------------

def test_the_chart_can_be_a_dependency_global_values_are_accepted(helm_env):
    run(HELMS["helm3"], "lint", "--strict", REPO / "charts" / "image-gateway", "--set", "global.imageRegistry=mirror.example",
        "--set", "global.storageClass=fast", env=helm_env)


def test_global_registry_and_pull_secrets_reach_every_pod(helm_env):
    """global.imageRegistry and global.imagePullSecrets were accepted and ignored; a plain string
    in imagePullSecrets rendered an invalid pod (`- regcred` where `- name: regcred` belongs)."""
    docs = template(helm_env, "--set", "global.imageRegistry=mirror.example",
                    "--set-json", 'global.imagePullSecrets=["shared"]',
                    "--set-json", 'imagePullSecrets=["regcred", {"name": "other"}, "shared"]')
    for workload in ("Deployment", "CronJob"):
        spec = pod_spec(kind(docs, workload))["spec"]
        assert spec["imagePullSecrets"] == [{"name": "shared"}, {"name": "regcred"}, {"name": "other"}], workload
        assert spec["containers"][0]["image"].startswith("mirror.example/"), spec["containers"][0]["image"]
    own = template(helm_env, "--set", "global.imageRegistry=mirror.example", "--set", "image.registry=mine.example")
    assert pod_spec(kind(own, "Deployment"))["spec"]["containers"][0]["image"].startswith("mine.example/")
    assert "imagePullSecrets" not in pod_spec(kind(template(helm_env), "Deployment"))["spec"]


def test_conventional_values_reach_the_objects(helm_env, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("""
commonLabels: {team: media}
podLabels: {sidecar.istio.io/inject: "false"}
podAnnotations: {example.com/scrape: "yes"}
priorityClassName: high
image: {registry: mirror.example, digest: "sha256:%s"}
podSecurityContext: {runAsNonRoot: true, runAsUser: null, runAsGroup: null, fsGroup: null, seccompProfile: {type: RuntimeDefault}}
containerSecurityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: {drop: [ALL]}}
extraVolumes: [{name: ca, configMap: {name: minio-ca}}]
extraVolumeMounts: [{name: ca, mountPath: /etc/ssl/minio, readOnly: true}]
extraEnvFrom: [{secretRef: {name: more-env}}]
service: {annotations: {cloud.example.com/internal: "true"}}
strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
revisionHistoryLimit: 2
networkPolicy:
  monitoringPodSelector: {app.kubernetes.io/name: prometheus}
  egress: {enabled: true, kubernetesApiCidrs: [10.0.0.1/32], storage: {to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: minio}}}], ports: [9000]}}
metrics:
  serviceMonitor: {enabled: true, scrapeTimeout: 10s, relabelings: [{action: labeldrop, regex: pod_template_hash}]}
""" % ("a" * 64))
    docs = template(helm_env, "-f", values)
    for doc in docs:
        assert doc["metadata"]["labels"]["team"] == "media", f"{doc['kind']} lacks commonLabels"
    deployment = kind(docs, "Deployment")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert pod["metadata"]["annotations"]["example.com/scrape"] == "yes"
    assert pod["spec"]["priorityClassName"] == "high"
    assert container["image"] == "mirror.example/ghcr.io/image-gateway/image-gateway@sha256:" + "a" * 64
    assert "runAsUser" not in pod["spec"]["securityContext"], "OpenShift assigns the uid"
    assert {"name": "ca", "configMap": {"name": "minio-ca"}} in pod["spec"]["volumes"]
    assert {"name": "ca", "mountPath": "/etc/ssl/minio", "readOnly": True} in container["volumeMounts"]
    assert container["envFrom"] == [{"secretRef": {"name": "more-env"}}]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert deployment["spec"]["revisionHistoryLimit"] == 2
    assert kind(docs, "Service", "image-gateway")["metadata"]["annotations"] == {"cloud.example.com/internal": "true"}
    retention = pod_spec(kind(docs, "CronJob"))
    assert retention["spec"]["volumes"][-1]["name"] == "ca" and retention["spec"]["priorityClassName"] == "high"
    policy = kind(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"][1]["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    egress = policy["egress"]
    assert egress[0]["ports"][0] == {"port": 53, "protocol": "UDP"}
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert egress[2]["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "minio"}
    endpoint = kind(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scrapeTimeout"] == "10s" and endpoint["relabelings"][0]["action"] == "labeldrop"


def test_unknown_values_are_still_refused(helm_env):
    done = run(HELMS["helm3"], "lint", "--strict", REPO / "charts" / "image-gateway", "--set", "replicaCont=3",
               env=helm_env, check=False)
    assert done.returncode != 0 and "replicaCont" in done.stdout + done.stderr


def config_keys(table, prefix=""):
    keys = set()
    for key, value in table.items():
        if isinstance(value, dict):
            keys |= config_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_every_gateway_setting_is_a_value_or_documented_for_extra_env(helm_env, tmp_path):
    gateway = str(gateway_bin())
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGE_GATEWAY_")}
    defaults = tomllib.loads(subprocess.run([gateway, "check-config", "--config", str(empty)], env=env,
                                            capture_output=True, text=True, check=True).stdout)
    rendered = config_keys(config_of(template(helm_env, "-f", ALL_ON)))
    rendered |= config_keys(config_of(template(helm_env, "--set", "storage.backend=fs", "--set",
                                                "storage.fs.existingClaim=images", "--set", "http.cacheControl=no-cache")))
    readme = (REPO / "README.md").read_text()
    env_section = readme.split("<!-- extra-env:start -->")[1].split("<!-- extra-env:end -->")[0]
    missing = [k for k in sorted(config_keys(defaults)) if k not in rendered
               and f"IMAGE_GATEWAY_{k.upper().replace('.', '__')}" not in env_section]
    assert not missing, f"settings neither rendered by the chart nor documented for extraEnv: {missing}"


def test_service_links_are_off_and_would_not_stop_the_gateway(helm_env, tmp_path):
    """With the README's release name, Kubernetes gives each container IMAGE_GATEWAY_PORT=tcp://…
    and more for the release's Services; read as settings, they made every pod exit 64."""
    docs = template(helm_env, "-f", ALL_ON, release="image-gateway")
    workloads = [d for d in docs if d["kind"] in ("Deployment", "CronJob")]
    assert len(workloads) == 3, "the server's and the processing pods' Deployments, the retention CronJob"
    for workload in workloads:
        assert pod_spec(workload)["spec"]["enableServiceLinks"] is False, workload["metadata"]["name"]
    # What a pod would see if service links were on: the gateway still starts (check-config
    # loads the configuration as `serve` does).
    links = {}
    for service in (d for d in docs if d["kind"] == "Service"):
        name = service["metadata"]["name"].upper().replace("-", "_")
        for port in service["spec"]["ports"]:
            n = port["port"]
            links |= {f"{name}_SERVICE_HOST": "198.18.0.10", f"{name}_SERVICE_PORT": str(n),
                      f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}": str(n),
                      f"{name}_PORT": f"tcp://198.18.0.10:{n}", f"{name}_PORT_{n}_TCP": f"tcp://198.18.0.10:{n}",
                      f"{name}_PORT_{n}_TCP_PROTO": "tcp", f"{name}_PORT_{n}_TCP_PORT": str(n),
                      f"{name}_PORT_{n}_TCP_ADDR": "198.18.0.10"}
    assert "IMAGE_GATEWAY_PORT" in links, sorted(links)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGE_GATEWAY_")} | links
    run(gateway_bin(), "check-config", "--config", empty, env=env)


class _NoDuplicateKeys(yaml.SafeLoader):
    """A loader that refuses a mapping with a key twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        duplicated = {k for k in keys if keys.count(k) > 1}
        assert not duplicated, f"keys written twice: {duplicated} at {node.start_mark}"
        return super().construct_mapping(node, deep=deep)


def test_common_labels_never_write_a_key_twice(helm_env):
    """commonLabels with a key the chart sets (part-of, component) rendered it twice: kustomize
    and Argo/Flux post-renderers refuse such output."""
    common = '{"app.kubernetes.io/part-of":"shop","app.kubernetes.io/component":"x","team":"images"}'
    done = template(helm_env, "-f", ALL_ON, "--set-json", f"commonLabels={common}", check=False)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.load_all(done.stdout, Loader=_NoDuplicateKeys) if d]
    deployment = kind(docs, "Deployment", "image-gateway")
    labels = deployment["metadata"]["labels"]
    assert labels["team"] == "images" and labels["app.kubernetes.io/part-of"] == "shop"
    assert labels["app.kubernetes.io/component"] == "server", "the chart's component wins: selectors use it"
    assert kind(docs, "CronJob")["metadata"]["labels"]["app.kubernetes.io/component"] == "retention"
    assert kind(docs, "ConfigMap", "image-gateway")["metadata"]["labels"]["team"] == "images"


def test_network_policy_reaches_node_local_dns_and_any_prometheus(helm_env):
    """DNS went only to kube-dns pods (NodeLocal DNSCache, on a link-local address, was cut off:
    no name resolved) and metrics only from a namespace named `monitoring`."""
    policy = kind(template(helm_env, "--set", "networkPolicy.egress.enabled=true"), "NetworkPolicy")["spec"]
    dns = next(rule for rule in policy["egress"] if {"port": 53, "protocol": "UDP"} in rule["ports"])
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in dns["to"]
    assert any(peer.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"} for peer in dns["to"])
    anywhere = kind(template(helm_env, "--set", "networkPolicy.egress.enabled=true",
                             "--set-json", "networkPolicy.egress.dns.to=[]"), "NetworkPolicy")["spec"]
    dns = next(rule for rule in anywhere["egress"] if {"port": 53, "protocol": "UDP"} in rule["ports"])
    assert "to" not in dns, "an empty list allows any destination on port 53"
    peers = [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}, {"ipBlock": {"cidr": "198.18.0.0/24"}}]
    custom = kind(template(helm_env, "--set-json", f"networkPolicy.metricsFrom={json.dumps(peers)}"), "NetworkPolicy")
    metrics = next(rule for rule in custom["spec"]["ingress"] if rule["ports"][0]["port"] == "metrics")
    assert metrics["from"] == peers


def test_metrics_have_their_own_cluster_ip_service(helm_env):
    """The admin port (metrics and the detailed /readyz) was on the API's Service:
    `service.type=LoadBalancer` published it."""
    docs = template(helm_env, "-f", ALL_ON, "--set", "service.type=LoadBalancer")
    api = kind(docs, "Service", "image-gateway")
    assert api["spec"]["type"] == "LoadBalancer"
    assert [p["name"] for p in api["spec"]["ports"]] == ["http"]
    metrics = kind(docs, "Service", "image-gateway-metrics")
    assert metrics["spec"]["type"] == "ClusterIP"
    assert [p["targetPort"] for p in metrics["spec"]["ports"]] == ["metrics"]
    assert matches(kind(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"], metrics["metadata"]["labels"])
    assert not matches(kind(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"], api["metadata"]["labels"])
    assert matches(metrics["spec"]["selector"], pod_spec(kind(docs, "Deployment", "image-gateway"))["metadata"]["labels"])


def test_values_operators_ask_for_reach_the_pods(helm_env):
    docs = template(helm_env, "--set", "minReadySeconds=10", "--set", "automountServiceAccountToken=false",
                    "--set-json", 'lifecycle={"preStop":{"sleep":{"seconds":5}}}',
                    "--set-json", 'initContainers=[{"name":"wait","image":"busybox"}]',
                    "--set-json", 'extraContainers=[{"name":"proxy","image":"envoy"}]',
                    "--set", "retention.timeZone=Europe/Paris", "--set", "retention.suspend=true",
                    "--set-json", 'retention.nodeSelector={"pool":"batch"}')
    deployment = kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["minReadySeconds"] == 10
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert [c["name"] for c in pod["initContainers"]] == ["wait"]
    assert [c["name"] for c in pod["containers"]] == ["gateway", "proxy"]
    cronjob = kind(docs, "CronJob")["spec"]
    assert cronjob["timeZone"] == "Europe/Paris" and cronjob["suspend"] is True
    assert pod_spec(kind(docs, "CronJob"))["spec"]["nodeSelector"] == {"pool": "batch"}
    # Spread across nodes and zones by default.
    keys = [c["topologyKey"] for c in pod_spec(kind(template(helm_env), "Deployment"))["spec"]["topologySpreadConstraints"]]
    assert keys == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]


def test_requests_make_the_hpa_percentages_mean_something(helm_env):
    """64Mi requested against a 768Mi limit and 100m of CPU: a pod at one core read as 1000 %
    of its request, so the HPA jumped to maxReplicas on any load."""
    resources = pod_spec(kind(template(helm_env, "-f", ALL_ON), "Deployment", "image-gateway"))["spec"]["containers"][0][
        "resources"]
    assert size(resources["requests"]["memory"]) == size(resources["limits"]["memory"]), "memory requested as it is limited"
    cpu = resources["requests"]["cpu"]
    assert (float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)) >= 0.5, "at least what one processing worker uses"


def test_the_retention_job_runs_beside_the_pod_that_holds_an_unshared_volume(helm_env):
    """With the fs backend on a ReadWriteOnce claim the job was scheduled anywhere and waited
    for ever to attach a volume that the gateway's pod holds on another node."""
    docs = template(helm_env, "--set", "storage.backend=fs", "--set", "storage.fs.existingClaim=images")
    affinity = pod_spec(kind(docs, "CronJob"))["spec"]["affinity"]["podAffinity"]
    term = affinity["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert matches(term["labelSelector"]["matchLabels"], pod_spec(kind(docs, "Deployment"))["metadata"]["labels"])
    assert "affinity" not in pod_spec(kind(template(helm_env), "CronJob"))["spec"], "S3: anywhere"


# -- The rest of the review ----------------------------------------------------------------------

def test_ingress_path_type_defaults_to_prefix(helm_env, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("ingress: {enabled: true, hosts: [{host: images.example.com, paths: [{path: /}]}]}\n")
    rule = kind(template(helm_env, "-f", values), "Ingress")["spec"]["rules"][0]
    assert rule["http"]["paths"][0]["pathType"] == "Prefix"


def test_termination_grace_covers_the_grace_and_the_drain(helm_env):
    spec = kind(template(helm_env, "--set", "shutdown.grace=10s", "--set", "server.drainTimeout=1m"),
                "Deployment")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 75
    assert kind(template(helm_env), "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 40
    err = failed_render(helm_env, "--set", "terminationGracePeriodSeconds=30", "--set", "server.drainTimeout=60s")
    assert "terminationGracePeriodSeconds (30) must cover shutdown.grace + server.drainTimeout + 5s = 70" in err, err


def test_public_url_comes_from_the_ingress_else_the_service_and_the_notes_warn(helm_env, tmp_path, cluster):
    values = tmp_path / "v.yaml"
    values.write_text("ingress: {enabled: true, hosts: [{host: img.example.org, paths: [{path: /}]}], "
                      "tls: [{secretName: t, hosts: [img.example.org]}]}\n")
    assert config_of(template(helm_env, "-f", values))["public_url"] == "https://img.example.org"
    # Nothing external: the Service's in-cluster URL (it was http://0.0.0.0:8080, the listen address).
    assert config_of(template(helm_env))["public_url"] == "http://ig-image-gateway.images.svc"
    assert config_of(template(helm_env, "--set", "service.port=8080"))["public_url"] == \
        "http://ig-image-gateway.images.svc:8080"
    # An empty or wildcard host names no URL (`http://` and `http://*.example.com` made every pod
    # exit); the first host that names one is taken.
    path = "paths: [{path: /}]"
    service_url = "http://ig-image-gateway.images.svc"
    for hosts, expected in [(f'[{{host: "", {path}}}]', service_url),
                            (f'[{{host: "*.example.com", {path}}}]', service_url),
                            (f'[{{host: "*.example.com", {path}}}, {{host: img.example.com, {path}}}]',
                             "http://img.example.com")]:
        values.write_text(f"ingress: {{enabled: true, hosts: {hosts}}}\n")
        docs = template(helm_env, "-f", values)
        assert config_of(docs).get("public_url") == expected, (hosts, config_of(docs).get("public_url"))
        assert all(r.get("host", "x") for r in kind(docs, "Ingress")["spec"]["rules"]), "no empty host is rendered"
    # NOTES are shown by install (a dry run against the test cluster), not by template.
    install = [HELMS["helm3"], "install", "ig", REPO / "charts" / "image-gateway", "--dry-run=client",
               "--namespace", "images", "--kubeconfig", cluster.kubeconfig]
    notes = run(*install, env=helm_env).stdout
    assert "WARNING: publicUrl is empty" in notes, notes
    notes = run(*install, "--set", "publicUrl=https://i.example", env=helm_env).stdout
    assert "WARNING: publicUrl" not in notes


def test_an_http_route_attaches_to_its_gateway_and_names_the_public_url(helm_env, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("httpRoute: {enabled: true, parentRefs: [{name: public, namespace: gateways, sectionName: https}], "
                      'hostnames: ["*.example.org", img.example.org]}\n')
    docs = template(helm_env, "-f", values)
    route = kind(docs, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways", "sectionName": "https"}]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    service = kind(docs, "Service", "image-gateway")
    assert rule["backendRefs"] == [{"name": service["metadata"]["name"], "port": service["spec"]["ports"][0]["port"]}]
    assert config_of(docs)["public_url"] == "https://img.example.org", "the first host name that is not a wildcard"
    assert config_of(template(helm_env, "-f", values, "--set", "httpRoute.scheme=http"))["public_url"] == \
        "http://img.example.org"
    both = template(helm_env, "-f", values, "--set", "ingress.enabled=true")
    assert config_of(both)["public_url"] == "http://images.example.com", "an Ingress host comes first"
    assert "name at least one Gateway" in failed_render(helm_env, "--set", "httpRoute.enabled=true")
    assert not [d for d in template(helm_env) if d["kind"] == "HTTPRoute"], "off by default"


def test_helm_test_probes_readiness_through_the_service_from_a_restricted_pod(helm_env):
    docs = template(helm_env)
    pod = kind(docs, "Pod", "-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "hook-succeeded" in pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["probe", "http://ig-image-gateway.images.svc/readyz", "--timeout", "30s"]
    assert container["image"] == kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"] and pod["spec"]["securityContext"]["runAsNonRoot"]
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test", "never selected as a gateway pod"
    assert not [d for d in template(helm_env, "--set", "helmTest.enabled=false") if d["kind"] == "Pod"]
    manifests = (REPO / "manifests" / "base" / "image-gateway.yaml").read_text()
    assert "helm.sh/hook" not in manifests, "the plain manifests carry no test pod"


def test_the_fs_backend_runs_one_pod_unless_the_volume_is_shared(helm_env):
    fs = ["--set", "storage.backend=fs", "--set", "storage.fs.existingClaim=images"]
    spec = kind(template(helm_env, *fs), "Deployment")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    err = failed_render(helm_env, *fs, "--set", "autoscaling.enabled=true")
    assert "storage.fs.sharedVolume=true" in err, err
    shared = kind(template(helm_env, *fs, "--set", "storage.fs.sharedVolume=true", "--set", "replicaCount=3"),
                  "Deployment")["spec"]
    assert shared["replicas"] == 3 and "strategy" not in shared


def test_auth_none_does_not_wait_for_an_api_key_secret(helm_env):
    docs = template(helm_env, "--set", "auth.mode=none")
    assert "api_keys_secret" not in config_of(docs)["auth"]
    assert kind(docs, "Role")["rules"][0]["resourceNames"] == ["minio-credentials"]
    docs = template(helm_env)
    assert config_of(docs)["auth"]["api_keys_secret"]["name"] == "image-gateway-api-keys"


def test_ingress_nginx_lets_uploads_through(helm_env, tmp_path):
    docs = template(helm_env, "--set", "ingress.enabled=true")
    assert kind(docs, "Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == str(25 * MIB)
    docs = template(helm_env, "--set", "ingress.enabled=true", "--set", "upload.maxBytes=10MiB")
    assert kind(docs, "Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == str(10 * MIB)
    values = tmp_path / "v.yaml"
    values.write_text('ingress: {enabled: true, annotations: {nginx.ingress.kubernetes.io/proxy-body-size: "50m"}}\n')
    annotations = kind(template(helm_env, "-f", values), "Ingress")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "50m", "the user's choice stands"


def test_s3_credentials_from_the_aws_default_chain(helm_env):
    docs = template(helm_env, "--set", "storage.s3.credentials=default", "--set-string",
                    "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/images")
    s3 = config_of(docs)["storage"]["s3"]
    assert s3["credentials"] == "default" and "secret" not in s3
    assert kind(docs, "Role")["rules"][0]["resourceNames"] == ["image-gateway-api-keys"], "no storage Secret to read"
    sa = kind(docs, "ServiceAccount")["metadata"]["annotations"]
    assert sa["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/images"


def test_shared_rate_limits_reach_redis_with_the_password_from_a_secret(helm_env, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(
        "rateLimit: {requestsPerMinute: 60, backend: redis, redis: {url: 'redis://valkey.cache.svc:6379/2', "
        "existingSecret: valkey, passwordKey: valkey-password}}\n"
        "networkPolicy: {egress: {enabled: true, redis: {to: [{namespaceSelector: {matchLabels: "
        "{kubernetes.io/metadata.name: cache}}}]}}}\n")
    docs = template(helm_env, "-f", values)
    limits = config_of(docs)["rate_limit"]
    assert limits["backend"] == "redis"
    assert limits["redis"] == {"url": "redis://valkey.cache.svc:6379/2", "timeout": "20ms", "connections": 2,
                               "key_prefix": "image-gateway:ratelimit:", "fallback_divisor": 1,
                               "password_secret": {"name": "valkey", "key": "valkey-password"}}
    # Watched like the other Secrets: the Role may read it, by name.
    assert "valkey" in kind(docs, "Role")["rules"][0]["resourceNames"]
    env = pod_spec(kind(docs, "Deployment"))["spec"]["containers"][0]["env"]
    assert not any("REDIS" in e["name"] for e in env), "never in the pod spec"
    egress = kind(docs, "NetworkPolicy")["spec"]["egress"]
    redis = [rule for rule in egress if rule.get("ports") == [{"port": 6379, "protocol": "TCP"}]]
    assert redis and redis[0]["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "cache"}
    # The memory backend (the default) writes no Redis settings, no password and no egress to it.
    docs = template(helm_env, "--set", "networkPolicy.egress.enabled=true", "--set", "rateLimit.redis.existingSecret=valkey")
    assert "redis" not in config_of(docs)["rate_limit"]
    assert "valkey" not in kind(docs, "Role")["rules"][0]["resourceNames"]
    assert all(rule.get("ports") != [{"port": 6379, "protocol": "TCP"}]
               for rule in kind(docs, "NetworkPolicy")["spec"]["egress"])


def test_a_redis_url_is_required_and_never_holds_the_password(helm_env):
    err = failed_render(helm_env, "--set", "rateLimit.backend=redis")
    assert "rateLimit.redis.url is required" in err, err
    err = failed_render(helm_env, "--set", "rateLimit.backend=redis", "--set",
                        "rateLimit.redis.url=redis://:hunter2@redis:6379")
    assert "must not hold credentials" in err, err
    err = failed_render(helm_env, "--set", "rateLimit.backend=redis", "--set", "rateLimit.redis.url=http://redis:6379")
    assert "/rateLimit/redis/url" in err, err


# -- Processing in pods of its own -----------------------------------------------------------

SPLIT = ["--set", "processingPods.enabled=true", "--set", "ingress.enabled=true",
         "--set-json", 'httpRoute={"enabled":true,"parentRefs":[{"name":"public"}],"hostnames":["img.example.org"]}']


def routed(paths, path):
    """The backend a request path reaches: the longest matching prefix (Ingress and HTTPRoute)."""
    best = max((p for p in paths if path.startswith(p)), key=len)
    return paths[best]


def test_processing_pods_take_uploads_and_operations_and_the_serving_pods_only_download(helm_env):
    docs = template(helm_env, *SPLIT)
    server, processing = kind(docs, "Deployment", "image-gateway"), kind(docs, "Deployment", "-processing")
    assert processing["metadata"]["name"] == "ig-image-gateway-processing"

    def env(deployment):
        return {e["name"]: e.get("value") for e in pod_spec(deployment)["spec"]["containers"][0]["env"]}
    assert env(server)["IMAGE_GATEWAY_PROCESSING__ENABLED"] == "false"
    assert env(processing)["IMAGE_GATEWAY_PROCESSING__ENABLED"] == "true"
    assert config_of(docs)["processing"]["enabled"] is True, "one ConfigMap; the role is the variable"
    annotations = [pod_spec(d)["metadata"]["annotations"]["checksum/config"] for d in (server, processing)]
    assert annotations[0] == annotations[1], "a configuration change rolls both"
    assert pod_spec(processing)["spec"]["containers"][0]["image"] == pod_spec(server)["spec"]["containers"][0]["image"]

    # Each role's Services, budget and spread select its own pods only.
    services = {s["metadata"]["name"]: s for s in docs if s["kind"] == "Service"}
    assert set(services) == {"ig-image-gateway", "ig-image-gateway-metrics",
                             "ig-image-gateway-processing", "ig-image-gateway-processing-metrics"}
    assert services["ig-image-gateway-processing"]["spec"]["type"] == "ClusterIP"
    for deployment, other in ((server, processing), (processing, server)):
        name = deployment["metadata"]["name"]
        labels, other_labels = pod_spec(deployment)["metadata"]["labels"], pod_spec(other)["metadata"]["labels"]
        for selector in (services[name]["spec"]["selector"], services[name + "-metrics"]["spec"]["selector"],
                         deployment["spec"]["selector"]["matchLabels"],
                         kind(docs, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]):
            assert matches(selector, labels) and not matches(selector, other_labels), (name, selector)
    assert processing["spec"]["replicas"] == 2

    # Uploads and operations reach the processing pods, downloads the serving pods.
    requests = {"/v1/image/upload": "ig-image-gateway-processing", "/v1/image/resize": "ig-image-gateway-processing",
                "/v1/image/download/0123456789abcdef0123456789abcdef.png": "ig-image-gateway",
                "/openapi.json": "ig-image-gateway"}
    rules = kind(docs, "Ingress")["spec"]["rules"]
    paths = {p["path"]: p["backend"]["service"]["name"] for p in rules[0]["http"]["paths"]}
    assert all(p["pathType"] == "Prefix" for p in rules[0]["http"]["paths"])
    route = {m["path"]["value"]: r["backendRefs"][0]["name"]
             for r in kind(docs, "HTTPRoute")["spec"]["rules"] for m in r["matches"]}
    for request, service in requests.items():
        assert routed(paths, request) == service, ("Ingress", request)
        assert routed(route, request) == service, ("HTTPRoute", request)

    # Both roles' pods are in the NetworkPolicy, and in the alerts' job and deployment selectors.
    selector = kind(docs, "NetworkPolicy")["spec"]["podSelector"]
    (expression,) = selector["matchExpressions"]
    for deployment in (server, processing):
        labels = pod_spec(deployment)["metadata"]["labels"]
        assert matches(selector["matchLabels"], labels) and labels[expression["key"]] in expression["values"]
    rules = yaml.safe_dump(kind(template(helm_env, *SPLIT, "--set", "metrics.serviceMonitor.enabled=true",
                                         "--set", "metrics.prometheusRule.enabled=true"), "PrometheusRule")["spec"])
    (jobs,) = set(re.findall(r'job=~"([^"]+)"', rules))
    assert all(re.fullmatch(jobs, f"{name}-metrics") for name in ("ig-image-gateway", "ig-image-gateway-processing"))
    assert not re.fullmatch(jobs, "ig-image-gateway-retention-metrics")


def test_without_processing_pods_the_release_is_one_deployment_that_does_everything(helm_env):
    docs = template(helm_env, "--set", "ingress.enabled=true")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    env = [e["name"] for e in pod_spec(deployment)["spec"]["containers"][0]["env"]]
    assert "IMAGE_GATEWAY_PROCESSING__ENABLED" not in env
    assert [p["path"] for p in kind(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"]] == ["/"]
    assert not [d for d in docs if d["metadata"]["name"].endswith("-processing")]


def test_processing_pods_scale_and_size_on_their_own_values(helm_env):
    docs = template(helm_env, "--set", "processingPods.enabled=true", "--set", "processingPods.autoscaling.enabled=true",
                    "--set", "processingPods.autoscaling.maxReplicas=6",
                    "--set", "processingPods.resources.requests.cpu=2", "--set", "processingPods.resources.limits.memory=2Gi")
    hpa = kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ig-image-gateway-processing" and hpa["spec"]["maxReplicas"] == 6
    assert "replicas" not in kind(docs, "Deployment", "-processing")["spec"], "the HPA owns the count"
    assert kind(docs, "Deployment", "image-gateway")["spec"]["replicas"] == 2
    resources = pod_spec(kind(docs, "Deployment", "-processing"))["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": 2}, "limits": {"memory": "2Gi"}}
    # Their memory limit is checked with processing on; the serving pods' without it.
    err = failed_render(helm_env, "--set", "processingPods.enabled=true", "--set", "processingPods.resources.limits.memory=300Mi")
    assert "resources.limits.memory (300Mi)" in err and "processing.workers (1)" in err, err
    template(helm_env, "--set", "processingPods.enabled=true", "--set", "processing.maxInputPixels=200000000",
             "--set", "processingPods.resources.limits.memory=12Gi")
    err = failed_render(helm_env, "--set", "storage.backend=fs", "--set", "storage.fs.existingClaim=images",
                        "--set", "processingPods.enabled=true")
    assert "storage.fs.sharedVolume=true" in err, err


def test_queue_depth_autoscaling_is_a_keda_scaled_object_on_cpu_and_the_queue(helm_env):
    keda = ["--set", "processingPods.enabled=true", "--set", "processingPods.autoscaling.enabled=true",
            "--set", "processingPods.autoscaling.queueDepth.enabled=true",
            "--set", "processingPods.autoscaling.queueDepth.prometheusUrl=http://prometheus.monitoring.svc:9090"]
    docs = template(helm_env, *keda)
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"], "KEDA makes the HPA"
    scaled = kind(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"name": "ig-image-gateway-processing"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 10)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    cpu, queue = spec["triggers"]
    assert cpu == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
    assert queue["type"] == "prometheus"
    assert queue["metadata"] == {
        "serverAddress": "http://prometheus.monitoring.svc:9090", "threshold": "2",
        "query": 'sum(image_processing_queue_depth{namespace="images",job="ig-image-gateway-processing-metrics"})'}
    # The same option on the single Deployment; the Prometheus address is required.
    single = kind(template(helm_env, "--set", "autoscaling.enabled=true", "--set", "autoscaling.queueDepth.enabled=true",
                           "--set", "autoscaling.queueDepth.prometheusUrl=http://p:9090"), "ScaledObject")
    assert single["spec"]["scaleTargetRef"] == {"name": "ig-image-gateway"}
    assert 'job="ig-image-gateway-metrics"' in single["spec"]["triggers"][1]["metadata"]["query"]
    err = failed_render(helm_env, "--set", "autoscaling.enabled=true", "--set", "autoscaling.queueDepth.enabled=true")
    assert "autoscaling.queueDepth.prometheusUrl" in err, err
