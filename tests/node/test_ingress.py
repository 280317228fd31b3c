"""The chart's Ingress and HTTPRoute through a real controller on the node: Traefik (k3s'
controller, and a Gateway API implementation), a process in the node's network namespace that
reads Ingresses, Gateways and HTTPRoutes through the API server and forwards to the pods'
addresses, listening on 127.0.0.1 only."""

import json
import struct

import pytest
from conftest import http
from test_install import API_KEY, RELEASE, installed
from test_memory import noise_png

NAMESPACE = "ingress"
HOST = "images.test"  # the Ingress rule's host, and so the public URL the gateway hands out
ROUTE_HOST = "route.images.test"  # the HTTPRoute's host name


@pytest.fixture(scope="module")
def ingress(node, helm_env, traefik):
    """The release behind the chart's Ingress (class `traefik`) and its HTTPRoute (on the shared
    Gateway `gateways/public`); Traefik's address."""
    with installed(node, helm_env, "helm4", NAMESPACE, "--set", "ingress.enabled=true", "--set", "ingress.className=traefik",
                   "--set", f"ingress.hosts[0].host={HOST}", "--set", "ingress.hosts[0].paths[0].path=/",
                   "--set", "httpRoute.enabled=true", "--set", "httpRoute.parentRefs[0].name=public",
                   "--set", "httpRoute.parentRefs[0].namespace=gateways",
                   "--set", "httpRoute.parentRefs[0].sectionName=web", "--set", f"httpRoute.hostnames[0]={ROUTE_HOST}"):
        for host in (HOST, ROUTE_HOST):
            traefik.wait_routes(host)
        yield traefik.url


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_a_20_mb_upload_its_download_a_range_and_processing_go_through_the_ingress(ingress):
    key = {"X-API-Key": API_KEY, "Host": HOST}
    image = noise_png(2600, seed=25)  # 2600² RGB, stored: 20.3 MB
    assert len(image) > 20_000_000
    status, _, body = http("POST", f"{ingress}/v1/image/upload", image, {**key, "Content-Type": "image/png"},
                           timeout=300)
    assert status == 201, body
    stored = json.loads(body)
    name = stored["object_name"]
    assert stored["upload_url"] == f"http://{HOST}/v1/image/download/{name}", "the public URL is the Ingress host"

    status, headers, got = http("GET", f"{ingress}/v1/image/download/{name}", headers=key, timeout=300)
    assert status == 200 and got == image, (status, len(got))
    assert headers["Content-Type"] == "image/png" and headers["Content-Length"] == str(len(image))
    assert headers["Content-Disposition"].startswith("inline") and headers["ETag"], dict(headers)
    assert http("GET", f"{ingress}/v1/image/download/{name}",
                headers={**key, "If-None-Match": headers["ETag"]})[0] == 304

    status, headers, got = http("GET", f"{ingress}/v1/image/download/{name}", headers={**key, "Range": "bytes=1000-1999"})
    assert (status, got, headers["Content-Range"]) == (206, image[1000:2000], f"bytes 1000-1999/{len(image)}")

    status, _, body = http("POST", f"{ingress}/v1/image/resize?width=400&source={name}", None, key, timeout=300)
    assert status == 201, body
    result = json.loads(body)
    assert result["width"] == 400 and result["upload_url"].startswith(f"http://{HOST}/v1/image/download/"), result
    status, _, got = http("GET", f"{ingress}/v1/image/download/{result['object_name']}", headers=key)
    assert status == 200 and png_size(got) == (400, 400)

    # The gateway's own errors come through unchanged (JSON with a detail), not the ingress's.
    status, headers, body = http("GET", f"{ingress}/v1/image/download/{'0' * 32}.png", headers=key)
    assert status == 404 and headers["Content-Type"].startswith("application/json") and json.loads(body)["detail"]
    status, _, body = http("GET", f"{ingress}/v1/image/download/{name}", headers={"Host": HOST})
    assert status == 401 and json.loads(body)["detail"], "the API key is still required behind the ingress"


def test_the_http_route_attaches_to_the_gateway_and_carries_uploads_downloads_and_ranges(node, ingress):
    key = {"X-API-Key": API_KEY, "Host": ROUTE_HOST}
    route = json.loads(node.kubectl("get", "httproute", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    (parent,) = route["status"]["parents"]
    accepted = {c["type"]: c["status"] for c in parent["conditions"]}
    assert accepted.get("Accepted") == "True" and accepted.get("ResolvedRefs") == "True", parent
    image = noise_png(600, seed=26)
    status, _, body = http("POST", f"{ingress}/v1/image/upload", image, {**key, "Content-Type": "image/png"})
    assert status == 201, body
    name = json.loads(body)["object_name"]
    status, headers, got = http("GET", f"{ingress}/v1/image/download/{name}", headers=key)
    assert (status, got, headers["Content-Type"]) == (200, image, "image/png")
    status, headers, got = http("GET", f"{ingress}/v1/image/download/{name}", headers={**key, "Range": "bytes=-100"})
    assert (status, got, headers["Content-Range"]) == (206, image[-100:], f"bytes {len(image) - 100}-{len(image) - 1}/{len(image)}")
    assert http("GET", f"{ingress}/v1/image/download/{name}", headers={**key, "Host": "elsewhere.test"})[0] == 404, \
        "a host name neither route matches reaches nothing"
