# --- seccomp.py: the syscall filter of every run child --------------------------------
#
# Task code gets no new namespaces (a user namespace would hand it mount rights, and
# tmpfs memory that no rlimit counts), no mounts, no keyrings, no ptrace, no bpf,
# userfaultfd, perf events or io_uring: calls no test needs and where kernel holes
# tend to be. Denied calls fail with EPERM; clone3 fails with ENOSYS so the C library
# falls back to clone, whose flags the filter can inspect. A classic BPF program,
# built once per worker and installed (after no_new_privs) on the server once it is
# set up; every run child inherits it through fork, so it costs a run nothing.

SECCOMP_ARCHES = {
    # machine: (AUDIT_ARCH, clone, clone3, {call: number})
    "x86_64": (0xC000003E, 56, 435, {
        "ptrace": 101, "pivot_root": 155, "chroot": 161, "mount": 165, "umount2": 166,
        "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
        "perf_event_open": 298, "setns": 308, "bpf": 321, "userfaultfd": 323}),
    "aarch64": (0xC00000B7, 220, 435, {
        "ptrace": 117, "pivot_root": 41, "chroot": 51, "mount": 40, "umount2": 39,
        "add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97,
        "perf_event_open": 241, "setns": 268, "bpf": 280, "userfaultfd": 282}),
}
# Numbered alike on every architecture since Linux 5.1.
SECCOMP_COMMON = {"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
                  "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
                  "fsmount": 432, "fspick": 433, "mount_setattr": 442}
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NS_FLAGS = 0x20000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
X32_SYSCALL_BIT = 0x40000000
BPF_LD_ABS, BPF_JEQ, BPF_JGE, BPF_JSET, BPF_RET = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_program(machine):
    """The filter as (code, jt, jf, k) tuples, or None on an architecture we do not know."""
    if machine not in SECCOMP_ARCHES:
        return None
    arch, clone, clone3, calls = SECCOMP_ARCHES[machine]
    denied = sorted(set(calls.values()) | set(SECCOMP_COMMON.values()))
    # Jump targets are labels, resolved to relative offsets below.
    prog = [(BPF_LD_ABS, 0, 0, 4),                 # A = seccomp_data.arch
            (BPF_JEQ, 1, 0, arch),
            (BPF_RET, 0, 0, "EPERM"),              # another ABI (e.g. int 0x80): no calls at all
            (BPF_LD_ABS, 0, 0, 0)]                 # A = seccomp_data.nr
    if machine == "x86_64":
        prog.append((BPF_JGE, "EPERM", 0, X32_SYSCALL_BIT))
    prog += [(BPF_JEQ, "EPERM", 0, nr) for nr in denied]
    prog += [(BPF_JEQ, "ENOSYS", 0, clone3),
             (BPF_JEQ, 0, "ALLOW", clone),
             (BPF_LD_ABS, 0, 0, 16),               # A = low word of args[0], the clone flags
             (BPF_JSET, "EPERM", "ALLOW", CLONE_NS_FLAGS)]
    labels = {"ALLOW": len(prog), "EPERM": len(prog) + 1, "ENOSYS": len(prog) + 2}
    prog += [(BPF_RET, 0, 0, RET_ALLOW), (BPF_RET, 0, 0, RET_ERRNO | EPERM), (BPF_RET, 0, 0, RET_ERRNO | ENOSYS)]
    out = []
    for i, (code, jt, jf, k) in enumerate(prog):
        jt = labels[jt] - i - 1 if type(jt) is str else jt
        jf = labels[jf] - i - 1 if type(jf) is str else jf
        k = RET_ERRNO | EPERM if k == "EPERM" else k
        out.append((code, jt, jf, k))
    return out


def build_seccomp():
    """The filter ready for prctl (the program and the buffer it points into), or None."""
    prog = seccomp_program(os.uname().machine)
    if prog is None:
        return None
    raw = b"".join(code.to_bytes(2, sys.byteorder) + bytes((jt, jf)) + k.to_bytes(4, sys.byteorder)
                   for code, jt, jf, k in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    return SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p)), buf


def install_seccomp(filt):
    """Install the filter on this process (no_new_privs must be set already)."""
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(filt[0]), 0, 0), "seccomp")


def probe_seccomp(notes):
    """Build the filter and check, in a throw-away child, that this kernel takes it."""
    filt = build_seccomp()
    if filt is None:
        notes.append("no syscall filter for machine %s" % os.uname().machine)
        return None
    pid = os.fork()
    if pid == 0:
        try:
            check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
            install_seccomp(filt)
            os._exit(0 if libc.unshare(NEWUSER) != 0 else 2)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        notes.append("the kernel refused the syscall filter (status %d)" % os.waitstatus_to_exitcode(status))
        return None
    return filt
