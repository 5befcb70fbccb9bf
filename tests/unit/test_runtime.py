"""The runtime's clients are shared by threads (the local API workers serve each connection on
its own thread): an error one thread raises must be caught by `except` in any other."""

import threading

import boto3
from botocore.errorfactory import ClientExceptionsFactory

from chalicelib.runtime import Runtime

SERVICES = ("dynamodb", "s3", "secrets", "ec2", "sqs", "stepfunctions", "pricing")


def test_threads_sharing_a_runtime_see_one_set_of_error_classes(monkeypatch):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")
    runtime = Runtime.from_config(None, session)  # type: ignore[arg-type]
    # From here, making a client's error classes again would give classes `except` clauses
    # written against the first ones do not match; two threads at once must not get there.
    made_again: list[str] = []
    make = ClientExceptionsFactory.create_client_exceptions

    def record(factory, service_model):
        made_again.append(service_model.service_name)
        return make(factory, service_model)

    monkeypatch.setattr(ClientExceptionsFactory, "create_client_exceptions", record)
    start = threading.Barrier(2, timeout=30)
    seen: list[dict[str, int]] = []

    def look() -> None:
        start.wait()
        seen.append({name: id(getattr(runtime, name).exceptions) for name in SERVICES})

    threads = [threading.Thread(target=look) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made_again == []
    assert seen[0] == seen[1]
