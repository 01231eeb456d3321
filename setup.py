"""Installer for cpvt_mm.

Like the OpenMMLab packages, cpvt_mm ships its ``configs/``, ``tools/`` and ``model-index.yml`` inside
the installed package under ``cpvt_mm/.mim`` so that ``cpvt_mm::classification/...`` config references
and ``mim`` work from outside the repository. Editable installs get symlinks, regular installs copies.
"""

import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
MIM_ITEMS = ("configs", "tools", "model-index.yml")


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(ROOT, "cpvt_mm", "version.py"), encoding="utf-8") as f:
        exec(f.read(), scope)
    return scope["__version__"]


def read_text(name: str) -> str:
    with open(osp.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def read_requirements(name: str) -> list[str]:
    """Requirement lines of ``requirements/<name>``, following ``-r other.txt`` includes as pip does."""
    reqs = []
    with open(osp.join(ROOT, "requirements", name), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line.startswith("-r "):
                reqs += read_requirements(line[3:].strip())
            elif line:
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Expose configs/tools inside the package (symlinks for develop/editable, copies otherwise)."""
    if "develop" in sys.argv or "editable_wheel" in sys.argv or "--editable" in sys.argv:
        mode = "symlink"
    elif any(cmd in sys.argv for cmd in ("sdist", "bdist_wheel", "install", "build", "build_py")):
        mode = "copy"
    else:
        return
    mim_path = osp.join(ROOT, "cpvt_mm", ".mim")
    os.makedirs(mim_path, exist_ok=True)
    for item in MIM_ITEMS:
        src = osp.join(ROOT, item)
        dst = osp.join(mim_path, item)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == "symlink":
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


if __name__ == "__main__":
    add_mim_extension()
    setup(
        name="cpvt_mm",
        version=read_version(),
        description="Conditional positional encodings (CPVT, Twins-PCPVT, Twins-SVT) for OpenMMLab 2.x",
        long_description=read_text("README.md"),
        long_description_content_type="text/markdown",
        license="Apache-2.0",
        python_requires=">=3.10",
        packages=find_packages(exclude=("configs", "tools", "tests", "docs")),
        include_package_data=True,
        package_data={"cpvt_mm": [".mim/**/*"]},
        install_requires=read_requirements("runtime.txt"),
        extras_require={
            "mim": read_requirements("mminstall.txt"),
            "tests": read_requirements("tests.txt"),
            "optional": read_requirements("optional.txt"),
        },
        zip_safe=False,
    )
