#!/usr/bin/env python3
"""Validate a problem file for chain-of-edits and measure how well its tests catch bugs.

    python3 scripts/check_problems.py datasets/problems.jsonl
    python3 scripts/check_problems.py --mbpp tests/fixtures/mbpp_sample.jsonl

Checks, for every line (DESIGN.md section 3, "Problem"):
  * schema: a JSON object with id, prompt, solution, tests (and entry_point, optional setup)
    of the right types; ids unique;
  * house rules for the project's own set: id "coe/<snake_case>", solution of 3-25 lines ending
    in a newline, 4-space indentation, no tabs, no trailing whitespace, no comments or docstrings,
    standard library only, no I/O; at least 3 single-line tests that call the entry point;
  * behaviour: the reference passes every test, each test alone in a fresh interpreter
    namespace and all tests in one namespace in both orders (so tests are independent and
    deterministic), each within --slow-ms.
Exits 1 if anything is wrong, naming the line, the id and the test.

As information only, it also corrupts each solution in cheap ways (comparison and arithmetic
operator swaps, integer constants +-1, dropped `return`, negated conditions, deleted or swapped
lines) and reports the fraction of mutants that at least one test kills; use --verbose to see
the survivors and strengthen the tests. Mutants that do not compile are not counted.

With --mbpp the file is read in MBPP's public JSONL schema (text, code, task_id,
test_setup_code, test_list) and only the schema and behaviour checks apply.
"""

import argparse
import ast
import concurrent.futures
import functools
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import tokenize

MIN_LINES = 3
MAX_LINES = 25
MIN_TESTS = 3
ID_RE = re.compile(r"^coe/[a-z][a-z0-9_]*$")
BANNED_MODULES = {
    "asyncio", "ctypes", "datetime", "ftplib", "glob", "http", "io", "multiprocessing", "os",
    "pathlib", "pickle", "random", "secrets", "shutil", "signal", "socket", "subprocess", "sys",
    "tempfile", "threading", "time", "urllib", "uuid",
}
BANNED_CALLS = {"print", "input", "open", "exec", "eval", "compile", "__import__", "breakpoint", "exit", "quit"}

# Runs inside a child interpreter: reads a job from stdin, writes one JSON line of results.
# Each test gets its own interval timer, so an infinite loop in a mutant costs one timeout;
# solution output is swallowed so it cannot corrupt the result line.
HARNESS = r'''
import io, json, resource, signal, sys, time

class _Timeout(BaseException):
    pass

def _alarm(signum, frame):
    raise _Timeout()

signal.signal(signal.SIGALRM, _alarm)
try:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
except (ValueError, OSError):
    pass
job = json.loads(sys.stdin.read())
out = sys.stdout
sys.stdout = io.StringIO()
limit = job["timeout"]

def run(ns, pieces):
    stage = None
    start = time.process_time()
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        for stage, source in pieces:
            exec(compile(source, "<" + stage + ">", "exec"), ns)
        signal.setitimer(signal.ITIMER_REAL, 0)
        return ["pass", "", time.process_time() - start]
    except _Timeout:
        return ["timeout", stage + ": no result within %.1f s" % limit, time.process_time() - start]
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return ["fail", (stage + ": " + type(exc).__name__ + ": " + str(exc))[:300], time.process_time() - start]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)

results = []
for item in job["runs"]:
    setup, code, tests = job["setup"], item["code"], item["tests"]
    outcome = []
    if item["mode"] == "fresh":
        for test in tests:
            outcome.append(run({"__name__": "__main__"}, [("setup", setup), ("solution", code), ("test", test)]))
            if item["stop_on_fail"] and outcome[-1][0] != "pass":
                break
    else:
        ns = {"__name__": "__main__"}
        loaded = run(ns, [("setup", setup), ("solution", code)])
        for test in tests:
            outcome.append(run(ns, [("test", test)]) if loaded[0] == "pass" else loaded)
    results.append(outcome)
out.write(json.dumps(results) + "\n")
out.flush()
'''


class Problem:
    def __init__(self, line, pid, prompt, solution, tests, entry_point, setup):
        self.line = line
        self.id = pid
        self.prompt = prompt
        self.solution = solution
        self.tests = tests
        self.entry_point = entry_point
        self.setup = setup


def field_error(errors, line, pid, message):
    errors.append(f"line {line}" + (f" ({pid})" if pid else "") + f": {message}")


def load(path, mbpp, errors):
    """Read the file; schema errors go to `errors`, usable problems are returned."""
    problems = []
    with open(path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, 1):
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            field_error(errors, number, None, f"not UTF-8: {exc}")
            continue
        except json.JSONDecodeError as exc:
            field_error(errors, number, None, f"not a JSON object: {exc}")
            continue
        if not isinstance(obj, dict):
            field_error(errors, number, None, "not a JSON object")
            continue
        problem = from_mbpp(obj, number, errors) if mbpp else from_coe(obj, number, errors)
        if problem is not None:
            problems.append(problem)
    return problems


def require(obj, key, kind, number, pid, errors, optional=False):
    if key not in obj:
        if not optional:
            field_error(errors, number, pid, f"missing field {key!r}")
        return None
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        field_error(errors, number, pid, f"field {key!r} must be {kind.__name__}, got {type(value).__name__}")
        return None
    return value


def string_list(obj, key, number, pid, errors):
    value = require(obj, key, list, number, pid, errors)
    if value is None:
        return None
    for i, item in enumerate(value):
        if not isinstance(item, str):
            field_error(errors, number, pid, f"{key}[{i}] must be a string, got {type(item).__name__}")
            return None
    return value


def from_coe(obj, number, errors):
    before = len(errors)
    pid = require(obj, "id", str, number, None, errors)
    prompt = require(obj, "prompt", str, number, pid, errors)
    solution = require(obj, "solution", str, number, pid, errors)
    tests = string_list(obj, "tests", number, pid, errors)
    entry = require(obj, "entry_point", str, number, pid, errors)
    setup = require(obj, "setup", str, number, pid, errors, optional=True)
    if len(errors) > before:
        return None
    return Problem(number, pid, prompt, solution, tests, entry, setup or "")


def from_mbpp(obj, number, errors):
    before = len(errors)
    task_id = require(obj, "task_id", int, number, None, errors)
    pid = f"mbpp/{task_id}"
    text = require(obj, "text", str, number, pid, errors)
    code = require(obj, "code", str, number, pid, errors)
    tests = string_list(obj, "test_list", number, pid, errors)
    setup = require(obj, "test_setup_code", str, number, pid, errors)
    string_list(obj, "challenge_test_list", number, pid, errors)
    if len(errors) > before:
        return None
    code = code.replace("\r\n", "\n")
    if not code.endswith("\n"):
        code += "\n"
    entry = None
    try:
        for node in ast.parse(code).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                entry = node.name
                break
    except SyntaxError:
        pass
    return Problem(number, pid, text, code, tests, entry or "", setup.replace("\r\n", "\n"))


def imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module.split(".")[0]


def check_code_rules(label, source, problem, errors):
    """Rules shared by solution and setup: parses, stdlib only, no I/O."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        field_error(errors, problem.line, problem.id, f"{label} does not parse: {exc}")
        return None
    for module in imported_modules(tree):
        if module not in sys.stdlib_module_names:
            field_error(errors, problem.line, problem.id, f"{label} imports {module!r}, which is not in the standard library")
        elif module in BANNED_MODULES:
            field_error(errors, problem.line, problem.id, f"{label} imports {module!r} (I/O, time or randomness)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BANNED_CALLS:
            field_error(errors, problem.line, problem.id, f"{label} calls {node.func.id}()")
    return tree


def check_style(problem, errors):
    """House rules for the project's own problems."""
    err = functools.partial(field_error, errors, problem.line, problem.id)
    if not ID_RE.match(problem.id):
        err(f"id {problem.id!r} is not of the form coe/<snake_case>")
    if not problem.prompt.strip():
        err("prompt is empty")
    elif problem.entry_point not in problem.prompt:
        err(f"prompt does not name the entry point {problem.entry_point!r}")
    sol = problem.solution
    if not sol.endswith("\n"):
        err("solution does not end with a newline")
    lines = sol[:-1].split("\n") if sol.endswith("\n") else sol.split("\n")
    if not MIN_LINES <= len(lines) <= MAX_LINES:
        err(f"solution has {len(lines)} lines, expected {MIN_LINES}-{MAX_LINES}")
    for i, text in enumerate(lines, 1):
        if "\t" in text:
            err(f"solution line {i} contains a tab")
        if "\r" in text:
            err(f"solution line {i} contains a carriage return")
        if text != text.rstrip():
            err(f"solution line {i} has trailing whitespace")
        indent = len(text) - len(text.lstrip(" "))
        if text.strip() and indent % 4:
            err(f"solution line {i} is indented by {indent} spaces, not a multiple of 4")
    try:
        for tok in tokenize.generate_tokens(io.StringIO(sol).readline):
            if tok.type == tokenize.COMMENT:
                err(f"solution line {tok.start[0]} has a comment")
    except (tokenize.TokenError, SyntaxError):
        pass
    tree = check_code_rules("solution", sol, problem, errors)
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                    err(f"solution has a docstring at line {first.lineno}")
    if problem.setup:
        check_code_rules("setup", problem.setup, problem, errors)


def check_structure(problem, errors):
    """Rules for every format: entry point defined, enough single-statement tests that use it."""
    err = functools.partial(field_error, errors, problem.line, problem.id)
    try:
        tree = ast.parse(problem.solution)
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    except SyntaxError as exc:
        err(f"solution does not parse: {exc}")
        defined = set()
    if not problem.entry_point:
        err("no entry point (no top-level def or class)")
    elif defined and problem.entry_point not in defined:
        err(f"entry_point {problem.entry_point!r} is not defined at the top level of the solution")
    if len(problem.tests) < MIN_TESTS:
        err(f"{len(problem.tests)} tests, at least {MIN_TESTS} required")
    seen = set()
    for i, test in enumerate(problem.tests):
        if test in seen:
            err(f"tests[{i}] repeats an earlier test: {test}")
        seen.add(test)
        if "\n" in test or "\r" in test:
            err(f"tests[{i}] spans several lines")
            continue
        try:
            body = ast.parse(test).body
        except SyntaxError as exc:
            err(f"tests[{i}] does not parse: {exc.msg}: {test}")
            continue
        if len(body) != 1:
            err(f"tests[{i}] is not a single statement: {test}")
        names = {n.id for n in ast.walk(body[0]) if isinstance(n, ast.Name)} if body else set()
        if problem.entry_point and problem.entry_point not in names:
            err(f"tests[{i}] does not call {problem.entry_point}: {test}")


def run_job(setup, runs, timeout):
    """Run `runs` in one child interpreter; returns its per-run results or None if the child died."""
    job = {"setup": setup, "runs": runs, "timeout": timeout}
    total_tests = sum(len(r["tests"]) for r in runs)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8"}
    with tempfile.TemporaryDirectory(prefix="coe-check-") as cwd:
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-c", HARNESS], input=json.dumps(job), capture_output=True,
                text=True, cwd=cwd, env=env, timeout=5 + timeout * (total_tests + len(runs)),
            )
        except subprocess.TimeoutExpired:
            return None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return None
    try:
        results = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return results if isinstance(results, list) and len(results) == len(runs) else None


def check_reference(problem, timeout, slow_ms):
    """Returns a list of error messages for the reference solution (empty: all good)."""
    tests = problem.tests
    runs = [
        {"code": problem.solution, "tests": tests, "mode": "fresh", "stop_on_fail": False},
        {"code": problem.solution, "tests": tests, "mode": "sequence", "stop_on_fail": False},
        {"code": problem.solution, "tests": tests[::-1], "mode": "sequence", "stop_on_fail": False},
    ]
    results = run_job(problem.setup, runs, timeout)
    where = f"line {problem.line} ({problem.id})"
    if results is None:
        return [f"{where}: the test process crashed or hung"]
    messages = []
    labels = ["alone", "in order", "in reverse order"]
    for label, run, outcome in zip(labels, runs, results):
        for test, (status, detail, _) in zip(run["tests"], outcome):
            if status != "pass":
                messages.append(f"{where}: reference {status}s test run {label}: {test}\n    {detail}")
    if not messages:
        for test, (_, _, seconds) in zip(tests, results[0]):
            if seconds * 1000 > slow_ms:
                messages.append(f"{where}: setup + solution + test took {seconds * 1000:.0f} ms of CPU (> {slow_ms} ms): {test}")
    return messages


OP_SWAPS = {
    "<": ["<="], "<=": ["<"], ">": [">="], ">=": [">"], "==": ["!="], "!=": ["=="],
    "+": ["-"], "-": ["+"], "*": ["+"], "//": ["/"], "/": ["//"], "%": ["//"],
    "+=": ["-="], "-=": ["+="], "*=": ["+="], "//=": ["*="],
    "<<": [">>"], ">>": ["<<"], "&": ["|"], "|": ["&"], "^": ["|"], "&=": ["|="], "|=": ["&="], "^=": ["|="],
}
NAME_SWAPS = {"and": ["or"], "or": ["and"], "True": ["False"], "False": ["True"], "min": ["max"], "max": ["min"]}
BLOCK_START = re.compile(r"^\s*(def|class|if|elif|else|for|while|try|except|finally|with)\b")


def starts_line(tok):
    """True for a keyword that opens a statement (not the `if` of a comprehension or conditional expression)."""
    return tok.start[1] == len(tok.line) - len(tok.line.lstrip())


def mutants(source):
    """Cheap corruptions of `source` (token swaps, constants +-1, dropped returns, line edits).

    Returns (description, mutated source) pairs; only those that still compile and differ.
    """
    lines = source.splitlines(keepends=True)
    found = []

    def token_edit(tok, new, what):
        (row, col), (erow, ecol) = tok.start, tok.end
        if row != erow:
            return
        text = lines[row - 1]
        mutated = lines[:row - 1] + [text[:col] + new + text[ecol:]] + lines[row:]
        found.append((f"line {row}: {what}", "".join(mutated)))

    try:
        toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        toks = []
    for k, tok in enumerate(toks):
        nxt = toks[k + 1] if k + 1 < len(toks) else None
        if tok.type == tokenize.OP and tok.string in OP_SWAPS:
            for new in OP_SWAPS[tok.string]:
                token_edit(tok, new, f"{tok.string!r} -> {new!r}")
        elif tok.type == tokenize.NAME and tok.string in NAME_SWAPS:
            for new in NAME_SWAPS[tok.string]:
                token_edit(tok, new, f"{tok.string!r} -> {new!r}")
        elif tok.type == tokenize.NAME and tok.string == "not" and nxt is not None and nxt.string != "in":
            token_edit(tok, "", "drop 'not'")
        elif tok.type == tokenize.NAME and tok.string == "return" and nxt is not None and nxt.type not in (tokenize.NEWLINE, tokenize.NL):
            token_edit(tok, "", "drop 'return'")
        elif tok.type == tokenize.NAME and tok.string in ("if", "elif", "while") and nxt is not None and starts_line(tok):
            (row, col) = nxt.start
            text = lines[row - 1]
            colon = text.rstrip().rfind(":")
            if colon > col:
                mutated = lines[:row - 1] + [text[:col] + "not (" + text[col:colon] + ")" + text[colon:]] + lines[row:]
                found.append((f"line {row}: negate condition", "".join(mutated)))
        elif tok.type == tokenize.NUMBER:
            try:
                value = int(tok.string, 0)
            except ValueError:
                continue
            token_edit(tok, str(value + 1), f"{tok.string} -> {value + 1}")
            if value > 0:
                token_edit(tok, str(value - 1), f"{tok.string} -> {value - 1}")
    simple = []
    for i, text in enumerate(lines):
        stripped = text.strip()
        if stripped and not BLOCK_START.match(text) and not stripped.endswith(":"):
            simple.append(i)
            indent = text[: len(text) - len(text.lstrip())]
            found.append((f"line {i + 1}: delete line", "".join(lines[:i] + [indent + "pass\n"] + lines[i + 1:])))
    for i in simple:
        j = i + 1
        if j in simple and lines[i][: len(lines[i]) - len(lines[i].lstrip())] == lines[j][: len(lines[j]) - len(lines[j].lstrip())]:
            found.append((f"lines {i + 1}-{j + 1}: swap", "".join(lines[:i] + [lines[j], lines[i]] + lines[j + 1:])))
    result, seen = [], {source}
    for what, text in found:
        if text in seen:
            continue
        seen.add(text)
        try:
            compile(text, "<mutant>", "exec")
        except (SyntaxError, ValueError):
            continue
        result.append((what, text))
    return result


def mutation_score(problem, timeout, max_mutants):
    """(killed, total, survivors) for the problem's mutants; a crashed child counts as a kill."""
    candidates = mutants(problem.solution)
    if len(candidates) > max_mutants:
        step = len(candidates) / max_mutants
        candidates = [candidates[int(i * step)] for i in range(max_mutants)]
    if not candidates:
        return 0, 0, []
    runs = [{"code": text, "tests": problem.tests, "mode": "fresh", "stop_on_fail": True} for _, text in candidates]
    results = run_job(problem.setup, runs, timeout)
    if results is None:
        results = []
        for run in runs:
            single = run_job(problem.setup, [run], timeout)
            results.append(single[0] if single else [["fail", "child crashed", 0.0]])
    survivors = [what for (what, _), outcome in zip(candidates, results) if all(status == "pass" for status, _, _ in outcome)]
    return len(candidates) - len(survivors), len(candidates), survivors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="JSONL file of problems")
    parser.add_argument("--mbpp", action="store_true", help="read MBPP's schema (text, code, test_list, ...) instead")
    parser.add_argument("--no-mutants", action="store_true", help="skip the mutation report")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds allowed per test (default 2)")
    parser.add_argument("--slow-ms", type=float, default=50.0, help="max CPU ms for setup + solution + one test (default 50)")
    parser.add_argument("--max-mutants", type=int, default=60, help="mutants tried per problem (default 60)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel test processes")
    parser.add_argument("--report", help="write per-problem mutation results as JSON to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="list surviving mutants")
    args = parser.parse_args(argv)

    errors = []
    try:
        problems = load(args.path, args.mbpp, errors)
    except OSError as exc:
        print(f"{args.path}: cannot read: {exc}", file=sys.stderr)
        return 2
    seen = {}
    for p in problems:
        if p.id in seen:
            field_error(errors, p.line, p.id, f"duplicate id (first on line {seen[p.id]})")
        seen.setdefault(p.id, p.line)
        check_structure(p, errors)
        if not args.mbpp:
            check_style(p, errors)

    runnable = [p for p in problems if p.entry_point]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for messages in pool.map(lambda p: check_reference(p, args.timeout, args.slow_ms), runnable):
            errors.extend(messages)
        scores = []
        if not args.no_mutants:
            scores = list(pool.map(lambda p: mutation_score(p, args.timeout, args.max_mutants), runnable))

    for message in errors:
        print(f"{args.path}: {message}", file=sys.stderr)
    n_tests = sum(len(p.tests) for p in problems)
    if scores:
        killed = sum(k for k, _, _ in scores)
        total = sum(t for _, t, _ in scores)
        weak = sorted(((k / t if t else 1.0), p.id) for p, (k, t, _) in zip(runnable, scores))
        print(f"mutants: {killed} of {total} killed ({100.0 * killed / max(total, 1):.1f}%); "
              f"weakest: " + ", ".join(f"{pid} {100 * frac:.0f}%" for frac, pid in weak[:5]))
        if args.verbose:
            for p, (k, t, survivors) in zip(runnable, scores):
                for what in survivors:
                    print(f"  survivor {p.id}: {what}")
        if args.report:
            with open(args.report, "w", encoding="utf-8") as f:
                json.dump({p.id: {"killed": k, "total": t, "survivors": s} for p, (k, t, s) in zip(runnable, scores)}, f, indent=1)
    if errors:
        print(f"{len(problems)} problems, {n_tests} tests, {len(errors)} problem(s) found")
        return 1
    print(f"{len(problems)} problems, {n_tests} tests, all pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
