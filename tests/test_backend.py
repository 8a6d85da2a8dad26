import subprocess
import sys

import numpy as np
import pytest

from gpumatch import backend as bk


def test_numpy_forced_and_env(monkeypatch):
    assert bk.get_backend("numpy").name == "numpy"
    monkeypatch.setenv("GPUMATCH_BACKEND", "numpy")
    assert bk.get_backend().name == "numpy"


def test_auto_says_why():
    b = bk.get_backend("auto")
    assert b.name in ("numpy", "cupy")
    assert b.reason.startswith("auto")
    if not bk.gpu_available():
        assert b.name == "numpy"


def test_unknown_backend_is_an_error():
    with pytest.raises(bk.BackendError, match="unknown backend"):
        bk.get_backend("opencl")


def test_forced_cupy_without_gpu_is_a_clear_error():
    if bk.gpu_available():
        pytest.skip("a GPU is usable here")
    with pytest.raises(bk.BackendError, match="cupy.*cannot be used"):
        bk.get_backend("cupy")


def test_cli_forced_cupy_without_gpu_exits_nonzero(capsys):
    if bk.gpu_available():
        pytest.skip("a GPU is usable here")
    from gpumatch.cli import main

    assert main(["--backend", "cupy", "info"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cupy" in err[0]


def test_to_host_and_array_module():
    a = np.arange(3.0)
    assert bk.to_host(a) is a or np.array_equal(bk.to_host(a), a)
    assert bk.array_module(a) is np


def test_kernel_sources_found():
    d = bk.kernel_dir()
    assert any(d.glob("*.cu"))
    assert "extern \"C\"" in bk.kernel_source("sky_pairs.cu")


def test_every_kernel_has_a_comment_block():
    for f in bk.kernel_dir().glob("*.cu"):
        lines = f.read_text().splitlines()
        assert lines[0].startswith("//"), f
        head = []
        for line in lines:
            if not line.startswith("//"):
                break
            head.append(line)
        text = "\n".join(head).lower()
        assert "grid" in text and "numpy twin" in text, f"{f.name}: comment block must name grid and NumPy twin"


def test_info_command_runs(capsys):
    from gpumatch.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend" in out and "gpumatch" in out


def test_installed_wheel_finds_its_kernels(tmp_path):
    """The kernels ship inside the wheel and are found from an installed copy."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    wheel_dir = tmp_path / "wheel"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(root)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here (no build backend available?): {r.stderr[-300:]}")
    whl = next(wheel_dir.glob("gpumatch-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(whl)],
                   check=True, capture_output=True)
    code = "from gpumatch.backend import kernel_dir; print(kernel_dir())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}).stdout.strip()
    assert Path(out).resolve().is_relative_to(target.resolve())
    assert (Path(out) / "sky_pairs.cu").exists()


def test_compile_options_track_the_headers(tmp_path):
    """CuPy caches compiled kernels by .cu text and options: an edited .cuh must change them."""
    (tmp_path / "k.cuh").write_text("#define A 1\n")
    before = bk._compile_options(tmp_path, bk.DEFAULT_NVCC_OPTIONS)
    assert before[:len(bk.DEFAULT_NVCC_OPTIONS)] == bk.DEFAULT_NVCC_OPTIONS and f"-I{tmp_path}" in before
    (tmp_path / "k.cuh").write_text("#define A 2\n")
    assert bk._compile_options(tmp_path, bk.DEFAULT_NVCC_OPTIONS) != before
