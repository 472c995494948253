# --- server.py: the worker's entry point and the fork-server loop -------------------
#
# `main` sets the process up (namespaces or the fallback) and greets the pool; `Server`
# then serves one run at a time: hand the request to a pre-forked confined child,
# follow its records, output and exit with one poll loop, reply, and clean up after it
# (kill what it left, wipe scratch) while the pool is busy elsewhere.


def main():
    cfg = json.loads(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cfg.get("sweep"):
        return sweep(cfg["sweep"])
    prot = {"namespaces": False, "network_cut": False, "uid_dropped": False, "private_tmp": False,
            "private_proc": False, "read_only_root": False, "host_dirs_hidden": False,
            "syscall_filter": False, "sysv_ipc_off": False, "run_uid": None, "notes": []}
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
    send(1, {"hello": dict(prot, server_pid=os.getpid(), scratch_base=server.base)})
    server.serve()
    return 0


def sweep(uids):
    """Run by the pool without namespaces once its workers are gone: kill the run uids'
    processes and remove their files and IPC objects, in case a server died before its
    own clean-up (a killed worker leaves setsid'd processes behind)."""
    for uid in uids:
        helper = os.fork()
        if helper == 0:
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(helper, 0)
        remove_owned(uid)
        clear_sysv(uid)
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
        self.nonce = nonce
        self.pidfd = os.pidfd_open(pid)

    def close(self):
        for fd in (self.req_w, self.rep_r, self.out_r, self.fin_r, self.pidfd):
            if fd is not None:
                os.close(fd)


class Server:
    """Serves runs one at a time. Between runs (after replying) it kills what the last
    run left, wipes the scratch dirs and has the zygote fork the next child, so a run's
    latency is mostly the tests themselves."""

    def __init__(self, namespaces, drop_uid, scratch, clear_ipc, nice):
        self.ns, self.uid, self.scratch, self.clear_ipc = namespaces, drop_uid, scratch, clear_ipc
        self.nice, self.in_background = nice, False  # nice: (serving, background) or None
        self.private_tmp = "/tmp" in scratch
        self.base = None if self.private_tmp else "/tmp/coe-sandbox-%d-%s" % (os.getpid(), os.urandom(4).hex())
        self.workdir = "/tmp/run" if self.private_tmp else self.base + "/run"
        self.report_fd = max(16, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1024) - 1)
        self.spare, self.forked, self.zygote = None, [], None  # forked: run children's pids
        if self.base:
            os.mkdir(self.base, 0o755)
        # Every child inherits this; HOME and TMPDIR point at the run's own directory.
        os.environ.clear()
        os.environ.update(PATH="/usr/bin:/bin", LANG="C.UTF-8", HOME=self.workdir, TMPDIR=self.workdir,
                          PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")

    def serve(self):
        buf = bytearray()
        try:
            self.zygote = Zygote(self)
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
                # Let the pool's reader, just woken, have this CPU before the clean-up:
                # at background priority it still holds the CPU to the end of its slice
                # (~0.15 ms more of latency at rest, measured).
                os.sched_yield()
                self.prepare()
        finally:
            if self.zygote is not None:
                try:
                    self.kill_all()
                except Exception:
                    pass  # the zygote is gone; without namespaces the pool sweeps the run uid
                self.zygote.close()
            self.reap()
            if self.base:
                remove_path(self.base)
            if not self.ns and self.uid is not None:
                remove_owned(self.uid)
            if self.clear_ipc is not None:
                clear_sysv(None if self.clear_ipc[0] == "all" else self.clear_ipc[0])

    def prepare(self):
        """Clean up after the last run and fork the child for the next one, at background
        priority (the spare child keeps it until it gets a run). The fork goes first,
        overlapping the killed processes' teardown; a new child does not touch the
        working directory before its run arrives."""
        self.background(True)
        try:
            self.clean_up()
        finally:
            self.background(False)

    def background(self, on):
        if self.nice is not None and on != self.in_background:
            os.setpriority(os.PRIO_PROCESS, 0, self.nice[on])
            self.in_background = on

    def renice(self, pids, background):
        if self.nice is not None:
            for pid in pids:
                try:
                    os.setpriority(os.PRIO_PROCESS, pid, self.nice[background])
                except OSError:
                    pass  # gone already

    def hurry(self):
        """During clean-up: when the next request is already waiting, finish at the
        serving priority (the processes being reaped too)."""
        if self.in_background and select.select([0], [], [], 0)[0]:
            self.background(False)
            self.renice(self.forked, False)

    def clean_up(self):
        self.renice(self.forked, True)
        self.hurry()
        self.kill_orphans()
        self.spare = self.spawn(b"C")  # the zygote kills what runs left first
        self.hurry()
        self.reap()
        self.hurry()
        if self.private_tmp:
            for d in self.scratch:  # whatever a run left in any scratch dir goes
                for name in os.listdir(d):
                    if not (d == "/tmp" and name == ".coe"):
                        remove_path(d + "/" + name)
        else:
            remove_path(self.workdir)
            if self.uid is not None:
                remove_owned(self.uid)
        if self.clear_ipc is not None:
            clear_sysv(None if self.clear_ipc[0] == "all" else self.clear_ipc[0])
        os.mkdir(self.workdir, 0o700)
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)

    def spawn(self, op=b"F"):
        """A new run child from the zygote (`op` C: after it killed and reaped the last
        run's processes)."""
        (req_r, req_w), (rep_r, rep_w), (out_r, out_w), (fin_r, fin_w) = [os.pipe() for _ in range(4)]
        nonce = os.urandom(16).hex()
        try:
            pid = self.zygote.ask(op + nonce.encode(), (req_r, rep_w, fin_w, out_w))
        finally:
            for fd in (req_r, rep_w, fin_w, out_w):
                os.close(fd)
        if op == b"C":
            self.forked = []
        if pid < 0:
            for fd in (req_w, rep_r, out_r, fin_r):
                os.close(fd)
            raise OSError(-pid, "fork: " + os.strerror(-pid))
        self.forked.append(pid)
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
        self.renice((child.pid,), False)  # a spare forked in the background
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
                    return ("syntax", rec["line"], clean_text(rec["message"]))
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
                status = self.zygote.ask(b"W%d" % child.pid)
                crash = {"status": "crashed", "reason": crash_reason(status, k is None)}
                return ("all", crash) if k is None else ("test", k, crash)
            if time.monotonic() >= min(since + run.test_s, run.deadline):
                out = run.timed_out(since + run.test_s >= run.deadline)
                return ("all", out) if k is None else ("test", k, out)

    def kill_all(self):
        """SIGKILL every process runs started (a spare child too): the zygote kills and
        reaps its run children, we kill the orphans, reaped later."""
        self.spare = None
        self.kill_orphans()
        self.zygote.ask(b"K")
        self.forked = []

    def kill_orphans(self):
        """Without namespaces, the processes runs left that came to us as subreaper (with
        them, the zygote's kill(-1) reaches everything in the namespace)."""
        if self.ns:
            return
        for pid in children_of(os.getpid()):
            if pid != self.zygote.pid:
                for kill in (os.killpg, os.kill):
                    try:
                        kill(pid, signal.SIGKILL)
                    except OSError:
                        pass

    def reap(self):
        """Wait for our children but the zygote: the processes a run left (orphans come to
        us as PID 1 or subreaper) were just SIGKILLed, and until reaped they still count
        against the run uid's process limit, so the next run would find it spent. A
        bounded wait: a child that is not gone within REAP_WAIT_S is left for the next
        clean-up. The zygote reaps the run children themselves."""
        zygote = self.zygote.pid if self.zygote else None
        deadline = None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == zygote:
                self.zygote = None
                raise RuntimeError("the zygote died (%s)" % crash_reason(status, False))
            if pid != 0:
                continue
            if not [p for p in children_of(os.getpid()) if p != zygote]:
                return
            deadline = deadline or time.monotonic() + REAP_WAIT_S
            if time.monotonic() > deadline:
                return
            time.sleep(0.0005)


# How long a clean-up waits for killed processes to exit before moving on.
REAP_WAIT_S = 2.0
