"""The verify stage's audits: CUDA architecture lists, and undefined symbols named in full."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from worker.driver import audit
from worker.driver.audit import AuditError, arch_label, missing_archs, parse_arch_list

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize(
    ("text", "sass", "ptx"),
    [
        ("9.0", ["sm_90"], []),
        ("8.0;9.0;10.0;12.0+PTX", ["sm_80", "sm_90", "sm_100", "sm_120"], ["compute_120"]),
        ("8.0, 9.0a 10.0f", ["sm_80", "sm_90a", "sm_100f"], []),
        ("Ampere;Hopper", ["sm_80", "sm_86", "sm_90"], ["compute_86", "compute_90"]),
        ("9.0;9.0", ["sm_90"], []),
    ],
)
def test_arch_lists_as_torch_reads_them(text: str, sass: list[str], ptx: list[str]) -> None:
    assert parse_arch_list(text) == (sass, ptx)


@pytest.mark.parametrize("text", ["", "sm_90", "9", "9.0+ptx", "Blackwell"])
def test_a_bad_arch_list_is_named(text: str) -> None:
    with pytest.raises(AuditError, match="TORCH_CUDA_ARCH_LIST"):
        parse_arch_list(text)


def test_arch_labels_read_like_the_arch_list() -> None:
    assert [arch_label(a) for a in ("sm_80", "sm_90a", "sm_100", "compute_120")] == [
        "8.0",
        "9.0a",
        "10.0",
        "12.0+PTX",
    ]


def test_missing_archs_counts_sass_and_ptx_of_modules_with_device_code() -> None:
    wanted_sass, wanted_ptx = parse_arch_list("8.0;9.0+PTX")
    assert missing_archs(wanted_sass, wanted_ptx, ["sm_90"], ["compute_90"]) == ["sm_80"]
    assert missing_archs(wanted_sass, wanted_ptx, ["sm_80", "sm_90"], []) == ["compute_90"]
    assert missing_archs(wanted_sass, wanted_ptx, ["sm_80", "sm_90"], ["compute_90"]) == []
    assert missing_archs(wanted_sass, wanted_ptx, [], []) == []  # host code only


def test_the_audit_names_a_missing_cuobjdump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    with pytest.raises(AuditError, match="cuobjdump is not on PATH"):
        audit.audit_cuda_archs([], tmp_path, "9.0")


def _compile_extension(source: Path, out: Path) -> Path:
    """An extension module built with the host's C compiler against this Python's headers."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler is not None, "a C compiler (gcc) is needed: scripts/setup.sh installs it"
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        [compiler, "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(out)], check=True
    )
    return out


def test_every_undefined_symbol_is_named_demangled(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "unresolved").mkdir(parents=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    module = _compile_extension(
        FIXTURES / "unresolved-ext" / "src" / "unresolved" / "gone.c",
        site / "unresolved" / f"_gone{suffix}",
    )
    found = audit.undefined_symbols([module], site, sys.executable)
    assert found == {
        f"unresolved/_gone{suffix}": ["c10::missing_func()", "torch::detail_x::vanishing(int)"]
    }


def test_a_module_whose_symbols_all_resolve_reports_none(tmp_path: Path) -> None:
    source = tmp_path / "fine.c"
    source.write_text(
        "#include <Python.h>\n"
        'static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "fine", NULL, -1, NULL};\n'
        "PyMODINIT_FUNC PyInit_fine(void) { return PyModule_Create(&m); }\n"
    )
    module = _compile_extension(source, tmp_path / f"fine{sysconfig.get_config_var('EXT_SUFFIX')}")
    assert audit.undefined_symbols([module], tmp_path, sys.executable) == {}
