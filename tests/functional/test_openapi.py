"""The OpenAPI document the API serves describes exactly the routes it has."""

from openapi_spec_validator import validate

from app import app


def test_the_document_lists_every_route_and_is_valid(admin):
    document = admin.get("/v1/openapi.json").json_body
    validate(document)
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    served = {(method, path) for path, methods in app.routes.items() for method in methods}
    assert documented == served
    submit = document["paths"]["/v1/jobs"]["post"]
    schema_name = submit["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert {"image", "jobScript", "cpu", "mem", "vmPolicy", "dataVolumes"} <= set(
        document["components"]["schemas"][schema_name]["properties"])
    assert document["paths"]["/v1/health"]["get"]["security"] == []
    assert document["paths"]["/v1/jobs"]["get"]["security"] == [{"bearer": []}]
