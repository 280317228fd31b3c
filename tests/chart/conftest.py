"""Shared fixtures of the chart tests: the chart rendered by real Helm, and a real control plane
(`cluster.py` holds the pieces the node tests share).
"""

import shutil
import tempfile

import pytest
import yaml
from cluster import CHART, HELMS, Cluster, helm_env_in, run


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory):
    """Helm's own folders, kept out of $HOME."""
    return helm_env_in(tmp_path_factory.mktemp("helm"))


def template(helm_env, *args, helm="helm3", check=True, release="ig"):
    """`helm template` of the chart; the parsed documents (or the failed run when check=False)."""
    done = run(HELMS[helm], "template", release, CHART, "--namespace", "images", "--kube-version", "1.34.0",
               "--api-versions", "monitoring.coreos.com/v1", *args, env=helm_env, check=check)
    if not check:
        return done
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def kind(docs, kind, suffix=None):
    """The one rendered object of `kind` (whose name ends with `suffix`, when given)."""
    found = [d for d in docs if d["kind"] == kind and (suffix is None or d["metadata"]["name"].endswith(suffix))]
    assert len(found) == 1, f"expected one {kind}{' *' + suffix if suffix else ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


@pytest.fixture(scope="session")
def cluster():
    base = tempfile.mkdtemp(prefix="ig-cluster-")
    c = Cluster(base)
    yield c
    c.stop()
    shutil.rmtree(base, ignore_errors=True)
