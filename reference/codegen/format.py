"""nano-codegen's text format, without torch (the environment, the checker and the tests share it).

    Task: Return the sum of [1, 2, 3, 4, 5]
    Program:
    result = sum([1, 2, 3, 4, 5])
    End
    Feedback: Wrong output: 10        (after a failed attempt)

`program_computes` tells a program that computes its result from one that only states
literals (the checker's rule Q407).
"""
from __future__ import annotations

import ast

TASK, PROGRAM, END, FEEDBACK = "Task: ", "Program:", "End", "Feedback: "


def parse_program(text: str) -> str:
    """The program inside an agent's `Program:` ... `End` block (lenient about the header)."""
    lines = text.split("\n")
    if lines and lines[0].strip() == PROGRAM:
        lines = lines[1:]
    body = []
    for line in lines:
        if line.strip() == END:
            break
        body.append(line)
    return "\n".join(body).strip("\n")


def step_complete(text: str) -> bool:
    """True once the agent has closed its program with an `End` line."""
    return text.endswith(f"\n{END}\n") or text == f"{END}\n"


# AST nodes that compute something; a program with none of them only states literals
_COMPUTE = (ast.Call, ast.BinOp, ast.Subscript, ast.Compare, ast.BoolOp, ast.comprehension,
            ast.For, ast.While, ast.Attribute, ast.IfExp)


def program_computes(program: str) -> bool:
    """False for a program that only assigns literals (it states the expected output instead
    of computing it); a program that does not parse is left to the verifier (True)."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True
    for node in ast.walk(tree):
        if isinstance(node, _COMPUTE):
            return True
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            return True
    return False
