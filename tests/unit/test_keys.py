"""Keys: deterministic, sensitive to what matters, blind to what does not."""

from __future__ import annotations

from service.keys import environment_name, request_key
from service.models import parse_request

IMAGE = "wheelwright/build-cpu:py3.11"
SHA = "a" * 64


def _request(**fields: object) -> object:
    return parse_request(
        {"source": {"kind": "archive", "path": "/x/p-1.tar.gz", "sha256": SHA}, **fields}
    )


def test_same_request_same_key_whatever_the_order() -> None:
    a = parse_request(
        {
            "source": {"kind": "archive", "path": "/a/p-1.tar.gz", "sha256": SHA},
            "runtime": ["torch==2.4.0", "numpy==2.0"],
            "build_env": {"MAX_JOBS": "2", "NVCC_THREADS": "4"},
        }
    )
    b = parse_request(
        {
            "source": {"kind": "archive", "path": "/elsewhere/p-1.tar.gz", "sha256": SHA},
            "runtime": ["numpy==2.0", "torch==2.4.0"],
            "build_env": {"NVCC_THREADS": "4", "MAX_JOBS": "2"},
        }
    )
    assert request_key(a, IMAGE) == request_key(b, IMAGE)
    assert environment_name(a, IMAGE) == environment_name(b, IMAGE)


def test_key_changes_with_every_input() -> None:
    base = parse_request({"source": {"kind": "archive", "path": "p.tar.gz", "sha256": SHA}})
    variants = [
        parse_request({"source": {"kind": "archive", "path": "p.tar.gz", "sha256": "b" * 64}}),
        base.model_copy(update={"runtime": ("torch==2.4.0",)}),
        base.model_copy(update={"config_settings": {"--build-option": "x"}}),
        base.model_copy(update={"build_env": {"MAX_JOBS": "1"}}),
    ]
    keys = {request_key(base, IMAGE)} | {request_key(v, IMAGE) for v in variants}
    assert len(keys) == 5
    assert request_key(base, IMAGE) != request_key(base, "other/image:tag")


def test_environment_is_readable_and_separates_pins() -> None:
    cpu = parse_request(
        {"source": {"kind": "requirement", "requirement": "x==1"}, "runtime": ["torch==2.13.0"]}
    )
    other = cpu.model_copy(update={"runtime": ("torch==2.4.0",)})
    name = environment_name(cpu, IMAGE)
    assert name.startswith("cpu-py311-torch2.13.0-")
    assert environment_name(other, IMAGE).startswith("cpu-py311-torch2.4.0-")
    cuda = parse_request(
        {"source": {"kind": "requirement", "requirement": "x==1"}, "target": {"kind": "cuda"}}
    )
    assert environment_name(cuda, "img").startswith("cu130-py311-")


def test_image_ref_agrees_with_the_images_worker_builds() -> None:
    from service.keys import image_ref
    from service.models import Target
    from worker.images import image_tag

    assert image_ref(Target()) == image_tag("cpu", "3.11")
    assert image_ref(Target(kind="cuda", cuda="12.8")) == image_tag("cuda", "3.11", "12.8")
    assert image_ref(Target(image="my/img:1")) == "my/img:1"
    assert image_ref(Target(python="3.12"), "host") == "host:python3.12"


def test_the_smoke_test_and_inherited_host_packages_are_part_of_the_key() -> None:
    from service.keys import image_ref
    from service.models import Target

    base = _request()
    smoked = _request(verify_smoke="import p")
    assert request_key(base, IMAGE) != request_key(smoked, IMAGE)  # type: ignore[arg-type]
    assert image_ref(Target(), "host") == "host:python3.11"
    assert image_ref(Target(), "host", host_packages=True) == "host:python3.11+site"
    assert image_ref(Target(), "docker", host_packages=True) == IMAGE
