# --- child.py: what runs inside the forked child --------------------------------
#
# The child inherits the server's syscall filter, no_new_privs and fixed rlimits, and
# confines itself further (process group, fds, uid, the run's rlimits), then waits
# for its request and runs setup, code and each test, writing one nonce-tagged
# record per finished test to its private pipe. The record is built only from values
# the harness captured before any task code ran, so rebinding builtins or stdlib
# functions cannot turn a failure into a pass.


# The run child's hot paths on dummy data. After each fork every page the child writes
# is copied on its first write (a page fault, dear in a VM); exercising the paths
# while it waits for its run moves those faults out of the run's latency.
WARM_CODE = "def _f(a, b):\n    s = 0\n    for i in range(a):\n        s += i * b\n    return s\n"
WARM_TESTS = ["assert _f(3, 2) == 6", "assert _f(1, 1) == 5"]


def warm_child():
    """The child's side: compile and run a small program and its tests, format a failure."""
    g = {"__builtins__": builtins}
    exec(compile(WARM_CODE, "<buffer>", "exec", dont_inherit=True), g)
    fail = failure_formatter("x")
    for test in WARM_TESTS:
        try:
            exec(compile(test, "<test>", "exec", dont_inherit=True), g)
        except AssertionError as e:
            fail("done", 1, e).encode()


def children_of(ppid):
    """Our direct children (orphans we adopted as PID 1 or subreaper, the zygote). Read
    with os calls: a text file object costs the server ~25 us more per run."""
    try:
        fd = os.open("/proc/self/task/%d/children" % ppid, os.O_RDONLY)
    except OSError:
        return []
    try:
        data = os.read(fd, 1 << 16)
    except OSError:
        data = b""
    finally:
        os.close(fd)
    return [int(p) for p in data.split()]


def read_into(fd, buf):
    """Append what is readable now to buf; False at end of file. Caps runaway garbage."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        buf += chunk
        if len(buf) > (1 << 22) and b"\n" not in buf[-(1 << 22):]:
            del buf[:]


def take_records(buf, nonce):
    """Complete JSON lines carrying this run's nonce; other lines are dropped. The
    harness writes the nonce first, so a line without it is dropped unparsed, and the
    record of a passed test, the common one, is read without the JSON parser (parsing
    every record was a quarter of the server's CPU per run)."""
    out = []
    head = b'{"n": "%s", ' % nonce.encode()
    passed = head + b'"ev": "done", "status": "passed", "k": '
    while True:
        nl = buf.find(b"\n")
        if nl < 0:
            return out
        line = bytes(buf[:nl])
        del buf[: nl + 1]
        if not line.startswith(head):
            continue
        if line.startswith(passed):
            k, sep, t = line[len(passed):].partition(b', "t": ')
            if sep and k.isdigit() and t.endswith(b"}"):
                try:
                    out.append({"n": nonce, "ev": "done", "status": "passed", "k": int(k), "t": float(t[:-1])})
                    continue
                except ValueError:
                    pass
        try:
            rec = json.loads(line.decode())
        except ValueError:
            continue
        if type(rec) is dict and rec.get("n") == nonce:
            out.append(rec)


def clean_text(value):
    """A string safe to send: lone surrogates (legal in a Python str, not in the JSON
    the pool reads) become '?', so no exception text can break the reply."""
    return str(value).encode("utf-8", "replace").decode("utf-8", "replace")


def error_of(rec):
    line = rec.get("line")
    return {"exc_type": clean_text(rec.get("exc_type", "")), "message": clean_text(rec.get("message", "")),
            "line": line if type(line) is int and line > 0 else None}


def crash_reason(status, loading):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown"
        hint = ", CPU time limit" if sig == signal.SIGXCPU else ""
        return "killed by signal %d (%s%s)" % (sig, name, hint)
    when = "while the code was loading" if loading else "before the test finished"
    return "exited with status %d %s" % (os.waitstatus_to_exitcode(status), when)


# The host's world-writable scratch dirs, where task code without namespaces can write.
HOST_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


def remove_owned(uid):
    """Without namespaces: remove what the run uid (this worker's alone) left at the top
    of the host's scratch dirs. Its processes are dead by now, so nothing races this."""
    for d in HOST_SCRATCH:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.stat(follow_symlinks=False).st_uid == uid:
                    remove_path(e.path)
            except OSError:
                pass


def remove_path(path, depth=0):
    """Remove a file or a whole tree, whatever modes a run gave it; never raises. A run
    may chmod its own dirs to 0: root ignores that, but a non-root server (the same uid
    as its runs) must give itself access back, dir by dir, before it can empty them."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            try:  # most runs leave their directory empty: one call instead of rmtree's walk
                os.rmdir(path)
                return
            except OSError:
                pass
            os.chmod(path, 0o700)
            shutil.rmtree(path, onerror=lambda _func, p, _exc: retry_removal(p, depth))
        else:
            os.unlink(path)
    except Exception:
        pass


def retry_removal(p, depth):
    """rmtree's error handler: open up the failing dir (or the dir holding the failing
    file) and try again; bounded so a pathological tree cannot recurse for ever."""
    if depth >= 64:
        return
    try:
        if os.path.isdir(p) and not os.path.islink(p):
            remove_path(p, depth + 1)
        else:
            os.chmod(os.path.dirname(p), 0o700)
            os.unlink(p)
    except Exception:
        pass


def child_main(server, fds, nonce):
    """In the forked child: confine this process, wait for the run, run it. Never returns.
    Only C-level calls here: each Python-level call would touch (and copy) more pages."""
    fd = server.report_fd  # records at fd, the end byte at fd - 1, the request at fd - 2
    req_r, rep_w, fin_w, out_w = fds
    try:
        os.setpgid(0, 0)
        _signal.signal(signal.SIGINT, _signal.default_int_handler)
        os.dup2(rep_w, fd, inheritable=False)
        os.dup2(fin_w, fd - 1, inheritable=False)
        os.dup2(req_r, fd - 2, inheritable=False)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.closerange(3, fd - 2)
        os.closerange(fd + 1, 1 << 16)
        if server.uid is not None:
            os.setgroups([])
            os.setgid(server.uid)
            os.setuid(server.uid)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        warm_child()
        run_tests = harness(fd, nonce)  # before the request: off the run's latency
        chunks = []
        while True:
            chunk = os.read(fd - 2, 1 << 16)  # a larger buffer is mmap'd, then remapped
            if not chunk:
                break
            chunks.append(chunk)
        os.close(fd - 2)
        if not chunks:  # never used: the server moved on or is gone
            os._exit(0)
        os.chdir(server.workdir)  # made ready while this child waited
        start, req = marshal.loads(b"".join(chunks))
        lim, mb = req["limits"], 1 << 20
        for res, soft, hard in ((resource.RLIMIT_CPU, lim["cpu_s"], lim["cpu_s"] + 1),
                                (resource.RLIMIT_AS, lim["memory_mb"] * mb, lim["memory_mb"] * mb),
                                (resource.RLIMIT_NPROC, lim["max_procs"], lim["max_procs"]),
                                (resource.RLIMIT_NOFILE, lim["max_open_files"], lim["max_open_files"]),
                                (resource.RLIMIT_FSIZE, lim["max_file_mb"] * mb, lim["max_file_mb"] * mb)):
            resource.setrlimit(res, (soft, hard))
    except BaseException as e:
        os.write(fd, (json.dumps({"n": nonce, "ev": "infra", "message": describe_error(e)}) + "\n").encode())
        os._exit(70)
    del server, fds, req_r, rep_w, fin_w, out_w
    run_tests(req, start)


def harness(fd, nonce):
    """run_tests(req, start): exec setup+code, then each test; report each finished test
    with the nonce. Made while the child waits for its request (~0.13 ms of a fresh
    child's time, page faults mostly), before any task code: everything it calls once
    task code has run is bound here, so code that rebinds builtins, json, time or
    sys.stdout cannot change what is reported."""
    write, getpid, _exit, me, clock = os.write, os.getpid, os._exit, os.getpid(), time.monotonic
    kill, SIGSTOP = os.kill, signal.SIGSTOP
    compile_, exec_, range_, len_ = compile, exec, range, len
    streams = (sys.stdout, sys.stderr)
    fail = failure_formatter(nonce)
    passed = '{"n": "%s", "ev": "done", "status": "passed", "k": %%d, "t": %%.6f}\n' % nonce

    def flush():
        for stream in streams:
            try:
                stream.flush()
            except BaseException:
                pass

    def report(line):
        if getpid() != me:  # a process the task forked must not speak for the run
            _exit(0)
        flush()
        try:
            write(fd, line.encode())
        except BaseException:
            _exit(71)

    def exit_(status):
        # Tell the server the records are complete, then stop rather than exit: tearing
        # down a forked interpreter costs ~1 ms of CPU, which would compete with the
        # server's reply. The server kills the stopped child in its clean-up, after the
        # reply; if anything continues it, it exits as before.
        try:
            write(fd - 1, b"x")
            kill(me, SIGSTOP)
        finally:
            _exit(status)

    flush()  # a fresh child's first flush costs ~50 us: not in the run

    def run_tests(req, start):
        code = req["code"]
        try:  # no task code has run yet, so json is still the real one
            code_obj = compile(code, "<buffer>", "exec", dont_inherit=True)
        except SyntaxError as e:
            msg = str(e.msg or "invalid syntax")
            report(json.dumps({"n": nonce, "ev": "syntax", "line": clamp_line(e.lineno, code), "message": msg}) + "\n")
            exit_(0)
        except ValueError as e:  # e.g. a NUL byte in the source
            report(json.dumps({"n": nonce, "ev": "syntax", "line": 1, "message": first_line(e)}) + "\n")
            exit_(0)
        except BaseException as e:
            report(fail("error", 0, e))
            exit_(0)
        main = type(sys)("__main__")
        sys.modules["__main__"] = main
        g = main.__dict__
        g["__builtins__"] = builtins
        tests = req["tests"]
        try:
            exec_(compile_(req["setup"], "<setup>", "exec", dont_inherit=True), g)
            exec_(code_obj, g)
        except BaseException as e:
            report(fail("error", 0, e))
            exit_(0)
        report('{"n": "%s", "ev": "ready", "t": %.6f}\n' % (nonce, clock()))
        for k in range_(start, len_(tests)):
            try:
                exec_(compile_(tests[k], "<test>", "exec", dont_inherit=True), g)
                rec = passed % (k, clock())
            except BaseException as e:
                rec = fail("done", k, e)
            report(rec)
        exit_(0)

    return run_tests


def failure_formatter(nonce):
    """fail(ev, k, exc) -> the record line of a failure: exception type, first line of
    its message, innermost line inside the buffer (0 when none). Only C functions bound
    before task code ran build it; str(exc) is the one call into task code."""
    quote, type_, str_, as_str, split = json.encoder.encode_basestring_ascii, type, str, str.__str__, str.split
    tb_of, clock, base = BaseException.__traceback__.__get__, time.monotonic, BaseException
    template = ('{"n": "%s", "ev": "%%s", "status": "failed", "k": %%d, "t": %%.6f, '
                '"exc_type": %%s, "message": %%s, "line": %%d}\n') % nonce

    def fail(ev, k, e):
        try:
            line, tb = 0, tb_of(e)
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == "<buffer>":
                    line = tb.tb_lineno
                tb = tb.tb_next
            name = as_str(type_.__dict__["__name__"].__get__(type_(e)))
            try:
                text = as_str(str_(e))
            except base:
                text = "<exception str() failed>"
            message = split(text, "\n", 1)[0][:500]
            return template % (ev, k, clock(), quote(name), quote(message), line)
        except base:
            return template % (ev, k, clock(), '"UnreportableError"', '""', 0)

    return fail


def first_line(e):
    try:
        text = str(e)
    except BaseException:
        text = "<exception str() failed>"
    return text.split("\n", 1)[0][:500]


def clamp_line(lineno, code):
    lines = code.replace("\r\n", "\n").split("\n")
    count = len(lines) - 1 if len(lines) > 1 and lines[-1] == "" else len(lines)
    return min(max(1, lineno or 1), max(1, count))


if __name__ == "__main__":
    sys.exit(main())
