import pytest

from flotta.operator.enrolment import (
    Create,
    Declined,
    Issue,
    Pending,
    Refuse,
    decide,
    load_request_csr,
)
from flotta.operator.errors import EnrolmentError
from flotta.operator.policy import ApprovalPolicy
from flotta.pki.keys import build_csr, csr_to_pem, generate_key
from flotta.schemas.crd.signed_request import EdgeDeviceSignedRequest
from flotta.schemas.wire.enrolment import EnrolmentRequest

KEY = generate_key()
OTHER = generate_key()
REQUEST = EnrolmentRequest(target_namespace="fleet", csr=csr_to_pem(build_csr(KEY, "d1")).decode())


def signed_request(
    approved: bool = False, annotations: dict[str, str] | None = None
) -> EdgeDeviceSignedRequest:
    return EdgeDeviceSignedRequest.model_validate(
        {
            "metadata": {"name": "d1", "namespace": "flotta", "annotations": annotations or {}},
            "spec": {"targetNamespace": "fleet", "approved": approved, "csr": REQUEST.csr},
        }
    )


def run(**kwargs: object) -> object:
    args: dict[str, object] = {
        "existing_request": None,
        "existing_request_key": None,
        "device_namespaces": set(),
        "device_key": None,
        "policy": ApprovalPolicy(),
    }
    args.update(kwargs)
    return decide("d1", REQUEST, KEY.public_key(), **args)  # type: ignore[arg-type]


def test_new_request_is_created_approved_by_policy() -> None:
    assert run() == Create(approved=False)
    assert run(policy=ApprovalPolicy.parse(["fleet"])) == Create(approved=True)


def test_repeated_request_follows_the_existing_one() -> None:
    assert (
        run(existing_request=signed_request(), existing_request_key=KEY.public_key()) == Pending()
    )
    assert (
        run(existing_request=signed_request(True), existing_request_key=KEY.public_key()) == Issue()
    )
    declined = signed_request(annotations={"flotta.io/declined": "not ours"})
    assert run(existing_request=declined, existing_request_key=KEY.public_key()) == Declined(
        "not ours"
    )


def test_id_claimed_by_another_key_is_refused() -> None:
    assert isinstance(
        run(existing_request=signed_request(), existing_request_key=OTHER.public_key()), Refuse
    )
    assert isinstance(run(device_namespaces={"fleet"}, device_key=OTHER.public_key()), Refuse)


def test_enrolled_device_with_the_same_key_gets_its_certificate_again() -> None:
    assert run(device_namespaces={"fleet"}, device_key=KEY.public_key()) == Issue()


def test_csr_with_another_common_name_is_refused() -> None:
    pem = csr_to_pem(build_csr(KEY, "someone-else")).decode()
    with pytest.raises(EnrolmentError, match="common name"):
        load_request_csr("d1", pem)
    with pytest.raises(EnrolmentError, match="not a PEM CSR"):
        load_request_csr("d1", "garbage")
