#!/usr/bin/env python3
"""Trims two of the node tests' Go tools to what the tests use, before they are built.

Usage: trim-go-tools.py keda|traefik|coredns SOURCE_DIR (a writable copy of the module's source).

These tools link in dozens of cloud SDKs the tests never call, and compiling those was most of
their build, the longest part of a cold run (measured on 2 cores, trimmed: KEDA 2.1 min, Traefik
1.9 min, CoreDNS 0.6 min; untrimmed 6.1, 5.0 and 2.2):
- KEDA keeps the scalers the chart's ScaledObject uses (cpu, memory, prometheus) and the
  external ones its core refers to; its ~80 other scalers (Kafka, SQL drivers, every cloud's
  queue service, ...) go. `go list -deps` of the operator and adapter: 3710 packages, 1961 after.
- Traefik loses lego's ACME DNS-challenge providers (one import, ~150 DNS hosting APIs); an
  ACME resolver configured with a DNS challenge then fails to start with a clear error. The
  tests route plain HTTP Ingresses. 2496 packages, 1649 after.
- CoreDNS keeps the plugins of a kubeadm Corefile (kubernetes, forward, cache, health, ready,
  errors, log, loop, reload, loadbalance, prometheus metrics) and bind, root, whoami; route53,
  azure, clouddns, the Datadog tracer and the rest go, as its own `plugin.cfg` build would.
  1278 packages, 781 after.
Each edit checks that the text it replaces is there, so a version bump that moves it fails the
build here instead of building the whole tool unnoticed.
"""

import pathlib
import re
import sys

KEDA_TRIGGERS = {"cpu", "memory", "prometheus", "external", "external-push", "external-mock"}
KEDA_FILES = {
    "scaler.go",
    "cpu_memory_scaler.go",
    "prometheus_scaler.go",
    "external_scaler.go",
    "external_mock_scaler.go",
}


def trim_keda(src: pathlib.Path) -> None:
    for file in (src / "pkg/scalers").glob("*.go"):
        if file.name not in KEDA_FILES:
            file.unlink()
    # A constant the kept scalers share, declared in a removed one (azure_queue_scaler.go).
    (src / "pkg/scalers/trimmed.go").write_text(
        'package scalers\n\nconst externalMetricType = "External"\n'
    )
    builder = src / "pkg/scaling/scalers_builder.go"
    text = builder.read_text()
    switch = text.index("\tswitch triggerType {\n", text.index("// TRIGGERS-START"))
    default = text.index("\tdefault:\n", switch)
    cases = re.findall(r'\tcase "([^"]+)":\n((?:\t\t.*\n)+)', text[switch:default])
    missing = KEDA_TRIGGERS - {name for name, _ in cases}
    if missing:
        sys.exit(f"trim-go-tools: KEDA's scaler switch has no {sorted(missing)}")
    kept = "".join(f'\tcase "{name}":\n{body}' for name, body in cases if name in KEDA_TRIGGERS)
    builder.write_text(text[:switch] + "\tswitch triggerType {\n" + kept + text[default:])


def replace_once(path: pathlib.Path, old: str, new: str) -> None:
    text = path.read_text()
    if text.count(old) != 1:
        sys.exit(f"trim-go-tools: {path} does not hold exactly one {old!r}")
    path.write_text(text.replace(old, new))


def trim_traefik(src: pathlib.Path) -> None:
    provider = src / "pkg/provider/acme/provider.go"
    replace_once(provider, '\t"github.com/go-acme/lego/v4/providers/dns"\n', "")
    replace_once(
        provider,
        "provider, err = dns.NewDNSChallengeProviderByName(p.DNSChallenge.Provider)",
        'err = fmt.Errorf("this build has no ACME DNS challenge providers (%s)", p.DNSChallenge.Provider)',
    )


COREDNS_PLUGINS = {
    "bind", "cache", "errors", "forward", "health", "kubernetes", "loadbalance", "log", "loop",
    "metrics", "ready", "reload", "root", "whoami",
}


def trim_coredns(src: pathlib.Path) -> None:
    plugins = src / "core/plugin/zplugin.go"
    lines = plugins.read_text().splitlines(keepends=True)
    imported = {m.group(1): line for line in lines if (m := PLUGIN_IMPORT.match(line))}
    missing = COREDNS_PLUGINS - imported.keys()
    if missing:
        sys.exit(f"trim-go-tools: CoreDNS's plugin list has no {sorted(missing)}")
    dropped = {line for name, line in imported.items() if name not in COREDNS_PLUGINS}
    plugins.write_text("".join(line for line in lines if line not in dropped))


PLUGIN_IMPORT = re.compile(r'\t_ "github.com/coredns/coredns/plugin/([a-z0-9_/]+)"')
TOOLS = {"keda": trim_keda, "traefik": trim_traefik, "coredns": trim_coredns}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in TOOLS:
        sys.exit(__doc__)
    TOOLS[sys.argv[1]](pathlib.Path(sys.argv[2]))
