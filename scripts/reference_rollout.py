#!/usr/bin/env python3
"""The plain-Python side of `coe bench rollout`: Chain-of-Edits episodes run by an ordinary
loop over `transformers` (KV cache, batched `generate`) with one subprocess per test run.

What it measures: the wall time of the rollout loop alone (model loading and one tiny
warm-up `generate` excluded) for tasks-n × group episodes of DESIGN §2, and from it
episodes per minute, turns per second and generated tokens per second. It prints one JSON
object on stdout: episodes, turns, generated_tokens (sampled ids, stop token included),
test_runs, solved (episodes whose final state passes every test), seconds, the three
rates, device, dtype, the torch / transformers versions and test_workers. Progress goes
to stderr.

How, round by round (as src/eval/rollout.rs with every episode in one wave):
- Each episode starts from a task's `buggy` code; its tests run once (the first state
  carries their feedback), then all live episodes advance together.
- Each prompt is the episode's conversation through the tokenizer's chat template (first
  user turn: the DSL instructions, task, tests and state; later user turns: the state;
  assistant turns: the text of the sampled reply). Old (reply, state) pairs are dropped
  whole, oldest first, while the prompt exceeds 2048 - max-new-tokens tokens, as
  src/policy/conversation.rs does. A tokenizer without a chat template gets the Rust
  side's plain format ("User: …\\nAssistant: ").
- Prompts are left-padded and decoded with `model.generate` (sampling at the given
  temperature / top-p, top-k off; greedy at temperature 0), in consecutive micro-batches
  of at most 16,384 padded prompt tokens as src/policy/model.rs splits them. Generation
  stops at an end-of-turn / eos id or at any id whose decoded text holds a newline.
- The first line of each reply is parsed and applied by a port of src/env/dsl and
  src/env/buffer.rs (same commands, 1-based lines, same error messages up to string
  quoting); a valid edit runs the tests; EXIT or the turn cap ends the episode (a solved
  episode goes on, as in src/env/episode.rs). Rewards: +1 on the first solve, -0.5 for an
  invalid command, -0.5 on a capped last turn.
- A test run writes one file (a small harness + setup + buffer code + tests) and runs
  `python file` in a fresh process (`subprocess`, own session, killed on timeout). The
  harness does what src/sandbox/worker/child.py does per run: compile the code as
  `<buffer>` (a SyntaxError ends the run), exec setup and code (an exception fails every
  test), then exec each test statement, reporting type, first message line and innermost
  `<buffer>` line of each failure; feedback is rendered as src/env/feedback.rs does.

Simplifications against the Rust sandbox (the work per run is the same: one interpreter
executing setup, code and tests): no confinement or resource limits; one wall-clock limit
(--test-timeout-s) for the whole run instead of per test, and when it fires, or the process
dies, every test not yet reported is marked timed out / crashed (the Rust worker resumes
the remaining tests in a fresh child); test runs that fail for infrastructure reasons are
not retried. Generation draws from torch's generator seeded once with --seed, so replies
differ from the Rust side's per-row ChaCha streams. Prompts are rendered as text and
tokenised whole, where the Rust side tokenises each template piece on its own and splices
earlier replies in as their sampled ids (a token may differ at a boundary), and a chat
template is applied as written (a Llama-3.1+ template's dated system header included, which
the Rust side leaves out).

    .venv/bin/python scripts/reference_rollout.py --model models/tiny \
        --tasks runs/smoke-data/test.tasks.jsonl --tasks-n 8 --group 2 --max-turns 4
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging


# Defaults of the Rust side (configs/default.ron, src/policy/model.rs, src/env/feedback.rs).
CONTEXT_TOKENS = 2048
MAX_BATCH_TOKENS = 16_384
MAX_FAILURES_SHOWN = 3
FEEDBACK_CAP = 1500
REWARD_SOLVED, REWARD_INVALID, REWARD_TURN_CAP = 1.0, -0.5, -0.5
END_OF_TURN_TOKENS = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>"]

# src/env/prompt.rs
INSTRUCTIONS = (
    "You repair a Python program with a line editor. Reply with exactly one command per turn, "
    'on one line, starting with "### ":\n'
    "### DELL <n>  delete line n\n"
    "### ADDL <n> >>><text>  insert <text> so that it becomes line n\n"
    "### REPL <n> >>><text>  replace line n with <text>\n"
    "### REPW <n> >>><old> >>><new>  replace every <old> in line n with <new>\n"
    "### EXIT  the code is fixed; stop\n"
    "<text> is taken verbatim, indentation included. After each command you see the code, "
    "one line per source line as L<n> <content>, then *** and the test results."
)


# --- tasks (DESIGN §3; src/data/task.rs) --------------------------------------------------


class TaskFileError(Exception):
    pass


def load_tasks(path):
    """Task records of a JSONL file; a bad line names the file, line and field."""
    tasks, seen = [], {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TaskFileError(f"{path}: {e}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue

        def bad(field, message):
            where = f"field `{field}`: " if field else ""
            return TaskFileError(f"{path}:{lineno}: {where}{message}")

        try:
            rec = json.loads(line)
        except ValueError as e:
            raise bad(None, f"not valid JSON: {e}") from None
        if not isinstance(rec, dict):
            raise bad(None, "expected a JSON object")
        for field in ("id", "prompt", "buggy", "problem_id"):
            if not isinstance(rec.get(field), str):
                raise bad(field, "missing" if field not in rec else "expected a string")
        if rec.get("origin") not in ("synthetic", "model", "human"):
            raise bad("origin", 'expected "synthetic", "model" or "human"')
        tests = rec.get("tests")
        if not isinstance(tests, list):
            raise bad("tests", "missing" if tests is None else "expected a list of strings")
        for i, t in enumerate(tests):
            if not isinstance(t, str):
                raise bad(f"tests[{i}]", "expected a string")
        if rec.get("setup") is not None and not isinstance(rec["setup"], str):
            raise bad("setup", "expected a string")
        if rec["id"] in seen:
            raise bad("id", f"{rec['id']!r} already used by record {seen[rec['id']]}")
        seen[rec["id"]] = len(tasks) + 1
        tasks.append(rec)
    return tasks


# --- the DSL parser (src/env/dsl) ----------------------------------------------------------


class InvalidCommand(Exception):
    """A command that does not parse or cannot be applied; str() is the reason."""


KEYWORDS = ("DELL", "ADDL", "REPL", "REPW", "EXIT")
KEYWORD_LIST = ", ".join(KEYWORDS)
USAGE = {
    "DELL": "DELL <n>",
    "ADDL": "ADDL <n> >>><text>",
    "REPL": "REPL <n> >>><text>",
    "REPW": "REPW <n> >>><old> >>><new>",
}
USIZE_MAX = 2**64 - 1


def debug_str(text):
    """Rust's `{:?}` of a string (close enough for messages)."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}
    out = []
    for c in text:
        if c in escapes:
            out.append(escapes[c])
        elif not c.isprintable() and c != " ":
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def quote(text):
    return debug_str(text) if len(text) <= 40 else debug_str(text[:40]) + "…"


def leading_ws_len(text):
    return len(text) - len(text.lstrip())


def first_word(text):
    text = text.lstrip()
    for i, c in enumerate(text):
        if c.isspace():
            return text[:i]
    return text


def parse_model_turn(line):
    """A model turn, `### <command>`, as a tuple: ("DELL", n), ("ADDL"|"REPL", n, text),
    ("REPW", n, old, new) or ("EXIT",)."""
    if line.endswith("\r"):
        line = line[:-1]
    if not line.strip():
        raise InvalidCommand(
            'empty turn: expected "### " and a command, e.g. "### DELL 3"; '
            f"commands are {KEYWORD_LIST}"
        )
    start = strip_prefix(line)
    if start is None:
        raise InvalidCommand(
            'a model turn must start with "### " and then the command, e.g. "### DELL 3"; '
            f"found {quote(first_word(line))}"
        )
    return parse_body(line, start)


def strip_prefix(line):
    hashes = len(line) - len(line.lstrip("#"))
    if hashes == 0:
        return None
    if hashes != 3:
        raise InvalidCommand(
            'the prefix must be exactly "### " (three "#" and one space), '
            f"found {quote(line[:hashes])}"
        )
    rest = line[3:]
    if not rest.strip():
        return 3
    if not rest.startswith(" "):
        raise InvalidCommand(
            f'put one space after "###", e.g. "### DELL 3"; found {quote(first_word(line))}'
        )
    return 4


def parse_body(line, start):
    body = line[start:]
    if not body.strip():
        raise InvalidCommand(f"empty command: expected one of {KEYWORD_LIST}")
    ws = leading_ws_len(body)
    if ws:
        raise InvalidCommand(f"remove the whitespace before the command; found {quote(body[:ws])}")
    keyword = parse_keyword(line, start)
    after_kw = start + len(keyword)
    if keyword == "EXIT":
        expect_only_whitespace(line, after_kw, "EXIT")
        return ("EXIT",)
    n, n_end = parse_line_number(line, keyword, after_kw)
    if keyword == "DELL":
        expect_only_whitespace(line, n_end, line[start:n_end])
        return ("DELL", n)
    text_start = expect_arrow(line, keyword, n_end)
    if keyword in ("ADDL", "REPL"):
        return (keyword, n, line[text_start:])
    old_end, new_start = split_repw(line, text_start)
    return ("REPW", n, line[text_start:old_end], line[new_start:])


def parse_keyword(line, start):
    word = first_word(line[start:])
    for keyword in KEYWORDS:
        head, after = word[: len(keyword)], word[len(keyword) : len(keyword) + 1]
        glued_to_letter = after.isalpha() or after == "_"
        if len(head) < len(keyword) or not (head.isascii() and head.upper() == keyword):
            continue
        if glued_to_letter:
            continue
        if head != keyword:
            raise InvalidCommand(f"{quote(head)} must be upper case: {keyword}")
        return keyword
    raise InvalidCommand(f"unknown command {quote(word)}: expected one of {KEYWORD_LIST}")


def expect_only_whitespace(line, pos, what):
    rest = line[pos:]
    if not rest.strip():
        return
    start, end = pos + leading_ws_len(rest), pos + len(rest.rstrip())
    keyword = what[:4]
    if keyword == "EXIT":
        takes = "EXIT takes nothing after it"
    else:
        takes = f"{keyword} takes only a line number: {USAGE.get(keyword, 'EXIT')}"
    raise InvalidCommand(f"unexpected text after {quote(what)}: {quote(line[start:end])}; {takes}")


def parse_line_number(line, keyword, pos):
    """Reads ` <n>` after the keyword ending at `pos`; returns n and where it ends."""
    rest = line[pos:]
    ws = leading_ws_len(rest)
    after = rest[ws:]
    if not after or after.startswith(">"):
        raise InvalidCommand(f"{keyword} needs a line number: {USAGE[keyword]}")
    if rest[:ws] != " ":
        if ws == 0:
            raise InvalidCommand(
                f"put one space between {keyword} and the line number: {USAGE[keyword]}"
            )
        raise InvalidCommand(
            f"use exactly one space between {keyword} and the line number, found {quote(rest[:ws])}"
        )
    length = next((i for i, c in enumerate(after) if c.isspace() or c == ">"), len(after))
    digits = after[:length]
    if not all(c in "0123456789" for c in digits):
        raise InvalidCommand(f"line number must be a positive integer, found {quote(digits)}")
    n = int(digits)
    if n > USIZE_MAX:
        raise InvalidCommand(f"line number {quote(digits)} is too large")
    if n == 0:
        raise InvalidCommand(f"line numbers start at 1, found {quote(digits)}")
    return n, pos + ws + length


def expect_arrow(line, keyword, pos):
    """Expects ` >>>` at `pos`; returns where the text starts."""
    rest = line[pos:]
    if not rest.strip():
        what = "the old and the new text" if keyword == "REPW" else "the text"
        raise InvalidCommand(f"{keyword} needs {what} after the line number: {USAGE[keyword]}")
    ws = leading_ws_len(rest)
    if rest[ws:].startswith(">>>"):
        if rest[:ws] == " ":
            return pos + ws + 3
        raise InvalidCommand(
            f'put exactly one space between the line number and ">>>": {USAGE[keyword]}'
        )
    raise InvalidCommand(
        f'expected " >>>" after the line number, found {quote(first_word(rest[ws:]))}: '
        f"{USAGE[keyword]}"
    )


def split_repw(line, start):
    """REPW's `old >>>new` from `start`: where old ends and where new starts."""
    body = line[start:]
    i = body.find(" >>>")
    if i == 0:
        raise InvalidCommand(
            "the old text of REPW is empty; put the text to replace right after the first "
            f'">>>": {USAGE["REPW"]}'
        )
    if i > 0:
        return start + i, start + i + 4
    if ">>>" in body:
        raise InvalidCommand(f'put one space before the second ">>>" of REPW: {USAGE["REPW"]}')
    if not body.strip():
        raise InvalidCommand(f"REPW needs the old and the new text: {USAGE['REPW']}")
    raise InvalidCommand(f'missing " >>>" between the old and new text of REPW: {USAGE["REPW"]}')


# --- the buffer (src/env/buffer.rs) --------------------------------------------------------


def split_code(code):
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    if not code:
        return []
    return code.removesuffix("\n").split("\n")


def join_code(lines):
    return "\n".join(lines) + "\n" if lines else ""


def render_buffer(lines):
    return "\n".join(f"L{i} {line}" if line else f"L{i}" for i, line in enumerate(lines, 1))


def apply_edit(lines, cmd):
    """Applies an edit in place; raises InvalidCommand (buffer unchanged) when it cannot."""
    keyword, n = cmd[0], cmd[1]
    top = len(lines) + 1 if keyword == "ADDL" else len(lines)
    if not 1 <= n <= top:
        raise InvalidCommand(
            f"line {n} is out of range: {keyword} takes a line from 1 to {top} "
            f"(the code has {len(lines)} lines)"
        )
    if keyword == "REPW" and not cmd[2]:
        raise InvalidCommand("REPW: the text to replace is empty")
    if keyword != "DELL" and ("\n" in cmd[-1] or "\r" in cmd[-1]):
        raise InvalidCommand("the text holds a line break; one command edits one line")
    if keyword == "DELL":
        del lines[n - 1]
    elif keyword == "ADDL":
        lines.insert(n - 1, cmd[2])
    elif keyword == "REPL":
        lines[n - 1] = cmd[2]
    else:
        old, new = cmd[2], cmd[3]
        if old not in lines[n - 1]:
            raise InvalidCommand(f"REPW: {debug_str(old)} does not occur in line {n}")
        lines[n - 1] = lines[n - 1].replace(old, new)


# --- test runs (src/sandbox/worker/child.py, one process per run) --------------------------

HARNESS = r'''
import builtins, json, sys
NONCE = %(nonce)r
REQ = json.loads(%(request)r)
_write, _flush, _dumps = sys.__stdout__.write, sys.__stdout__.flush, json.dumps


def emit(rec):
    _write("\n" + NONCE + _dumps(rec) + "\n")
    _flush()


def failure(e):
    line, tb = 0, e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<buffer>":
            line = tb.tb_lineno
        tb = tb.tb_next
    try:
        text = str(e)
    except BaseException:
        text = "<exception str() failed>"
    message = text.split("\n", 1)[0][:500]
    return {"exc_type": type(e).__name__, "message": message, "line": line or None}


code = REQ["code"]
try:
    code_obj = compile(code, "<buffer>", "exec", dont_inherit=True)
except SyntaxError as e:
    lines = code.replace("\r\n", "\n").split("\n")
    count = len(lines) - 1 if len(lines) > 1 and lines[-1] == "" else len(lines)
    line = min(max(1, e.lineno or 1), max(1, count))
    emit({"ev": "syntax", "line": line, "message": str(e.msg or "invalid syntax")})
    sys.exit(0)
except ValueError as e:
    emit({"ev": "syntax", "line": 1, "message": str(e).split("\n", 1)[0][:500]})
    sys.exit(0)
main = type(sys)("__main__")
sys.modules["__main__"] = main
g = main.__dict__
g["__builtins__"] = builtins
try:
    exec(compile(REQ["setup"], "<setup>", "exec", dont_inherit=True), g)
    exec(code_obj, g)
except BaseException as e:
    emit(dict(ev="error", **failure(e)))
    sys.exit(0)
emit({"ev": "ready"})
for k, test in enumerate(REQ["tests"]):
    try:
        exec(compile(test, "<test>", "exec", dont_inherit=True), g)
        emit({"ev": "done", "k": k, "passed": True})
    except BaseException as e:
        emit(dict(ev="done", k=k, passed=False, **failure(e)))
'''


class TestRunner:
    """Runs a program and its tests in a fresh `python` process."""

    def __init__(self, python, timeout_s, workdir):
        self.python, self.timeout_s, self.workdir = python, timeout_s, workdir

    def run(self, setup, code, tests):
        nonce = os.urandom(8).hex()
        request = json.dumps({"setup": setup, "code": code, "tests": tests})
        fd, path = tempfile.mkstemp(suffix=".py", dir=self.workdir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(HARNESS % {"nonce": nonce, "request": request})
        try:
            return self.execute(path, nonce, tests)
        finally:
            os.unlink(path)

    def execute(self, path, nonce, tests):
        proc = subprocess.Popen(
            [self.python, path],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        timed_out = False
        try:
            out, _ = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        records = []
        for line in out.decode("utf-8", "replace").splitlines():
            at = line.find(nonce)
            if at >= 0:
                try:
                    records.append(json.loads(line[at + len(nonce) :]))
                except ValueError:
                    pass
        return report_of(records, tests, timed_out, proc.returncode, self.timeout_s)


def report_of(records, tests, timed_out, returncode, timeout_s):
    """The run's outcome in the shape of src/sandbox/types.rs's RunOutcome."""
    outcomes = [None] * len(tests)
    loading = True
    for rec in records:
        error = {k: rec.get(k) for k in ("exc_type", "message", "line")}
        if rec["ev"] == "syntax":
            return {"kind": "syntax_error", "line": rec["line"], "message": rec["message"]}
        if rec["ev"] == "error":
            return {"kind": "tests", "tests": [{"status": "failed", "error": error}] * len(tests)}
        if rec["ev"] == "ready":
            loading = False
        elif rec["ev"] == "done" and rec["passed"]:
            outcomes[rec["k"]] = {"status": "passed"}
        elif rec["ev"] == "done":
            outcomes[rec["k"]] = {"status": "failed", "error": error}
    if timed_out:
        fill = {"status": "timed_out", "seconds": timeout_s}
    elif returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.valid_signals() else "unknown"
        fill = {"status": "crashed", "reason": f"killed by signal {sig} ({name})"}
    else:
        when = "while the code was loading" if loading else "before the test finished"
        fill = {"status": "crashed", "reason": f"exited with status {returncode} {when}"}
    return {"kind": "tests", "tests": [fill if o is None else o for o in outcomes]}


def all_passed(report):
    tests = report["tests"] if report["kind"] == "tests" else []
    return bool(tests) and all(t["status"] == "passed" for t in tests)


# --- feedback (src/env/feedback.rs) --------------------------------------------------------


def first_line(text):
    return text.split("\n", 1)[0].rstrip()


def cap_chars(text, cap=FEEDBACK_CAP):
    return text if len(text) <= cap else text[: cap - 1] + "…"


def statement_line(statement):
    lines = statement.strip().split("\n")
    return lines[0].rstrip() + (" …" if len(lines) > 1 else "")


def error_line(error):
    message = first_line(error["message"])
    out = f"{error['exc_type']}: {message}" if message else error["exc_type"]
    return out + (f" (L{error['line']})" if error["line"] else "")


def format_seconds(seconds):
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def render_feedback(report, statements):
    if report["kind"] == "syntax_error":
        return cap_chars(f"SyntaxError at L{report['line']}: {first_line(report['message'])}")
    outcomes = report["tests"]
    if not outcomes:
        return "No tests ran."
    failing = [(k, o) for k, o in enumerate(outcomes, 1) if o["status"] != "passed"]
    if not failing:
        return "All tests passed."
    lines = []
    for k, o in failing[:MAX_FAILURES_SHOWN]:
        if o["status"] == "failed":
            if k <= len(statements):
                lines.append(f"Test {k} failed: {statement_line(statements[k - 1])}")
            else:
                lines.append(f"Test {k} failed")
            lines.append(error_line(o["error"]))
        elif o["status"] == "timed_out":
            lines.append(f"Test {k} timed out after {format_seconds(o['seconds'])}s")
        else:
            lines.append(f"Test {k} crashed: {first_line(o['reason'])}")
    more = len(failing) - MAX_FAILURES_SHOWN
    if more == 1:
        lines.append("(1 more test failed)")
    elif more > 1:
        lines.append(f"({more} more tests failed)")
    return cap_chars("\n".join(lines))


def first_user_message(task, state):
    tests = "".join(t.rstrip() + "\n" for t in task["tests"])
    return f"{INSTRUCTIONS}\n\nTask:\n{task['prompt'].rstrip()}\n\nTests:\n{tests}\n{state}"


# --- episodes (src/env/episode.rs) ---------------------------------------------------------


class Episode:
    def __init__(self, task, max_turns):
        self.task, self.max_turns = task, max_turns
        self.lines = split_code(task["buggy"])
        self.turn, self.done, self.solved_ever = 0, False, False
        self.test_runs = 0
        self.rewards = []
        self.history = []  # (user message, reply text) per turn
        self.observation = None
        self.report = None
        self.feedback = ""

    def state(self):
        code = render_buffer(self.lines)
        return f"{code}\n***\n{self.feedback}" if self.lines else f"***\n{self.feedback}"

    def run_tests(self, runner):
        t = self.task
        self.test_runs += 1
        report = runner.run(t.get("setup") or "", join_code(self.lines), t["tests"])
        self.report = report
        self.feedback = render_feedback(report, t["tests"])
        return all_passed(report)

    def reset(self, runner):
        self.solved_ever = self.run_tests(runner)
        self.observation = first_user_message(self.task, self.state())

    def step(self, reply_text, runner):
        """One turn: parse and apply the reply's first line, test after an edit, reward."""
        self.turn += 1
        last_turn = self.turn >= self.max_turns
        exited = invalid = first_solve = False
        try:
            cmd = parse_model_turn(reply_text.split("\n")[0])
            if cmd[0] == "EXIT":
                exited = True
            else:
                apply_edit(self.lines, cmd)
                passed = self.run_tests(runner)
                first_solve = passed and not self.solved_ever
                self.solved_ever |= passed
        except InvalidCommand as e:
            invalid = True
            self.feedback = cap_chars(f"Invalid command: {e}")
        self.done = exited or last_turn
        capped = last_turn and not exited
        self.rewards.append(
            REWARD_SOLVED * first_solve + REWARD_INVALID * invalid + REWARD_TURN_CAP * capped
        )
        self.history.append((self.observation, reply_text))
        self.observation = self.state()

    def solved(self):
        return self.report is not None and all_passed(self.report)


# --- the policy: prompts and batched generate ----------------------------------------------


class Policy:
    def __init__(self, model, tok, args):
        self.model, self.tok, self.args = model, tok, args
        self.device = torch.device(args.device)
        vocab = min(model.config.vocab_size, len(tok))
        known = tok.get_vocab()
        eot = {known[t] for t in END_OF_TURN_TOKENS if t in known}
        if tok.eos_token_id is not None:
            eot.add(tok.eos_token_id)
        self.eot_ids = eot
        texts = tok.batch_decode([[i] for i in range(vocab)])
        newline = {i for i, text in enumerate(texts) if "\n" in text}
        self.stop_ids = sorted(eot | newline)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.stop_ids[0]
        self.budget = CONTEXT_TOKENS - args.max_new_tokens

    def render(self, messages):
        if self.tok.chat_template:
            return self.tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        # src/model/chat.rs ChatFormat::Plain; a reply ending in a newline closes its turn.
        out = []
        for m in messages:
            label = m["role"].capitalize()
            end = "" if m["role"] == "assistant" and m["content"].endswith("\n") else "\n"
            out.append(f"{label}: {m['content']}{end}")
        return "".join(out) + "Assistant: "

    def encode(self, messages):
        return self.tok(self.render(messages), add_special_tokens=False)["input_ids"]

    def prompt_ids(self, ep):
        """The conversation so far; whole (reply, state) pairs dropped past the budget."""
        messages = []
        for user, reply in ep.history:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        messages.append({"role": "user", "content": ep.observation})
        ids = self.encode(messages)
        dropped = 0
        while len(ids) > self.budget and dropped < len(ep.history) - 1:
            dropped += 1
            ids = self.encode(messages[:1] + messages[1 + 2 * dropped :])
        return ids

    def generate(self, prompts):
        """One reply per prompt: (sampled ids with the stop id, reply text) each."""
        replies, start = [], 0
        while start < len(prompts):
            end, width = start + 1, len(prompts[start])
            while end < len(prompts):
                wider = max(width, len(prompts[end]))
                if wider * (end + 1 - start) > MAX_BATCH_TOKENS:
                    break
                width, end = wider, end + 1
            replies += self.generate_batch(prompts[start:end], width)
            start = end
        return replies

    def generate_batch(self, prompts, width):
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p) :] = torch.tensor(p)
            mask[row, width - len(p) :] = 1
        a = self.args
        sampling = dict(do_sample=True, temperature=a.temperature, top_p=a.top_p, top_k=0)
        with torch.inference_mode():
            out = self.model.generate(
                ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=a.max_new_tokens,
                use_cache=True,
                eos_token_id=self.stop_ids,
                pad_token_id=self.pad_id,
                **(sampling if a.temperature > 0 else dict(do_sample=False)),
            )
        stops = set(self.stop_ids)
        replies = []
        for row in out[:, width:].tolist():
            cut = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
            sampled = row[:cut]
            shown = sampled[:-1] if sampled and sampled[-1] in self.eot_ids else sampled
            replies.append((sampled, self.tok.decode(shown, skip_special_tokens=False)))
        return replies


# --- the loop ------------------------------------------------------------------------------


def rollout(policy, runner, episodes, workers):
    """Resets every episode, then advances the live ones together until all are done."""
    pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def each(fn, items):
        return list(pool.map(fn, items)) if pool else [fn(x) for x in items]

    started = time.perf_counter()
    generated = turns = rounds = 0
    each(lambda ep: ep.reset(runner), episodes)
    live = list(episodes)
    while live:
        prompts = [policy.prompt_ids(ep) for ep in live]
        replies = policy.generate(prompts)
        generated += sum(len(ids) for ids, _ in replies)
        turns += len(live)
        each(lambda pair: pair[0].step(pair[1][1], runner), zip(live, replies))
        live = [ep for ep in live if not ep.done]
        rounds += 1
        print(
            f"round {rounds}: {len(live)} live, {generated} tokens, "
            f"{sum(ep.test_runs for ep in episodes)} test runs, "
            f"{time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )
    if pool:
        pool.shutdown()
    return generated, turns


def load_model(path, dtype, device, adapter=None):
    path = Path(path)
    if path.suffix == ".gguf":
        where, extra = str(path.parent), {"gguf_file": path.name}
    else:
        where, extra = str(path), {}
    tok = AutoTokenizer.from_pretrained(where, **extra)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **extra)
    if adapter:
        # Our adapters are PEFT LoRA directories; merged, they cost nothing at decode time.
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model = model.to(device)
    model.eval()
    return model, tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a .gguf file or a Hugging Face model dir")
    ap.add_argument("--adapter", help="a PEFT LoRA adapter directory (coe writes those)")
    ap.add_argument("--tasks", required=True, help="task JSONL (DESIGN §3)")
    ap.add_argument("--tasks-n", type=int, default=64)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--max-turns", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 leaves the default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-timeout-s", type=float, default=10.0, help="per test subprocess")
    ap.add_argument("--test-workers", type=int, default=1, help=">1: test runs on a thread pool")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the tests")
    args = ap.parse_args()
    for name in ("tasks_n", "group", "max_turns", "max_new_tokens", "test_workers"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.top_p <= 1 or args.temperature < 0:
        ap.error("need 0 < --top-p <= 1 and --temperature >= 0")
    if args.max_new_tokens >= CONTEXT_TOKENS:
        ap.error(f"--max-new-tokens must be below the context of {CONTEXT_TOKENS} tokens")
    try:
        tasks = load_tasks(args.tasks)
    except TaskFileError as e:
        sys.exit(f"reference_rollout: {e}")
    if not tasks:
        sys.exit(f"reference_rollout: {args.tasks} holds no tasks")
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, getattr(torch, args.dtype), args.device, args.adapter)
    policy = Policy(model, tok, args)
    policy.generate([tok("### EXIT", add_special_tokens=False)["input_ids"]])  # warm-up
    picked = [tasks[i % len(tasks)] for i in range(args.tasks_n)]
    episodes = [Episode(t, args.max_turns) for t in picked for _ in range(args.group)]
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="coe-reference-rollout-") as workdir:
        runner = TestRunner(args.python, args.test_timeout_s, workdir)
        start = time.perf_counter()
        generated, turns = rollout(policy, runner, episodes, args.test_workers)
        if args.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "episodes": len(episodes),
                "turns": turns,
                "generated_tokens": generated,
                "test_runs": sum(ep.test_runs for ep in episodes),
                "solved": sum(ep.solved() for ep in episodes),
                "seconds": seconds,
                "episodes_per_min": len(episodes) / seconds * 60,
                "turns_per_s": turns / seconds,
                "tokens_per_s": generated / seconds,
                "device": args.device,
                "dtype": args.dtype,
                "torch": torch.__version__,
                "transformers": __import__("transformers").__version__,
                "test_workers": args.test_workers,
            }
        )
    )


if __name__ == "__main__":
    main()
