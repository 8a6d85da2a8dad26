"""Package list for setuptools (metadata lives in pyproject.toml).

The top-level ``kernels/`` folder (CUDA sources) is shipped inside the wheel as the
package ``gpumatch._kernels``, so an installed gpumatch finds its kernels at run time
without a source checkout (gpumatch.backend.kernel_dir).
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["gpumatch", "gpumatch.*"]) + ["gpumatch._kernels"],
    package_dir={"gpumatch._kernels": "kernels"},
)
