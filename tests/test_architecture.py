"""The house rules of the tree (issue 13): only the workload registry tells benchmarks apart,
and the checker's side of the shared code imports no torch."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reference", "loadgen_harness", "compliance")
REGISTRY = ROOT / "reference" / "workloads.py"
NAMES = ("nano-react", "nano-codegen", "nano-planner")
# a benchmark name compared, tested for membership, or chosen by a dict lookup in code
COMPARISON = re.compile(
    r"""(==|!=|\bin\b|\bis\b)\s*\(?\s*["']nano-[a-z-]+["']"""
    r"""|["']nano-[a-z-]+["']\s*(==|!=|\bin\b)"""
    r"""|\[\s*["']nano-[a-z-]+["']\s*\]""")


def _code_lines(path: Path):
    """(line number, line) of code, docstrings and comments left out."""
    import ast
    import io
    import tokenize
    src = path.read_text()
    doc_lines = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            doc_lines.update(range(node.lineno, node.end_lineno + 1))
    lines = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if (tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE)
                or tok.start[0] in doc_lines):
            continue
        lines.setdefault(tok.start[0], []).append(tok.string)
    return [(n, " ".join(t)) for n, t in sorted(lines.items())]


def test_no_benchmark_name_is_compared_outside_the_registry():
    hits = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path == REGISTRY:
                continue
            for n, line in _code_lines(path):
                if COMPARISON.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {line}")
    assert not hits, "ask reference.workloads.get_workload instead:\n" + "\n".join(hits)


def test_the_grep_finds_what_it_is_for(tmp_path):
    """The check itself can fail: each way of telling workloads apart by name is caught."""
    for bad in ('if name == "nano-codegen":', 'x = "nano-react" != b',
                "if b in ('nano-react', 'x'):", 'CKPT = PATHS["nano-codegen"]'):
        f = tmp_path / "m.py"
        f.write_text(bad + ("\n    pass\n" if bad.endswith(":") else "\n"))
        assert any(COMPARISON.search(line) for _, line in _code_lines(f)), bad
    f.write_text('"""Docs may say == "nano-react"."""\n'
                 'x = 1  # so may comments == "nano-codegen"\n')
    assert not any(COMPARISON.search(line) for _, line in _code_lines(f))


def test_the_registry_knows_every_benchmark_in_rules_yaml():
    from reference.rules import load_rules
    from reference.workloads import get_workload
    rules = load_rules()
    for name, bench in rules.benchmarks.items():
        assert get_workload(name, bench.workload).name == name
    assert set(NAMES) <= set(rules.benchmarks)


def test_the_shared_modules_import_without_torch():
    code = ("import sys; import compliance, reference.rules, reference.workloads, "
            "reference.grading, reference.hashing, reference.checkpoint, reference.yamlio; "
            "print(sorted({'torch', 'matplotlib'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
