"""Builds fusco._C with the project's CMake build (the library and the pybind11 module) so that
`pip install ./python` works. The repository root is this folder's parent."""

import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent.parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = pathlib.Path(self.build_temp).resolve() / "cmake"
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={sys.executable}", "-DFUSCO_WITH_PYTHON=ON",
            "-DFUSCO_BUILD_TESTS=OFF", "-DFUSCO_BUILD_BENCH=OFF", "-DFUSCO_WITH_CUDA=OFF",
            "-DFUSCO_WERROR=OFF",  # a user's compiler may warn where ours does not
        ]
        try:
            import pybind11  # the build requirement pip provides
            configure.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass
        subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "fusco_python",
                               "-j", str(os.cpu_count() or 2)])
        built = next((build_dir / "python" / "fusco").glob("_C*.so"))
        target = pathlib.Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)


setup(ext_modules=[Extension("fusco._C", sources=[])], cmdclass={"build_ext": CMakeBuild})
