# chain-of-edits sandbox worker: a resident fork-server for untrusted test runs.
#
# Started by the Rust pool as `python -S -B -c <boot.py> <config json> <length>` with
# a cleared environment and this source on stdin; speaks JSON lines: one greeting,
# then one reply per request. One program in six files, concatenated in this order: setup.py (imports,
# constants, helpers, server set-up), confine.py (namespaces, mounts, IPC), seccomp.py
# (the syscall filter), server.py (the serving loop), zygote.py (the process run
# children are forked from), child.py (the run child).
#
# Namespaces are entered once per worker, not per run: the first process unshares
# pid+net+mount+ipc (plus a user namespace when not root) and forks the real server,
# PID 1 of the new pid namespace, so `kill(-1)` from task code stays inside, the
# zygote can `kill(-1)` whatever a run left, and the kernel kills everything if the
# server dies. Mounts: everything read-only, only system directories visible, private
# tmpfs scratch dirs, a private /proc.
#
# Per run the server hands the request to a child the zygote forked, confined (own
# process group, uid, rlimits, syscall filter, no fds but its pipes) and warmed up
# while the previous run's reply was being read, so a run's latency is mostly the
# tests. A test passes only when the child writes a record carrying the run's nonce to
# a private pipe after the statement finished; exit statuses and printed text never
# count.
import sys

sys.path[:] = [p for p in sys.path if p]  # never import from the working directory

import _signal, _socket, builtins, ctypes, fcntl, gc, json, marshal, os, resource, select, shutil, signal, stat, time

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
NEWNS, NEWIPC, NEWUSER, NEWPID, NEWNET = 0x20000, 0x08000000, 0x10000000, 0x20000000, 0x40000000
IPC_RMID = 0
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
# Private tmpfs scratch dirs (MiB each); their memory is the host's, so keep them small.
SCRATCH_MB = {"/tmp": 128, "/var/tmp": 16, "/dev/shm": 16}
LIBDIR = "/tmp/.coe"
# How much nicer than the server a worker's work between runs is (its clean-up, the
# next child's fork and warm-up, the last child's teardown): a run, on this worker or
# another, then gets a CPU before it. On two cores that work otherwise delayed each
# reply by ~2 ms, the time it took the woken pool thread to find a free CPU.
BACKGROUND_NICE = 10
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


def preload(names):
    for name in names:
        try:
            __import__(name)
        except ImportError:
            pass


def probe_renice(notes):
    """(serving, background) nice values when this server may go back from the second to
    the first (root may; others only as far as RLIMIT_NICE allows), else None. Tried in
    a throw-away child, so a refusal never leaves the server itself reniced."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    back = min(19, base + BACKGROUND_NICE)
    if back == base:
        return None
    pid = os.fork()
    if pid == 0:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, back)
            os.setpriority(os.PRIO_PROCESS, 0, base)
            os._exit(0)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        notes.append("clean-up between runs at the server's own priority (it may not renice itself back)")
        return None
    return base, back


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
    seccomp = probe_seccomp(prot["notes"])
    prot["syscall_filter"] = seccomp is not None
    nice = probe_renice(prot["notes"])
    # SysV objects outlive their processes: remove those runs made, where any can be.
    if namespaces:
        clear_ipc = None if prot.get("sysv_ipc_off") else ("all",)
    else:
        clear_ipc = None if drop_uid is None else (drop_uid,)
    # Memory is limited per process, not per run: if a run's processes together exhaust
    # the host, the kernel's OOM killer must take them first. Set here, before the
    # server stops being dumpable (its /proc files then belong to root, and a non-root
    # server could no longer write them); every run child inherits it.
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError as e:
        prot["notes"].append("task processes keep the default OOM score (%s)" % describe_error(e))
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # The first compile() in a process builds the parser's lazily made state: about
    # 3 ms of CPU that every forked child paid again (and that the run child's warm-up
    # spent on each run). Done once here, children inherit it.
    warm_child()
    # What every run child must have and the server can live with is set once here
    # and inherited through fork (each Python-level call in a child costs it page
    # faults): no core files, no POSIX message queues (like SysV objects they outlive
    # the process), oversized writes raise instead of killing, no_new_privs and the
    # syscall filter. The server needs none of the calls the filter denies once set up.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))
    _signal.signal(signal.SIGXFSZ, _signal.SIG_IGN)
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    if seccomp is not None:
        install_seccomp(seccomp)
    gc.collect()
    gc.freeze()
    return Server(namespaces, drop_uid, scratch, clear_ipc, nice)


