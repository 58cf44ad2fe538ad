"""The OpenAPI document matches the implementation: every route documented, and a schemathesis run
over every operation (positive and negative data, in-process WSGI) finds no 5xx and no response that
violates the document.

The schema is loaded from ``serving/openapi.yaml`` at import (the app serves exactly that document,
checked below) and each case is sent to the fixture's app: schemathesis' lazy ``from_fixture`` does
not work with pytest 9 (it sets ``Function._nodeid``, which pytest 9 no longer has)."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from serving import OPENAPI_FILE, create_app

ADMIN_ONLY = ("/api/v1/products/cold-start", "/api/v1/dashboard")
PUBLIC = ("/api/v1/openapi.json", "/api/v1/docs")

CONFIG = schemathesis.Config.from_dict({
    "checks": {
        # 422 is this API's answer to well-formed input that names things that do not exist
        # (a product id matching the pattern but not in the catalogue) - like 404 for ids.
        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422"]},
    },
    "generation": {"max-examples": 40},
})


@pytest.fixture
def fuzz_app(app_config):
    app = create_app(app_config)
    yield app
    app.extensions["lingxi"].store.close()


schema = schemathesis.openapi.from_path(OPENAPI_FILE, config=CONFIG)


def _authorise(case, tokens) -> bool:
    """Put a real token in place of the random bearer value schemathesis generates, unless this case
    deliberately breaks the Authorization header (removed, or not a bearer credential)."""
    headers = case.headers if case.headers is not None else {}
    value = headers.get("Authorization")
    components = case.meta.components if case.meta is not None and case.meta.components else {}
    header_negated = any(loc.value == "header" and info.mode.is_negative for loc, info in components.items())
    if header_negated and (value is None or not value.startswith("Bearer ") or len(value) == len("Bearer ")):
        return False
    role = "admin" if case.path in ADMIN_ONLY else "manager"
    headers["Authorization"] = f"Bearer {tokens[role]}"
    case.headers = headers
    return True


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_and_never_fails(case, tokens, fuzz_app):
    _authorise(case, tokens)
    if case.meta is not None and case.meta.generation.mode.is_positive and isinstance(case.body, dict):
        case.body.pop("cursor", None)  # opaque: a schema cannot generate a valid one (unit-tested instead)
    case.operation.schema.app = case.operation.app = fuzz_app  # also for probes the checks send themselves
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    case.validate_response(response)


def test_served_document_is_the_file(app, tokens):
    import yaml

    served = app.test_client().get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {tokens['crm']}"})
    assert served.status_code == 200
    assert served.json == yaml.safe_load(OPENAPI_FILE.read_text(encoding="utf-8"))


def test_every_route_is_documented(app, tokens):
    document = app.test_client().get("/api/v1/openapi.json",
                                     headers={"Authorization": f"Bearer {tokens['crm']}"}).json
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    implemented = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):  # the console's HTML pages are no API
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        implemented |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert implemented == documented


WRITES_FOR_A_MANAGER = {("POST", "/api/v1/recommendations"), ("POST", "/api/v1/recommendations/<recommendation_id>/feedback"),
                        ("POST", "/api/v1/recommendations/<recommendation_id>/stage-two")}


def test_documented_roles_match_the_decorators(app):
    """The document says which endpoints are admin-only and which admin may not call (it writes nothing
    in a manager's name); the view decorators must agree."""
    for rule in app.url_map.iter_rules():
        roles = getattr(app.view_functions[rule.endpoint], "roles", None)
        methods = rule.methods - {"HEAD", "OPTIONS"}
        if rule.rule in ADMIN_ONLY:
            assert roles == ("admin",)
        elif any((m, rule.rule) in WRITES_FOR_A_MANAGER for m in methods):
            assert set(roles) == {"crm", "manager"}
        elif rule.rule.startswith("/api/v1/") and rule.rule not in PUBLIC:
            assert set(roles) == {"crm", "manager", "admin"}
        else:
            assert roles is None  # health endpoints and the API's own documentation are open


def test_document_and_reference_need_no_token(app):
    """The OpenAPI document and its rendered reference are open; the reference's script is vendored
    (served by this app, with its licence next to it), never from a CDN."""
    client = app.test_client()
    assert client.get("/api/v1/openapi.json").status_code == 200
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'spec-url="/api/v1/openapi.json"' in html and "http" not in html.split("<body>")[1]
    script = client.get("/static/redoc/redoc.standalone.js")
    assert script.status_code == 200 and len(script.get_data()) > 100_000
    assert "MIT License" in client.get("/static/redoc/LICENSE").get_data(as_text=True)
