# --- confine.py: the walls, put up once per worker ---------------------------------
#
# Namespaces (pid, net, mount, ipc), the filesystem view task code gets (read-only,
# only system directories visible, private scratch tmpfs, a private /proc), no SysV
# IPC, and the seccomp filter the server installs on itself for every run child to
# inherit. All of it is set up once per worker so a run pays nothing for it; what
# could not be set up is reported in the greeting's notes.

# Top-level directories task code sees. Everything else at / (home directories, the
# repository, /run with its sockets, /opt, /mnt, /srv, ...) is covered by an empty
# read-only tmpfs, so a file is hidden even where its permissions would let any user
# read it. /var is hidden too: only its tmp survives, as private scratch.
VISIBLE = frozenset("bin sbin lib lib32 lib64 libx32 usr etc dev proc sys tmp".split())


def enter_namespaces():
    """unshare pid+net+mount+ipc (and user when not root); returns an error text or None."""
    try:
        if os.geteuid() == 0:
            check(libc.unshare(NEWNS | NEWNET | NEWPID | NEWIPC), "unshare")
        else:
            uid, gid = os.geteuid(), os.getegid()
            check(libc.unshare(NEWUSER | NEWNS | NEWNET | NEWPID | NEWIPC), "unshare")
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


def hidden_by_view(path):
    """True when `path` lies under a top-level directory task code does not see."""
    top = os.path.realpath(path).split("/")[1:2]
    return bool(top) and top[0] not in VISIBLE


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


def mount_scratch(path, mb, prot):
    try:
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=%dm" % mb)
        return [path]
    except OSError as e:
        prot["notes"].append("no private %s (%s)" % (path, describe_error(e)))
        return []


def setup_mounts(prot, drop_uid):
    """The filesystem view of the runs; returns the private scratch dirs."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    prot["read_only_root"] = remount_read_only(prot["notes"])
    # /tmp first: the library dirs are bound into it before their parents are hidden.
    scratch = mount_scratch("/tmp", SCRATCH_MB["/tmp"], prot) if os.path.isdir("/tmp") else []
    prot["private_tmp"] = "/tmp" in scratch
    if prot["private_tmp"]:
        keep = expose_stdlib(prot["notes"], drop_uid is not None)
        prot["host_dirs_hidden"] = hide_top_level(prot["notes"], keep)
    else:
        prot["notes"].append("host directories stay visible (no private /tmp for the library)")
    for path in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(path):
            scratch += mount_scratch(path, SCRATCH_MB[path], prot)
    try:
        try:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
        except OSError:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        prot["private_proc"] = True
        prot["sysv_ipc_off"] = limit_sysv_ipc(prot["notes"])
    except OSError as e:
        prot["notes"].append("host /proc stays visible (%s)" % describe_error(e))
    return scratch


def hide_top_level(notes, keep):
    """Cover every top-level entry outside VISIBLE and `keep`: a directory with an empty
    read-only tmpfs (keeping /var/tmp as a mount point for its scratch), a file with
    /dev/null. True when nothing stayed visible."""
    ok = True
    for name in sorted(os.listdir("/")):
        path = "/" + name
        if name in VISIBLE or os.path.islink(path):
            continue
        if name in keep:
            ok = False
            notes.append("%s stays visible (the library lives there)" % path)
            continue
        try:
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=16k")
                if path == "/var":
                    os.mkdir("/var/tmp", 0o755)
                mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
            else:
                mount("/dev/null", path, None, MS_BIND)
                mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError as e:
            ok = False
            notes.append("%s stays visible (%s)" % (path, describe_error(e)))
    return ok


def expose_stdlib(notes, dropping_uid):
    """Bind the interpreter's library dirs under /tmp/.coe where task code can read them:
    those the run uid could not read, and those about to be hidden (e.g. under /root).
    Returns the top-level dirs that must stay visible because a bind failed."""
    os.mkdir(LIBDIR, 0o755)
    moved, keep = [], set()
    for i, p in enumerate(list(sys.path)):
        if not os.path.exists(p):
            continue
        if not hidden_by_view(p) and (others_can_read(p) or not dropping_uid):
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
            keep.add(os.path.realpath(p).split("/")[1])
    for mod in list(sys.modules.values()):  # packages already imported look up submodules here
        path = getattr(mod, "__path__", None)
        if type(path) is list:
            path[:] = [rebase(d, moved) for d in path]
    return keep


def rebase(path, moved):
    for old, new in moved:
        if (path + "/").startswith(old):
            return new + path[len(old):]
    return path


def limit_sysv_ipc(notes):
    """Allow no SysV IPC object in this worker's IPC namespace: a segment, queue or
    semaphore set outlives the process that made it, so a run could leave memory
    behind for ever. Returns whether the limits are in force."""
    try:
        for name, value in (("shmmni", "0"), ("msgmni", "0"), ("sem", "0 0 0 0")):
            with open("/proc/sys/kernel/" + name, "w") as f:
                f.write(value)
        return True
    except OSError as e:
        notes.append("SysV IPC stays available in the worker (%s); removed after each run" % describe_error(e))
        return False


def clear_sysv(owner):
    """Remove SysV IPC objects (those of uid `owner`, or all when None) in our IPC namespace."""
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                rows = [line.split() for line in f.read().split("\n")]
        except OSError:
            continue
        uid_col = rows[0].index("uid") if rows and "uid" in rows[0] else None
        for row in rows[1:]:
            if uid_col is None or len(row) <= uid_col:
                continue
            if owner is None or row[uid_col] == str(owner):
                ident = int(row[1])
                if kind == "shm":
                    libc.shmctl(ident, IPC_RMID, None)
                elif kind == "msg":
                    libc.msgctl(ident, IPC_RMID, None)
                else:
                    libc.semctl(ident, 0, IPC_RMID)


def drop_capabilities():
    """Empty every capability set (non-root in a user namespace keeps the uid but not the caps)."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc.capset(header, data), "capset")
