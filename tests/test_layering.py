"""The engine and the training package never import Blender; the engine never imports training
nor mediapipe (its MediaPipe models run in PyTorch; mediapipe is a test-only parity reference)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package, forbidden", [("msma_engine", {"bpy", "training", "msma_blender", "mediapipe"}),
                                                ("training", {"bpy", "msma_blender"})])
def test_no_forbidden_imports(package, forbidden):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    offenders = {str(f.relative_to(ROOT)): sorted(_imported_top_modules(f) & forbidden) for f in files}
    assert not {k: v for k, v in offenders.items() if v}
