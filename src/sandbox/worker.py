# chain-of-edits sandbox worker: a resident fork-server for untrusted test runs.
#
# Started by the Rust pool as `python -S -B -c <this source> <config json>` with a
# cleared environment; speaks JSON lines: one greeting, then one reply per request.
#
# Namespaces are entered once per worker, not per run: the first process unshares
# pid+net+mount (plus a user namespace when not root) and forks the real server, PID 1
# of the new pid namespace, so `kill(-1)` from task code stays inside, the server can
# `kill(-1)` whatever a run left, and the kernel kills everything if the server dies.
# Mounts: everything read-only, private tmpfs scratch dirs, a private /proc.
#
# Per run the server hands the request to a child it forked, confined (own process
# group, uid, rlimits, no fds but its pipes) and warmed up while the previous run's
# reply was being read, so a run's latency is mostly the tests. A test passes only
# when the child writes a record carrying the run's nonce to a private pipe after the
# statement finished; exit statuses and printed text never count.
import sys

sys.path[:] = [p for p in sys.path if p]  # never import from the working directory

import _signal, builtins, ctypes, fcntl, gc, json, marshal, os, resource, select, shutil, signal, stat, time

# Imported once in the server so runs need not: the modules task code uses most.
# Every module kept resident makes each fork dearer (page tables, copy-on-write),
# so the rest import lazily in the run, from the library dirs it can read.
PRELOAD = "math re collections itertools functools heapq bisect string operator copy".split()
# Where the run uid cannot read the library (no mount namespace to expose it), these
# are the only modules task code can import at all, so preload more.
PRELOAD_UNREADABLE_LIB = (
    "random typing fractions decimal statistics datetime array cmath struct textwrap "
    "unicodedata enum dataclasses socket encodings.idna subprocess threading hashlib base64"
).split()
NEWNS, NEWUSER, NEWPID, NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
SCRATCH = (("/tmp", 128), ("/var/tmp", 16), ("/dev/shm", 16), ("/run/lock", 4))
LIBDIR = "/tmp/.coe"
libc = ctypes.CDLL(None, use_errno=True)
# fork(2) without os.fork()'s Python at-fork hooks: they cost each run more CPU than
# the fork itself, and the server is single-threaded, so the interpreter state a
# child inherits is consistent without them. PyDLL keeps the GIL across the call.
raw_fork = ctypes.PyDLL(None, use_errno=True).fork


def check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def mount(src, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    check(libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
          "mount %s" % target)


def send(fd, obj):
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def describe_error(e):
    return "%s: %s" % (type(e).__name__, e)


def enter_namespaces():
    """unshare pid+net+mount (and user when not root); returns an error text or None."""
    try:
        if os.geteuid() == 0:
            check(libc.unshare(NEWNS | NEWNET | NEWPID), "unshare")
        else:
            uid, gid = os.geteuid(), os.getegid()
            check(libc.unshare(NEWUSER | NEWNS | NEWNET | NEWPID), "unshare")
            for name, text in (("setgroups", "deny"), ("uid_map", "%d %d 1" % (uid, uid)),
                               ("gid_map", "%d %d 1" % (gid, gid))):
                with open("/proc/self/" + name, "w") as f:
                    f.write(text)
        return None
    except OSError as e:
        return describe_error(e)


def others_can_read(path):
    """True when an unprivileged uid could reach and read `path`."""
    parts, cur = os.path.realpath(path).split("/"), ""
    for part in parts[1:-1]:
        cur += "/" + part
        if not os.stat(cur).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    want = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & want == want


def remount_read_only(notes):
    """Bind-remount every real filesystem read-only inside our mount namespace."""
    flag_map = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                (os.ST_NOATIME, 1024), (os.ST_NODIRATIME, 2048), (os.ST_RELATIME, 1 << 21))
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    failed = []
    for mp in sorted(set(points)):
        if any(mp == p or mp.startswith(p + "/") for p in ("/proc", "/sys", "/dev")):
            continue
        try:
            keep = os.statvfs(mp).f_flag
            extra = sum(ms for st, ms in flag_map if keep & st)
            mount(None, mp, None, MS_REMOUNT | MS_BIND | MS_RDONLY | extra)
        except OSError:
            failed.append(mp)
    if failed:
        notes.append("could not make read-only: " + ", ".join(failed))
    return "/" not in failed


def setup_mounts(prot, drop_uid):
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    prot["read_only_root"] = remount_read_only(prot["notes"])
    scratch = []
    for path, mb in SCRATCH:
        if os.path.isdir(path):
            try:
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "mode=1777,size=%dm" % mb)
                scratch.append(path)
            except OSError as e:
                prot["notes"].append("no private %s (%s)" % (path, describe_error(e)))
    prot["private_tmp"] = "/tmp" in scratch
    if drop_uid is not None and prot["private_tmp"]:
        expose_stdlib(prot["notes"])
    try:
        try:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
        except OSError:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        prot["private_proc"] = True
    except OSError as e:
        prot["notes"].append("host /proc stays visible (%s)" % describe_error(e))
    return scratch


def expose_stdlib(notes):
    """Bind the interpreter's library dirs where the unprivileged run uid can read them."""
    os.mkdir(LIBDIR, 0o755)
    moved = []
    for i, p in enumerate(list(sys.path)):
        if not os.path.exists(p) or others_can_read(p):
            continue
        target = "%s/%d" % (LIBDIR, i)
        if os.path.isdir(p):
            os.mkdir(target, 0o755)
        else:
            open(target, "w").close()
        try:
            mount(p, target, None, MS_BIND)
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
            sys.path[i] = target
            moved.append((p + "/", target + "/"))
        except OSError as e:
            notes.append("library %s stays unreadable to tasks (%s)" % (p, describe_error(e)))
    for mod in list(sys.modules.values()):  # packages already imported look up submodules here
        path = getattr(mod, "__path__", None)
        if type(path) is list:
            path[:] = [rebase(d, moved) for d in path]


def rebase(path, moved):
    for old, new in moved:
        if (path + "/").startswith(old):
            return new + path[len(old):]
    return path


def drop_capabilities():
    """Empty every capability set (non-root in a user namespace keeps the uid but not the caps)."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc.capset(header, data), "capset")


def preload(names):
    for name in names:
        try:
            __import__(name)
        except ImportError:
            pass


def start_server(cfg, prot, namespaces):
    """Set the server up in this process; returns the Server or raises."""
    root = os.geteuid() == 0
    drop_uid = cfg["uid"] if root else None
    scratch = []
    if namespaces:
        prot.update(namespaces=True, network_cut=True)
        scratch = setup_mounts(prot, drop_uid)
    else:
        libc.prctl(PR_SET_SUBREAPER, 1, 0, 0, 0)
    preload(PRELOAD)
    if drop_uid is not None:
        prot["uid_dropped"] = True
        prot["run_uid"] = drop_uid
        if not all(others_can_read(p) for p in sys.path if os.path.exists(p)):
            preload(PRELOAD_UNREADABLE_LIB)
            prot["notes"].append("stdlib not readable by uid %d: only preloaded modules import" % drop_uid)
    else:
        prot["notes"].append("tasks run as the invoking uid %d (not root, nothing to drop to)" % os.geteuid())
        if namespaces:
            drop_capabilities()
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    gc.collect()
    gc.freeze()
    return Server(namespaces, drop_uid, scratch)


def main():
    cfg = json.loads(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prot = {"namespaces": False, "network_cut": False, "uid_dropped": False, "private_tmp": False,
            "private_proc": False, "read_only_root": False, "run_uid": None, "notes": []}
    if cfg["isolation"] != "none":
        err = enter_namespaces()
        if err is None:
            return fork_server(cfg, prot)
        if cfg["isolation"] == "namespaces":
            send(1, {"fatal": "cannot set up namespaces: " + err})
            return 1
        prot["notes"].append("namespaces unavailable (%s); no network cut, shared /tmp" % err)
    else:
        prot["notes"].append("namespaces disabled by configuration")
    try:
        server = start_server(cfg, prot, False)
    except Exception as e:
        send(1, {"fatal": "sandbox set-up failed: " + describe_error(e)})
        return 1
    send(1, {"hello": dict(prot, server_pid=os.getpid())})
    server.serve()
    return 0


def fork_server(cfg, prot):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the server: PID 1 of the new pid namespace
        os.close(r)
        try:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            server = start_server(cfg, prot, True)
        except BaseException as e:
            try:
                send(w, {"fatal": "sandbox set-up failed: " + describe_error(e)})
            finally:
                os._exit(1)
        try:
            send(w, {"hello": prot})
            os.close(w)
            server.serve()
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    msg = json.loads(data) if data else {"fatal": "sandbox server died during set-up"}
    if "hello" in msg:
        msg["hello"]["server_pid"] = pid
    send(1, msg)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    _, status = os.waitpid(pid, 0)
    os._exit(min(255, abs(os.waitstatus_to_exitcode(status))))


# Output still read once a child is done; bounded because a process it left behind
# could keep the pipe full for ever.
FINAL_DRAIN = 8 << 20


class Output:
    """stdout+stderr of one run; keeps the first `limit` bytes and drains the rest."""

    def __init__(self, limit):
        self.limit, self.data = limit, bytearray()

    def drain(self, fd, budget=1 << 20):
        """Read what is there now (at most `budget` bytes); False once every writer is gone."""
        while budget > 0:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            budget -= len(chunk)
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
        return True

    def text(self):
        return self.data.decode("utf-8", "replace")


class Run:
    """One request being served: its limits, deadline, outcomes so far and output."""

    def __init__(self, req):
        self.req, lim = req, req["limits"]
        self.tests = req["tests"]
        self.test_s, self.run_s = float(lim["test_timeout_s"]), float(lim["run_timeout_s"])
        self.deadline = time.monotonic() + self.run_s
        self.outcomes = [None] * len(self.tests)
        self.out = Output(int(lim["output_bytes"]))

    def timed_out(self, run_bound):
        return {"status": "timed_out", "seconds": self.run_s if run_bound else self.test_s}


class Child:
    """A forked, already confined child blocked on its request pipe. Our ends of its
    pipes: request (we write), records, output, and `fin`, one byte when it is done."""

    def __init__(self, pid, req_w, rep_r, out_r, fin_r, nonce):
        self.pid, self.req_w, self.rep_r, self.out_r, self.fin_r = pid, req_w, rep_r, out_r, fin_r
        self.nonce, self.status = nonce, None  # status: when reaped early
        self.pidfd = os.pidfd_open(pid)

    def close(self):
        for fd in (self.req_w, self.rep_r, self.out_r, self.fin_r, self.pidfd):
            if fd is not None:
                os.close(fd)


class Server:
    """Serves runs one at a time. Between runs (after replying) it kills what the last
    run left, wipes the scratch dirs and forks the next child, so a run's latency is
    mostly the tests themselves."""

    def __init__(self, namespaces, drop_uid, scratch):
        self.ns, self.uid, self.scratch = namespaces, drop_uid, scratch
        self.private_tmp = "/tmp" in scratch
        self.base = None if self.private_tmp else "/tmp/coe-sandbox-%d-%s" % (os.getpid(), os.urandom(4).hex())
        self.workdir = "/tmp/run" if self.private_tmp else self.base + "/run"
        self.report_fd = max(16, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1024) - 1)
        self.spare, self.forked = None, []
        if self.base:
            os.mkdir(self.base, 0o755)
        # Every child inherits this; HOME and TMPDIR point at the run's own directory.
        os.environ.clear()
        os.environ.update(PATH="/usr/bin:/bin", LANG="C.UTF-8", HOME=self.workdir, TMPDIR=self.workdir,
                          PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")

    def serve(self):
        buf = bytearray()
        try:
            self.prepare()
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    chunk = os.read(0, 1 << 16)
                    if not chunk:
                        return
                    buf += chunk
                    continue
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                rid = None
                try:
                    req = json.loads(line)
                    rid = req["id"]
                    reply = self.run(req)
                    reply["id"] = rid
                except Exception as e:
                    reply = {"id": rid, "error": describe_error(e)}
                send(1, reply)
                self.prepare()
        finally:
            self.kill_all()
            self.reap()
            if self.base:
                remove_path(self.base)

    def prepare(self):
        """Clean up after the last run and fork the child for the next one. The fork goes
        first, overlapping the killed processes' teardown; a new child does not touch the
        working directory before its run arrives."""
        self.kill_all()
        self.spare = self.spawn()
        touch_hot_paths()
        self.reap(self.spare)
        if self.private_tmp:
            for d in self.scratch:  # whatever a run left in any scratch dir goes
                for name in os.listdir(d):
                    if not (d == "/tmp" and name == ".coe"):
                        remove_path(d + "/" + name)
        else:
            remove_path(self.workdir)
        os.mkdir(self.workdir, 0o700)
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)

    def spawn(self):
        (req_r, req_w), (rep_r, rep_w), (out_r, out_w), (fin_r, fin_w) = [os.pipe() for _ in range(4)]
        nonce = os.urandom(16).hex()
        pid = raw_fork()
        if pid == 0:
            try:
                child_main(self, (req_r, rep_w, fin_w, out_w), nonce)
            finally:
                os._exit(70)
        for fd in (req_r, rep_w, fin_w, out_w):
            os.close(fd)
        if pid < 0:
            e = ctypes.get_errno()
            raise OSError(e, "fork: " + os.strerror(e))
        self.forked.append(pid)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child already did it, or is gone
        os.set_blocking(rep_r, False)
        os.set_blocking(out_r, False)
        try:  # records are read lazily: room for thousands before the child would block
            fcntl.fcntl(rep_r, fcntl.F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        return Child(pid, req_w, rep_r, out_r, fin_r, nonce)

    def run(self, req):
        run = Run(req)
        n, start = len(run.tests), 0
        while True:
            child, self.spare = self.spare or self.spawn(), None
            try:
                end = self.follow(run, start, child)
            finally:
                child.close()
            if end[0] == "syntax":
                outcome = {"kind": "syntax_error", "line": end[1], "message": end[2]}
                return {"outcome": outcome, "output": run.out.text()}
            if end[0] == "test":  # test k timed out or crashed; go on in a fresh child
                run.outcomes[end[1]] = end[2]
                start = end[1] + 1
                if start < n and time.monotonic() < run.deadline:
                    self.kill_all()
                    self.reap()
                    continue
                fill = run.timed_out(True)
            else:  # "finished", or "all" with one outcome for every undecided test
                fill = end[1] if end[0] == "all" else {"status": "crashed", "reason": "no report"}
            run.outcomes = [fill if o is None else o for o in run.outcomes]
            return {"outcome": {"kind": "tests", "tests": run.outcomes}, "output": run.out.text()}

    def follow(self, run, start, child):
        """Hand the run to `child` and follow it until the tests are done, it dies, or
        time runs out."""
        data = marshal.dumps((start, run.req))
        try:
            while data:
                data = data[os.write(child.req_w, data):]
        except BrokenPipeError:
            pass  # it died while waiting; its exit status tells how
        os.close(child.req_w)
        child.req_w = None
        # Progress records are read lazily, when the child says it is done, when the
        # current test's time is up, or when it died: one wake-up per run, not one per
        # test, and no waiting for its exit. Each record carries the time it was
        # written, so a test's clock starts when the test started.
        poller = select.poll()
        for fd in (child.out_r, child.fin_r, child.pidfd):
            poller.register(fd, select.POLLIN)
        pending, k, n = bytearray(), None, len(run.tests)  # k None: setup and code loading
        since = time.monotonic()  # when the current phase began
        while True:
            until = min(since + run.test_s, run.deadline)
            wait = until - time.monotonic()
            events = poller.poll(int(wait * 1000) + 1) if wait > 0 else []
            exited = fin = False
            for fd, _ in events:
                if fd == child.pidfd:
                    exited = True
                elif fd == child.fin_r:
                    fin = True
                    poller.unregister(fd)
                elif not run.out.drain(fd):
                    poller.unregister(fd)
            if not (exited or fin) and time.monotonic() < until:
                continue
            if fin or exited:  # it flushed before saying so / what it wrote is all there now
                run.out.drain(child.out_r, FINAL_DRAIN)
            read_into(child.rep_r, pending)
            for rec in take_records(pending, child.nonce):
                ev = rec.get("ev")
                if ev == "syntax":
                    return ("syntax", rec["line"], rec["message"])
                if ev == "error":
                    return ("all", {"status": "failed", "error": error_of(rec)})
                if ev == "infra":
                    raise RuntimeError("run child set-up failed: %s" % rec.get("message"))
                if ev == "ready" and k is None:
                    k = start
                elif ev == "done" and k is not None and rec.get("k") == k:
                    ok = rec.get("status") == "passed"
                    run.outcomes[k] = {"status": "passed"} if ok else {"status": "failed", "error": error_of(rec)}
                    k += 1
                else:
                    continue
                if k >= n:
                    return ("finished",)
                t = rec.get("t")
                since = min(max(t, since), time.monotonic()) if type(t) is float else time.monotonic()
            if exited:
                status = child.status if child.status is not None else os.waitpid(child.pid, 0)[1]
                crash = {"status": "crashed", "reason": crash_reason(status, k is None)}
                return ("all", crash) if k is None else ("test", k, crash)
            if time.monotonic() >= min(since + run.test_s, run.deadline):
                out = run.timed_out(since + run.test_s >= run.deadline)
                return ("all", out) if k is None else ("test", k, out)

    def kill_all(self):
        """SIGKILL every process runs started (a spare child too); reaping comes later."""
        self.spare = None
        if self.ns:  # PID 1 of the namespace: kill(-1) reaches exactly the runs' processes
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        if self.uid is not None:  # every run process carries the run uid, whatever its group
            helper = os.fork()
            if helper == 0:
                try:
                    os.setgid(self.uid)
                    os.setuid(self.uid)
                    os.kill(-1, signal.SIGKILL)
                finally:
                    os._exit(0)
            os.waitpid(helper, 0)
        for pid in children_of(os.getpid()):  # run groups, and orphans adopted as subreaper
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def reap(self, keep=None):
        """Wait for the children we forked (all but `keep`), then collect other zombies."""
        for pid in self.forked:
            if keep is None or pid != keep.pid:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
        self.forked = [] if keep is None else [keep.pid]
        try:
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    return
                if keep is not None and pid == keep.pid:
                    keep.status = status
        except ChildProcessError:
            pass


# A run's hot paths on dummy data. After each fork every page either process writes
# is copied on its first write (a page fault, dear in a VM); exercising the paths
# while idle moves those faults out of the next run's latency.
WARM_CODE = "def _f(a, b):\n    s = 0\n    for i in range(a):\n        s += i * b\n    return s\n"
WARM_TESTS = ["assert _f(3, 2) == 6", "assert _f(1, 1) == 5"]
WARM_REQUEST = json.dumps({"id": 0, "setup": "", "code": WARM_CODE, "tests": WARM_TESTS, "limits": {
    "test_timeout_s": 1.0, "run_timeout_s": 1.0, "output_bytes": 1}}).encode()
WARM_RECORDS = b'{"n": "x", "ev": "ready", "t": 1.0}\n{"n": "x", "ev": "done", "status": "passed", "k": 0, "t": 1.5}\n' \
               b'{"n": "x", "ev": "done", "k": 1, "status": "failed", "exc_type": "E", "message": "", "line": 2}\n'


def touch_hot_paths():
    """The server's side: parse a request, hand it over, read records, reply."""
    req = json.loads(WARM_REQUEST)
    marshal.dumps((0, req))
    run = Run(req)
    run.outcomes = [error_of(rec) for rec in take_records(bytearray(WARM_RECORDS), "x")]
    json.dumps({"outcome": {"kind": "tests", "tests": run.outcomes}, "output": run.out.text(), "id": 0})
    poller = select.poll()
    poller.register(0, select.POLLIN)
    poller.poll(0)
    poller.unregister(0)


def warm_child():
    """The child's side: compile and run a small program and its tests, report a failure."""
    g = {"__builtins__": builtins}
    exec(compile(WARM_CODE, "<buffer>", "exec", dont_inherit=True), g)
    for test in WARM_TESTS:
        try:
            exec(compile(test, "<test>", "exec", dont_inherit=True), g)
        except AssertionError as e:
            (json.dumps(dict(describe(e), ev="done", k=1, status="failed")) + "\n").encode()


def children_of(ppid):
    """Our direct children (runs and orphans we adopted as subreaper)."""
    try:
        with open("/proc/self/task/%d/children" % ppid) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


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
    """Complete JSON lines carrying this run's nonce; other lines are dropped."""
    out = []
    while True:
        nl = buf.find(b"\n")
        if nl < 0:
            return out
        line = bytes(buf[:nl])
        del buf[: nl + 1]
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if type(rec) is dict and rec.get("n") == nonce:
            out.append(rec)


def error_of(rec):
    line = rec.get("line")
    return {"exc_type": str(rec.get("exc_type", "")), "message": str(rec.get("message", "")),
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


def remove_path(path):
    def fix(func, p, _exc):  # a run may chmod its own dirs to 0; reopen and retry once
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=fix)
        else:
            os.unlink(path)
    except OSError:
        pass


def child_main(server, fds, nonce):
    """In the forked child: confine this process, wait for the run, run it. Never returns.
    Only C-level calls here: each Python-level call would touch (and copy) more pages."""
    fd = server.report_fd  # records at fd, the end byte at fd - 1, the request at fd - 2
    req_r, rep_w, fin_w, out_w = fds
    try:
        os.setpgid(0, 0)
        _signal.signal(signal.SIGINT, _signal.default_int_handler)
        _signal.signal(signal.SIGXFSZ, _signal.SIG_IGN)  # an oversized write raises instead
        os.dup2(rep_w, fd, inheritable=False)
        os.dup2(fin_w, fd - 1, inheritable=False)
        os.dup2(req_r, fd - 2, inheritable=False)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.closerange(3, fd - 2)
        os.closerange(fd + 1, 1 << 16)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if server.uid is not None:
            os.setgroups([])
            os.setgid(server.uid)
            os.setuid(server.uid)
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        warm_child()
        chunks = []
        while True:
            chunk = os.read(fd - 2, 1 << 20)
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
    run_tests(req, start, fd, nonce)


def run_tests(req, start, fd, nonce):
    """Exec setup+code, then each test; report each finished test with the nonce."""
    write, dumps, getpid, _exit, me = os.write, json.dumps, os.getpid, os._exit, os.getpid()
    clock = time.monotonic
    passed = '{"n": "%s", "ev": "done", "status": "passed", "k": %%d, "t": %%.6f}\n' % nonce

    def report(rec):
        if getpid() != me:  # a process the task forked must not speak for the run
            _exit(0)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        try:
            if type(rec) is not str:
                rec["n"], rec["t"] = nonce, clock()
                rec = dumps(rec) + "\n"
            write(fd, rec.encode())
        except BaseException:
            _exit(71)

    def exit_(status):  # tell the server the records are complete, then go
        try:
            write(fd - 1, b"x")
        finally:
            _exit(status)

    code = req["code"]
    try:
        code_obj = compile(code, "<buffer>", "exec", dont_inherit=True)
    except SyntaxError as e:
        report({"ev": "syntax", "line": clamp_line(e.lineno, code), "message": str(e.msg or "invalid syntax")})
        exit_(0)
    except ValueError as e:  # e.g. a NUL byte in the source
        report({"ev": "syntax", "line": 1, "message": first_line(e)})
        exit_(0)
    except BaseException as e:
        report(dict(describe(e), ev="error"))
        exit_(0)
    main = type(sys)("__main__")
    sys.modules["__main__"] = main
    g = main.__dict__
    g["__builtins__"] = builtins
    try:
        exec(compile(req["setup"], "<setup>", "exec", dont_inherit=True), g)
        exec(code_obj, g)
    except BaseException as e:
        report(dict(describe(e), ev="error"))
        exit_(0)
    report('{"n": "%s", "ev": "ready", "t": %.6f}\n' % (nonce, clock()))
    tests = req["tests"]
    for k in range(start, len(tests)):
        try:
            exec(compile(tests[k], "<test>", "exec", dont_inherit=True), g)
            rec = passed % (k, clock())
        except BaseException as e:
            rec = dict(describe(e), ev="done", k=k, status="failed")
        report(rec)
    exit_(0)


def first_line(e):
    try:
        text = str(e)
    except BaseException:
        text = "<exception str() failed>"
    return text.split("\n", 1)[0][:500]


def describe(e):
    """Exception type, first line of its message, innermost line inside the buffer."""
    line, tb = None, e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<buffer>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return {"exc_type": type(e).__name__, "message": first_line(e), "line": line}


def clamp_line(lineno, code):
    lines = code.replace("\r\n", "\n").split("\n")
    count = len(lines) - 1 if len(lines) > 1 and lines[-1] == "" else len(lines)
    return min(max(1, lineno or 1), max(1, count))


if __name__ == "__main__":
    sys.exit(main())
