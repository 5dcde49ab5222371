"""A '#' in a target's base URL or an endpoint's path is refused on every surface (issue
22, item 11): the fragment is never sent, so ``http://host/#/api`` sent every request to
``/`` while the statistics named the paths as written."""

import json

import pytest

from apps.sessions.cli.catalog import CatalogError, import_endpoints
from apps.sessions.models import Endpoint, Target

pytestmark = pytest.mark.django_db

MESSAGE = "A URL must not contain '#'"


@pytest.fixture
def target():
    return Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:5002/#/api", "http://127.0.0.1:5002#x"])
def test_the_api_refuses_a_base_url_with_a_fragment(admin_api, base_url):
    answer = admin_api.post("/api/targets/", {"name": "t", "base_url": base_url}, format="json")
    assert answer.status_code == 400
    assert MESSAGE in " ".join(answer.json()["base_url"])
    assert not Target.objects.filter(name="t").exists()


@pytest.mark.parametrize("url", ["/#/orders", "/orders#top", "http://127.0.0.1:5001/a#b"])
def test_the_api_refuses_an_endpoint_url_with_a_fragment(admin_api, target, url):
    body = {"target": target.pk, "name": "orders", "url": url, "method": "GET"}
    answer = admin_api.post("/api/endpoints/", body, format="json")
    assert answer.status_code == 400
    assert MESSAGE in " ".join(answer.json()["url"])
    assert not Endpoint.objects.exists()


def test_a_percent_encoded_hash_is_a_path_like_any_other(admin_api, target):
    body = {"target": target.pk, "name": "tag", "url": "/tags/%23hot", "method": "GET"}
    assert admin_api.post("/api/endpoints/", body, format="json").status_code == 201


def test_a_catalog_file_with_a_fragment_is_refused_naming_the_field(tmp_path, target):
    path = tmp_path / "catalog.json"
    endpoints = [{"name": "orders", "url": "/orders"}]
    document = {"target": {"base_url": "http://127.0.0.1:5001/#/api"}, "endpoints": endpoints}
    path.write_text(json.dumps(document))
    with pytest.raises(CatalogError, match=MESSAGE):
        import_endpoints(str(path))
    document = {"target": {"base_url": target.base_url},
                "endpoints": [{"name": "orders", "url": "/#/orders"}]}  # fmt: skip
    path.write_text(json.dumps(document))
    with pytest.raises(CatalogError, match=MESSAGE):
        import_endpoints(str(path))
    assert not Endpoint.objects.exists()
