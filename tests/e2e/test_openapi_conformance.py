"""Every answer the API gives through the gateway is one its OpenAPI documents (issue 22).

Schemathesis generates requests from each service's published OpenAPI, valid and
invalid ones, and checks each answer: never a server error, a documented status code,
a documented content type, and a body that matches the documented schema. Requests
carry an admin token, so admin routes are exercised beyond their 401. The budget is
small (a few examples per operation) so the whole run costs about a minute; a failure
names the operation and the request that broke the contract.

Health routes (mapped by the gateway onto ``/health/<service>``) and ``/internal/``
routes (refused at the edge) are left out: they are not reachable at the paths their
service documents.
"""

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from storefront_stack.logins import user_token
from storefront_stack.platform import Platform
from storefront_stack.topology import SERVICES

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _failures_of(
    operation: Any, gateway: str, headers: dict[str, str], statuses: list[int]
) -> list[str]:
    failures: list[str] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(
                base_url=gateway, headers=dict(headers), checks=CHECKS, timeout=30
            )
            statuses.append(response.status_code)

        try:
            run()
        except Unsatisfiable:
            continue  # no invalid request exists (an operation without parameters)
        except Exception as exc:  # the check's failure, with the request that caused it
            failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])
    return failures


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_every_answer_through_the_gateway_is_what_the_openapi_documents(
    platform: Platform, service: str
) -> None:
    assert platform.endpoints is not None
    gateway = platform.endpoints.gateway_url
    document = httpx.get(f"{gateway}/docs/{service}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document).exclude(path_regex=r"^/(health|internal)/")
    headers = {"Authorization": f"Bearer {user_token(platform.platform_env, 'admin')}"}
    failures: list[str] = []
    statuses: list[int] = []
    for result in schema.get_all_operations():
        failures.extend(_failures_of(result.ok(), gateway, headers, statuses))
    assert not failures, "\n\n".join(failures)
    assert statuses, "no request was made"
